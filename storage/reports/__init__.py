"""The numbers of DESIGN.md ("The numbers"), per period and per channel, campaign and staff member.

A report reads four kinds of facts for its period in a handful of queries (inbound touches folded
per contact, missed calls, the period's leads, its not-a-lead registrations) plus the costs, and
every figure is a plain function of those facts. The same functions give the total and each group,
so a group's figures are exactly what the report filtered to that group would say.

A year of a busy office is a million touches on some 200 000 contacts, and ``leadline report`` must
answer in seconds: the facts are folded once, by the channel, campaign and staff member as stored,
into plain maps and counts (no object per touch or contact), each group merges the folds under its
name, and the independent queries run on a second connection beside the longest one (see
:meth:`Facts.load`).

Definitions that the design leaves open are fixed here, once:

* A period is whole local days in the configured time zone (a touch at 23:59 belongs to its day).
* Inbound touches exclude outbound calls, dropped events (auto-replies, spam rules) and touches
  from blocked numbers or addresses; blocked ones are counted apart, as are hidden callers, which
  are inbound touches without a contact.
* "Registered" counts a registration made at any time up to ``as_of`` (the report time), so a
  contact registered before the period counts as registered; the lag is measured only for contacts
  whose first registration came at or after their first touch in the period.
* A contact is new when it has no touch of any kind before the period.
* A missed call is an inbound call with ``answered = 0``; it is "not called back" when nobody
  answered a later call from the number or called it back (``touches.called_back_at``) by its
  call-back deadline, in working minutes. Hidden callers cannot be called back and are counted
  apart instead.
* Leads are the cohort created in the period, at the stage they are in now: of this month's
  100 leads, 20 were qualified and 2 won, whenever that happened. Goal progress instead counts
  what happened in the month (leads created, qualified, won).
* A lead's channel is that of its contact's first touch; its campaign is the lead's own.
* Costs belong to campaigns only, so they appear in the total and per campaign, not per channel or
  staff member.
"""

from __future__ import annotations

import json
import math
import sqlite3
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from storage import plan
from storage.costs import CampaignCost, costs_in_period
from storage.db import connect, iso, now_utc, parse_iso
from storage.worktime import WorkingCalendar

if TYPE_CHECKING:
    from leadline.config import Config, GoalsSection

GroupBy = Literal["total", "channel", "campaign", "staff"]
GROUPINGS: tuple[GroupBy, ...] = ("channel", "campaign", "staff")
TOTAL = ""
#: The group key of touches and leads without a campaign or a staff member.
NONE_KEY = "(none)"
CHANNELS = ("call", "form", "email", "manual")
STAGES = ("new", "qualified", "accepted", "returned", "won", "lost")
TEMPERATURES = ("hot", "warm", "cold")


# -- periods and scope ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Whole local days from ``start`` to ``end``, both included, in the time zone ``tz``."""

    start: date
    end: date
    tz: ZoneInfo

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"the period ends ({self.end}) before it starts ({self.start})")

    @classmethod
    def day(cls, day: date, tz: ZoneInfo) -> Period:
        return cls(day, day, tz)

    @classmethod
    def week(cls, day: date, tz: ZoneInfo) -> Period:
        """Monday to Sunday around ``day``."""
        monday = day - timedelta(days=day.weekday())
        return cls(monday, monday + timedelta(days=6), tz)

    @classmethod
    def month(cls, day: date, tz: ZoneInfo) -> Period:
        first = day.replace(day=1)
        return cls(first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1), tz)

    @classmethod
    def parse(cls, text: str, tz: ZoneInfo, today: date) -> Period:
        """``day``, ``yesterday``, ``week``, ``last-week``, ``month``, ``last-month``, ``YYYY-MM`` or ``YYYY-MM-DD``."""
        word = text.strip().lower()
        if word in ("day", "today"):
            return cls.day(today, tz)
        if word == "yesterday":
            return cls.day(today - timedelta(days=1), tz)
        if word == "week":
            return cls.week(today, tz)
        if word == "last-week":
            return cls.week(today - timedelta(days=7), tz)
        if word == "month":
            return cls.month(today, tz)
        if word == "last-month":
            return cls.month(today.replace(day=1) - timedelta(days=1), tz)
        try:
            if len(word) == 7:
                return cls.month(date.fromisoformat(word + "-01"), tz)
            return cls.day(date.fromisoformat(word), tz)
        except ValueError:
            raise ValueError(
                f"unknown period {text!r}: use day, yesterday, week, last-week, month, last-month,"
                " YYYY-MM or YYYY-MM-DD"
            ) from None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def starts_at(self) -> datetime:
        return datetime.combine(self.start, time(0), tzinfo=self.tz)

    def ends_at(self) -> datetime:
        """The first moment after the period: midnight after its last day."""
        return datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=self.tz)

    def bounds(self) -> tuple[str, str]:
        """[start, end) as stored times, so a query compares text with text."""
        return iso(self.starts_at()), iso(self.ends_at())

    def previous(self, days: int) -> Period:
        """The same span moved ``days`` back (yesterday against the same day a week earlier)."""
        shift = timedelta(days=days)
        return Period(self.start - shift, self.end - shift, self.tz)

    @property
    def label(self) -> str:
        if self.start == self.end:
            return self.start.isoformat()
        if self == Period.month(self.start, self.tz):
            return self.start.strftime("%Y-%m")
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


@dataclass(frozen=True)
class Filters:
    """Narrow a report to one channel, campaign or staff member (touches' and leads' own)."""

    channel: str | None = None
    campaign: str | None = None
    staff_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "campaign": self.campaign, "staff_id": self.staff_id}


@dataclass(frozen=True)
class Scope:
    period: Period
    filters: Filters = Filters()
    #: The report time: registrations and leads made after it are not seen.
    as_of: datetime = field(default_factory=now_utc)


@dataclass(frozen=True)
class Rules:
    """What the numbers are measured against, from the config."""

    calendar: WorkingCalendar
    registration_minutes: int = 15
    callback_minutes: int = 30
    goals: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> Rules:
        return cls(
            calendar=WorkingCalendar.from_config(config.working_time, config.tz),
            registration_minutes=config.sla.registration_minutes,
            callback_minutes=config.sla.callback_minutes,
            goals=_goals(config.goals),
        )

    def callback_deadline(self, missed_at: datetime) -> datetime:
        """Same rule as the nudges: the call-back SLA in working minutes from the missed call."""
        return self.calendar.add_working_minutes(missed_at, self.callback_minutes)


def _goals(section: GoalsSection) -> dict[str, float]:
    return {k: float(v) for k, v in section.model_dump().items() if v is not None}


class WorkingClock:
    """Cumulative working minutes over a span of days, so that a lag is one subtraction.

    A year's report measures some 200 000 lags; walking the calendar for each costs seconds. Here
    each local day's working period is computed once, exactly as :class:`WorkingCalendar` defines
    it (the working hours on the office clock, as UTC instants), with the working minutes of all
    days before it; times outside the span fall back to the calendar itself. The two agree to the
    microsecond (``tests/numbers/test_reports.py`` checks it across DST changes and holidays).
    """

    def __init__(self, calendar: WorkingCalendar, first: date, last: date) -> None:
        self.calendar = calendar
        self.first = first
        self.days = (last - first).days + 1
        self.starts: list[datetime | None] = []
        self.lengths: list[float] = []
        self.before: list[float] = []
        #: The working period of each day as stored text (see :meth:`minutes_at_stored`).
        self.periods: list[tuple[str, str] | None] = []
        total = 0.0
        for offset in range(self.days):
            day = first + timedelta(days=offset)
            start = end = None
            if calendar.is_working_day(day):
                start = datetime.combine(day, calendar.start, tzinfo=calendar.tz).astimezone(UTC)
                end = datetime.combine(day, calendar.end, tzinfo=calendar.tz).astimezone(UTC)
            length = (end - start) / _MINUTE if start is not None and end is not None and end > start else 0.0
            self.starts.append(start if length else None)
            self.periods.append((iso(start), iso(end)) if length and start and end else None)
            self.lengths.append(length)
            self.before.append(total)
            total += length
        # Where each day begins, as stored text, and whether it keeps one UTC offset throughout
        # (looked at every six hours: no zone changes its offset and back within six hours): then
        # a stored time falls in the day whose beginning it follows, by comparing text.
        tz = calendar.tz
        begins = [
            datetime.combine(first + timedelta(days=offset), time(0), tzinfo=tz).astimezone(UTC)
            for offset in range(self.days + 1)
        ]
        self.day_starts = [iso(begin) for begin in begins]
        self.steady: list[bool] = []
        for offset, (begin, following) in enumerate(pairwise(begins)):
            last_moment = following - _MICROSECOND
            offsets = {(begin + timedelta(hours=h)).astimezone(tz).utcoffset() for h in (0, 6, 12, 18)}
            offsets.add(last_moment.astimezone(tz).utcoffset())
            day = first + timedelta(days=offset)
            same_day = begin.astimezone(tz).date() == day == last_moment.astimezone(tz).date()
            self.steady.append(len(offsets) == 1 and same_day)

    def minutes_at(self, moment: datetime) -> float | None:
        """Working minutes from the start of the span to ``moment``; None outside the span."""
        index = (moment.astimezone(self.calendar.tz).date() - self.first).days
        if not 0 <= index < self.days:
            return None
        start = self.starts[index]
        inside = 0.0 if start is None else min(max((moment - start) / _MINUTE, 0.0), self.lengths[index])
        return self.before[index] + inside

    def minutes_at_stored(self, stored: str) -> float | None:
        """:meth:`minutes_at` of a stored time, mostly without reading it as a datetime.

        A stored time (UTC, ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``) sorts as text in time order, so
        its day is found among the days' first instants and it is compared with the day's working
        period as text; only a time inside working hours is read, to measure how far in it is.
        Anything else (another format, a day with a change of UTC offset, outside the span) goes
        to :meth:`minutes_at`. Both give the same float.
        """
        if len(stored) != 32 or not stored.endswith("+00:00"):
            return self.minutes_at(parse_iso(stored))
        index = bisect_right(self.day_starts, stored) - 1
        if not 0 <= index < self.days or not self.steady[index]:
            return self.minutes_at(parse_iso(stored))
        period, start = self.periods[index], self.starts[index]
        if period is None or start is None or stored <= period[0]:
            return self.before[index]
        if stored >= period[1]:
            return self.before[index] + self.lengths[index]
        return self.before[index] + (parse_iso(stored) - start) / _MINUTE

    def between(self, start: datetime, end: datetime) -> float:
        """Working minutes in [start, end), as :meth:`WorkingCalendar.working_minutes_between`."""
        a, b = self.minutes_at(start), self.minutes_at(end)
        if a is None or b is None:
            return self.calendar.working_minutes_between(start, end)
        return max(b - a, 0.0)


_MINUTE = timedelta(minutes=1)
_MICROSECOND = timedelta(microseconds=1)


class LagClock:
    """Registration lags between stored times on one :class:`WorkingClock`, each time placed once.

    A year's report asks for some 500 000 lags over its four groupings, mostly between the same
    few hundred thousand times: each time's position on the clock is worked out once, and a lag is
    the difference of two positions, exactly as :meth:`WorkingClock.between` computes it.
    """

    def __init__(self, clock: WorkingClock) -> None:
        self.clock = clock
        self.placed: dict[str, float | None] = {}
        self.measured: list[tuple[Mapping[int, str], Mapping[int, str], list[float]]] = []

    def _place(self, stored: str) -> float | None:
        if stored in self.placed:
            return self.placed[stored]
        found = self.placed[stored] = self.clock.minutes_at_stored(stored)
        return found

    def lag(self, first_at: str, registered_at: str) -> float:
        a, b = self._place(first_at), self._place(registered_at)
        if a is None or b is None:
            return self.clock.calendar.working_minutes_between(parse_iso(first_at), parse_iso(registered_at))
        return max(b - a, 0.0)

    def lags(
        self, first_at: Mapping[int, str], registered_at: Mapping[int, str], registered: Iterable[int]
    ) -> list[float]:
        """The lag of each ``registered`` contact of ``first_at`` registered at or after its first touch.

        A group with the very first touches of another (the whole report's staff "(none)" when no
        inbound touch has a staff member, the one channel of a report filtered to it) has its lags.
        """
        for known_first, known_registered, known in self.measured:
            if (
                known_registered is registered_at
                and len(known_first) == len(first_at)
                and known_first == first_at
            ):
                return list(known)
        placed, place, lag = self.placed, self._place, self.lag
        out: list[float] = []
        append = out.append
        for cid in registered:
            first, at = first_at[cid], registered_at[cid]
            if at < first:
                continue
            a = placed.get(first)
            if a is None:
                a = place(first)
            b = placed.get(at)
            if b is None:
                b = place(at)
            append(lag(first, at) if a is None or b is None else max(b - a, 0.0))
        self.measured.append((first_at, registered_at, out))
        return out


# -- facts ---------------------------------------------------------------------------------------

#: How touches, missed calls, leads and refusals are keyed as stored: (channel, campaign, staff_id).
RawKey = tuple[str | None, str | None, int | None]


class MissedRow(NamedTuple):
    touch_id: int
    contact_id: int | None
    channel: str
    campaign: str | None
    staff_id: int | None
    occurred_at: str
    called_back_at: str | None
    hidden: bool


@dataclass(frozen=True, slots=True)
class ContactFacts:
    first_at: str
    registered_at: str | None
    new: bool


def _touch_filters(filters: Filters, alias: str = "") -> tuple[str, list[Any]]:
    prefix = f"{alias}." if alias else ""
    sql, params = "", list[Any]()
    if filters.channel is not None:
        sql += f" AND {prefix}channel = ?"
        params.append(filters.channel)
    if filters.campaign is not None:
        sql += f" AND {prefix}campaign = ?"
        params.append(filters.campaign)
    if filters.staff_id is not None:
        sql += f" AND {prefix}staff_id = ?"
        params.append(filters.staff_id)
    return sql, params


@dataclass(frozen=True, slots=True)
class Inbound:
    """The period's inbound touches folded per contact, once for the total and for each grouping."""

    #: (channel, campaign, staff_id, blocked) -> [touches, hidden-caller touches].
    counts: dict[tuple[str, str | None, int | None, int], list[int]]
    #: For "total" (under ``TOTAL``) and each grouping, by the stored channel, campaign or staff_id:
    #: each contact not blocked -> its first inbound touch in the period with that value.
    firsts: dict[GroupBy, dict[Any, dict[int, str]]]
    #: Those contacts registered by the report time -> their first registration.
    registered_at: dict[int, str]
    #: Those contacts with no touch of any kind before the period.
    new: set[int]


def load_inbound(db: Database, scope: Scope) -> Inbound:
    """The period's inbound touches, folded per contact for the total and each grouping.

    The touches come in time order straight from the covering index ``touches_report`` (no sort:
    a GROUP BY would sort a year's million touches), so a contact's first touch under each key is
    simply the first one seen. Each contact's first registration and whether it was seen before
    the period come after, in one query of index look-ups over its ids.
    """
    start, end = scope.period.bounds()
    where, params = _touch_filters(scope.filters)
    counts: dict[tuple[str, str | None, int | None, int], list[int]] = {}
    total: dict[int, str] = {}
    first_in_total = total.setdefault
    channels: dict[Any, dict[int, str]] = {}
    campaigns: dict[Any, dict[int, str]] = {}
    staff: dict[Any, dict[int, str]] = {}
    for cid, channel, campaign, staff_id, blocked, hidden, at in db.execute(
        "SELECT contact_id, channel, campaign, staff_id, blocked, hidden_caller, occurred_at FROM touches"
        f" WHERE occurred_at >= ? AND occurred_at < ? AND direction = 'in' AND dropped IS NULL{where}"
        " ORDER BY occurred_at",
        [start, end, *params],
    ):
        key = (channel, campaign, staff_id, blocked)
        count = counts.get(key)
        if count is None:
            counts[key] = [1, hidden]
        else:
            count[0] += 1
            count[1] += hidden
        if blocked or cid is None:
            continue
        first_in_total(cid, at)
        firsts = channels.get(channel)
        if firsts is None:
            firsts = channels[channel] = {}
        firsts.setdefault(cid, at)
        firsts = campaigns.get(campaign)
        if firsts is None:
            firsts = campaigns[campaign] = {}
        firsts.setdefault(cid, at)
        firsts = staff.get(staff_id)
        if firsts is None:
            firsts = staff[staff_id] = {}
        firsts.setdefault(cid, at)
    registered_at: dict[int, str] = {}
    new: set[int] = set()
    for cid, registered, seen_before in db.execute(
        "SELECT c.value, (SELECT MIN(r.created_at) FROM registrations r WHERE r.contact_id = c.value"
        " AND r.created_at <= ?), EXISTS (SELECT 1 FROM touches o WHERE o.contact_id = c.value"
        " AND o.occurred_at < ?) FROM json_each(?) AS c",
        [iso(scope.as_of), start, json.dumps(sorted(total))],
    ):
        if registered is not None:
            registered_at[cid] = registered
        if not seen_before:
            new.add(cid)
    return Inbound(
        counts,
        {"total": {TOTAL: total}, "channel": channels, "campaign": campaigns, "staff": staff},
        registered_at,
        new,
    )


def _missed_sql(scope: Scope, columns: str) -> tuple[str, list[Any]]:
    start, end = scope.period.bounds()
    where, params = _touch_filters(scope.filters)
    return (
        f"SELECT {columns} FROM touches AS m WHERE occurred_at >= ? AND occurred_at < ? AND channel = 'call'"
        f" AND direction = 'in' AND dropped IS NULL AND blocked = 0 AND answered = 0{where}",
        [start, end, *params],
    )


def load_missed_rows(db: Database, scope: Scope) -> list[MissedRow]:
    sql, params = _missed_sql(
        scope, "id, contact_id, channel, campaign, staff_id, occurred_at, called_back_at, hidden_caller"
    )
    rows = db.execute(sql, params).fetchall()
    return [MissedRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7])) for r in rows]


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

    SQLite counts the calls nobody called back and those called back within the SLA's minutes of
    real time (a working-minute deadline is never earlier); only the calls called back later come
    back one by one, for their working-time deadline.
    """
    inner, params = _missed_sql(
        scope,
        "channel, campaign, staff_id, hidden_caller, occurred_at, called_back_at,"
        f" CASE WHEN hidden_caller = 0 AND called_back_at IS NOT NULL AND {_BACK_IN_REAL_TIME} IS NOT 1"
        " THEN id END AS late",
    )
    limit = None if rules is None else timedelta(minutes=rules.callback_minutes) // timedelta(microseconds=1)
    sql = (
        "SELECT channel, campaign, staff_id, COUNT(*), SUM(hidden_caller),"
        " SUM(hidden_caller = 0 AND called_back_at IS NULL), late, MIN(occurred_at), MIN(called_back_at)"
        # Grouped by expressions (``+``), not columns: grouping by campaign would tempt SQLite to
        # walk touches_campaign for its order and read every touch of the period from the table.
        f" FROM ({inner}) GROUP BY +channel, +campaign, +staff_id, late"
    )
    out: dict[RawKey, MissedCounts] = {}
    for channel, campaign, staff_id, n, hidden, never, late, occurred_at, called_back_at in db.execute(
        sql, [limit, *params]
    ):
        counts = out.setdefault((channel, campaign, staff_id), MissedCounts())
        counts.total += n
        counts.hidden += hidden
        if counts.owed is None:
            continue
        if late is None:
            counts.owed += never
        elif rules is None:
            counts.owed = None
        elif not called_back_in_time(rules, occurred_at, called_back_at):
            counts.owed += 1
    return out


#: The channel of the first touch of the contact of the row aliased ``{0}`` (a lead's channel).
_FIRST_CHANNEL = "(SELECT t.channel FROM touches t WHERE t.contact_id = {0}.contact_id ORDER BY t.occurred_at, t.id LIMIT 1)"


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
        f" FROM leads l WHERE l.created_at >= ? AND l.created_at < ? AND l.created_at <= ?{where}) AS x"
        f" WHERE 1 = 1{filters}"
    )
    return sql, [start, end, iso(scope.as_of), *params]


def load_leads(db: Database, scope: Scope) -> LeadFacts:
    """The leads created in the period (up to the report time), at their current stage."""
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


def load_refusals(db: Database, scope: Scope) -> dict[RawKey, Counter[str]]:
    """Not-a-lead registrations made in the period, by reason and (channel, campaign, staff_id)."""
    start, end = scope.period.bounds()
    where, params = _touch_filters(scope.filters)
    sql = (
        "SELECT channel, campaign, staff_id, reason, COUNT(*) FROM (SELECT r.reason, r.campaign, r.staff_id,"
        f" {_FIRST_CHANNEL.format('r')} AS channel"
        " FROM registrations r WHERE r.disposition = 'not_a_lead' AND r.created_at >= ? AND r.created_at < ?"
        f" AND r.created_at <= ?) AS x WHERE 1 = 1{where} GROUP BY 1, 2, 3, 4"
    )
    out: dict[RawKey, Counter[str]] = defaultdict(Counter)
    for channel, campaign, staff_id, reason, n in db.execute(sql, [start, end, iso(scope.as_of), *params]):
        out[channel, campaign, staff_id][reason] += n
    return dict(out)


def staff_names(db: Database) -> dict[int, str]:
    return {int(i): str(n) for i, n in db.execute("SELECT id, name FROM staff")}


# -- groups and figures --------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default; the median for q = 0.5)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


@dataclass
class Flow:
    """The inbound flow of one group."""

    touches: int = 0
    hidden: int = 0
    blocked: int = 0
    #: Each inbound contact of the group -> its first inbound touch in the period within the group.
    first_at: dict[int, str] = field(default_factory=dict)
    #: First registration by the report time of (at least) the group's registered contacts.
    registered_at: Mapping[int, str] = field(default_factory=dict)
    #: The group's contacts with no touch before the period.
    new: set[int] = field(default_factory=set)
    #: The group's contacts registered by the report time.
    registered: set[int] = field(default_factory=set)
    registered_new: int = 0


@dataclass
class Group:
    """The facts of one group (or of the total); every figure is a property of them."""

    #: The working calendar and SLAs; only the lag and missed-call figures need them.
    rules: Rules | None = None
    flow: Flow = field(default_factory=Flow)
    missed: MissedCounts = field(default_factory=MissedCounts)
    leads_in: Leads = field(default_factory=Leads)
    #: Not-a-lead registrations by reason.
    refusals: Counter[str] = field(default_factory=Counter)
    #: None: costs cannot be attributed to this group (a channel, a staff member).
    costs: list[CampaignCost] | None = None
    #: The working clock the lags are measured on, shared by a report's groups (see :class:`Facts`).
    lag: LagClock | None = None
    #: Reads the group's missed calls still owed a call back, one by one (for the digest's buttons).
    owed_rows: Callable[[], list[MissedRow]] = list

    def _rules(self) -> Rules:
        return _require(self.rules)

    # inbound flow

    @property
    def inbound_touches(self) -> int:
        return self.flow.touches

    @property
    def hidden_caller_touches(self) -> int:
        return self.flow.hidden

    @property
    def blocked_touches(self) -> int:
        return self.flow.blocked

    @property
    def contacts(self) -> dict[int, ContactFacts]:
        """Each inbound contact: its first touch in the period, first registration, and newness."""
        flow = self.flow
        return {
            cid: ContactFacts(at, flow.registered_at.get(cid), cid in flow.new)
            for cid, at in flow.first_at.items()
        }

    @property
    def inbound_contacts(self) -> int:
        return len(self.flow.first_at)

    @property
    def new_contacts(self) -> int:
        return len(self.flow.new)

    @property
    def registered(self) -> int:
        return len(self.flow.registered)

    @property
    def registered_new(self) -> int:
        return self.flow.registered_new

    @property
    def lrr(self) -> float | None:
        return ratio(self.registered, self.inbound_contacts)

    @property
    def lrr_new(self) -> float | None:
        return ratio(self.registered_new, self.new_contacts)

    @cached_property
    def registration_lags(self) -> list[float]:
        """Working minutes from each contact's first touch in the period to its first registration."""
        flow = self.flow
        if self.lag is not None:
            return self.lag.lags(flow.first_at, flow.registered_at, flow.registered)
        calendar = self._rules().calendar
        return [
            calendar.working_minutes_between(parse_iso(first), parse_iso(at))
            for cid in flow.registered
            if (at := flow.registered_at[cid]) >= (first := flow.first_at[cid])
        ]

    @cached_property
    def _ordered_lags(self) -> list[float]:
        return sorted(self.registration_lags)

    @property
    def registration_lag_p50(self) -> float | None:
        return percentile(self._ordered_lags, 0.5)

    @property
    def registration_lag_p90(self) -> float | None:
        return percentile(self._ordered_lags, 0.9)

    @property
    def registered_within_sla(self) -> int:
        return bisect_right(self._ordered_lags, self._rules().registration_minutes)

    # missed calls

    @property
    def missed_calls(self) -> int:
        return self.missed.total

    @property
    def missed_hidden_caller(self) -> int:
        return self.missed.hidden

    @cached_property
    def missed_not_called_back_rows(self) -> list[MissedRow]:
        return self.owed_rows()

    @property
    def missed_not_called_back(self) -> int:
        owed = self.missed.owed
        if owed is None:  # some call-backs need the working calendar to judge
            raise ValueError(_NO_RULES)
        return owed

    # leads

    @cached_property
    def _tally(self) -> Counter[str]:
        """Leads by temperature, by stage, and qualified and accepted ones, from their kinds."""
        tally: Counter[str] = Counter()
        for kind, n in self.leads_in.kinds.items():
            tally[f"temperature:{kind.temperature}"] += n
            tally[f"stage:{kind.stage}"] += n
            tally["qualified"] += n * kind.qualified
            tally["accepted"] += n * kind.accepted
        return tally

    @property
    def leads(self) -> int:
        return self.leads_in.kinds.total()

    @property
    def leads_by_temperature(self) -> dict[str, int]:
        return {t: self._tally[f"temperature:{t}"] for t in TEMPERATURES}

    @property
    def leads_by_stage(self) -> dict[str, int]:
        return {s: self._tally[f"stage:{s}"] for s in STAGES}

    @property
    def qualified(self) -> int:
        """Leads that marketing qualified at some point, wherever they are now."""
        return self._tally["qualified"]

    @property
    def accepted(self) -> int:
        return self._tally["accepted"]

    @property
    def won(self) -> int:
        return self._tally["stage:won"]

    @property
    def lost(self) -> int:
        return self._tally["stage:lost"]

    @property
    def revenue(self) -> float:
        return sum(w.won_amount or 0.0 for w in self.leads_in.won)

    @property
    def sales_acceptance_rate(self) -> float | None:
        return ratio(self.accepted, self.qualified)

    @property
    def lead_to_client_ratio(self) -> float | None:
        return ratio(self.won, self.leads)

    @property
    def sales_cycle_days(self) -> float | None:
        """Median days from the contact's first touch to the won deal."""
        days = [
            (parse_iso(w.closed_at) - parse_iso(w.first_touch_at)) / timedelta(days=1)
            for w in self.leads_in.won
            if w.closed_at and w.first_touch_at
        ]
        return percentile(days, 0.5)

    @property
    def not_a_lead(self) -> int:
        return self.refusals.total()

    @property
    def refusal_reasons(self) -> dict[str, dict[str, int]]:
        lost: Counter[str] = Counter()
        for kind, n in self.leads_in.kinds.items():
            if kind.stage == "lost":
                lost[kind.lost_reason or "other"] += n
        return {
            "not_a_lead": dict(sorted(self.refusals.items())),
            "lost": dict(sorted(lost.items())),
        }

    # money

    @property
    def cost(self) -> float | None:
        if not self.costs:
            return None
        return sum(c.total for c in self.costs)

    @property
    def cost_items(self) -> dict[str, float]:
        items: dict[str, float] = defaultdict(float)
        for c in self.costs or ():
            for item, amount in c.items.items():
                items[item] += amount
        return dict(sorted(items.items()))

    def _per(self, count: float) -> float | None:
        cost = self.cost
        return None if cost is None else ratio(cost, count)

    @property
    def lead_cost(self) -> float | None:
        return self._per(self.leads)

    @property
    def cost_per_inbound_contact(self) -> float | None:
        return self._per(self.inbound_contacts)

    @property
    def cost_per_client(self) -> float | None:
        return self._per(self.won)

    @property
    def program_cost_share(self) -> float | None:
        return self._per(self.revenue)

    def figures(self) -> dict[str, Any]:
        """Every figure under its stable JSON key, rounded for reading."""
        return {
            "inbound_touches": self.inbound_touches,
            "inbound_contacts": self.inbound_contacts,
            "hidden_caller_touches": self.hidden_caller_touches,
            "blocked_touches": self.blocked_touches,
            "new_contacts": self.new_contacts,
            "registered": self.registered,
            "registered_new": self.registered_new,
            "unregistered": self.inbound_contacts - self.registered,
            "lrr": _round(self.lrr, 4),
            "lrr_new": _round(self.lrr_new, 4),
            "registration_lag_p50_min": _round(self.registration_lag_p50, 1),
            "registration_lag_p90_min": _round(self.registration_lag_p90, 1),
            "registration_lag_count": len(self.registration_lags),
            "registered_within_sla": self.registered_within_sla,
            "missed_calls": self.missed_calls,
            "missed_not_called_back": self.missed_not_called_back,
            "missed_hidden_caller": self.missed_hidden_caller,
            "leads": self.leads,
            "leads_by_temperature": self.leads_by_temperature,
            "leads_by_stage": self.leads_by_stage,
            "qualified": self.qualified,
            "accepted": self.accepted,
            "won": self.won,
            "lost": self.lost,
            "sales_acceptance_rate": _round(self.sales_acceptance_rate, 4),
            "lead_to_client_ratio": _round(self.lead_to_client_ratio, 4),
            "revenue": _round(self.revenue, 2),
            "sales_cycle_days": _round(self.sales_cycle_days, 1),
            "not_a_lead": self.not_a_lead,
            "refusal_reasons": self.refusal_reasons,
            "cost": _round(self.cost, 2),
            "cost_items": {k: round(v, 2) for k, v in self.cost_items.items()},
            "lead_cost": _round(self.lead_cost, 2),
            "cost_per_inbound_contact": _round(self.cost_per_inbound_contact, 2),
            "cost_per_client": _round(self.cost_per_client, 2),
            "program_cost_share": _round(self.program_cost_share, 4),
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


_NO_RULES = "this figure is measured in working time: pass the Rules from the config"


def _require(rules: Rules | None) -> Rules:
    if rules is None:
        raise ValueError(_NO_RULES)
    return rules


#: Where each grouping's value sits in a :data:`RawKey` (the total reads none).
_POSITION: dict[GroupBy, int] = {"total": 0, "channel": 0, "campaign": 1, "staff": 2}


class Facts:
    """A report's facts, loaded once on first use and cut into groups."""

    def __init__(self, db: Database, scope: Scope, rules: Rules | None = None) -> None:
        self.db, self.scope, self.rules = db, scope, rules

    def load(self) -> Facts:
        """Read every fact now: the missed calls, leads and refusals on a second connection.

        SQLite searches and sorts without holding Python's lock, and those queries return a few
        rows, so they cost this thread next to nothing while it goes through the period's inbound
        touches. That needs a database file, and no transaction open here whose changes a second
        connection would not see; otherwise everything is read here, one after the other.
        """
        other = _second_connection(self.db)
        if other is None:
            self.inbound, self.missed, self.leads, self.refusals  # noqa: B018
            return self

        def aside() -> tuple[dict[RawKey, MissedCounts], LeadFacts, dict[RawKey, Counter[str]]]:
            return (
                load_missed_counts(other, self.scope, self.rules),
                load_leads(other, self.scope),
                load_refusals(other, self.scope),
            )

        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadline-report") as pool:
                beside = pool.submit(aside)
                self.inbound  # noqa: B018
                self.missed, self.leads, self.refusals = beside.result()
        finally:
            other.close()
        return self

    @cached_property
    def inbound(self) -> Inbound:
        return load_inbound(self.db, self.scope)

    @cached_property
    def missed(self) -> dict[RawKey, MissedCounts]:
        return load_missed_counts(self.db, self.scope, self.rules)

    @cached_property
    def leads(self) -> LeadFacts:
        return load_leads(self.db, self.scope)

    @cached_property
    def refusals(self) -> dict[RawKey, Counter[str]]:
        return load_refusals(self.db, self.scope)

    @cached_property
    def costs(self) -> dict[str, CampaignCost]:
        return costs_in_period(
            self.db, self.scope.period.start, self.scope.period.end, campaign=self.scope.filters.campaign
        )

    @cached_property
    def staff_names(self) -> dict[int, str]:
        return staff_names(self.db)

    @cached_property
    def lag(self) -> LagClock | None:
        """One working clock for the lags of every group."""
        if self.rules is None:
            return None
        # Lags run from a first touch in the period to a registration no later than the report
        # time, so the clock spans the period up to the report time (at most ten years of it;
        # older moments ask the calendar).
        today = self.scope.as_of.astimezone(self.rules.calendar.tz).date()
        last = min(self.scope.period.end, today) + timedelta(days=1)
        first = max(self.scope.period.start, today - timedelta(days=3660)) - timedelta(days=1)
        return LagClock(WorkingClock(self.rules.calendar, first, max(first, last)))

    @cached_property
    def missed_rows(self) -> list[MissedRow]:
        return load_missed_rows(self.db, self.scope)

    def total(self) -> Group:
        return self.groups("total")[TOTAL]

    def groups(self, by: GroupBy) -> dict[str, Group]:
        name = self._namer(by)
        at = _POSITION[by]
        inbound = self.inbound
        flows: dict[str, Flow] = defaultdict(Flow)
        for (channel, campaign, staff_id, blocked), (n, hidden) in inbound.counts.items():
            flow = flows[name((channel, campaign, staff_id)[at])]
            if blocked:
                flow.blocked += n
            else:
                flow.touches += n
                flow.hidden += hidden
        firsts: dict[str, list[dict[int, str]]] = defaultdict(list)
        for value, found in inbound.firsts[by].items():
            firsts[name(value)].append(found)
        for group, parts in firsts.items():
            flow = flows[group]
            flow.first_at = _earliest(parts)
            members = flow.first_at.keys()
            flow.registered_at = inbound.registered_at
            flow.new = members & inbound.new
            flow.registered = members & inbound.registered_at.keys()
            flow.registered_new = len(flow.new & flow.registered)
        missed: dict[str, MissedCounts] = defaultdict(MissedCounts)
        for key, counts in self.missed.items():
            missed[name(key[at])].add(counts)
        leads: dict[str, Leads] = defaultdict(Leads)
        for key, kinds in self.leads.kinds.items():
            leads[name(key[at])].kinds.update(kinds)
        for key, won in self.leads.won:
            leads[name(key[at])].won.append(won)
        refusals: dict[str, Counter[str]] = defaultdict(Counter)
        for key, reasons in self.refusals.items():
            refusals[name(key[at])].update(reasons)
        filters = self.scope.filters
        costs: dict[str, list[CampaignCost]] = {}
        if filters.channel is None and filters.staff_id is None:
            if by == "total":
                costs[TOTAL] = list(self.costs.values())
            elif by == "campaign":
                costs = {campaign: [cost] for campaign, cost in self.costs.items()}
        names = flows.keys() | missed.keys() | leads.keys() | refusals.keys() | costs.keys()
        if by == "total":
            names.add(TOTAL)
        groups = {
            group: Group(
                self.rules,
                flow=flows.get(group) or Flow(),
                missed=missed.get(group) or MissedCounts(),
                leads_in=leads.get(group) or Leads(),
                refusals=refusals.get(group) or Counter(),
                costs=costs.get(group),
                lag=self.lag,
                owed_rows=partial(self._owed_rows, by, group),
            )
            for group in names
        }
        return dict(sorted(groups.items()))

    def _owed_rows(self, by: GroupBy, group: str) -> list[MissedRow]:
        """The group's missed calls not called back in time, one by one."""
        name, at = self._namer(by), _POSITION[by]
        owed = []
        for row in self.missed_rows:
            if row.hidden or name((row.channel, row.campaign, row.staff_id)[at]) != group:
                continue
            if row.called_back_at is None or not called_back_in_time(
                _require(self.rules), row.occurred_at, row.called_back_at
            ):
                owed.append(row)
        return owed

    def _namer(self, by: GroupBy) -> Callable[[Any], str]:
        """The name of the group that a stored channel, campaign or staff_id falls in."""
        if by == "total":
            return lambda value: TOTAL
        if by in ("channel", "campaign"):
            return lambda value: value or NONE_KEY
        names = self.staff_names
        return lambda value: names.get(value, NONE_KEY) if value is not None else NONE_KEY


def _second_connection(db: Database) -> Database | None:
    """Another read-only connection to ``db``'s file, when it would read what ``db`` reads."""
    if db.conn.in_transaction:
        return None
    path = next((file for _, name, file in db.execute("PRAGMA database_list") if name == "main"), "")
    if not path:  # in memory, or a temporary database
        return None
    try:
        return connect(path, readonly=True)
    except sqlite3.Error:
        return None


def _earliest(parts: list[dict[int, str]]) -> dict[int, str]:
    """Each contact's earliest first touch over several stored values that make one group."""
    if len(parts) == 1:
        return parts[0]
    merged = dict(parts[0])
    for part in parts[1:]:
        for cid, first_at in part.items():
            known = merged.get(cid)
            if known is None or first_at < known:
                merged[cid] = first_at
    return merged


# -- the digest's list ---------------------------------------------------------------------------


def unregistered_contacts(db: Database, scope: Scope, limit: int = 20) -> list[dict[str, Any]]:
    """Inbound contacts of the period nobody registered yet, oldest first (for the digest's buttons)."""
    group = Facts(db, scope).total()
    waiting = sorted((c.first_at, cid) for cid, c in group.contacts.items() if c.registered_at is None)
    out = []
    for first_at, cid in waiting[:limit]:
        row = db.execute(
            "SELECT c.name, (SELECT value FROM identifiers i WHERE i.contact_id = c.id ORDER BY i.kind DESC, i.id"
            " LIMIT 1) FROM contacts c WHERE c.id = ?",
            [cid],
        ).fetchone()
        out.append(
            {
                "contact_id": cid,
                "first_at": first_at,
                "name": row[0] if row else None,
                "identifier": row[1] if row else None,
            }
        )
    return out


# -- goals ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GoalProgress:
    target: float
    actual: float
    projected: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "actual": _round(self.actual, 2),
            "projected": _round(self.projected, 1),
            "share": _round(ratio(self.actual, self.target), 4),
        }


def goal_progress(db: Database, month: date, rules: Rules, as_of: datetime) -> dict[str, GoalProgress]:
    """This month's goals against what happened in it so far, and where it is heading.

    The projection scales what happened by working days, since that is when leads come in:
    ``actual × working days in the month / working days elapsed`` (today counting as elapsed).
    """
    if not rules.goals:
        return {}
    period = Period.month(month, rules.calendar.tz)
    start, end = period.bounds()
    until = min(end, iso(as_of))
    leads_made = db.execute(
        "SELECT COUNT(*) FROM leads WHERE created_at >= ? AND created_at < ?", [start, until]
    ).fetchone()[0]
    qualified = db.execute(
        "SELECT COUNT(*) FROM leads WHERE qualified_at >= ? AND qualified_at < ?", [start, until]
    ).fetchone()[0]
    clients, revenue = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(won_amount), 0) FROM leads WHERE stage = 'won'"
        " AND closed_at >= ? AND closed_at < ?",
        [start, until],
    ).fetchone()
    actual = {"leads": leads_made, "qualified": qualified, "clients": clients, "revenue": revenue}
    today = as_of.astimezone(rules.calendar.tz).date()
    working = [d for d in _days(period.start, period.end) if rules.calendar.is_working_day(d)]
    elapsed = sum(1 for d in working if d <= today)
    progress = {}
    for name, target in rules.goals.items():
        done = float(actual[name])
        projected = done * len(working) / elapsed if elapsed else None
        progress[name] = GoalProgress(target, done, projected)
    return progress


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


# -- the whole report ----------------------------------------------------------------------------


def build_report(db: Database, scope: Scope, rules: Rules) -> dict[str, Any]:
    """Every figure of the period under stable JSON keys, in total and per channel, campaign and staff."""
    facts = Facts(db, scope, rules).load()
    report: dict[str, Any] = {
        "period": {
            "from": scope.period.start.isoformat(),
            "to": scope.period.end.isoformat(),
            "label": scope.period.label,
            "timezone": str(scope.period.tz),
        },
        "as_of": iso(scope.as_of),
        "filters": scope.filters.as_dict(),
        "sla": {
            "registration_minutes": rules.registration_minutes,
            "callback_minutes": rules.callback_minutes,
        },
    }
    report.update(facts.total().figures())
    goals = goal_progress(db, scope.period.end, rules, scope.as_of)
    report["goals"] = {name: g.as_dict() for name, g in goals.items()}
    for by in GROUPINGS:
        report[f"by_{by}"] = {name: group.figures() for name, group in facts.groups(by).items()}
    return report


# -- the plan's defaults -------------------------------------------------------------------------


def funnel_history(db: Database, today: date, tz: ZoneInfo, days: int = 90) -> plan.FunnelHistory:
    """What the last ``days`` days (before today) did, for the plan's default rates and deal."""
    period = Period(today - timedelta(days=days), today - timedelta(days=1), tz)
    group = Facts(db, Scope(period, as_of=period.ends_at())).total()
    return plan.FunnelHistory(
        label=period.label,
        contacts=group.inbound_contacts,
        leads=group.leads,
        qualified=group.qualified,
        won=group.won,
        revenue=group.revenue,
    )
