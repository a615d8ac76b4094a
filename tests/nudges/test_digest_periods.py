"""The morning digest covers every day since the previous one: one message on a Monday for Friday to
Sunday, the holiday in the next working day's, and never a day twice, across restarts.

The office of tests/nudges/conftest.py (Mon–Fri, Russian public holidays, ``[leadline] language``
Russian), with a second owner, Carol, who reads English. Contacts come in through the real form
endpoint on the test clock; the digest runs as the scheduler runs it (:func:`digest_job`).
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path

import pytest

from leadline import keys
from leadline.config import Config
from leadline.scheduler import digest_job
from storage.db import Store
from storage.reports.facts import Facts
from storage.reports.scope import Period, Rules, Scope
from tests.conftest import BASE, StartServer
from tests.fake_telegram import FakeTelegram
from tests.nudges.conftest import MSK, Clock, Office, msk, office_config, until

ANNA, CAROL = 111, 333
THURSDAY, FRIDAY, SATURDAY, SUNDAY, MONDAY, TUESDAY = (date(2026, 4, d) for d in range(16, 22))


def config_with_carol(tmp_path: Path, tg: FakeTelegram | None) -> Config:
    staff = [*BASE["staff"], {"name": "Carol", "telegram_id": CAROL, "role": "owner", "language": "en"}]
    telegram = {"token": tg.token, "api_url": tg.api_url} if tg else {}
    return office_config(tmp_path, staff=staff, telegram=telegram)


async def open_office(start_server: StartServer, config: Config, at: datetime) -> tuple[Office, Clock, Store]:
    """The server on a test clock set to ``at``, and the store the scheduler's jobs are given."""
    clock = Clock(at)
    office = Office(await start_server(config, clock=clock), clock)
    return office, clock, office.srv.server.app[keys.STORE]


def digest_texts(office: Office, chat_id: int) -> dict[str, str]:
    """The digest texts queued for a chat, by the last day each covers (its dedupe key's day)."""
    rows = office.srv.rows(
        "SELECT dedupe_key, json_extract(payload, '$.text') AS text FROM outbox"
        " WHERE dedupe_key LIKE ? ORDER BY id",
        [f"digest:%:{chat_id}:text"],
    )
    return {str(r["dedupe_key"]).split(":")[1]: str(r["text"]) for r in rows}


async def forms(office: Office, *posts: tuple[datetime, str]) -> None:
    """A form from the number at each moment (each post its own message, so a repeat is a new touch)."""
    for at, phone in posts:
        await office.form(at, name="Client", phone=phone, message=f"sent {at:%d.%m %H:%M}")


async def the_weekend(office: Office) -> None:
    """Thursday (Friday's digest) 1; Friday 2 people, one of them twice; Saturday 1; Sunday 3; Monday
    before the digest 1 (Tuesday's digest). Every number but Friday's repeat is a different person."""
    await forms(
        office,
        (msk(THURSDAY, 15, 0), "+79160000100"),
        (msk(FRIDAY, 10, 0), "+79160000101"),
        (msk(FRIDAY, 11, 0), "+79160000102"),
        (msk(FRIDAY, 17, 30), "+79160000102"),
        (msk(SATURDAY, 12, 0), "+79160000103"),
        (msk(SUNDAY, 9, 0), "+79160000104"),
        (msk(SUNDAY, 13, 0), "+79160000105"),
        (msk(SUNDAY, 23, 59), "+79160000106"),
        (msk(MONDAY, 8, 30), "+79160000107"),
    )


def inbound(config: Config, office: Office, period: Period, now: datetime) -> tuple[int, int]:
    """(inbound contacts, inbound touches) of ``period`` as ``leadline report`` counts them."""
    db = office.srv.db()
    try:
        total = Facts(db, Scope(period, as_of=now), Rules.from_config(config)).total()
    finally:
        db.close()
    return total.inbound_contacts, total.inbound_touches


async def test_monday_sends_one_digest_per_owner_for_friday_to_sunday_and_tuesday_sends_monday(
    tg: FakeTelegram, start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_with_carol(tmp_path, tg)
    office, clock, store = await open_office(start_server, config, msk(THURSDAY, 14, 0))
    await the_weekend(office)

    # Friday's digest was Thursday's (the base's first: from the previous working day).
    clock.now = msk(FRIDAY, 9, 0)
    await digest_job(config, store, clock, lambda: None)
    assert list(digest_texts(office, ANNA)) == ["2026-04-16"]

    clock.now = msk(MONDAY, 9, 0)
    await digest_job(config, store, clock, lambda: None)
    # One digest per owner: its key is the last day it covers.
    assert list(digest_texts(office, ANNA)) == ["2026-04-16", "2026-04-19"]
    assert list(digest_texts(office, CAROL)) == ["2026-04-16", "2026-04-19"]
    anna, carol = digest_texts(office, ANNA)["2026-04-19"], digest_texts(office, CAROL)["2026-04-19"]

    # Its figures are the three days': 2 + 1 + 3 people, 3 + 1 + 3 touches (not Thursday's, not Monday's).
    days = [inbound(config, office, Period.day(d, MSK), clock.now) for d in (FRIDAY, SATURDAY, SUNDAY)]
    assert days == [(2, 3), (1, 1), (3, 3)]
    assert [sum(counts) for counts in zip(*days, strict=True)] == [6, 7]
    assert carol.startswith(
        "<b>Leadline · Fri 17 – Sun 19 Apr 2026</b>\nInbound contacts: <b>6</b> (+6) · touches 7\n"
    )
    assert "<i>(changes vs Fri 10 – Sun 12 Apr)</i>" in carol
    # Who is still unregistered, as of now: the six of the weekend, the first five by name.
    assert "<b>Still not registered: 6</b>\n• 17 Apr, 10:00 MSK Client +79160000101" in carol
    assert "• 19 Apr, 13:00 MSK Client +79160000105\n… and 1 more" in carol
    assert anna.startswith(
        "<b>Leadline · пт, 17 – вс, 19 апреля 2026</b>\nВходящие контакты: <b>6</b> (+6) · обращений 7\n"
    )
    assert "<i>(в сравнении с пт, 10 – вс, 12 апреля)</i>" in anna
    # One chart for the span, per language, and Telegram gets it all once.
    photos = office.srv.rows(
        "SELECT chat_id, json_extract(payload, '$.photo') AS photo FROM outbox"
        " WHERE dedupe_key LIKE 'digest:2026-04-19:%:photo' ORDER BY chat_id"
    )
    assert [(r["chat_id"], Path(str(r["photo"])).name) for r in photos] == [
        (ANNA, "leadline-digest-2026-04-17..2026-04-19.png"),
        (CAROL, "leadline-digest-2026-04-17..2026-04-19-en.png"),
    ]
    await until(lambda: len(tg.sent("sendMessage", chat_id=CAROL)) == 2)
    assert tg.sent("sendMessage", chat_id=CAROL)[1]["text"] == carol
    assert len(tg.sent("sendPhoto", chat_id=ANNA)) == 2
    await office.srv.stop()

    # A restart at 09:05: the start-up catch-up finds nothing owed.
    clock.now = msk(MONDAY, 9, 5)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="leadline.scheduler"):
        office = Office(await start_server(config, clock=clock), clock)
        await until(lambda: "no digest owed" in caplog.text)
    assert list(digest_texts(office, ANNA)) == ["2026-04-16", "2026-04-19"]

    # Tuesday: Monday only, against Monday a week earlier.
    await forms(office, (msk(MONDAY, 11, 0), "+79160000108"))
    clock.now = msk(TUESDAY, 9, 0)
    await digest_job(config, office.srv.server.app[keys.STORE], clock, lambda: None)
    assert list(digest_texts(office, CAROL)) == ["2026-04-16", "2026-04-19", "2026-04-20"]
    tuesday = digest_texts(office, CAROL)["2026-04-20"]
    assert tuesday.startswith(
        "<b>Leadline · Mon 20 Apr 2026</b>\nInbound contacts: <b>2</b> (+2) · touches 2\n"
    )
    assert "<i>(changes vs Mon 13 Apr)</i>" in tuesday
    assert digest_texts(office, ANNA)["2026-04-20"].startswith("<b>Leadline · пн, 20 апреля 2026</b>\n")


async def test_a_monday_holiday_is_in_tuesdays_digest_with_the_weekend(
    tg: FakeTelegram, start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Monday 23 February 2026 is Defender of the Fatherland Day: no digest that day; Tuesday's covers
    Friday to Monday."""
    friday, monday, tuesday = date(2026, 2, 20), date(2026, 2, 23), date(2026, 2, 24)
    config = config_with_carol(tmp_path, tg)
    office, clock, store = await open_office(start_server, config, msk(friday, 9, 0))
    await digest_job(config, store, clock, lambda: None)
    assert list(digest_texts(office, CAROL)) == ["2026-02-19"]
    await forms(office, (msk(friday, 12, 0), "+79160000201"), (msk(monday, 12, 0), "+79160000202"))

    clock.now = msk(monday, 9, 0)
    with caplog.at_level(logging.INFO, logger="leadline.scheduler"):
        await digest_job(config, store, clock, lambda: None)
    assert "not a working day" in caplog.text
    assert list(digest_texts(office, CAROL)) == ["2026-02-19"]

    clock.now = msk(tuesday, 9, 0)
    await digest_job(config, store, clock, lambda: None)
    assert list(digest_texts(office, CAROL)) == ["2026-02-19", "2026-02-23"]
    carol = digest_texts(office, CAROL)["2026-02-23"]
    assert carol.startswith("<b>Leadline · Fri 20 – Mon 23 Feb 2026</b>\nInbound contacts: <b>2</b> (+2)")
    assert "<i>(changes vs Fri 13 – Mon 16 Feb)</i>" in carol
    assert digest_texts(office, ANNA)["2026-02-23"].startswith(
        "<b>Leadline · пт, 20 – пн, 23 февраля 2026</b>\n"
    )


async def test_without_a_token_the_log_gets_the_same_one_digest(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_with_carol(tmp_path, None)
    office, clock, store = await open_office(start_server, config, msk(THURSDAY, 14, 0))
    await the_weekend(office)
    clock.now = msk(FRIDAY, 9, 0)
    await digest_job(config, store, clock, lambda: None)

    clock.now = msk(MONDAY, 9, 0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="leadline.digest"):
        await digest_job(config, store, clock, lambda: None)
        await digest_job(config, store, clock, lambda: None)  # a second run at the same time: nothing
    logged = [r.getMessage() for r in caplog.records if "no bot token" in r.getMessage()]
    assert len(logged) == 1
    chart = tmp_path / "leadline-digest-2026-04-17..2026-04-19.png"
    # In the office's language (Carol's English is for her chat, and there is no chat without a token).
    assert "Leadline · пт, 17 – вс, 19 апреля 2026\nВходящие контакты: 6 (+6) · обращений 7\n" in logged[0]
    assert "(в сравнении с пт, 10 – вс, 12 апреля)" in logged[0]
    # Who is still owed a call is counted, never named, in the log (DESIGN.md).
    assert "•" not in logged[0] and "+79" not in logged[0]
    assert f"chart: {chart}" in logged[0] and chart.read_bytes().startswith(b"\x89PNG")
    assert office.srv.rows("SELECT * FROM outbox WHERE dedupe_key LIKE 'digest:%'") == []
