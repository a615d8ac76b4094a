"""Cards on arrival: the moment a new inbound touch is stored, its card goes to whoever answers it.

Like the nudges, nothing here keeps a timer or a queue in memory: a pass reads the touches the
arrival pass has not judged yet (``touches.arrival IS NULL``, and in working time those ``held``
until it) and, in the same write, gives each a card, folds it into the card of its contact's burst,
marks it as needing none or holds it. Capture wakes the pass after every commit; it also runs every second, which finishes what a worker process stored, a
held touch whose working minute has come, and a registration made since. A crash between passes
loses nothing: the touches are still unjudged.

* **Who.** A missed call goes to the staff member whose extension rang, an answered call (once it
  has ended) to the one whose extension answered; a form or a letter (and a call no extension took)
  to the assignee (:func:`storage.assign.assign`); with nobody to reach, to the team chat, else to
  the managers. The person is stored as ``touches.assignee_id``, the moment as ``touches.given_at``.
* **What.** A missed call's card asks for a call back; any other touch's asks "Who was it?" with the
  registration buttons. A contact with an open lead gets no question: the lead's owner is told that
  the contact has come back. A contact registered otherwise, a hidden caller, a blocked or dropped
  touch, an outbound call and a touch entered by hand get no card.
* **Bursts.** A touch within ``burst_minutes`` of the last one on an open card of the same kind about
  the same contact is folded into it: the card is rendered again with the count, in place (its
  queued row rewritten, or an ``editMessageText`` of the sent message).
* **Registration.** Once the contact is registered, its open cards are closed and edited to say by
  whom, without buttons.
* **Outside working time.** With ``outside_hours = "hold"`` a form, a letter or an answered call
  waits for the next working minute; a missed call follows ``callback_outside_hours``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlite_utils import Database

from storage import meta
from storage.arrival_cards import (
    ArrivalKind,
    ArrivalPass,
    ArrivalRules,
    ArrivalView,
    Render,
    assignee,
    language_of,
    owners_and_managers,
    person_of,
    redraw,
    view_of,
)
from storage.calls import CALLED_BACK_SQL, pressed_called_back
from storage.cards import touch_card
from storage.contacts import live_contact
from storage.db import iso, parse_iso
from storage.outbox import enqueue
from storage.registrations import registration_of
from storage.staff import Person


@dataclass(slots=True)
class Passed:
    """What one pass did: outbox rows it queued, cards it opened, folded into or closed."""

    outbox_ids: list[int] = field(default_factory=list)
    cards: int = 0
    folded: int = 0
    closed: int = 0
    held: int = 0
    skipped: int = 0


_PENDING_COLUMNS = """
SELECT id, contact_id, source, channel, direction, answered, call_final, hidden_caller, dropped, blocked,
       staff_id, received_at
FROM touches"""
#: Touches not judged yet, and (in working time) those held until it: two partial indexes, one each.
_PENDING_SQL = f"{_PENDING_COLUMNS} WHERE arrival IS NULL AND received_at >= ?"
_HELD_SQL = f"{_PENDING_COLUMNS} WHERE arrival = 'held' AND received_at >= ?"


#: ``meta`` key: from when touches get a card (set when cards on arrival are switched on), or ``off``.
SINCE_KEY = "arrivals_since"

#: Open registration cards, opened since ``?``, whose contact has been registered.
_CARD_COLUMNS = (
    "SELECT a.id, a.kind, a.contact_id, a.chat_id, a.staff_id, a.last_touch_id, a.touches, a.lead_id,"
    " a.outbox_id, o.status, o.message_id FROM arrival_cards a JOIN outbox o ON o.id = a.outbox_id"
    " WHERE a.closed_at IS NULL AND a.opened_at >= ?"
)
_REGISTERED_SQL = (
    f"{_CARD_COLUMNS} AND a.kind = 'register'"
    " AND EXISTS (SELECT 1 FROM registrations r WHERE r.contact_id = a.contact_id)"
)
#: Open missed-call cards, opened since ``?``, called back: by telephony (an answered call with the
#: person since, however late: ``storage/calls.py``'s rule, as /missed and the nudges read it) or
#: with the "Called back" button of the card or its nudge.
_CALLED_BACK_SQL = (
    f"{_CARD_COLUMNS} AND a.kind = 'callback'"
    f" AND (EXISTS (SELECT 1 FROM touches t WHERE t.id = a.last_touch_id AND {CALLED_BACK_SQL})"
    f" OR {pressed_called_back('a.contact_id', 'a.opened_at')})"
)


def switch(db: Database, now: datetime, on: bool) -> None:
    """Record at start-up whether cards on arrival are on. Switched on, they start from this moment:
    the touches stored while they were off are history, and get none. Touches held until working
    time are judged again, by the rules this start brings (``outside_hours`` may have changed)."""
    db.execute("UPDATE touches SET arrival = NULL WHERE arrival = 'held'")
    since = meta.get(db, SINCE_KEY)
    if not on:
        if since != "off":
            meta.put(db, SINCE_KEY, "off")
    elif since is None or since == "off":
        meta.put(db, SINCE_KEY, iso(now))


def _since(db: Database, now: datetime, rules: ArrivalRules) -> str | None:
    """The earliest ``received_at`` a card is owed for; None while cards on arrival are off."""
    since = meta.get(db, SINCE_KEY)
    if not rules.on_arrival or since is None or since == "off":
        return None
    return max(since, iso(now - timedelta(days=rules.horizon_days)))


def arrivals_due(db: Database, now: datetime, rules: ArrivalRules, working: bool) -> bool:
    """Whether a pass has anything to do (a read, so an idle second never takes the writer).

    ``working`` is whether ``now`` is working time: only then are the held touches due."""
    since = _since(db, now, rules)
    if since is None:
        return False
    row = db.execute(
        "SELECT EXISTS (SELECT 1 FROM touches WHERE arrival IS NULL AND received_at >= ?)"
        " OR (? AND EXISTS (SELECT 1 FROM touches WHERE arrival = 'held' AND received_at >= ?))"
        f" OR EXISTS ({_REGISTERED_SQL}) OR EXISTS ({_CALLED_BACK_SQL})",
        [since, working, since, since, since],
    ).fetchone()
    return bool(row[0])


def arrival_pass(
    db: Database, now: datetime, rules: ArrivalRules, render: Render, working: bool | None = None
) -> Passed:
    """Judge every touch not yet judged and close the cards of contacts registered since; one write.

    ``working`` is whether ``now`` is working time, when the caller has asked the calendar already
    (its first question loads the public holidays, which should not happen inside the writer).
    """
    done = Passed()
    since = _since(db, now, rules)
    if since is None:
        return done
    if working is None:
        working = rules.calendar.is_working_time(now)
    pending = db.execute(_PENDING_SQL, [since]).fetchall()
    if working:
        pending = sorted([*pending, *db.execute(_HELD_SQL, [since]).fetchall()])
    step = ArrivalPass(db, now, rules, render, working)
    people = step.people
    # Nobody to give a card to: no staff member on Telegram and no team chat (before the first
    # approval, say). A touch that would get a new card gets none, without the look-ups for it.
    nobody = not people and not step.rules.team_chat
    for row in pending:
        (
            tid,
            contact,
            source,
            channel,
            direction,
            answered,
            final,
            hidden,
            dropped,
            blocked,
            staff,
            received,
        ) = row
        if (
            direction != "in"
            or hidden
            or dropped is not None
            or blocked
            or contact is None
            or channel == "manual"
        ):
            step.judge(tid, "none")
            done.skipped += 1
            continue
        if channel == "call" and not final:
            continue  # the card of a call goes out when the call ends
        missed = channel == "call" and answered == 0
        if not (working or (missed and rules.callback_outside_hours) or (not missed and not rules.hold)):
            step.judge(tid, "held")
            done.held += 1
            continue
        if nobody:
            step.judge(tid, "none")
            done.skipped += 1
            continue
        contact_id = live_contact(db, int(contact))
        if _erased_or_blocked(db, contact_id):
            step.judge(tid, "none")
            done.skipped += 1
            continue
        kind: ArrivalKind
        lead_id: int | None = None
        if missed:
            kind = "callback"
        else:
            lead = _open_lead(db, contact_id)
            if lead is not None:
                kind, lead_id = "repeat", lead[0]
            elif registration_of(db, contact_id) is not None:
                step.judge(tid, "none")
                done.skipped += 1
                continue
            else:
                kind = "register"
        burst = _open_card(db, contact_id, kind, received, rules)
        holder: Person | None = None
        if burst is None and kind == "register" and channel != "call":
            # A contact nobody has registered yet stays with whoever has its card, however long ago.
            earlier = _open_card(db, contact_id, kind, received, rules, whenever=True)
            if earlier is not None and _holds(step, earlier):
                if earlier.status == "pending":
                    burst = earlier  # not sent yet (held overnight with this one): one card
                else:
                    holder = person_of(people, earlier.staff_id)
        if burst is not None:
            ids = _fold(step, tid, received, kind, burst, lead_id, channel)
            if ids is None:
                continue  # the card's message is being sent: fold the touch in at the next pass
            done.outbox_ids += ids
            done.folded += 1
            continue
        if missed:
            to = person_of(people, staff) or assignee(step, source)
        else:
            if lead is not None:
                to = person_of(people, lead[1]) or person_of(people, staff)
            else:
                to = person_of(people, staff) if channel == "call" else holder
            to = to or assignee(step, source)
        ids = _open(step, tid, received, contact_id, kind, to, lead_id, channel)
        done.outbox_ids += ids
        done.cards += 1 if ids else 0
    step.write_judged()
    _close_answered(db, now, rules, render, people, since, done)
    return done


def _erased_or_blocked(db: Database, contact_id: int) -> bool:
    row = db.execute("SELECT blocked, erased_at FROM contacts WHERE id = ?", [contact_id]).fetchone()
    return row is None or bool(row[0]) or row[1] is not None


def _open_lead(db: Database, contact_id: int) -> tuple[int, int | None] | None:
    row = db.execute(
        "SELECT id, owner_id FROM leads WHERE contact_id = ? AND stage NOT IN ('won', 'lost')"
        " ORDER BY id DESC LIMIT 1",
        [contact_id],
    ).fetchone()
    return (int(row[0]), row[1]) if row else None


@dataclass(frozen=True, slots=True)
class _OpenCard:
    id: int
    chat_id: int
    staff_id: int | None
    touches: int
    outbox_id: int
    status: str
    message_id: int | None


def _open_card(
    db: Database,
    contact_id: int,
    kind: ArrivalKind,
    received: str,
    rules: ArrivalRules,
    *,
    whenever: bool = False,
) -> _OpenCard | None:
    """The contact's open card of this kind whose last touch is within the burst before this one
    (``whenever``: however long before)."""
    since = "" if whenever else iso(parse_iso(received) - timedelta(minutes=rules.burst_minutes))
    row = db.execute(
        "SELECT a.id, a.chat_id, a.staff_id, a.touches, a.outbox_id, o.status, o.message_id FROM arrival_cards a"
        " JOIN outbox o ON o.id = a.outbox_id"
        " WHERE a.contact_id = ? AND a.kind = ? AND a.closed_at IS NULL AND a.last_at >= ? AND o.status != 'failed'"
        " ORDER BY a.id DESC LIMIT 1",
        [contact_id, kind, since],
    ).fetchone()
    return (
        _OpenCard(int(row[0]), int(row[1]), row[2], int(row[3]), int(row[4]), str(row[5]), row[6])
        if row
        else None
    )


def _holds(p: ArrivalPass, card: _OpenCard) -> bool:
    """Whether the card's holder can still be reached: its person, or the team chat it went to."""
    if card.staff_id is not None:
        return int(card.staff_id) in p.people
    return bool(p.rules.team_chat) and card.chat_id == p.rules.team_chat


def _fold(
    p: ArrivalPass,
    touch_id: int,
    received: str,
    kind: ArrivalKind,
    burst: _OpenCard,
    lead_id: int | None,
    channel: str,
) -> list[int] | None:
    """The touch counted on its contact's open card, drawn again; None while that card is in flight."""
    if burst.status == "sending":
        return None
    view = view_of(p, touch_id, kind, burst.chat_id, burst.staff_id, burst.touches + 1, lead_id)
    if view is None:
        return []
    db = p.db
    ids = redraw(db, p.now, burst.chat_id, burst.outbox_id, burst.status, burst.message_id, p.render(view))
    db.execute(
        "UPDATE arrival_cards SET touches = touches + 1, last_touch_id = ?, last_at = ? WHERE id = ?",
        [touch_id, received, burst.id],
    )
    _carded(p, touch_id, burst.staff_id, channel)
    return ids


def _carded(p: ArrivalPass, touch_id: int, staff_id: int | None, channel: str) -> None:
    """The touch is on a card given to ``staff_id``: its assignee, and round robin's count."""
    if staff_id is None:  # a team chat's card: the NULL assignee and its two indexes left alone
        p.db.execute("UPDATE touches SET arrival = 'card' WHERE id = ?", [touch_id])
    else:
        p.db.execute(
            "UPDATE touches SET arrival = 'card', assignee_id = ?, given_at = ? WHERE id = ?",
            [staff_id, iso(p.now), touch_id],
        )
    p.gave(staff_id, channel)


def _open(
    p: ArrivalPass,
    touch_id: int,
    received: str,
    contact_id: int,
    kind: ArrivalKind,
    to: Person | None,
    lead_id: int | None,
    channel: str,
) -> list[int]:
    """A new card for the touch, to ``to``, else the team chat, else the first manager."""
    db, now = p.db, p.now
    chat_id = to.chat_id if to else p.rules.team_chat
    if not chat_id:
        managers = owners_and_managers(p.people)
        if not managers:
            p.judge(touch_id, "none")
            return []
        to, chat_id = managers[0], managers[0].chat_id
    staff_id = to.id if to else None
    view = view_of(p, touch_id, kind, chat_id, staff_id, 1, lead_id)
    if view is None:
        return []
    outbox_id = enqueue(db, chat_id, p.render(view), at=now)
    assert outbox_id is not None
    db.execute(
        "INSERT INTO arrival_cards (kind, contact_id, staff_id, chat_id, first_touch_id, last_touch_id, lead_id,"
        " outbox_id, opened_at, last_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [kind, contact_id, staff_id, chat_id, touch_id, touch_id, lead_id, outbox_id, iso(now), received],
    )
    _carded(p, touch_id, staff_id, channel)
    return [outbox_id]


def _close_answered(
    db: Database,
    now: datetime,
    rules: ArrivalRules,
    render: Render,
    people: Mapping[int, Person],
    since: str,
    done: Passed,
) -> None:
    """Open cards answered since (the contact registered, the missed call called back): closed, and
    edited to say so, without buttons."""
    rows = db.execute(_REGISTERED_SQL, [since]).fetchall()
    rows += db.execute(_CALLED_BACK_SQL, [since]).fetchall()
    for (
        card_id,
        kind,
        contact_id,
        chat_id,
        staff_id,
        touch_id,
        count,
        _,
        outbox_id,
        status,
        message_id,
    ) in rows:
        if status == "sending":
            continue
        card = touch_card(db, int(touch_id))
        registration = registration_of(db, int(contact_id)) if kind == "register" else None
        if card is not None and status != "failed" and (registration is not None or kind == "callback"):
            view = ArrivalView(
                kind, int(chat_id), language_of(rules, people, staff_id), rules.language, rules.tz, int(touch_id), card, int(count),
                registered=registration, called_back=kind == "callback",
            )  # fmt: skip
            done.outbox_ids += redraw(db, now, int(chat_id), int(outbox_id), status, message_id, render(view))
        db.execute("UPDATE arrival_cards SET closed_at = ? WHERE id = ?", [iso(now), card_id])
        done.closed += 1
