"""Folding call events into call touches: one contact per person, and missed calls called back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlite_utils import Database

from storage.attribution import CampaignIndex
from storage.calls import apply_call_event
from storage.db import iso, open_database
from storage.events import CallEvent
from storage.touches import EventContext
from tests.capture.test_mango import mango_config, post_mango, signed_mango, summary
from tests.conftest import Running, StartServer

MSK = ZoneInfo("Europe/Moscow")
#: A Tuesday in 2026 that is no Russian holiday; working time is Mon–Fri 09:00–18:00 Moscow.
TUESDAY = datetime(2026, 4, 14, tzinfo=MSK)


class Clock:
    """The server's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def at(day: datetime, hh: int, mm: int) -> datetime:
    return day.replace(hour=hh, minute=mm)


async def call(
    srv: Running,
    clock: Clock,
    entry_id: str,
    number: str,
    start: datetime,
    *,
    answered: bool,
    outbound: bool = False,
) -> dict[str, Any]:
    """Post a Mango summary for a call that started at ``start``; returns its touch."""
    clock.now = start + timedelta(minutes=2)
    payload = summary(
        entry_id, number, start=int(start.timestamp()), answered=answered, direction=2 if outbound else 1
    )
    resp = await post_mango(srv, "/events/summary", signed_mango(payload))
    assert resp.status == 200
    [touch] = srv.rows("SELECT * FROM touches WHERE external_id = ?", [entry_id])
    return touch


def touch(srv: Running, entry_id: str) -> dict[str, Any]:
    [row] = srv.rows("SELECT * FROM touches WHERE external_id = ?", [entry_id])
    return row


async def test_five_spellings_of_one_number_are_one_contact_with_five_touches(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(mango_config(tmp_path))
    spellings = [
        "8 (916) 123-45-67",
        "+7 916 1234567",
        "79161234567",
        "8-916-123-45-67",
        "+7 (916) 123-45-67",
    ]
    for i, spelling in enumerate(spellings):
        payload = summary(f"E-spelling-{i}", spelling, start=1_776_150_000 + i * 600, answered=i % 2 == 0)
        assert (await post_mango(srv, "/events/summary", signed_mango(payload))).status == 200
    rows = srv.rows("SELECT contact_id, phone_raw FROM touches ORDER BY id")
    # Mango writes international digits without their "+" (FORMATS §0.5): the caller keeps the "+",
    # so the call-back and the export read it as the international number it is.
    assert [r["phone_raw"] for r in rows] == [s if s != "79161234567" else "+79161234567" for s in spellings]
    assert len({r["contact_id"] for r in rows}) == 1
    assert srv.scalar("SELECT COUNT(*) FROM contacts") == 1
    assert srv.rows("SELECT value FROM identifiers WHERE kind = 'phone'") == [{"value": "+79161234567"}]


async def test_a_missed_call_returned_within_the_sla_is_called_back_and_one_returned_later_is_not(
    start_server: StartServer, tmp_path: Path
) -> None:
    clock = Clock(at(TUESDAY, 10, 0))
    srv = await start_server(mango_config(tmp_path), clock=clock)
    await call(srv, clock, "in-1", "79161111111", at(TUESDAY, 11, 0), answered=False)
    back = await call(
        srv, clock, "out-1", "8 916 111-11-11", at(TUESDAY, 11, 20), answered=True, outbound=True
    )
    assert back["direction"] == "out"
    missed = touch(srv, "in-1")
    assert (missed["called_back_at"], missed["called_back_by"]) == (iso(at(TUESDAY, 11, 20)), back["id"])

    await call(srv, clock, "in-2", "79162222222", at(TUESDAY, 11, 0), answered=False)
    await call(srv, clock, "out-2", "79162222222", at(TUESDAY, 11, 45), answered=True, outbound=True)
    late = touch(srv, "in-2")
    assert (late["call_status"], late["called_back_at"], late["called_back_by"]) == ("missed", None, None)


async def test_the_sla_counts_working_minutes_across_the_night(
    start_server: StartServer, tmp_path: Path
) -> None:
    clock = Clock(at(TUESDAY, 17, 0))
    srv = await start_server(mango_config(tmp_path), clock=clock)
    wednesday = TUESDAY + timedelta(days=1)
    await call(srv, clock, "evening", "79163333333", at(TUESDAY, 17, 50), answered=False)
    back = await call(
        srv, clock, "morning", "79163333333", at(wednesday, 9, 10), answered=True, outbound=True
    )
    assert touch(srv, "evening")["called_back_by"] == back["id"]  # 10 minutes on Tuesday + 10 on Wednesday

    await call(srv, clock, "evening-2", "79164444444", at(TUESDAY, 17, 50), answered=False)
    await call(srv, clock, "too-late", "79164444444", at(wednesday, 9, 25), answered=True, outbound=True)
    assert touch(srv, "evening-2")["called_back_at"] is None  # 10 + 25 = 35 working minutes


async def test_the_answer_may_arrive_before_the_missed_calls_summary(
    start_server: StartServer, tmp_path: Path
) -> None:
    clock = Clock(at(TUESDAY, 12, 0))
    srv = await start_server(mango_config(tmp_path), clock=clock)
    back = await call(
        srv, clock, "out-first", "79165555555", at(TUESDAY, 12, 10), answered=True, outbound=True
    )
    missed = await call(srv, clock, "in-late", "79165555555", at(TUESDAY, 12, 0), answered=False)
    assert (missed["called_back_at"], missed["called_back_by"]) == (iso(at(TUESDAY, 12, 10)), back["id"])


async def test_their_answered_call_counts_and_another_missed_one_does_not(
    start_server: StartServer, tmp_path: Path
) -> None:
    clock = Clock(at(TUESDAY, 13, 0))
    srv = await start_server(mango_config(tmp_path), clock=clock)
    await call(srv, clock, "first", "79166666666", at(TUESDAY, 13, 0), answered=False)
    await call(srv, clock, "second", "79166666666", at(TUESDAY, 13, 5), answered=False)
    assert touch(srv, "first")["called_back_at"] is None
    third = await call(srv, clock, "third", "79166666666", at(TUESDAY, 13, 20), answered=True)
    assert touch(srv, "first")["called_back_by"] == third["id"]
    assert touch(srv, "second")["called_back_by"] == third["id"]
    assert third["called_back_at"] is None


async def test_a_hidden_caller_is_never_matched_to_a_call_back(
    start_server: StartServer, tmp_path: Path
) -> None:
    clock = Clock(at(TUESDAY, 14, 0))
    srv = await start_server(mango_config(tmp_path), clock=clock)
    await call(srv, clock, "anon", "", at(TUESDAY, 14, 0), answered=False)
    await call(srv, clock, "anon-2", "", at(TUESDAY, 14, 5), answered=True)
    hidden = touch(srv, "anon")
    assert (hidden["hidden_caller"], hidden["contact_id"], hidden["called_back_at"]) == (1, None, None)


Store = tuple[Database, EventContext]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real database file and a source's context, for the folding rules on their own."""
    db = open_database(tmp_path / "calls.db")
    ctx = EventContext(
        source="pbx",
        received_at=datetime(2026, 4, 14, 9, 0, tzinfo=UTC),
        region="RU",
        campaigns=CampaignIndex.build([], "RU"),
    )
    yield db, ctx
    db.close()


def _row(db: Database, external_id: str) -> dict[str, Any]:
    cursor = db.execute("SELECT * FROM touches WHERE external_id = ?", [external_id])
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchone(), strict=True))


def test_a_later_final_with_a_higher_seq_corrects_the_outcome_and_its_call_backs(store: Store) -> None:
    db, ctx = store
    start = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)
    missed = CallEvent(
        "m", "m:end", "in", "missed", caller="79167777777", started_at=start, final=True, answered=False
    )
    apply_call_event(db, missed, ctx)
    answered = CallEvent(
        "a",
        "a:end",
        "in",
        "answered",
        caller="79167777777",
        started_at=start + timedelta(minutes=5),
        final=True,
        answered=True,
        seq=0,
        duration_s=40,
    )
    touch_id, created = apply_call_event(db, answered, ctx)
    assert created and _row(db, "m")["called_back_by"] == touch_id
    # A final without a higher seq only fills blanks; one with a higher seq corrects the call.
    apply_call_event(db, CallEvent("a", "a:late", "in", "missed", final=True, answered=False, talk_s=0), ctx)
    assert (_row(db, "a")["call_status"], _row(db, "a")["talk_s"]) == ("answered", 0)
    apply_call_event(
        db, CallEvent("a", "a:dial", "in", "missed", final=True, answered=False, seq=9, duration_s=0), ctx
    )
    corrected = _row(db, "a")
    assert (corrected["call_status"], corrected["answered"], corrected["duration_s"]) == ("missed", 0, 0)
    assert _row(db, "m")["called_back_by"] is None
    assert _row(db, "a")["called_back_at"] is None  # the corrected call is itself a missed call now


def test_internal_calls_and_repeated_events_change_nothing(store: Store) -> None:
    db, ctx = store
    assert apply_call_event(db, CallEvent("i", "i:1", "internal", "answered", caller="101"), ctx) == (
        None,
        False,
    )
    event = CallEvent("c", "c:1", "in", "ringing", caller="79168888888", seq=1)
    touch_id, created = apply_call_event(db, event, ctx)
    assert created
    assert apply_call_event(db, event, ctx) == (touch_id, False)
    assert db.execute("SELECT COUNT(*) FROM call_events").fetchone()[0] == 1
    assert db.execute("SELECT COUNT(*) FROM touches").fetchone()[0] == 1


def test_a_touch_made_before_the_caller_is_known_gets_it_from_a_later_event(store: Store) -> None:
    db, ctx = store
    apply_call_event(db, CallEvent("late", "late:1", "in", "ringing", seq=1), ctx)
    assert (_row(db, "late")["contact_id"], _row(db, "late")["hidden_caller"]) == (None, 0)
    apply_call_event(db, CallEvent("late", "late:2", "in", "answered", caller="+7 916 999-99-99", seq=2), ctx)
    row = _row(db, "late")
    assert (row["phone_raw"], row["hidden_caller"], row["call_status"]) == ("+7 916 999-99-99", 0, "answered")
    assert row["contact_id"] is not None
    apply_call_event(db, CallEvent("none", "none:1", "in", "ringing", seq=1), ctx)
    apply_call_event(db, CallEvent("none", "none:end", "in", "missed", final=True, answered=False), ctx)
    assert (_row(db, "none")["hidden_caller"], _row(db, "none")["call_status"]) == (1, "missed")
