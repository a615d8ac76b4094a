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

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from storage import meta
from storage.assign import Candidate, Mode, assign, present
from storage.calls import CALLED_BACK_SQL, pressed_called_back
from storage.cards import TouchCard, lead_card, touch_card
from storage.chat_moves import current_chat
from storage.contacts import live_contact
from storage.db import iso, parse_iso
from storage.outbox import enqueue
from storage.registrations import Registration, registration_of
from storage.unreachable import UNREACHABLE_SQL, is_unreachable, refused_for_good
from storage.worktime import WorkingCalendar

if TYPE_CHECKING:
    from leadline.config import Config, HoursSection

ArrivalKind = Literal["register", "callback", "repeat"]


@dataclass(frozen=True)
class ArrivalRules:
    """The config's part in the arrival pass, read once."""

    calendar: WorkingCalendar
    on_arrival: bool = True
    hold: bool = True
    callback_outside_hours: bool = False
    burst_minutes: float = 5
    team_chat: int = 0
    mode: Mode = "round_robin"
    #: Who takes forms and letters by round robin, by name, in the config's order.
    round_robin: tuple[str, ...] = ()
    shifts: Mapping[str, HoursSection | None] = field(default_factory=dict)
    #: Source name → the name of its owner (config ``owner``).
    source_owners: Mapping[str, str] = field(default_factory=dict)
    language: str = "ru"
    horizon_days: int = 14
    #: The sources whose PBX can ring a staff member and then the client (``capture.dial.dialable``,
    #: given by the composition root or the bot's dialer): their missed calls' cards offer 📞.
    dialable: frozenset[str] = frozenset()

    def call_back(self, card: TouchCard) -> bool:
        """Whether a missed call's card offers 📞 Call back: its source can dial, and there is a number."""
        return card.touch["source"] in self.dialable and bool(card.phones)

    @classmethod
    def from_config(cls, config: Config) -> ArrivalRules:
        return cls(
            calendar=WorkingCalendar.from_config(config.working_time, config.tz),
            on_arrival=config.notify.on_arrival,
            hold=config.notify.outside_hours == "hold",
            callback_outside_hours=config.sla.callback_outside_hours,
            burst_minutes=config.notify.burst_minutes,
            team_chat=config.telegram.team_chat,
            mode=config.assign.mode,
            round_robin=tuple(config.assign.staff),
            shifts={s.name: s.shift for s in config.staff},
            source_owners={s.name: s.owner for s in config.sources if s.owner},
            language=config.leadline.language,
            horizon_days=config.nudges.horizon_days,
        )

    @property
    def tz(self) -> ZoneInfo:
        return self.calendar.tz


@dataclass(frozen=True, slots=True)
class ArrivalView:
    """Everything a card's renderer needs, without the database."""

    kind: ArrivalKind
    chat_id: int
    language: str
    office_language: str
    tz: ZoneInfo
    touch_id: int
    card: TouchCard
    #: Touches of this contact's burst the card stands for.
    count: int
    #: A ``repeat`` card's lead (``storage.cards.lead_card``).
    lead: dict[str, Any] | None = None
    #: Set once the contact is registered: the card shows by whom and loses its buttons.
    registered: Registration | None = None
    #: Whether the office line can ring the staff member and then the client (a PBX with API access).
    call_back: bool = False
    #: Set once the missed call was called back: the card says so and loses its buttons.
    called_back: bool = False
    #: Set once a manager gave the card to someone else: the name it went to; the card loses its buttons.
    given_to: str | None = None


Render = Callable[[ArrivalView], dict[str, Any]]


@dataclass(slots=True)
class Passed:
    """What one pass did: outbox rows it queued, cards it opened, folded into or closed."""

    outbox_ids: list[int] = field(default_factory=list)
    cards: int = 0
    folded: int = 0
    closed: int = 0
    held: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class _Person:
    id: int
    chat_id: int
    name: str
    role: str
    language: str | None


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
    step = _Pass(db, now, rules, render, working)
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
        holder: _Person | None = None
        if burst is None and kind == "register" and channel != "call":
            # A contact nobody has registered yet stays with whoever has its card, however long ago.
            earlier = _open_card(db, contact_id, kind, received, rules, whenever=True)
            if earlier is not None and _holds(step, earlier):
                if earlier.status == "pending":
                    burst = earlier  # not sent yet (held overnight with this one): one card
                else:
                    holder = _reachable(people, earlier.staff_id)
        if burst is not None:
            ids = _fold(step, tid, received, kind, burst, lead_id, channel)
            if ids is None:
                continue  # the card's message is being sent: fold the touch in at the next pass
            done.outbox_ids += ids
            done.folded += 1
            continue
        if missed:
            to = _reachable(people, staff) or _assignee(step, source)
        else:
            if lead is not None:
                to = _reachable(people, lead[1]) or _reachable(people, staff)
            else:
                to = _reachable(people, staff) if channel == "call" else holder
            to = to or _assignee(step, source)
        ids = _open(step, tid, received, contact_id, kind, to, lead_id, channel)
        done.outbox_ids += ids
        done.cards += 1 if ids else 0
    step.write_judged()
    _close_answered(db, now, rules, render, people, since, done)
    return done


def _people(db: Database, *, reachable: bool = False) -> dict[int, _Person]:
    """The staff on Telegram; with ``reachable``, without those whose chat Telegram refused for good
    (who get no new card until they write to the bot again)."""
    unreachable = f" AND telegram_id NOT IN ({UNREACHABLE_SQL})" if reachable else ""
    return {
        int(r[0]): _Person(int(r[0]), int(r[1]), str(r[2]), str(r[3]), r[4])
        for r in db.execute(
            "SELECT id, telegram_id, name, role, language FROM staff"
            f" WHERE active = 1 AND telegram_id IS NOT NULL{unreachable} ORDER BY id"
        )
    }


def _reachable(people: Mapping[int, _Person], staff_id: int | None) -> _Person | None:
    return people.get(staff_id) if staff_id is not None else None


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


class _Pass:
    """What one pass's steps share: its write, its moment, the rules, the staff, and round robin's
    counts of what each person was given today, calls aside.

    The counts are read once per person per pass, then kept up to date as the pass gives touches
    out, so a flood of forms costs a count per pass rather than one per form.
    """

    def __init__(
        self, db: Database, now: datetime, rules: ArrivalRules, render: Render, working: bool
    ) -> None:
        if rules.team_chat:
            rules = replace(rules, team_chat=current_chat(db, rules.team_chat))
        if rules.team_chat and is_unreachable(db, rules.team_chat):
            rules = replace(rules, team_chat=0)
        self.db, self.now, self.rules, self.render = db, now, rules, render
        #: Whether the office works now: a person without a shift is on only then.
        self.working = working
        self.people = _people(db, reachable=True)
        self.local = now.astimezone(rules.tz)
        self.day_start = iso(self.local.replace(hour=0, minute=0, second=0, microsecond=0))
        self.counts: dict[int, int] = {}
        self._judged: list[tuple[str, int]] = []

    def judge(self, touch_id: int, arrival: str) -> None:
        """A touch that needs no card, or waits for working time: written at the pass's end, in one
        statement, since nothing in the pass reads it back."""
        self._judged.append((arrival, touch_id))

    def write_judged(self) -> None:
        # Only ``arrival``: a touch nobody was given keeps its NULL assignee, two indexes left alone.
        self.db.conn.executemany("UPDATE touches SET arrival = ? WHERE id = ?", self._judged)
        self._judged.clear()

    def today(self, staff_id: int) -> int:
        """What the person was given since the day began, however long ago it arrived: the forms
        held overnight are given out at opening, and count for that day."""
        if staff_id not in self.counts:
            self.counts[staff_id] = int(
                self.db.execute(
                    "SELECT COUNT(*) FROM touches WHERE assignee_id = ? AND given_at >= ?"
                    " AND assignee_id IS NOT NULL AND channel != 'call'",
                    [staff_id, self.day_start],
                ).fetchone()[0]
            )
        return self.counts[staff_id]

    def gave(self, staff_id: int | None, channel: str) -> None:
        if staff_id is not None and channel != "call" and staff_id in self.counts:
            self.counts[staff_id] += 1


def _assignee(p: _Pass, source: str) -> _Person | None:
    """The assignee of a form, a letter, or a call no extension took (:func:`storage.assign.assign`)."""
    rules, people = p.rules, p.people
    by_name = {p.name: p for p in people.values()}
    owner_name = rules.source_owners.get(source)
    source_owner = by_name.get(owner_name) if owner_name else None
    candidates = []
    shifts = [rules.shifts.get(name) for name in rules.round_robin]
    holiday = any(shifts) and rules.calendar.is_holiday(p.local.date())
    for name, shift in zip(rules.round_robin, shifts, strict=True):
        person = by_name.get(name)
        if person is None:
            continue
        on = present(shift, p.local, working=p.working, holiday=holiday)
        candidates.append(Candidate(person.id, on, p.today(person.id)))
    owner = next((p.id for p in people.values() if p.role == "owner"), None)
    chosen = assign(rules.mode, candidates, source_owner.id if source_owner else None, owner)
    return _reachable(people, chosen.staff_id)


def _managers(people: Mapping[int, _Person]) -> list[_Person]:
    return sorted(
        (p for p in people.values() if p.role in ("owner", "manager")),
        key=lambda p: (p.role != "owner", p.id),
    )


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


def _holds(p: _Pass, card: _OpenCard) -> bool:
    """Whether the card's holder can still be reached: its person, or the team chat it went to."""
    if card.staff_id is not None:
        return int(card.staff_id) in p.people
    return bool(p.rules.team_chat) and card.chat_id == p.rules.team_chat


def _language(rules: ArrivalRules, people: Mapping[int, _Person], staff_id: int | None) -> str:
    person = people.get(staff_id) if staff_id is not None else None
    return (person.language if person else None) or rules.language


def _fold(
    p: _Pass,
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
    view = _view(p, touch_id, kind, burst.chat_id, burst.staff_id, burst.touches + 1, lead_id)
    if view is None:
        return []
    db = p.db
    ids = _redraw(db, p.now, burst.chat_id, burst.outbox_id, burst.status, burst.message_id, p.render(view))
    db.execute(
        "UPDATE arrival_cards SET touches = touches + 1, last_touch_id = ?, last_at = ? WHERE id = ?",
        [touch_id, received, burst.id],
    )
    _carded(p, touch_id, burst.staff_id, channel)
    return ids


def _view(
    p: _Pass,
    touch_id: int,
    kind: ArrivalKind,
    chat_id: int,
    staff_id: int | None,
    count: int,
    lead_id: int | None,
) -> ArrivalView | None:
    """What a card about the touch shows; None, with the touch judged to need no card, when it is gone."""
    db, rules = p.db, p.rules
    card = touch_card(db, touch_id)
    if card is None:
        p.judge(touch_id, "none")
        return None
    lead = lead_card(db, lead_id) if lead_id is not None else None
    return ArrivalView(
        kind, chat_id, _language(rules, p.people, staff_id), rules.language, rules.tz, touch_id, card, count, lead,
        call_back=rules.call_back(card),
    )  # fmt: skip


def _carded(p: _Pass, touch_id: int, staff_id: int | None, channel: str) -> None:
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
    p: _Pass,
    touch_id: int,
    received: str,
    contact_id: int,
    kind: ArrivalKind,
    to: _Person | None,
    lead_id: int | None,
    channel: str,
) -> list[int]:
    """A new card for the touch, to ``to``, else the team chat, else the first manager."""
    db, now = p.db, p.now
    chat_id = to.chat_id if to else p.rules.team_chat
    if not chat_id:
        managers = _managers(p.people)
        if not managers:
            p.judge(touch_id, "none")
            return []
        to, chat_id = managers[0], managers[0].chat_id
    staff_id = to.id if to else None
    view = _view(p, touch_id, kind, chat_id, staff_id, 1, lead_id)
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


def _redraw(
    db: Database,
    now: datetime,
    chat_id: int,
    outbox_id: int,
    status: str,
    message_id: int | None,
    payload: dict[str, Any],
) -> list[int]:
    """A card drawn again: its queued message rewritten while unsent, else an edit of the sent one."""
    if status == "pending":
        db.execute(
            "UPDATE outbox SET payload = ? WHERE id = ?", [json.dumps(payload, ensure_ascii=False), outbox_id]
        )
        return []
    if message_id is None:
        return []
    edit = {**payload, "message_id": int(message_id)}
    edit.setdefault("reply_markup", {"inline_keyboard": []})
    new = enqueue(db, chat_id, edit, at=now, method="editMessageText")
    return [new] if new is not None else []


def _close_answered(
    db: Database,
    now: datetime,
    rules: ArrivalRules,
    render: Render,
    people: Mapping[int, _Person],
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
                kind, int(chat_id), _language(rules, people, staff_id), rules.language, rules.tz, int(touch_id), card, int(count),
                registered=registration, called_back=kind == "callback",
            )  # fmt: skip
            done.outbox_ids += _redraw(
                db, now, int(chat_id), int(outbox_id), status, message_id, render(view)
            )
        db.execute("UPDATE arrival_cards SET closed_at = ? WHERE id = ?", [iso(now), card_id])
        done.closed += 1


@dataclass(frozen=True, slots=True)
class Given:
    """A card given to someone else: the outbox rows (the old card's edit, the new card)."""

    outbox_ids: tuple[int, ...]
    to_chat: int
    already: bool = False


def card_view(db: Database, touch_id: int, rules: ArrivalRules) -> ArrivalView | None:
    """The open card that a touch's buttons were drawn on, as it is now (to draw its buttons again)."""
    row = db.execute(
        "SELECT kind, chat_id, staff_id, touches, lead_id FROM arrival_cards"
        " WHERE last_touch_id = ? AND closed_at IS NULL ORDER BY id DESC LIMIT 1",
        [touch_id],
    ).fetchone()
    card = touch_card(db, touch_id)
    if row is None or card is None:
        return None
    kind, chat_id, staff_id, count, lead_id = row
    lead = lead_card(db, int(lead_id)) if lead_id is not None else None
    language = _language(rules, _people(db), staff_id)
    return ArrivalView(
        kind, int(chat_id), language, rules.language, rules.tz, touch_id, card, int(count), lead,
        call_back=rules.call_back(card),
    )  # fmt: skip


def give_card(
    db: Database, touch_id: int, staff_id: int, *, at: datetime, rules: ArrivalRules, render: Render
) -> Given:
    """A manager gives the open card drawn for ``touch_id`` to ``staff_id``: the touches are theirs now
    (``assignee_id``), the old message says to whom it went and loses its buttons, and the new owner
    gets the card. A card closed meanwhile (registered, given already) is reported, not given again."""
    people = _people(db)
    to = people.get(staff_id)
    row = db.execute(
        "SELECT a.id, a.contact_id, a.chat_id, a.staff_id, a.first_touch_id, a.outbox_id, o.status, o.message_id"
        " FROM arrival_cards a JOIN outbox o ON o.id = a.outbox_id"
        " WHERE a.last_touch_id = ? AND a.closed_at IS NULL ORDER BY a.id DESC LIMIT 1",
        [touch_id],
    ).fetchone()
    if row is None or to is None:
        return Given((), 0, already=True)
    card_id, contact_id, chat_id, old_staff, first, outbox_id, status, message_id = row
    view = card_view(db, touch_id, rules)
    if view is None:
        return Given((), 0, already=True)
    ids: list[int] = []
    if status != "sending":
        old = replace(view, given_to=to.name)
        ids += _redraw(db, at, int(chat_id), int(outbox_id), str(status), message_id, render(old))
    db.execute("UPDATE arrival_cards SET closed_at = ? WHERE id = ?", [iso(at), card_id])
    db.execute(
        "UPDATE touches SET assignee_id = ?, given_at = ? WHERE id BETWEEN ? AND ? AND contact_id = ?"
        " AND arrival = 'card' AND assignee_id IS ?",
        [to.id, iso(at), first, touch_id, contact_id, old_staff],
    )
    new_view = replace(view, chat_id=to.chat_id, language=to.language or rules.language)
    new_outbox = enqueue(db, to.chat_id, render(new_view), at=at)
    assert new_outbox is not None
    db.execute(
        "INSERT INTO arrival_cards (kind, contact_id, staff_id, chat_id, first_touch_id, last_touch_id, touches,"
        " lead_id, outbox_id, opened_at, last_at) SELECT kind, contact_id, ?, ?, first_touch_id, last_touch_id,"
        " touches, lead_id, ?, ?, last_at FROM arrival_cards WHERE id = ?",
        [to.id, to.chat_id, new_outbox, iso(at), card_id],
    )
    return Given((*ids, new_outbox), to.chat_id)


def open_card_message(db: Database, contact_id: int, chat_id: int) -> int | None:
    """The Telegram message id of the newest open card about a contact in a chat, for a nudge to reply to."""
    row = db.execute(
        "SELECT o.message_id FROM arrival_cards a JOIN outbox o ON o.id = a.outbox_id"
        " WHERE a.contact_id = ? AND a.chat_id = ? AND a.closed_at IS NULL AND o.message_id IS NOT NULL"
        " ORDER BY a.id DESC LIMIT 1",
        [contact_id, chat_id],
    ).fetchone()
    return int(row[0]) if row else None


def chat_refused(
    db: Database, row_id: int, chat_id: int, error: str, at: datetime, *, rules: ArrivalRules, render: Render
) -> list[int]:
    """Telegram refused an outbox row for good because its chat is gone (the sender judged so): in
    one write the row is failed, the chat counts as unreachable, and the open cards the row was (a
    card, or a nudge about its contacts' cards) go to whoever the rule picks without that chat, else
    the team chat, else the first owner or manager. Returns the new cards' outbox rows."""
    refused_for_good(db, row_id, chat_id, error, at)
    cards = db.execute(
        "SELECT a.id, a.kind, a.contact_id, a.staff_id, a.first_touch_id, a.last_touch_id, a.touches,"
        " a.lead_id, t.source, t.channel FROM arrival_cards a JOIN touches t ON t.id = a.first_touch_id"
        " WHERE a.closed_at IS NULL AND a.chat_id = ? AND (a.outbox_id = ? OR a.contact_id IN ("
        "  SELECT c.contact_id FROM nudge_messages m JOIN nudge_deliveries d ON d.message_id = m.id"
        "  JOIN nudges n ON n.id = d.nudge_id JOIN touches c ON c.id = n.touch_id WHERE m.outbox_id = ?))"
        " ORDER BY a.id",
        [chat_id, row_id, row_id],
    ).fetchall()
    if not cards:
        return []
    step = _Pass(db, at, rules, render, rules.calendar.is_working_time(at))
    ids: list[int] = []
    for card_id, kind, contact_id, old_staff, first, last, count, lead_id, source, channel in cards:
        db.execute("UPDATE arrival_cards SET closed_at = ? WHERE id = ?", [iso(at), card_id])
        to = _assignee(step, str(source))
        chat = to.chat_id if to else step.rules.team_chat
        if not chat:
            managers = _managers(step.people)
            if not managers:
                continue  # nobody left to reach: the nudges' escalation is all there is
            to, chat = managers[0], managers[0].chat_id
        staff_id = to.id if to else None
        view = _view(step, int(last), kind, chat, staff_id, int(count), lead_id)
        if view is None:
            continue
        outbox_id = enqueue(db, chat, render(view), at=at)
        assert outbox_id is not None
        db.execute(
            "INSERT INTO arrival_cards (kind, contact_id, staff_id, chat_id, first_touch_id, last_touch_id, touches,"
            " lead_id, outbox_id, opened_at, last_at) SELECT kind, contact_id, ?, ?, first_touch_id, last_touch_id,"
            " touches, lead_id, ?, ?, last_at FROM arrival_cards WHERE id = ?",
            [staff_id, chat, outbox_id, iso(at), card_id],
        )
        db.execute(
            "UPDATE touches SET assignee_id = ?, given_at = ? WHERE id BETWEEN ? AND ? AND contact_id = ?"
            " AND arrival = 'card' AND assignee_id IS ?",
            [staff_id, iso(at) if staff_id is not None else None, first, last, contact_id, old_staff],
        )
        if channel != "call" and staff_id in step.counts:
            step.counts[staff_id] += int(count)  # round robin's count, for the next card it gives
        ids.append(outbox_id)
    step.write_judged()
    return ids
