"""The scheduler in the running app: it sweeps on its own, and sends the digest on working days only."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest

from leadline import keys
from leadline.scheduler import digest_job
from tests.conftest import StartServer
from tests.fake_telegram import FakeTelegram
from tests.nudges.conftest import BORIS, TUESDAY, Clock, Office, msk, office_config, until


async def test_the_app_sweeps_by_itself(start_server: StartServer, tmp_path: Path) -> None:
    clock = Clock(msk(TUESDAY, 10, 0))
    srv = await start_server(office_config(tmp_path, nudges={"sweep_seconds": 0.05}), clock=clock)
    office = Office(srv, clock)
    await office.call("c1", "+79161234567", msk(TUESDAY, 10, 0), answered=True)
    clock.now = msk(TUESDAY, 10, 15)
    await until(lambda: bool(office.messages(BORIS)))
    assert len(office.nudges()) == 1


def _digest_rows(office: Office) -> list[dict[str, object]]:
    return office.srv.rows("SELECT chat_id, method FROM outbox WHERE dedupe_key LIKE 'digest:%' ORDER BY id")


async def test_the_digest_goes_to_the_owner_on_a_working_day_and_not_at_the_weekend(
    tg: FakeTelegram, start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = office_config(tmp_path, telegram={"token": tg.token, "api_url": tg.api_url})
    clock = Clock(msk(date(2026, 4, 18), 9, 0))  # a Saturday
    office = Office(await start_server(config, clock=clock), clock)
    app = office.srv.server.app
    woken: list[bool] = []
    with caplog.at_level(logging.INFO, logger="leadline.scheduler"):
        await digest_job(config, app[keys.STORE], clock, lambda: woken.append(True))
    assert _digest_rows(office) == []
    assert "not a working day" in caplog.text

    clock.now = msk(date(2026, 4, 20), 9, 0)  # Monday
    await digest_job(config, app[keys.STORE], clock, lambda: woken.append(True))
    assert {(r["chat_id"], r["method"]) for r in _digest_rows(office)} == {
        (111, "sendPhoto"),
        (111, "sendMessage"),
    }
    assert woken == [True]
    await tg.wait_for("sendMessage", chat_id=111)
