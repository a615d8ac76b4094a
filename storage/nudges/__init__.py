"""Nudges: ask people to register a touch, call a missed call back or follow a lead up, and tell
their managers when they do not.

Nothing here keeps a timer. Every sweep derives what is due from the rows (touches,
registrations, leads, nudges), so a restart, a clock jump or an hour with the process down neither
loses a nudge nor repeats one. A nudge row is unique per ``(kind, subject, level)``; what it owes
to each chat is a delivery unique per ``(nudge, chat, round)``; and a delivery, its row and the
outbox message that carries it are written in one transaction.

A sweep is two steps, so the heavy reading never holds the single writer: :func:`due_nudges` (a
read) lists what is due, and :func:`plan_and_record` (a write) closes what has been resolved,
re-checks every item it records, keeps to one message per chat per batch window, and queues one
message per chat listing the cards. SLAs are working minutes; the cut-off moment for each SLA is
computed once per sweep (:func:`working_cutoff`), so the queries compare stored times with one
value instead of computing a deadline per row.

Subjects: ``touch:<id>`` (register, callback), ``lead:<id>:<follow_up_on>`` (follow_up: a new date
is a new question), ``lead:<id>:<updated_at>`` (stale: a change ends it). Level 0 goes to whoever
handled the touch (or owns the lead), level 1 to the managers, naming who was asked.

The button actions (:func:`mark_called_back`, :func:`cant_reach`, :func:`snooze`,
:func:`follow_up_done`, :func:`follow_up_later`, :func:`follow_up_lost`) act on a whole card: every
open nudge of the same kind about the same contact (or lead).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from storage.db import iso, parse_iso, savepoint
from storage.nudge_cards import Kind, MessageView, Render, load_card
from storage.outbox import enqueue
from storage.registrations import change_lead
from storage.worktime import WorkingCalendar

if TYPE_CHECKING:
    from leadline.config import Config

log = logging.getLogger("leadline.nudges")

KINDS: tuple[Kind, ...] = ("register", "callback", "follow_up", "stale")
LEAD_KINDS = ("follow_up", "stale")
OPEN_STAGES_SQL = "stage NOT IN ('won', 'lost')"

#: How a due item's deadline follows from its ``since``: working minutes, real minutes, or none.
Delay = tuple[Literal["working", "real", "none"], float]


class NudgeError(ValueError):
    """A button that cannot act (no such nudge, wrong kind); the message is for the person."""


# ---------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class NudgeRules:
    """The config's SLAs and batching, plus who owns each source, in one value for every sweep."""

    calendar: WorkingCalendar
    registration_minutes: float = 15
    callback_minutes: float = 30
    escalation_minutes: float = 60
    callback_outside_hours: bool = False
    callback_tries: int = 3
    callback_retry_minutes: float = 60
    stale_days: int = 7
    batch_minutes: float = 5
    max_items: int = 10
    horizon_days: int = 14
    team_chat: int = 0
    language: str = "ru"
    #: Source name → the Telegram id of its default owner (config ``owner``).
    source_owners: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> NudgeRules:
        telegram = {s.name: s.telegram_id for s in config.staff}
        return cls(
            calendar=WorkingCalendar.from_config(config.working_time, config.tz),
            registration_minutes=config.sla.registration_minutes,
            callback_minutes=config.sla.callback_minutes,
            escalation_minutes=config.sla.escalation_minutes,
            callback_outside_hours=config.sla.callback_outside_hours,
            callback_tries=config.sla.callback_tries,
            callback_retry_minutes=config.sla.callback_retry_minutes,
            stale_days=config.sla.stale_days,
            batch_minutes=config.nudges.batch_minutes,
            max_items=config.nudges.max_items,
            horizon_days=config.nudges.horizon_days,
            team_chat=config.telegram.team_chat,
            language=config.leadline.language,
            source_owners={s.name: telegram[s.owner] for s in config.sources if s.owner in telegram},
        )

    @property
    def tz(self) -> ZoneInfo:
        return self.calendar.tz

    def retry_at(self, at: datetime) -> datetime:
        """When "Can't reach" asks again: working time, unless call-backs may happen at any hour."""
        if self.callback_outside_hours:
            return at + timedelta(minutes=self.callback_retry_minutes)
        return self.calendar.add_working_minutes(at, self.callback_retry_minutes)

    def remind_at(self, at: datetime, minutes: float) -> datetime:
        """When a snoozed card comes back: ``minutes`` of working time later."""
        return self.calendar.add_working_minutes(at, minutes)


def working_cutoff(calendar: WorkingCalendar, now: datetime, minutes: float) -> datetime:
    """The latest moment from which ``minutes`` of working time have passed by ``now``.

    Everything at or before it is past its SLA, so a query compares each row with one value. It is
    found by bisection over :meth:`WorkingCalendar.add_working_minutes` (monotonic in its start),
    so it agrees with the calendar to the microsecond, holidays and time zones included.
    """

    def past(moment: datetime) -> bool:
        return calendar.add_working_minutes(moment, minutes) <= now

    hi = now - timedelta(minutes=minutes)  # working time never runs faster than real time
    if past(hi):
        return hi
    step = timedelta(hours=12)
    lo = hi - step
    while not past(lo):
        step *= 2
        if step > timedelta(days=3660):
            raise ValueError(f"no {minutes} working minutes in the ten years before {now.isoformat()}")
        lo = hi - step
    tick = timedelta(microseconds=1)
    while hi - lo > tick:
        mid = lo + (hi - lo) // 2
        if past(mid):
            lo = mid
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------------------------------- people


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    chat_id: int
    name: str
    role: str
    language: str | None


@dataclass(frozen=True, slots=True)
class Recipient:
    """One chat a nudge is delivered to; ``staff_id`` None for the team chat."""

    chat_id: int
    staff_id: int | None


@dataclass(frozen=True)
class Directory:
    """Active staff who can be reached in Telegram, read once per sweep."""

    people: Mapping[int, Person]
    by_telegram: Mapping[int, int]
    by_email: Mapping[str, int]
    #: Owners first, then managers: who hears about escalations.
    managers: tuple[Person, ...]
    _recipients: dict[tuple[int | None, int | None, int | None], tuple[Recipient, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def load(cls, db: Database) -> Directory:
        people: dict[int, Person] = {}
        by_email: dict[str, int] = {}
        for sid, chat, name, role, language, emails in db.execute(
            "SELECT id, telegram_id, name, role, language, emails FROM staff"
            " WHERE active = 1 AND telegram_id IS NOT NULL ORDER BY id"
        ):
            people[int(sid)] = Person(int(sid), int(chat), str(name), str(role), language)
            for address in json.loads(emails or "[]"):
                by_email.setdefault(str(address).strip().lower(), int(sid))
        managers = tuple(
            sorted(
                (p for p in people.values() if p.role in ("owner", "manager")),
                key=lambda p: (p.role != "owner", p.id),
            )
        )
        return cls(people, {p.chat_id: p.id for p in people.values()}, by_email, managers)

    def mailbox_owner(self, to_address: str | None) -> int | None:
        """The staff member whose mailbox a letter was sent to. ``to_address`` is a header as written:
        ``Boris Petrov <boris@example.com>``, several recipients, a ``+tag`` the staff list omits."""
        if not to_address:
            return None
        for _, address in getaddresses([to_address]):
            address = address.strip().lower()
            local, at, domain = address.partition("@")
            for candidate in (address, f"{local.split('+', 1)[0]}{at}{domain}"):
                if candidate and candidate in self.by_email:
                    return self.by_email[candidate]
        return None

    def target(self, rules: NudgeRules, *candidates: int | None) -> tuple[int | None, int | None]:
        """(staff id, chat id) of a level-0 nudge: the first reachable candidate, else the team chat,
        else (None, None), which means the managers."""
        for staff_id in candidates:
            if staff_id is not None and staff_id in self.people:
                return staff_id, self.people[staff_id].chat_id
        if rules.team_chat:
            return None, rules.team_chat
        return None, None

    def source_owner(self, rules: NudgeRules, source: str) -> int | None:
        telegram_id = rules.source_owners.get(source)
        return None if telegram_id is None else self.by_telegram.get(telegram_id)

    def recipients(
        self, staff_id: int | None, chat_id: int | None, asked: int | None = None
    ) -> tuple[Recipient, ...]:
        """Who a nudge row goes to: its person, the team chat, or every manager but the one asked."""
        key = (staff_id, chat_id, asked)
        found = self._recipients.get(key)
        if found is None:
            found = self._recipients[key] = self._resolve(staff_id, chat_id, asked)
        return found

    def _resolve(self, staff_id: int | None, chat_id: int | None, asked: int | None) -> tuple[Recipient, ...]:
        if chat_id is not None:
            if staff_id is None:
                return (Recipient(chat_id, None),)
            person = self.people.get(staff_id)
            if person is not None:
                return (Recipient(person.chat_id, person.id),)
        return tuple(Recipient(p.chat_id, p.id) for p in self.managers if p.id != asked)


# ---------------------------------------------------------------------------------------- what is due


@dataclass(slots=True)
class Due:
    """One card line owed to one chat: a new nudge to record, or a delivery an existing one owes."""

    kind: Kind
    level: int
    subject: str
    #: When the clock of this item started (ISO); the order in which cards are listed.
    since: str
    to: Recipient
    #: Everyone a new nudge goes to (each manager for a level-1 nudge); ``to`` is one of them.
    recipients: tuple[Recipient, ...] = ()
    #: The nudge row's addressee: a person, the team chat (staff None), or the managers (both None).
    staff_id: int | None = None
    chat_id: int | None = None
    contact_id: int | None = None
    touch_id: int | None = None
    lead_id: int | None = None
    ref: str | None = None
    delay: Delay = ("none", 0.0)
    #: Set when the nudge exists and owes this chat the delivery of ``round``.
    nudge_id: int | None = None
    round: int = 0

    @property
    def card(self) -> tuple[str, int, int | None]:
        """Lines with the same card key are shown as one card: one contact (or lead) per card."""
        return (self.kind, self.level, self.lead_id if self.kind in LEAD_KINDS else self.contact_id)

    def due_at(self, rules: NudgeRules) -> datetime:
        since = parse_iso(self.since)
        how, minutes = self.delay
        if how == "working":
            return rules.calendar.add_working_minutes(since, minutes)
        if how == "real":
            return since + timedelta(minutes=minutes)
        return since


def due_nudges(db: Database, now: datetime, rules: NudgeRules) -> list[Due]:
    """Everything owed at ``now``, oldest first; reads only, so it can run beside the writer.

    Outside working time only missed-call nudges (with ``callback_outside_hours``) are due; the
    rest wait for the next working minute.
    """
    people = Directory.load(db)
    window = _Window.at(now, rules)
    working = rules.calendar.is_working_time(now)
    items = _pending(db, window, rules, working)
    if working or rules.callback_outside_hours:
        items += _callbacks(db, window, rules, people)
    if working:
        items += _registers(db, window, rules, people)
        items += _escalations(db, window, rules, people)
        items += _follow_ups(db, window, rules, people)
        items += _stale(db, window, rules, people)
    items.sort(key=lambda i: (i.since, i.level, i.subject))
    return items


@dataclass(frozen=True, slots=True)
class _Window:
    now: datetime
    stamp: str
    horizon: str

    @classmethod
    def at(cls, now: datetime, rules: NudgeRules) -> _Window:
        return cls(now, iso(now), iso(now - timedelta(days=rules.horizon_days)))


def _pending(db: Database, w: _Window, rules: NudgeRules, working: bool) -> list[Due]:
    """Deliveries owed by existing nudges: reminders, and copies a batch window held back."""
    rows = db.execute(
        "SELECT n.id, n.kind, n.level, n.subject, d.not_before, n.staff_id, n.chat_id, n.contact_id, n.touch_id,"
        " n.lead_id, n.ref, d.chat_id, d.staff_id, d.round"
        " FROM nudge_deliveries d JOIN nudges n ON n.id = d.nudge_id"
        " WHERE d.message_id IS NULL AND d.not_before <= :now AND d.not_before >= :horizon"
        " AND n.closed_at IS NULL AND n.kind != 'source_health'",
        {"now": w.stamp, "horizon": w.horizon},
    ).fetchall()
    out = []
    for (
        nid,
        kind,
        level,
        subject,
        since,
        staff,
        chat,
        contact,
        touch,
        lead,
        ref,
        to_chat,
        to_staff,
        rnd,
    ) in rows:
        if not (working or (kind == "callback" and level == 0 and rules.callback_outside_hours)):
            continue
        to = Recipient(int(to_chat), to_staff)
        out.append(
            Due(
                kind,
                level,
                subject,
                since,
                to,
                (to,),
                staff,
                chat,
                contact,
                touch,
                lead,
                ref,
                nudge_id=nid,
                round=rnd,
            )
        )
    return out


def _register_clock(row: Sequence[Any]) -> tuple[str | None, tuple[int | None, ...]]:
    """When a touch's registration clock started, and who handled it, best first.

    An answered call, a form or a letter: its time and the person who took it. A missed call only
    once someone called back (its call-back mark, or the "Called back" button): from then on, by
    the person who called. The button's moment is the call-back nudge's ``closed_at`` (set when its
    outcome became ``called_back``), not its ``acted_at``, which keeps an earlier "Can't reach".
    """
    _, _, _, staff, _, occurred, channel, answered, back_at, back_staff, button_at, button_by = row
    if channel != "call" or answered == 1:
        return occurred, (staff,)
    if answered == 0:
        if back_at is not None:
            return back_at, (back_staff, button_by, staff)
        if button_at is not None:
            return button_at, (button_by, staff)
    return None, ()


_REGISTER_SQL = """
SELECT t.id, t.contact_id, t.source, t.staff_id, t.to_address, t.occurred_at, t.channel, t.answered,
       t.called_back_at, b.staff_id, cb.closed_at, cb.acted_by
FROM touches t
LEFT JOIN touches b ON b.id = t.called_back_by
LEFT JOIN nudges cb ON cb.kind = 'callback' AND cb.subject = 'touch:' || t.id AND cb.level = 0
    AND cb.outcome = 'called_back'
WHERE t.occurred_at >= :horizon AND t.occurred_at <= :cutoff
  AND t.direction = 'in' AND t.hidden_caller = 0 AND t.dropped IS NULL AND t.blocked = 0
  AND t.contact_id IS NOT NULL
  AND (t.channel != 'call' OR t.answered = 1 OR t.called_back_at IS NOT NULL OR cb.id IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM registrations r WHERE r.contact_id = t.contact_id)
  AND NOT EXISTS (SELECT 1 FROM nudges o WHERE o.contact_id = t.contact_id AND o.kind = 'register'
                  AND o.level = 0 AND o.closed_at IS NULL AND o.created_at >= :horizon)
  AND NOT EXISTS (SELECT 1 FROM nudges n WHERE n.kind = 'register' AND n.subject = 'touch:' || t.id
                  AND n.level = 0)
"""


def _registers(db: Database, w: _Window, rules: NudgeRules, people: Directory) -> list[Due]:
    """Inbound touches of unregistered contacts past the registration SLA, one card per contact.

    A contact that already has an open registration card gets no second one: its new touches are
    folded into the question already asked.
    """
    cutoff = iso(working_cutoff(rules.calendar, w.now, rules.registration_minutes))
    by_contact: dict[int, list[tuple[str, Sequence[Any]]]] = {}
    for row in db.execute(_REGISTER_SQL, {"horizon": w.horizon, "cutoff": cutoff}).fetchall():
        started, _ = _register_clock(row)
        if started is None or started > cutoff:
            continue
        by_contact.setdefault(int(row[1]), []).append((started, row))
    out: list[Due] = []
    for contact_id, touches in by_contact.items():
        if len(touches) > 1:
            touches.sort(key=lambda pair: pair[0])
        latest = touches[-1][1]
        _, handlers = _register_clock(latest)
        email_owner = people.mailbox_owner(latest[4])
        staff_id, chat_id = people.target(
            rules, *handlers, email_owner, people.source_owner(rules, latest[2])
        )
        recipients = people.recipients(staff_id, chat_id)
        for to in recipients:
            for started, row in touches:
                out.append(
                    Due(
                        "register", 0, f"touch:{row[0]}", started, to, recipients, staff_id, chat_id,
                        contact_id=contact_id, touch_id=int(row[0]),
                        delay=("working", rules.registration_minutes),
                    )
                )  # fmt: skip
    return out


_CALLED_BACK_SQL = (
    "(t.called_back_at IS NOT NULL OR EXISTS (SELECT 1 FROM touches a WHERE a.contact_id = t.contact_id"
    " AND a.occurred_at >= t.occurred_at AND a.channel = 'call' AND a.answered = 1))"
)

_CALLBACK_SQL = f"""
SELECT t.id, t.contact_id, t.source, t.staff_id, t.occurred_at
FROM touches t
WHERE t.occurred_at >= :horizon AND t.occurred_at <= :cutoff
  AND t.channel = 'call' AND t.direction = 'in' AND t.call_final = 1 AND t.answered = 0
  AND t.hidden_caller = 0 AND t.dropped IS NULL AND t.blocked = 0 AND t.contact_id IS NOT NULL
  AND NOT {_CALLED_BACK_SQL}
  AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = t.contact_id AND c.blocked = 1)
  AND NOT EXISTS (SELECT 1 FROM nudges o WHERE o.contact_id = t.contact_id AND o.kind = 'callback'
                  AND o.level = 0 AND o.closed_at IS NULL AND o.created_at >= :horizon)
  AND NOT EXISTS (SELECT 1 FROM nudges n WHERE n.kind = 'callback' AND n.subject = 'touch:' || t.id
                  AND n.level = 0)
"""


def _callbacks(db: Database, w: _Window, rules: NudgeRules, people: Directory) -> list[Due]:
    """Missed calls nobody called back within the SLA (real minutes when call-backs run round the clock)."""
    if rules.callback_outside_hours:
        cutoff = w.now - timedelta(minutes=rules.callback_minutes)
        delay: Delay = ("real", rules.callback_minutes)
    else:
        cutoff = working_cutoff(rules.calendar, w.now, rules.callback_minutes)
        delay = ("working", rules.callback_minutes)
    by_contact: dict[int, list[Sequence[Any]]] = {}
    for row in db.execute(_CALLBACK_SQL, {"horizon": w.horizon, "cutoff": iso(cutoff)}).fetchall():
        by_contact.setdefault(int(row[1]), []).append(row)
    out: list[Due] = []
    for contact_id, calls in by_contact.items():
        if len(calls) > 1:
            calls.sort(key=lambda r: str(r[4]))
        latest = calls[-1]
        staff_id, chat_id = people.target(rules, latest[3], people.source_owner(rules, latest[2]))
        recipients = people.recipients(staff_id, chat_id)
        for to in recipients:
            for row in calls:
                out.append(
                    Due(
                        "callback", 0, f"touch:{row[0]}", row[4], to, recipients, staff_id, chat_id,
                        contact_id=contact_id, touch_id=int(row[0]), delay=delay,
                    )
                )  # fmt: skip
    return out


#: When the reminder a button asked for ("Can't reach", "Remind me later") reached the chat: the
#: first message carrying the nudge's current round. NULL before the reminder went out.
_REMINDED_SQL = (
    "(SELECT MIN(m.created_at) FROM nudge_deliveries d JOIN nudge_messages m ON m.id = d.message_id"
    " WHERE d.nudge_id = {z}.id AND d.round = {z}.round AND {z}.round > 0)"
)

#: A level-0 nudge someone acted on still escalates when it was given up ("Can't reach" used up) or
#: when the reminder the button asked for went unanswered for ``escalation_minutes``.
_ACTED_ESCALATES_SQL = "(z.acted_at IS NULL OR z.outcome = 'unreachable' OR z.reminded_at <= :cutoff)"

_ESCALATION_SQL = f"""
SELECT z.kind, z.subject, z.created_at, z.staff_id, z.contact_id, z.touch_id, z.lead_id, z.ref, z.outcome,
       z.reminded_at
FROM (SELECT n.*, {_REMINDED_SQL.format(z="n")} AS reminded_at FROM nudges n
      WHERE n.closed_at IS NULL AND n.created_at >= :horizon AND n.level = 0
        AND n.kind IN ('register', 'callback', 'stale')) z
WHERE (z.created_at <= :cutoff OR z.outcome = 'unreachable')
  AND NOT EXISTS (SELECT 1 FROM nudges y WHERE y.kind = z.kind AND y.subject = z.subject AND y.level = 1)
  AND CASE z.kind
    WHEN 'register' THEN NOT EXISTS (SELECT 1 FROM touches t JOIN registrations r ON r.contact_id = t.contact_id
                                     WHERE t.id = z.touch_id)
    WHEN 'callback' THEN {_ACTED_ESCALATES_SQL}
                         AND NOT EXISTS (SELECT 1 FROM touches t WHERE t.id = z.touch_id AND {_CALLED_BACK_SQL})
    ELSE {_ACTED_ESCALATES_SQL} AND EXISTS (SELECT 1 FROM leads l WHERE l.id = z.lead_id AND l.updated_at = z.ref
                                              AND l.{OPEN_STAGES_SQL})
  END
"""


def _escalations(db: Database, w: _Window, rules: NudgeRules, people: Directory) -> list[Due]:
    """Level-0 nudges still unanswered ``escalation_minutes`` of working time after they were asked,
    or after the reminder a button asked for (a call-back given up after the last "Can't reach"
    escalates at once): level 1, to the managers."""
    cutoff = iso(working_cutoff(rules.calendar, w.now, rules.escalation_minutes))
    out: list[Due] = []
    for kind, subject, created, asked, contact, touch, lead, ref, outcome, reminded in db.execute(
        _ESCALATION_SQL, {"horizon": w.horizon, "cutoff": cutoff}
    ).fetchall():
        recipients = people.recipients(None, None, asked)
        delay: Delay = ("none", 0.0) if outcome == "unreachable" else ("working", rules.escalation_minutes)
        since = (
            reminded if outcome != "unreachable" and reminded is not None and reminded <= cutoff else created
        )
        for to in recipients:
            out.append(
                Due(kind, 1, subject, since, to, recipients, None, None, contact, touch, lead, ref, delay)
            )
    return out


def _follow_ups(db: Database, w: _Window, rules: NudgeRules, people: Directory) -> list[Due]:
    """Open leads whose follow-up date has come: once per date, at the start of that working day."""
    today = w.now.astimezone(rules.tz).date()
    oldest = today - timedelta(days=rules.horizon_days)
    rows = db.execute(
        "SELECT l.id, l.contact_id, l.owner_id, l.follow_up_on FROM leads l"
        f" WHERE l.follow_up_on IS NOT NULL AND l.{OPEN_STAGES_SQL}"
        " AND l.follow_up_on <= :today AND l.follow_up_on >= :oldest"
        " AND NOT EXISTS (SELECT 1 FROM nudges n WHERE n.kind = 'follow_up'"
        " AND n.subject = 'lead:' || l.id || ':' || l.follow_up_on AND n.level = 0)",
        {"today": today.isoformat(), "oldest": oldest.isoformat()},
    ).fetchall()
    out: list[Due] = []
    for lead_id, contact_id, owner_id, on in rows:
        try:
            day = date.fromisoformat(str(on))
        except ValueError:
            continue
        since = iso(rules.calendar.next_working_moment(datetime.combine(day, time(0), tzinfo=rules.tz)))
        staff_id, chat_id = people.target(rules, owner_id)
        recipients = people.recipients(staff_id, chat_id)
        for to in recipients:
            out.append(
                Due(
                    "follow_up", 0, f"lead:{lead_id}:{on}", since, to, recipients, staff_id, chat_id,
                    contact_id=contact_id, lead_id=int(lead_id), ref=str(on),
                )
            )  # fmt: skip
    return out


def _stale(db: Database, w: _Window, rules: NudgeRules, people: Directory) -> list[Due]:
    """Open leads with no change for ``stale_days`` and no follow-up date ahead."""
    before = w.now - timedelta(days=rules.stale_days)
    rows = db.execute(
        "SELECT l.id, l.contact_id, l.owner_id, l.updated_at FROM leads l"
        f" WHERE l.{OPEN_STAGES_SQL} AND l.updated_at <= :before AND l.updated_at >= :oldest"
        " AND (l.follow_up_on IS NULL OR l.follow_up_on <= :before_day)"
        " AND NOT EXISTS (SELECT 1 FROM nudges n WHERE n.kind = 'stale'"
        " AND n.subject = 'lead:' || l.id || ':' || l.updated_at AND n.level = 0)",
        {
            "before": iso(before),
            "oldest": iso(before - timedelta(days=rules.horizon_days)),
            "before_day": before.astimezone(rules.tz).date().isoformat(),
        },
    ).fetchall()
    out: list[Due] = []
    for lead_id, contact_id, owner_id, updated in rows:
        staff_id, chat_id = people.target(rules, owner_id)
        recipients = people.recipients(staff_id, chat_id)
        for to in recipients:
            out.append(
                Due(
                    "stale", 0, f"lead:{lead_id}:{updated}", updated, to, recipients, staff_id, chat_id,
                    contact_id=contact_id, lead_id=int(lead_id), ref=str(updated),
                    delay=("real", rules.stale_days * 24 * 60.0),
                )
            )  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------- recording


@dataclass
class Recorded:
    """What one planning step wrote."""

    #: Outbox row ids of the messages queued.
    outbox_ids: list[int] = field(default_factory=list)
    nudges: int = 0
    deliveries: int = 0
    closed: int = 0
    #: Due items held back: the chat had a message within the batch window, or the card limit.
    held: int = 0


def plan_and_record(
    db: Database, now: datetime, rules: NudgeRules, *, render: Render, due: Sequence[Due] | None = None
) -> Recorded:
    """Close what has been resolved, then record and queue what is due, one message per chat.

    Run it inside one write transaction (``Store.write``). ``due`` may come from an earlier read
    (:func:`due_nudges`): each item is checked again here, and uniqueness of nudges and deliveries
    makes a second run, a stale plan or a second process a no-op.
    """
    result = Recorded(closed=close_resolved(db, now, rules))
    sync_sent(db, now, rules)
    if due is None:
        due = due_nudges(db, now, rules)
    people = Directory.load(db)
    by_chat: dict[int, list[Due]] = {}
    for item in due:
        by_chat.setdefault(item.to.chat_id, []).append(item)
    for chat_id, items in by_chat.items():
        if _recently_messaged(db, chat_id, now, rules):
            result.held += len(items)
            continue
        try:
            with savepoint(db, "nudge_message"):
                _record_message(db, now, rules, render, people, chat_id, items, result)
        except Exception:
            # One chat's bad data must not stop everyone else's nudges; the next sweep retries it.
            log.exception("nudges for one chat could not be recorded", extra={"fields": {"chat_id": chat_id}})
    return result


def _recently_messaged(db: Database, chat_id: int, now: datetime, rules: NudgeRules) -> bool:
    if rules.batch_minutes <= 0:
        return False
    since = iso(now - timedelta(minutes=rules.batch_minutes))
    row = db.execute(
        "SELECT 1 FROM nudge_messages WHERE chat_id = ? AND created_at > ? AND created_at <= ? LIMIT 1",
        [chat_id, since, iso(now)],
    ).fetchone()
    return row is not None


def _record_message(
    db: Database,
    now: datetime,
    rules: NudgeRules,
    render: Render,
    people: Directory,
    chat_id: int,
    items: list[Due],
    result: Recorded,
) -> None:
    cards: dict[tuple[str, int, int | None], list[Due]] = {}
    for item in items:
        cards.setdefault(item.card, []).append(item)
    staff_id = items[0].to.staff_id
    stamp = iso(now)
    message_id = int(
        db.execute(
            "INSERT INTO nudge_messages (chat_id, staff_id, created_at) VALUES (?, ?, ?)",
            [chat_id, staff_id, stamp],
        ).lastrowid
        or 0
    )
    listed: list[list[tuple[int, int]]] = []
    more = 0
    for group in cards.values():
        if len(listed) >= rules.max_items:
            result.held += len(group)
            more += 1
            continue
        attached = _record_card(db, now, rules, group, message_id, result)
        if attached:
            listed.append(attached)
    if not listed:
        db.execute("DELETE FROM nudge_messages WHERE id = ?", [message_id])
        return
    person = people.people.get(staff_id) if staff_id is not None else None
    view = MessageView(
        chat_id=chat_id,
        staff_id=staff_id,
        language=(person.language if person and person.language else rules.language),
        tz=rules.tz,
        cards=tuple(load_card(db, group) for group in listed),
        more=more,
        max_tries=rules.callback_tries,
        stale_days=rules.stale_days,
        office_language=rules.language,
    )
    rendered = render(view)
    # The cards the message had no room for wait for the next one.
    for dropped in listed[rendered.cards :]:
        for nid, round_ in dropped:
            db.execute(
                "UPDATE nudge_deliveries SET message_id = NULL WHERE message_id = ? AND nudge_id = ? AND round = ?",
                [message_id, nid, round_],
            )
        result.held += len(dropped)
    del listed[rendered.cards :]
    outbox_id = enqueue(db, chat_id, rendered.payload, at=now, dedupe_key=f"nudge-message:{message_id}")
    db.execute(
        "UPDATE nudge_messages SET outbox_id = ?, cards = ? WHERE id = ?",
        [outbox_id, len(listed), message_id],
    )
    ids = [nid for group in listed for nid, _ in group]
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        db.execute(
            f"UPDATE nudges SET outbox_id = COALESCE(outbox_id, ?) WHERE id IN ({marks})", [outbox_id, *chunk]
        )
    if outbox_id is not None:
        result.outbox_ids.append(outbox_id)
    result.deliveries += len(ids)


def _record_card(
    db: Database, now: datetime, rules: NudgeRules, group: list[Due], message_id: int, result: Recorded
) -> list[tuple[int, int]]:
    """Record one card's nudges (re-checked) and attach their deliveries to the message: [(nudge, round)]."""
    first = group[0]
    horizon = iso(now - timedelta(days=rules.horizon_days))
    if first.nudge_id is None and first.level == 0 and first.kind in ("register", "callback"):
        subjects = sorted({i.subject for i in group})
        marks = ",".join("?" * len(subjects))
        folded = db.execute(
            "SELECT 1 FROM nudges WHERE contact_id = ? AND kind = ? AND level = 0 AND closed_at IS NULL"
            f" AND created_at >= ? AND subject NOT IN ({marks}) LIMIT 1",
            [first.contact_id, first.kind, horizon, *subjects],
        ).fetchone()
        if folded:
            return []
    attached: list[tuple[int, int]] = []
    stamp = iso(now)
    for item in group:
        if item.nudge_id is None:
            if not _still_due(db, item, now, rules):
                continue
            nudge_id = _insert_nudge(db, now, rules, item, result)
            round_ = 0
        else:
            open_row = db.execute(
                "SELECT 1 FROM nudges WHERE id = ? AND closed_at IS NULL", [item.nudge_id]
            ).fetchone()
            if open_row is None:
                continue
            nudge_id, round_ = item.nudge_id, item.round
        cursor = db.execute(
            "UPDATE nudge_deliveries SET message_id = ? WHERE nudge_id = ? AND chat_id = ? AND round = ?"
            " AND message_id IS NULL AND not_before <= ?",
            [message_id, nudge_id, item.to.chat_id, round_, stamp],
        )
        if cursor.rowcount == 1:
            attached.append((nudge_id, round_))
    return attached


def _insert_nudge(db: Database, now: datetime, rules: NudgeRules, item: Due, result: Recorded) -> int:
    """The nudge's id; a new row also gets a round-0 delivery owed to each of its recipients."""
    stamp = iso(now)
    cursor = db.execute(
        "INSERT INTO nudges (kind, subject, level, staff_id, chat_id, due_at, created_at, contact_id, touch_id,"
        " lead_id, ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, subject, level) DO NOTHING",
        [
            item.kind,
            item.subject,
            item.level,
            item.staff_id,
            item.chat_id,
            iso(item.due_at(rules)),
            stamp,
            item.contact_id,
            item.touch_id,
            item.lead_id,
            item.ref,
        ],
    )
    if cursor.rowcount == 1:
        nudge_id = int(cursor.lastrowid or 0)
        result.nudges += 1
        db.conn.executemany(
            "INSERT OR IGNORE INTO nudge_deliveries (nudge_id, chat_id, round, staff_id, not_before)"
            " VALUES (?, ?, 0, ?, ?)",
            [(nudge_id, r.chat_id, r.staff_id, stamp) for r in item.recipients or (item.to,)],
        )
        return nudge_id
    row = db.execute(
        "SELECT id FROM nudges WHERE kind = ? AND subject = ? AND level = ?",
        [item.kind, item.subject, item.level],
    ).fetchone()
    return int(row[0])


def _still_due(db: Database, item: Due, now: datetime, rules: NudgeRules) -> bool:
    """The read that planned ``item`` may be a moment old: is the question still open?"""
    if item.kind == "register":
        row = db.execute(
            "SELECT 1 FROM touches t JOIN registrations r ON r.contact_id = t.contact_id WHERE t.id = ? LIMIT 1",
            [item.touch_id],
        ).fetchone()
        if row is not None:
            return False
    elif item.kind == "callback":
        row = db.execute(
            f"SELECT 1 FROM touches t WHERE t.id = ? AND {_CALLED_BACK_SQL}", [item.touch_id]
        ).fetchone()
        if row is not None:
            return False
    else:
        column = "follow_up_on" if item.kind == "follow_up" else "updated_at"
        row = db.execute(
            f"SELECT 1 FROM leads WHERE id = ? AND {column} = ? AND {OPEN_STAGES_SQL}",
            [item.lead_id, item.ref],
        ).fetchone()
        if row is None:
            return False
    if item.level == 0:
        return True
    base = db.execute(
        f"SELECT z.acted_at, z.outcome, z.closed_at, {_REMINDED_SQL.format(z='z')} FROM nudges z"
        " WHERE z.kind = ? AND z.subject = ? AND z.level = 0",
        [item.kind, item.subject],
    ).fetchone()
    if base is None or base[2] is not None:
        return False
    if item.kind == "register" or base[0] is None or base[1] == "unreachable":
        return True
    # Acted on: escalates only once the reminder asked for went unanswered (as in _ESCALATION_SQL).
    return base[3] is not None and base[3] <= iso(
        working_cutoff(rules.calendar, now, rules.escalation_minutes)
    )


def _chunks(ids: Sequence[int], size: int = 500) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


# ---------------------------------------------------------------------------------------- closing


def close_resolved(db: Database, now: datetime, rules: NudgeRules) -> int:
    """Close open nudges whose question was answered outside the bot; returns how many.

    Registered (any registration of the touch's contact), called back (the call-back mark, or any
    answered call with the contact since), or the lead changed (a new follow-up date, a change,
    won or lost). The moment and the person who answered become ``acted_at`` / ``acted_by`` when
    nobody had pressed a button before, so reports can show how fast nudges are acted on.
    """
    horizon = iso(now - timedelta(days=rules.horizon_days))
    closes: list[tuple[str, Any, str, int]] = []
    for nid, at, by in db.execute(
        "SELECT n.id, r.created_at, r.staff_id FROM nudges n JOIN touches t ON t.id = n.touch_id"
        " JOIN registrations r ON r.id = (SELECT r2.id FROM registrations r2 WHERE r2.contact_id = t.contact_id"
        " ORDER BY r2.created_at, r2.id LIMIT 1)"
        " WHERE n.closed_at IS NULL AND n.created_at >= ? AND n.kind = 'register'",
        [horizon],
    ).fetchall():
        closes.append((str(at), by, "registered", int(nid)))
    for nid, back_at, back_by, answer_at, answer_by in db.execute(
        "SELECT n.id, t.called_back_at, b.staff_id, a.occurred_at, a.staff_id FROM nudges n"
        " JOIN touches t ON t.id = n.touch_id"
        " LEFT JOIN touches b ON b.id = t.called_back_by"
        " LEFT JOIN touches a ON a.id = (SELECT x.id FROM touches x WHERE x.contact_id = t.contact_id"
        " AND x.occurred_at >= t.occurred_at AND x.channel = 'call' AND x.answered = 1"
        " ORDER BY x.occurred_at, x.id LIMIT 1)"
        " WHERE n.closed_at IS NULL AND n.created_at >= ? AND n.kind = 'callback'"
        " AND (t.called_back_at IS NOT NULL OR a.id IS NOT NULL)",
        [horizon],
    ).fetchall():
        if back_at is not None:
            closes.append((str(back_at), back_by, "called_back", int(nid)))
        else:
            closes.append((str(answer_at), answer_by, "called_back", int(nid)))
    for (nid,) in db.execute(
        "SELECT n.id FROM nudges n JOIN contacts c ON c.id = n.contact_id"
        " WHERE n.closed_at IS NULL AND n.created_at >= ? AND n.kind = 'callback' AND c.blocked = 1",
        [horizon],
    ).fetchall():
        closes.append((iso(now), None, "blocked", int(nid)))
    for nid, updated in db.execute(
        "SELECT n.id, l.updated_at FROM nudges n JOIN leads l ON l.id = n.lead_id"
        " WHERE n.closed_at IS NULL AND n.created_at >= ? AND n.kind IN ('follow_up', 'stale')"
        " AND (l.stage IN ('won', 'lost')"
        " OR (n.kind = 'follow_up' AND l.follow_up_on IS NOT n.ref)"
        " OR (n.kind = 'stale' AND l.updated_at != n.ref))",
        [horizon],
    ).fetchall():
        closes.append((str(updated), None, "changed", int(nid)))
    seen: set[int] = set()
    for at, by, outcome, nid in closes:
        if nid in seen:
            continue
        seen.add(nid)
        db.execute(
            "UPDATE nudges SET closed_at = ?, outcome = ?, acted_at = COALESCE(acted_at, ?),"
            " acted_by = COALESCE(acted_by, ?) WHERE id = ?",
            [at, outcome, at, by, nid],
        )
        db.execute("DELETE FROM nudge_deliveries WHERE nudge_id = ? AND message_id IS NULL", [nid])
    return len(seen)


def sync_sent(db: Database, now: datetime, rules: NudgeRules) -> None:
    """Copy when the first message carrying each nudge reached Telegram (or the log) onto the nudge."""
    db.execute(
        "UPDATE nudges SET sent_at = (SELECT MIN(o.sent_at) FROM nudge_deliveries d"
        " JOIN nudge_messages m ON m.id = d.message_id JOIN outbox o ON o.id = m.outbox_id"
        " WHERE d.nudge_id = nudges.id)"
        " WHERE sent_at IS NULL AND outbox_id IS NOT NULL AND created_at >= ?"
        " AND EXISTS (SELECT 1 FROM nudge_deliveries d JOIN nudge_messages m ON m.id = d.message_id"
        " JOIN outbox o ON o.id = m.outbox_id WHERE d.nudge_id = nudges.id AND o.sent_at IS NOT NULL)",
        [iso(now - timedelta(days=rules.horizon_days))],
    )


# ---------------------------------------------------------------------------------------- buttons


@dataclass(frozen=True, slots=True)
class Nudge:
    """A nudge as a button handler needs it."""

    id: int
    kind: str
    level: int
    contact_id: int | None
    touch_id: int | None
    lead_id: int | None
    staff_id: int | None
    round: int
    tries: int
    outcome: str | None
    closed_at: str | None


@dataclass(frozen=True, slots=True)
class Acted:
    """What a button did: ``outcome`` is called_back, retry, unreachable, snoozed, done, later or lost.

    ``already`` is True when the card had been closed before (someone else acted, or the question
    was answered): nothing changed, and the bot can say so.
    """

    nudge_ids: tuple[int, ...]
    outcome: str
    already: bool = False
    remind_at: datetime | None = None
    tries: int = 0


def get_nudge(db: Database, nudge_id: int) -> Nudge | None:
    row = db.execute(
        "SELECT id, kind, level, contact_id, touch_id, lead_id, staff_id, round, tries, outcome, closed_at"
        " FROM nudges WHERE id = ?",
        [nudge_id],
    ).fetchone()
    return Nudge(*row) if row else None


def _nudge(db: Database, nudge_id: int, kinds: Iterable[str]) -> Nudge:
    nudge = get_nudge(db, nudge_id)
    allowed = tuple(kinds)
    if nudge is None or nudge.kind not in allowed:
        raise NudgeError("this reminder no longer exists")
    return nudge


def _card_ids(db: Database, nudge: Nudge, *, same_level: bool) -> list[int]:
    """Open nudges of the same kind about the same contact (or lead): what one card stands for."""
    level_sql = " AND level = ?" if same_level else ""
    level = [nudge.level] if same_level else []
    if nudge.kind in LEAD_KINDS:
        rows = db.execute(
            f"SELECT id FROM nudges WHERE lead_id = ? AND kind = ? AND closed_at IS NULL{level_sql}",
            [nudge.lead_id, nudge.kind, *level],
        )
    else:
        rows = db.execute(
            f"SELECT id FROM nudges WHERE contact_id = ? AND kind = ? AND closed_at IS NULL{level_sql}",
            [nudge.contact_id, nudge.kind, *level],
        )
    ids = {int(r[0]) for r in rows}
    if nudge.closed_at is None:
        ids.add(nudge.id)
    return sorted(ids)


def _mark(
    db: Database, ids: Sequence[int], *, outcome: str, staff_id: int | None, at: datetime, close: bool
) -> None:
    stamp = iso(at)
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        db.execute(
            "UPDATE nudges SET outcome = ?, acted_at = COALESCE(acted_at, ?), acted_by = COALESCE(acted_by, ?)"
            + (", closed_at = ?" if close else "")
            + f" WHERE id IN ({marks})",
            [outcome, stamp, staff_id, *([stamp] if close else []), *chunk],
        )
        if close:
            db.execute(
                f"DELETE FROM nudge_deliveries WHERE message_id IS NULL AND nudge_id IN ({marks})",
                list(chunk),
            )


def _already(nudge: Nudge) -> Acted | None:
    if nudge.closed_at is not None:
        return Acted((nudge.id,), nudge.outcome or "closed", already=True, tries=nudge.tries)
    return None


def _remind(
    db: Database, ids: Sequence[int], *, chat_id: int, staff_id: int | None, at: datetime, until: datetime
) -> None:
    """Owe each nudge one more delivery (the next round) to the chat the button was pressed in."""
    for nid in ids:
        db.execute("UPDATE nudges SET round = round + 1, snoozed_until = ? WHERE id = ?", [iso(until), nid])
        db.execute(
            "INSERT OR IGNORE INTO nudge_deliveries (nudge_id, chat_id, round, staff_id, not_before)"
            " SELECT id, ?, round, ?, ? FROM nudges WHERE id = ?",
            [chat_id, staff_id, iso(until), nid],
        )


def mark_called_back(db: Database, nudge_id: int, *, staff_id: int | None, at: datetime) -> Acted:
    """ "Called back": closes every open call-back nudge about the contact, at every level."""
    nudge = _nudge(db, nudge_id, ("callback",))
    if (done := _already(nudge)) is not None:
        return done
    ids = _card_ids(db, nudge, same_level=False)
    _mark(db, ids, outcome="called_back", staff_id=staff_id, at=at, close=True)
    return Acted(tuple(ids), "called_back", tries=nudge.tries)


def cant_reach(
    db: Database, nudge_id: int, *, staff_id: int | None, chat_id: int, at: datetime, rules: NudgeRules
) -> Acted:
    """ "Can't reach": ask again after ``callback_retry_minutes``, until ``callback_tries`` are used up;
    then the card stays open as ``unreachable`` and (at level 0) goes to the managers at once."""
    nudge = _nudge(db, nudge_id, ("callback",))
    if (done := _already(nudge)) is not None:
        return done
    ids = _card_ids(db, nudge, same_level=True)
    tries = nudge.tries + 1
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        db.execute(f"UPDATE nudges SET tries = ? WHERE id IN ({marks})", [tries, *chunk])
    if tries >= rules.callback_tries:
        _mark(db, ids, outcome="unreachable", staff_id=staff_id, at=at, close=False)
        return Acted(tuple(ids), "unreachable", tries=tries)
    until = rules.retry_at(at)
    _mark(db, ids, outcome="retry", staff_id=staff_id, at=at, close=False)
    _remind(db, ids, chat_id=chat_id, staff_id=staff_id, at=at, until=until)
    return Acted(tuple(ids), "retry", remind_at=until, tries=tries)


def snooze(
    db: Database, nudge_id: int, *, staff_id: int | None, chat_id: int, at: datetime, until: datetime
) -> Acted:
    """Show the card again at ``until`` in this chat. Escalation still counts from the first ask."""
    nudge = _nudge(db, nudge_id, KINDS)
    if (done := _already(nudge)) is not None:
        return done
    ids = _card_ids(db, nudge, same_level=True)
    _mark(db, ids, outcome="snoozed", staff_id=staff_id, at=at, close=False)
    _remind(db, ids, chat_id=chat_id, staff_id=staff_id, at=at, until=until)
    return Acted(tuple(ids), "snoozed", remind_at=until, tries=nudge.tries)


def follow_up_done(db: Database, nudge_id: int, *, staff_id: int | None, at: datetime) -> Acted:
    """ "Done": the follow-up happened; the date is cleared on the lead (recorded as a lead change)."""
    nudge = _nudge(db, nudge_id, LEAD_KINDS)
    if (done := _already(nudge)) is not None:
        return done
    ids = _card_ids(db, nudge, same_level=False)
    _mark(db, ids, outcome="done", staff_id=staff_id, at=at, close=True)
    if nudge.lead_id is not None:
        change_lead(db, nudge.lead_id, at=at, staff_id=staff_id, follow_up_on=None)
    return Acted(tuple(ids), "done")


def follow_up_later(
    db: Database, nudge_id: int, *, staff_id: int | None, at: datetime, days: int, tz: ZoneInfo
) -> Acted:
    """ "Snooze 1 day / 1 week": the lead's follow-up date moves to that day, which nudges again then."""
    if days <= 0:
        raise NudgeError("snooze by a day or more")
    nudge = _nudge(db, nudge_id, LEAD_KINDS)
    if (done := _already(nudge)) is not None:
        return done
    ids = _card_ids(db, nudge, same_level=False)
    day = at.astimezone(tz).date() + timedelta(days=days)
    _mark(db, ids, outcome="later", staff_id=staff_id, at=at, close=True)
    if nudge.lead_id is not None:
        change_lead(db, nudge.lead_id, at=at, staff_id=staff_id, follow_up_on=day)
    return Acted(tuple(ids), "later", remind_at=datetime.combine(day, time(0), tzinfo=tz))


def follow_up_lost(db: Database, nudge_id: int, *, staff_id: int | None, at: datetime, reason: str) -> Acted:
    """ "Lost", with the reason the bot asked for (it is the lead's ``lost_reason``)."""
    nudge = _nudge(db, nudge_id, LEAD_KINDS)
    if (done := _already(nudge)) is not None:
        return done
    ids = _card_ids(db, nudge, same_level=False)
    if nudge.lead_id is not None:
        change_lead(db, nudge.lead_id, at=at, staff_id=staff_id, stage="lost", reason=reason)
    _mark(db, ids, outcome="lost", staff_id=staff_id, at=at, close=True)
    return Acted(tuple(ids), "lost")
