"""A day of a small office, replayed: Mango's samples, more calls and site forms, a sweep every minute.

Tuesday 5 March 2024 (the day of the Mango samples) and the next morning. At the end no
unregistered touch is un-nudged, nobody was asked twice about the same thing, and nobody got two
messages within a batch window.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from tests.capture.test_mango import MANGO
from tests.conftest import BASE, StartServer
from tests.nudges.conftest import ANNA, BORIS, Clock, Office, msk, office_config

DAY = date(2024, 3, 5)
NEXT = DAY + timedelta(days=1)
VERA = 333


async def test_a_day_leaves_no_unregistered_touch_un_nudged_and_no_one_nudged_twice(
    start_server: StartServer, tmp_path: Path
) -> None:
    staff = [*BASE["staff"], {"name": "Vera", "telegram_id": VERA, "role": "manager"}]
    clock = Clock(msk(DAY, 8, 0))
    office = Office(await start_server(office_config(tmp_path, staff=staff), clock=clock), clock)

    async def samples() -> None:
        for s in MANGO:
            resp = await office.srv.session.post(f"{office.srv.url}{s.path}", data=s.body, headers=s.headers)
            assert resp.status == 200, s.file

    async def registered(number: str, at: datetime) -> None:
        contact = office.srv.scalar("SELECT contact_id FROM identifiers WHERE value = ?", [number])
        await office.register(int(contact), at, staff_id=office.staff_id("Boris"))

    events: list[tuple[datetime, Callable[[], Awaitable[object]]]] = [
        (msk(DAY, 9, 10), lambda: office.call("a1", "+79160000001", msk(DAY, 9, 10), answered=True)),
        (msk(DAY, 9, 20), lambda: registered("+79160000001", msk(DAY, 9, 20))),
        (msk(DAY, 9, 30), lambda: office.form(msk(DAY, 9, 30), name="Bella", phone="+79160000002")),
        (msk(DAY, 10, 0), lambda: office.call("c1", "+79160000003", msk(DAY, 10, 0), answered=False, extension="101")),
        (msk(DAY, 10, 40), lambda: office.call("c2", "+79160000003", msk(DAY, 10, 40), answered=True, extension="101", outbound=True)),
        (msk(DAY, 11, 0), lambda: office.form(msk(DAY, 11, 0), name="Dmitry", phone="+79160000004")),
        (msk(DAY, 11, 3), lambda: office.call("d1", "+79160000004", msk(DAY, 11, 3), answered=True)),
        (msk(DAY, 11, 6), lambda: office.call("d2", "+79160000004", msk(DAY, 11, 6), answered=False)),
        (msk(DAY, 12, 0), lambda: office.call("h1", "anonymous", msk(DAY, 12, 0), answered=True)),
        (msk(DAY, 13, 0), lambda: office.call("e1", "+79160000005", msk(DAY, 13, 0), answered=False)),
        (msk(DAY, 13, 1), lambda: office.call("e2", "+79160000005", msk(DAY, 13, 1), answered=False)),
        (msk(DAY, 15, 0), lambda: office.call("f1", "+79160000006", msk(DAY, 15, 0), answered=True, extension="101")),
        # Due a minute after f1, for the same person: it must wait for the next batch window.
        (msk(DAY, 15, 1), lambda: office.call("i1", "+79160000008", msk(DAY, 15, 1), answered=True, extension="101")),
        (msk(DAY, 17, 25), samples),
        (msk(DAY, 17, 55), lambda: office.call("g1", "+79160000007", msk(DAY, 17, 55), answered=True)),
    ]  # fmt: skip
    # A sweep every minute, as in production: the five-minute batch window, not the sweep
    # interval, is what keeps people to one message per five minutes.
    sweeps = [msk(DAY, 9, 0) + timedelta(minutes=i) for i in range(60 * 10)]
    sweeps += [msk(NEXT, 9, 0) + timedelta(minutes=i) for i in range(60 * 3)]
    for at in sweeps:
        while events and events[0][0] <= at:
            _, happen = events.pop(0)
            await happen()
        await office.sweep(at)
    assert events == []

    # No unregistered touch un-nudged: each has a nudge, or its contact's card covers it.
    open_touches = office.srv.rows(
        "SELECT t.id, t.contact_id FROM touches t WHERE t.direction = 'in' AND t.hidden_caller = 0"
        " AND t.dropped IS NULL AND t.contact_id IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM registrations r WHERE r.contact_id = t.contact_id)"
    )
    assert len(open_touches) == 12
    nudged_contacts = {n["contact_id"] for n in office.nudges() if n["level"] == 0}
    assert {t["contact_id"] for t in open_touches} <= nudged_contacts
    assert (
        office.srv.rows(
            "SELECT n.id FROM nudges n JOIN touches t ON t.id = n.touch_id"
            " WHERE t.hidden_caller = 1 OR EXISTS (SELECT 1 FROM registrations r WHERE r.contact_id = t.contact_id)"
        )
        == []
    )

    # Nobody asked twice about the same thing: one first delivery per nudge and chat.
    firsts = Counter(
        (r["kind"], r["level"], r["contact_id"], r["chat_id"])
        for r in office.srv.rows(
            "SELECT n.kind, n.level, n.contact_id, m.chat_id FROM nudge_deliveries d JOIN nudges n ON n.id = d.nudge_id"
            " JOIN nudge_messages m ON m.id = d.message_id WHERE d.round = 0 GROUP BY n.kind, n.level, n.contact_id, m.chat_id, m.id"
        )
    )
    assert firsts and set(firsts.values()) == {1}

    # Quiet: at most one message per chat per five minutes, and only in working time.
    by_chat: dict[int, list[datetime]] = {}
    for row in office.srv.rows("SELECT chat_id, created_at FROM nudge_messages ORDER BY created_at"):
        by_chat.setdefault(row["chat_id"], []).append(datetime.fromisoformat(row["created_at"]))
    for times in by_chat.values():
        assert all(b - a >= timedelta(minutes=5) for a, b in itertools.pairwise(times))
        assert all(9 <= t.astimezone(msk(DAY, 0).tzinfo).hour < 18 for t in times)
    assert {ANNA, BORIS, VERA} <= set(by_chat)

    kinds = Counter((n["kind"], n["level"]) for n in office.nudges())
    assert kinds[("callback", 0)] >= 3 and kinds[("register", 0)] >= 5 and kinds[("register", 1)] >= 3
