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


def _digest_days(office: Office) -> list[str]:
    rows = office.srv.rows(
        "SELECT dedupe_key FROM outbox WHERE dedupe_key LIKE 'digest:%:111:text' ORDER BY id"
    )
    return [str(r["dedupe_key"]).split(":")[1] for r in rows]


async def test_monday_after_a_missed_friday_sends_one_digest_since_thursday(
    tg: FakeTelegram, start_server: StartServer, tmp_path: Path
) -> None:
    """Friday's run never happened: Monday's one digest covers Thursday to Sunday (the last one covered
    Wednesday), compared with Thursday to Sunday a week earlier; running again sends nothing more."""
    config = office_config(tmp_path, telegram={"token": tg.token, "api_url": tg.api_url})
    clock = Clock(msk(date(2026, 4, 16), 9, 0))  # Thursday
    office = Office(await start_server(config, clock=clock), clock)
    store = office.srv.server.app[keys.STORE]
    await digest_job(config, store, clock, lambda: None)
    assert _digest_days(office) == ["2026-04-15"]

    # Friday's run never happened (the process was down); Monday catches up.
    clock.now = msk(date(2026, 4, 20), 9, 0)
    await digest_job(config, store, clock, lambda: None)
    assert _digest_days(office) == ["2026-04-15", "2026-04-19"]
    await digest_job(config, store, clock, lambda: None)
    assert len(_digest_days(office)) == 2
    await until(lambda: len(tg.sent("sendMessage", chat_id=111)) == 2)
    # Anna has no language of her own: the office's, Russian.
    monday = str(tg.sent("sendMessage", chat_id=111)[1]["text"])
    assert monday.startswith("<b>Leadline · чт, 16 – вс, 19 апреля 2026</b>\n")
    assert "<i>(в сравнении с чт, 9 – вс, 12 апреля)</i>" in monday


async def test_a_process_started_after_the_digest_time_sends_the_days_digest_once(
    tg: FakeTelegram, start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = office_config(tmp_path, telegram={"token": tg.token, "api_url": tg.api_url})
    clock = Clock(msk(date(2026, 4, 20), 9, 0))  # Monday: the digest went out as usual
    first = Office(await start_server(config, clock=clock), clock)
    await digest_job(config, first.srv.server.app[keys.STORE], clock, lambda: None)
    assert _digest_days(first) == ["2026-04-19"]
    await first.srv.stop()

    clock.now = msk(date(2026, 4, 21), 10, 30)  # Tuesday: the process starts after 09:00
    second = Office(await start_server(config, clock=clock), clock)
    await until(lambda: _digest_days(second) == ["2026-04-19", "2026-04-20"])
    await tg.wait_for("sendMessage", chat_id=111)
    await second.srv.stop()

    clock.now = msk(date(2026, 4, 21), 10, 45)  # restarted again: nothing is owed
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="leadline.scheduler"):
        third = Office(await start_server(config, clock=clock), clock)
        await until(lambda: "no digest owed" in caplog.text)
    assert _digest_days(third) == ["2026-04-19", "2026-04-20"]
