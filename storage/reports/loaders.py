"""The queries behind a report: each reads one kind of fact for the period and folds it by the
channel, campaign and staff member as stored, into plain maps and counts."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from sqlite_utils import Database

from storage.db import iso, parse_iso
from storage.reports.response import Answer
from storage.reports.scope import TOTAL, Filters, GroupBy, Rules, Scope

#: How touches, missed calls, leads and refusals are keyed as stored: (channel, campaign, staff_id).
RawKey = tuple[str | None, str | None, int | None]


#: A touch's staff member in the reports: whoever took the call, else whom it was given to (a form's
#: or a letter's assignee, ``storage/arrivals.py``), so forms and mail are credited to a person.
TOUCH_STAFF = "COALESCE(staff_id, assignee_id)"


def _touch_filters(filters: Filters, alias: str = "", staff: str = "staff_id") -> tuple[str, list[Any]]:
    prefix = f"{alias}." if alias else ""
    sql, params = "", list[Any]()
    if filters.channel is not None:
        sql += f" AND {prefix}channel = ?"
        params.append(filters.channel)
    if filters.campaign is not None:
        sql += f" AND {prefix}campaign = ?"
        params.append(filters.campaign)
    if filters.staff_id is not None:
        sql += f" AND {prefix}{staff} IN ({', '.join('?' * len(filters.staff_id)) or 'NULL'})"
        params.extend(filters.staff_id)
    return sql, params


#: How :func:`load_inbound` reads a touch's kind, in one small number (Python keeps one object per
#: small number, so a row costs no object for it): blocked, a hidden caller, an answered call seen
#: by the report time.
BLOCKED, HIDDEN, ANSWERED = 1, 2, 4


@dataclass(frozen=True, slots=True)
class Inbound:
    """The period's inbound touches folded per contact, once for the total and for each grouping."""

    #: (channel, campaign, staff_id, kind) -> touches, ``kind`` being :data:`BLOCKED`,
    #: :data:`HIDDEN` and :data:`ANSWERED` added up.
    counts: dict[tuple[str, str | None, int | None, int], int]
    #: For "total" (under ``TOTAL``) and each grouping, by the stored channel, campaign or staff_id:
    #: each contact not blocked -> its first inbound touch in the period with that value.
    firsts: dict[GroupBy, dict[Any, dict[int, str]]]
    #: Each contact's answered inbound calls in the period that may be a group's first answer (the
    #: first one after each of its first touches), in time order; the other answers are
    #: :func:`load_other_answers`'.
    answered: dict[int, list[str]] = field(default_factory=dict)


def load_inbound(db: Database, scope: Scope) -> Inbound:
    """The period's inbound touches, folded per contact for the total and each grouping.

    The touches come in time order straight from the covering index ``touches_report`` (no sort:
    a GROUP BY would sort a year's million touches), so a contact's first touch under each key is
    simply the first one seen. A year is some 900 000 rows, each a Python tuple: the query hands
    over only the six values the fold reads, a touch's kind in one small number. Each contact's
    first registration and whether it was seen before the period are :func:`load_registered`'s.
    """
    start, end = scope.period.bounds()
    where, params = _touch_filters(scope.filters, staff=TOUCH_STAFF)
    # defaultdicts: a missing key costs a row no test of its own (``default_factory`` is dropped
    # after the scan, so they answer as dicts).
    counts: defaultdict[tuple[str, str | None, int | None, int], int] = defaultdict(int)
    total: dict[int, str] = {}
    first_in_total = total.setdefault
    channels: defaultdict[Any, dict[int, str]] = defaultdict(dict)
    campaigns: defaultdict[Any, dict[int, str]] = defaultdict(dict)
    staff: defaultdict[Any, dict[int, str]] = defaultdict(dict)
    # A contact is waiting from a first touch (of the total or of a group) to its next answered call.
    waiting: set[int] = set()
    wait, answered_now = waiting.add, waiting.discard
    answered: defaultdict[int, list[str]] = defaultdict(list)
    for cid, channel, campaign, staff_id, kind, at in db.execute(
        f"SELECT contact_id, channel, campaign, {TOUCH_STAFF},"
        f" (blocked != 0) * {BLOCKED} + (hidden_caller != 0) * {HIDDEN}"
        # an answer after the report time is not one yet
        f" + (answered IS 1 AND channel = 'call' AND occurred_at <= ?) * {ANSWERED}, occurred_at FROM touches"
        f" WHERE occurred_at >= ? AND occurred_at < ? AND direction = 'in' AND dropped IS NULL{where}"
        " ORDER BY occurred_at",
        [iso(scope.as_of), start, end, *params],
    ):
        counts[channel, campaign, staff_id, kind] += 1
        if cid is None:
            continue
        # A blocked touch is nobody's first touch, but a blocked call that was answered is still an
        # answer, as DESIGN.md counts them ("the first answered call with that number"), as the
        # export's :func:`load_answers` sees it, and a filtered report's :func:`load_other_answers`.
        # ``setdefault`` hands back the very string it was given when it stored it: a first touch.
        if not kind & BLOCKED and (
            (first_in_total(cid, at) is at)
            | (channels[channel].setdefault(cid, at) is at)
            | (campaigns[campaign].setdefault(cid, at) is at)
            | (staff[staff_id].setdefault(cid, at) is at)
        ):
            wait(cid)
        if kind & ANSWERED and cid in waiting:
            answered_now(cid)
            answered[cid].append(at)
    for folded in (counts, channels, campaigns, staff, answered):
        folded.default_factory = None
    return Inbound(
        counts,
        {"total": {TOTAL: total}, "channel": channels, "campaign": campaigns, "staff": staff},
        answered,
    )


@dataclass(frozen=True, slots=True)
class Registered:
    """Which of the period's inbound contacts were registered, and which were seen before it."""

    #: Those registered by the report time -> their first registration.
    at: dict[int, str]
    #: Those with a touch of any kind before the period: all the others are new.
    seen_before: set[int]


def load_registered(db: Database, scope: Scope) -> Registered:
    """The period's inbound contacts (not blocked: :func:`load_inbound`'s) registered by the report
    time, with their first registration, and those seen before the period.

    SQLite finds the contacts itself, so this needs nothing from the scan and runs beside it (a
    year's 200 000 contacts are two index look-ups each), and hands back one text per answer: a row
    apiece would take Python's lock from the scan once a contact (see :meth:`Facts.load`).
    """
    start, end = scope.period.bounds()
    where, params = _touch_filters(scope.filters, staff=TOUCH_STAFF)
    registered, seen_before = db.execute(
        "WITH c AS MATERIALIZED (SELECT DISTINCT contact_id AS id FROM touches WHERE occurred_at >= ?"
        f" AND occurred_at < ? AND direction = 'in' AND dropped IS NULL AND blocked = 0{where}"
        " AND contact_id IS NOT NULL)"
        " SELECT (SELECT group_concat(id || char(9) || at, char(9)) FROM (SELECT id, (SELECT MIN(r.created_at)"
        " FROM registrations r WHERE r.contact_id = c.id AND r.created_at <= ?) AS at FROM c) WHERE at IS NOT NULL),"
        " (SELECT group_concat(id) FROM c WHERE EXISTS (SELECT 1 FROM touches o WHERE o.contact_id = c.id"
        " AND o.occurred_at < ?))",
        [start, end, *params, iso(scope.as_of), start],
    ).fetchone()
    parts = registered.split("\t") if registered else []
    return Registered(
        dict(zip(map(int, parts[::2]), parts[1::2], strict=True)),
        set(map(int, seen_before.split(","))) if seen_before else set(),
    )


def _missed_sql(scope: Scope, columns: str) -> tuple[str, list[Any]]:
    """The period's missed calls, read from the index ``touches_missed`` (m030) alone: these terms
    repeat its WHERE, and it holds every column a count reads."""
    start, end = scope.period.bounds()
    where, params = _touch_filters(scope.filters, staff=TOUCH_STAFF)
    return (
        f"SELECT {columns} FROM touches AS m WHERE occurred_at >= ? AND occurred_at < ? AND channel = 'call'"
        f" AND direction = 'in' AND dropped IS NULL AND blocked = 0 AND answered = 0{where}",
        [start, end, *params],
    )


#: Every moment a person answered a contact (see :mod:`storage.reports.response`): answered calls
#: either way (through ``touches_report``, no table look-up; ``{only}`` narrows them), ``Called
#: back`` presses (a call-back nudge closed so, at the press; telephony's own closing is at an
#: answered call's start, already an answer), registrations not made by the system, and the
#: business's replies in chats (``chat_replies``: its contact is that of the touch it answered).
_ANSWERS = (
    "SELECT contact_id, occurred_at AS at, 'call' AS how FROM touches WHERE {only}occurred_at >= :start"
    " AND occurred_at <= :as_of AND channel = 'call' AND answered = 1 AND dropped IS NULL"
    " AND contact_id IS NOT NULL"
    " UNION ALL SELECT contact_id, closed_at, 'called_back' FROM nudges"
    " WHERE kind = 'callback' AND outcome = 'called_back' AND contact_id IS NOT NULL"
    " AND closed_at >= :start AND closed_at <= :as_of"
    " UNION ALL SELECT contact_id, created_at, 'registration' FROM registrations"
    " WHERE created_at >= :start AND created_at <= :as_of AND origin != 'system'"
    " UNION ALL SELECT t.contact_id, r.at, 'reply' FROM chat_replies r JOIN touches t ON t.id = r.touch_id"
    " WHERE r.touch_id IS NOT NULL AND r.at >= :start AND r.at <= :as_of AND t.contact_id IS NOT NULL"
)


def load_other_answers(db: Database, scope: Scope) -> dict[int, str]:
    """The answers :func:`load_inbound` does not see, each contact's times joined by commas (in no
    order): outbound calls, inbound ones after the period (all of them in a filtered report, whose
    scan skips some), presses, registrations and chat replies. A year's report reads some 200 000 of them, so
    SQLite groups them per contact beside the scan, and a contact's are split only when asked for.

    They come back as one text, a contact id and its times after each tab: a row apiece would take
    Python's lock from the scan once a contact, some 150 000 times in a year (see :meth:`Facts.load`).
    """
    start, end = scope.period.bounds()
    only = "(direction = 'out' OR occurred_at >= :end) AND " if scope.filters == Filters() else ""
    (joined,) = db.execute(
        "SELECT group_concat(contact_id || char(9) || times, char(9)) FROM (SELECT contact_id,"
        f" group_concat(at) AS times FROM ({_ANSWERS.format(only=only)}) GROUP BY contact_id)",
        {"start": start, "end": end, "as_of": iso(scope.as_of)},
    ).fetchone()
    if not joined:
        return {}
    parts = joined.split("\t")
    return dict(zip(map(int, parts[::2]), parts[1::2], strict=True))


def load_answers(db: Database, scope: Scope) -> dict[int, list[tuple[str, Answer]]]:
    """Each contact's answers from the period's start up to the report time, in time order.

    Unfiltered: a form's answer is a call, whatever channel, campaign or person the report is
    narrowed to. An answer after the period still answers a touch in it (a form at 23:55 called at
    00:10); one after the report time is not seen yet.
    """
    start, _ = scope.period.bounds()
    out: dict[int, list[tuple[str, Answer]]] = {}
    for cid, at, how in db.execute(_ANSWERS.format(only=""), {"start": start, "as_of": iso(scope.as_of)}):
        found = out.get(cid)
        if found is None:
            out[cid] = [(at, how)]
        else:
            found.append((at, how))
    for found in out.values():
        if len(found) > 1:
            found.sort()
    return out


def called_back_in_time(rules: Rules, occurred_at: str, called_back_at: str | None) -> bool:
    """Whether a missed call was called back (or called again) by its call-back deadline."""
    if called_back_at is None:
        return False
    missed_at, back_at = parse_iso(occurred_at), parse_iso(called_back_at)
    # A working-minute deadline is never earlier than the same minutes of real time.
    if back_at <= missed_at + timedelta(minutes=rules.callback_minutes):
        return True
    return back_at <= rules.callback_deadline(missed_at)


@dataclass(slots=True)
class MissedCounts:
    total: int = 0
    hidden: int = 0
    #: Not called back in time; None when that takes the working calendar and there is none.
    owed: int | None = 0

    def add(self, other: MissedCounts) -> None:
        self.total += other.total
        self.hidden += other.hidden
        self.owed = None if self.owed is None or other.owed is None else self.owed + other.owed


#: Whether a missed call (aliased ``m``) was called back within ``?`` microseconds of real time,
#: worked out on the stored text (UTC, ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``); NULL when a time is
#: stored otherwise or there is no limit, which leaves the call to :func:`called_back_in_time`.
_BACK_IN_REAL_TIME = (
    "(CASE WHEN length(m.occurred_at) = 32 AND substr(m.occurred_at, 20, 1) = '.'"
    " AND substr(m.occurred_at, 27) = '+00:00' AND length(m.called_back_at) = 32"
    " AND substr(m.called_back_at, 20, 1) = '.' AND substr(m.called_back_at, 27) = '+00:00' THEN"
    " (CAST(strftime('%s', substr(m.called_back_at, 1, 19)) AS INTEGER)"
    " - CAST(strftime('%s', substr(m.occurred_at, 1, 19)) AS INTEGER)) * 1000000"
    " + CAST(substr(m.called_back_at, 21, 6) AS INTEGER) - CAST(substr(m.occurred_at, 21, 6) AS INTEGER)"
    " <= ? END)"
)


def load_missed_counts(db: Database, scope: Scope, rules: Rules | None) -> dict[RawKey, MissedCounts]:
    """The period's missed calls counted by (channel, campaign, staff_id) as stored.

    A call is owed (not called back in time) once its call-back deadline has come by the report
    time and it was not called back by then; before its deadline it is neither owed nor in time,
    only still to call back (the digest's list has it). Its deadline has come when it was missed
    no later than :meth:`Rules.last_missed_due_by` the report time, one comparison of stored times.
    SQLite counts the calls nobody called back and those called back within the SLA's minutes of
    real time (a working-minute deadline is never earlier); only the calls called back later come
    back one by one, for their working-time deadline.
    """
    inner, params = _missed_sql(
        scope,
        f"channel, campaign, {TOUCH_STAFF} AS staff_id, hidden_caller, occurred_at, called_back_at,"
        f" CASE WHEN hidden_caller = 0 AND called_back_at IS NOT NULL AND {_BACK_IN_REAL_TIME} IS NOT 1"
        " THEN id END AS late",
    )
    limit = None if rules is None else timedelta(minutes=rules.callback_minutes) // timedelta(microseconds=1)
    due_by = None if rules is None else rules.last_missed_due_by(scope.as_of)
    sql = (
        "SELECT channel, campaign, staff_id, COUNT(*), SUM(hidden_caller),"
        " SUM(hidden_caller = 0 AND called_back_at IS NULL),"
        " SUM(hidden_caller = 0 AND called_back_at IS NULL AND occurred_at <= ?),"
        " late, MIN(occurred_at), MIN(called_back_at)"
        # Grouped by expressions (``+``), not columns: grouping by campaign would tempt SQLite to
        # walk touches_campaign for its order and read every touch of the period from the table.
        f" FROM ({inner}) GROUP BY +channel, +campaign, +staff_id, late"
    )
    out: dict[RawKey, MissedCounts] = {}
    rows = db.execute(sql, [None if due_by is None else iso(due_by), limit, *params])
    for channel, campaign, staff_id, n, hidden, never, never_due, late, occurred_at, called_back_at in rows:
        counts = out.setdefault((channel, campaign, staff_id), MissedCounts())
        counts.total += n
        counts.hidden += hidden
        if counts.owed is None:
            continue
        if rules is None or due_by is None:
            # Which deadlines have come takes the working calendar.
            counts.owed = None if never or late is not None else counts.owed
        elif late is None:
            counts.owed += never_due
        elif parse_iso(occurred_at) <= due_by and not called_back_in_time(rules, occurred_at, called_back_at):
            counts.owed += 1
    return out


#: The channel of the first touch of the contact of the row aliased ``{0}`` (a lead's channel).
_FIRST_CHANNEL = "(SELECT t.channel FROM touches t WHERE t.contact_id = {0}.contact_id ORDER BY t.occurred_at, t.id LIMIT 1)"


#: The lead aliased ``{0}`` is its contact's first: a merge gives the one person the leads of both
#: records, and a person is one lead (DESIGN.md: a registered contact who may buy), counted where
#: and when they first became one. One look-up in ``leads_contact`` per lead.
FIRST_LEAD = (
    "NOT EXISTS (SELECT 1 FROM leads o WHERE o.contact_id = {0}.contact_id"
    " AND (o.created_at, o.id) < ({0}.created_at, {0}.id))"
)

#: The not-a-lead registration aliased ``{0}`` is its contact's first (``registrations_contact``),
#: as :data:`FIRST_LEAD`: a merged person's two refusals are one.
_FIRST_REFUSAL = (
    "NOT EXISTS (SELECT 1 FROM registrations o WHERE o.contact_id = {0}.contact_id"
    " AND o.disposition = 'not_a_lead' AND (o.created_at, o.id) < ({0}.created_at, {0}.id))"
)


class LeadKind(NamedTuple):
    """What the lead figures tell leads apart by; leads are counted per kind."""

    temperature: str
    stage: str
    qualified: bool
    accepted: bool
    #: ``lost_reason`` (``other`` when empty) of a lost lead; None for the others.
    lost_reason: str | None


class WonLead(NamedTuple):
    won_amount: float | None
    closed_at: str | None
    first_touch_at: str | None


@dataclass(slots=True)
class Leads:
    """Leads counted per kind, and the won ones one by one in the order they were created."""

    kinds: Counter[LeadKind] = field(default_factory=Counter)
    won: list[WonLead] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LeadFacts:
    """The period's leads by (channel of the contact's first touch, campaign, owner) as stored."""

    kinds: dict[RawKey, Counter[LeadKind]]
    #: The won ones in the order they were created (revenue adds them up in that order).
    won: list[tuple[RawKey, WonLead]]


def _leads_sql(scope: Scope, columns: str, where: str = "") -> tuple[str, list[Any]]:
    start, end = scope.period.bounds()
    filters, params = _touch_filters(scope.filters)
    sql = (
        f"SELECT {columns} FROM (SELECT l.id, l.contact_id, l.temperature, l.stage, l.campaign,"
        " l.owner_id AS staff_id, l.created_at, l.qualified_at, l.accepted_at, l.closed_at, l.won_amount,"
        f" l.lost_reason, {_FIRST_CHANNEL.format('l')} AS channel"
        f" FROM leads l WHERE l.created_at >= ? AND l.created_at < ? AND l.created_at <= ?{where}"
        f" AND {FIRST_LEAD.format('l')}) AS x"
        f" WHERE 1 = 1{filters}"
    )
    return sql, [start, end, iso(scope.as_of), *params]


def load_leads(db: Database, scope: Scope) -> LeadFacts:
    """The leads created in the period (up to the report time), one a contact, at their current stage."""
    kinds: dict[RawKey, Counter[LeadKind]] = defaultdict(Counter)
    sql, params = _leads_sql(
        scope,
        "channel, campaign, staff_id, temperature, stage, qualified_at IS NOT NULL, accepted_at IS NOT NULL,"
        " CASE WHEN stage = 'lost' THEN COALESCE(NULLIF(lost_reason, ''), 'other') END, COUNT(*)",
    )
    for channel, campaign, staff_id, temperature, stage, qualified, accepted, lost_reason, n in db.execute(
        sql + " GROUP BY 1, 2, 3, 4, 5, 6, 7, 8", params
    ):
        kinds[channel, campaign, staff_id][
            LeadKind(temperature, stage, bool(qualified), bool(accepted), lost_reason)
        ] += n
    # The won ones again, one by one, with the time of the contact's first touch (for the sales cycle).
    sql, params = _leads_sql(
        scope,
        "channel, campaign, staff_id, won_amount, closed_at, (SELECT t.occurred_at FROM touches t"
        " WHERE t.contact_id = x.contact_id ORDER BY t.occurred_at, t.id LIMIT 1)",
        " AND l.stage = 'won'",
    )
    won = [
        ((channel, campaign, staff_id), WonLead(won_amount, closed_at, first_touch_at))
        for channel, campaign, staff_id, won_amount, closed_at, first_touch_at in db.execute(
            sql + " ORDER BY x.created_at, x.id", params
        )
    ]
    return LeadFacts(dict(kinds), won)


def lead_contacts(db: Database, scope: Scope) -> set[int]:
    """The contacts of the leads created in the period up to the report time (unfiltered)."""
    start, end = scope.period.bounds()
    return {
        int(cid)
        for (cid,) in db.execute(
            "SELECT contact_id FROM leads l WHERE created_at >= ? AND created_at < ? AND created_at <= ?"
            f" AND {FIRST_LEAD.format('l')}",
            [start, end, iso(scope.as_of)],
        )
    }


def load_refusals(db: Database, scope: Scope) -> dict[RawKey, Counter[str]]:
    """Not-a-lead registrations made in the period, one a contact, by reason and (channel, campaign,
    staff_id)."""
    start, end = scope.period.bounds()
    where, params = _touch_filters(scope.filters)
    sql = (
        "SELECT channel, campaign, staff_id, reason, COUNT(*) FROM (SELECT r.reason, r.campaign, r.staff_id,"
        f" {_FIRST_CHANNEL.format('r')} AS channel"
        " FROM registrations r WHERE r.disposition = 'not_a_lead' AND r.created_at >= ? AND r.created_at < ?"
        f" AND r.created_at <= ? AND {_FIRST_REFUSAL.format('r')}) AS x WHERE 1 = 1{where} GROUP BY 1, 2, 3, 4"
    )
    out: dict[RawKey, Counter[str]] = defaultdict(Counter)
    for channel, campaign, staff_id, reason, n in db.execute(sql, [start, end, iso(scope.as_of), *params]):
        out[channel, campaign, staff_id][reason] += n
    return dict(out)


def staff_names(db: Database) -> dict[int, str]:
    return {int(i): str(n) for i, n in db.execute("SELECT id, name FROM staff")}
