"""What is due: everything the rows say is owed at a moment, derived afresh each sweep (a read, so it
runs beside the single writer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from sqlite_utils import Database

from storage.calls import CALLED_BACK_SQL
from storage.chat_moves import current_chat
from storage.db import iso, parse_iso
from storage.lists import NOT_BLOCKED, NOT_ERASED
from storage.nudges.people import Directory, Recipient
from storage.nudges.rules import LEAD_KINDS, OPEN_STAGES_SQL, Kind, NudgeRules, working_cutoff

#: How a due item's deadline follows from its ``since``: working minutes, real minutes, or none.
Delay = tuple[Literal["working", "real", "none"], float]


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
    if rules.team_chat:
        rules = replace(rules, team_chat=current_chat(db, rules.team_chat))
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


#: The level-0 nudge (aliased ``{z}``) was asked of someone since taken out of ``[[staff]]``: nobody
#: will answer it or get its reminders, so it goes on to the managers at once, like one given up.
ASKED_LEFT_SQL = "EXISTS (SELECT 1 FROM staff s WHERE s.id = {z}.staff_id AND s.active = 0)"


def _pending(db: Database, w: _Window, rules: NudgeRules, working: bool) -> list[Due]:
    """Deliveries owed by existing nudges: reminders, and copies a batch window held back.

    None goes to the chat of someone taken out of ``[[staff]]``: they are let in no more, and a
    card names a client (the escalation tells the managers instead).
    """
    rows = db.execute(
        "SELECT n.id, n.kind, n.level, n.subject, d.not_before, n.staff_id, n.chat_id, n.contact_id, n.touch_id,"
        " n.lead_id, n.ref, d.chat_id, d.staff_id, d.round"
        " FROM nudge_deliveries d JOIN nudges n ON n.id = d.nudge_id"
        " WHERE d.message_id IS NULL AND d.not_before <= :now AND d.not_before >= :horizon"
        " AND n.closed_at IS NULL AND n.kind != 'source_health'"
        " AND NOT EXISTS (SELECT 1 FROM staff s WHERE s.telegram_id = d.chat_id AND s.active = 0)",
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

    An answered call, a form or a letter: its time and its assignee, else the person who took it
    (the assignee is whoever its card went to, so a card given away takes its touches along). A
    missed call only once someone called back (its call-back mark, or the "Called back" button):
    from then on, by the person who called first. The button's moment is the call-back nudge's
    ``closed_at`` (set when its outcome became ``called_back``), not its ``acted_at``, which keeps
    an earlier "Can't reach".
    """
    staff, assignee = row[3], row[12]
    occurred, channel, answered, back_at, back_staff, button_at, button_by = row[5:12]
    if channel != "call" or answered == 1:
        return occurred, (assignee, staff)
    if answered == 0:
        if back_at is not None:
            return back_at, (back_staff, button_by, assignee, staff)
        if button_at is not None:
            return button_at, (button_by, assignee, staff)
    return None, ()


_REGISTER_SQL = f"""
SELECT t.id, t.contact_id, t.source, t.staff_id, t.to_address, t.occurred_at, t.channel, t.answered,
       t.called_back_at, b.staff_id, cb.closed_at, cb.acted_by, t.assignee_id
FROM touches t
LEFT JOIN touches b ON b.id = t.called_back_by
LEFT JOIN nudges cb ON cb.kind = 'callback' AND cb.subject = 'touch:' || t.id AND cb.level = 0
    AND cb.outcome = 'called_back'
WHERE t.occurred_at >= :horizon AND t.occurred_at <= :cutoff
  AND t.direction = 'in' AND t.hidden_caller = 0 AND t.dropped IS NULL AND t.blocked = 0
  AND t.contact_id IS NOT NULL
  AND (t.channel != 'call' OR t.answered = 1 OR t.called_back_at IS NOT NULL OR cb.id IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM registrations r WHERE r.contact_id = t.contact_id)
  AND {NOT_ERASED}
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


_CALLBACK_SQL = f"""
SELECT t.id, t.contact_id, t.source, t.staff_id, t.occurred_at, t.assignee_id
FROM touches t
WHERE t.occurred_at >= :horizon AND t.occurred_at <= :cutoff
  AND t.channel = 'call' AND t.direction = 'in' AND t.call_final = 1 AND t.answered = 0
  AND t.hidden_caller = 0 AND t.dropped IS NULL AND t.blocked = 0 AND t.contact_id IS NOT NULL
  AND NOT {CALLED_BACK_SQL}
  AND {NOT_BLOCKED} AND {NOT_ERASED}
  AND NOT EXISTS (SELECT 1 FROM nudges o WHERE o.contact_id = t.contact_id AND o.kind = 'callback'
                  AND o.level = 0 AND o.closed_at IS NULL AND o.created_at >= :horizon
                  AND IFNULL(o.outcome, '') != 'unreachable')
  AND NOT EXISTS (SELECT 1 FROM nudges n WHERE n.kind = 'callback' AND n.subject = 'touch:' || t.id
                  AND n.level = 0)
"""


def _callbacks(db: Database, w: _Window, rules: NudgeRules, people: Directory) -> list[Due]:
    """Missed calls nobody called back within the SLA (real minutes when call-backs run round the clock).

    A contact's new missed calls wait for the open call-back card they are folded into, but not for
    one given up after the last "Can't reach": that card is closed to new tries, so a new call is a
    new question.
    """
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
        # The assignee first: the card's person, the extension's unless the card was given away.
        staff_id, chat_id = people.target(rules, latest[5], latest[3], people.source_owner(rules, latest[2]))
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
REMINDED_SQL = (
    "(SELECT MIN(m.created_at) FROM nudge_deliveries d JOIN nudge_messages m ON m.id = d.message_id"
    " WHERE d.nudge_id = {z}.id AND d.round = {z}.round AND {z}.round > 0)"
)

#: A level-0 nudge (aliased ``n``) that has someone to go on to: one asked of a person or the team
#: chat. One asked of nobody in particular went to every manager already; telling them again an hour
#: later that "nobody in particular was asked" is no escalation.
ESCALATES_SQL = "(n.level = 0 AND (n.staff_id IS NOT NULL OR n.chat_id IS NOT NULL))"

#: A level-0 nudge someone acted on still escalates when it was given up ("Can't reach" used up, or
#: the person asked has left) or when the reminder the button asked for went unanswered for
#: ``escalation_minutes``.
_ACTED_ESCALATES_SQL = (
    "(z.acted_at IS NULL OR z.outcome = 'unreachable' OR z.asked_left OR z.reminded_at <= :cutoff)"
)

_ESCALATION_SQL = f"""
SELECT z.kind, z.subject, z.created_at, z.staff_id, z.contact_id, z.touch_id, z.lead_id, z.ref, z.outcome,
       z.reminded_at, z.asked_left
FROM (SELECT n.*, {REMINDED_SQL.format(z="n")} AS reminded_at, {ASKED_LEFT_SQL.format(z="n")} AS asked_left
      FROM nudges n
      WHERE n.closed_at IS NULL AND n.created_at >= :horizon AND {ESCALATES_SQL}
        AND n.kind IN ('register', 'callback', 'follow_up', 'stale')) z
WHERE (z.created_at <= :cutoff OR z.outcome = 'unreachable' OR z.asked_left)
  AND NOT EXISTS (SELECT 1 FROM nudges y WHERE y.kind = z.kind AND y.subject = z.subject AND y.level = 1)
  AND CASE z.kind
    WHEN 'register' THEN NOT EXISTS (SELECT 1 FROM touches t JOIN registrations r ON r.contact_id = t.contact_id
                                     WHERE t.id = z.touch_id)
    WHEN 'callback' THEN {_ACTED_ESCALATES_SQL}
                         AND NOT EXISTS (SELECT 1 FROM touches t WHERE t.id = z.touch_id AND {CALLED_BACK_SQL})
    ELSE {_ACTED_ESCALATES_SQL} AND EXISTS (SELECT 1 FROM leads l WHERE l.id = z.lead_id AND l.{OPEN_STAGES_SQL}
                                              AND CASE z.kind WHEN 'follow_up' THEN l.follow_up_on
                                                  ELSE l.updated_at END = z.ref)
  END
"""


def _escalations(db: Database, w: _Window, rules: NudgeRules, people: Directory) -> list[Due]:
    """Level-0 nudges still unanswered ``escalation_minutes`` of working time after they were asked,
    or after the reminder a button asked for (a call-back given up after the last "Can't reach",
    and a question asked of someone who has left, escalate at once): level 1, to the managers."""
    cutoff = iso(working_cutoff(rules.calendar, w.now, rules.escalation_minutes))
    out: list[Due] = []
    for kind, subject, created, asked, contact, touch, lead, ref, outcome, reminded, left in db.execute(
        _ESCALATION_SQL, {"horizon": w.horizon, "cutoff": cutoff}
    ).fetchall():
        recipients = people.recipients(None, None, asked)
        at_once = outcome == "unreachable" or bool(left)
        delay: Delay = ("none", 0.0) if at_once else ("working", rules.escalation_minutes)
        since = reminded if not at_once and reminded is not None and reminded <= cutoff else created
        for to in recipients:
            out.append(
                Due(kind, 1, subject, since, to, recipients, None, None, contact, touch, lead, ref, delay)
            )
    return out


#: The lead (aliased ``l``) of a person since erased: its card would be about nobody, so no follow-up
#: or stale question is asked about it, as none is asked to register or call them back.
_ERASED_LEAD_SQL = "EXISTS (SELECT 1 FROM contacts e WHERE e.id = l.contact_id AND e.erased_at IS NOT NULL)"


def _follow_ups(db: Database, w: _Window, rules: NudgeRules, people: Directory) -> list[Due]:
    """Open leads whose follow-up date has come: once per date, at the start of that working day."""
    today = w.now.astimezone(rules.tz).date()
    oldest = today - timedelta(days=rules.horizon_days)
    rows = db.execute(
        "SELECT l.id, l.contact_id, l.owner_id, l.follow_up_on FROM leads l"
        f" WHERE l.follow_up_on IS NOT NULL AND l.{OPEN_STAGES_SQL}"
        " AND l.follow_up_on <= :today AND l.follow_up_on >= :oldest"
        f" AND NOT {_ERASED_LEAD_SQL}"
        " AND NOT EXISTS (SELECT 1 FROM nudges n WHERE n.kind = 'follow_up' AND n.level = 0"
        " AND (n.subject = 'lead:' || l.id || ':' || l.follow_up_on || ':' || IFNULL(l.owner_id, '')"
        # a subject from before the owner was in it: its question stands unless an owner change closed it
        " OR n.subject = 'lead:' || l.id || ':' || l.follow_up_on AND IFNULL(n.outcome, '') != 'changed'))",
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
                    "follow_up", 0, f"lead:{lead_id}:{on}:{owner_id or ''}", since, to, recipients, staff_id, chat_id,
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
        f" AND NOT {_ERASED_LEAD_SQL}"
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
