"""The numbers of DESIGN.md ("The numbers"), per period and per channel, campaign and staff member.

A report reads four kinds of facts for its period in a handful of queries (inbound touches folded
per contact, missed calls, the period's leads, its not-a-lead registrations) plus the costs, and
every figure is a plain function of those facts. The same functions give the total and each group,
so a group's figures are exactly what the report filtered to that group would say.

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
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from storage import plan
from storage.costs import CampaignCost, costs_in_period
from storage.db import iso, now_utc, parse_iso
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
        total = 0.0
        for offset in range(self.days):
            day = first + timedelta(days=offset)
            start = end = None
            if calendar.is_working_day(day):
                start = datetime.combine(day, calendar.start, tzinfo=calendar.tz).astimezone(UTC)
                end = datetime.combine(day, calendar.end, tzinfo=calendar.tz).astimezone(UTC)
            length = (end - start) / _MINUTE if start is not None and end is not None and end > start else 0.0
            self.starts.append(start if length else None)
            self.lengths.append(length)
            self.before.append(total)
            total += length

    def _at(self, moment: datetime) -> float | None:
        index = (moment.astimezone(self.calendar.tz).date() - self.first).days
        if not 0 <= index < self.days:
            return None
        start = self.starts[index]
        inside = 0.0 if start is None else min(max((moment - start) / _MINUTE, 0.0), self.lengths[index])
        return self.before[index] + inside

    def between(self, start: datetime, end: datetime) -> float:
        """Working minutes in [start, end), as :meth:`WorkingCalendar.working_minutes_between`."""
        a, b = self._at(start), self._at(end)
        if a is None or b is None:
            return self.calendar.working_minutes_between(start, end)
        return max(b - a, 0.0)


_MINUTE = timedelta(minutes=1)


# -- facts ---------------------------------------------------------------------------------------


class ContactRow(NamedTuple):
    """Inbound touches of one contact with one (channel, campaign, staff) in the period."""

    contact_id: int | None
    channel: str
    campaign: str | None
    staff_id: int | None
    blocked: bool
    touches: int
    hidden: int
    first_at: str
    registered_at: str | None
    seen_before: bool


class MissedRow(NamedTuple):
    touch_id: int
    contact_id: int | None
    channel: str
    campaign: str | None
    staff_id: int | None
    occurred_at: str
    called_back_at: str | None
    hidden: bool


class LeadRow(NamedTuple):
    lead_id: int
    contact_id: int
    temperature: str
    stage: str
    campaign: str | None
    staff_id: int | None
    channel: str | None
    created_at: str
    qualified_at: str | None
    accepted_at: str | None
    closed_at: str | None
    won_amount: float | None
    lost_reason: str | None
    first_touch_at: str | None


class RefusalRow(NamedTuple):
    """A not-a-lead registration made in the period."""

    registration_id: int
    reason: str
    campaign: str | None
    staff_id: int | None
    channel: str | None


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


def load_contact_rows(db: Database, scope: Scope) -> list[ContactRow]:
    """The period's inbound touches folded per contact and (channel, campaign, staff).

    Each contact's first registration and whether it was seen before the period come after, in
    one query of index look-ups over its ids (as correlated subqueries of the GROUP BY they would
    be run once per folded row, several times per contact).
    """
    start, end = scope.period.bounds()
    where, params = _touch_filters(scope.filters)
    folded: dict[tuple[Any, ...], list[Any]] = {
        (cid, channel, campaign, staff_id, blocked): [n, hidden, first_at]
        for cid, channel, campaign, staff_id, blocked, n, hidden, first_at in db.execute(
            "SELECT contact_id, channel, campaign, staff_id, blocked, COUNT(*), SUM(hidden_caller), MIN(occurred_at)"
            f" FROM touches WHERE occurred_at >= ? AND occurred_at < ? AND direction = 'in' AND dropped IS NULL{where}"
            " GROUP BY contact_id, channel, campaign, staff_id, blocked",
            [start, end, *params],
        )
    }
    ids = sorted({key[0] for key in folded if key[0] is not None and not key[4]})
    known: dict[int, tuple[str | None, bool]] = {}
    for contact_id, registered_at, seen_before in db.execute(
        "SELECT c.value, (SELECT MIN(r.created_at) FROM registrations r WHERE r.contact_id = c.value"
        " AND r.created_at <= ?), EXISTS (SELECT 1 FROM touches o WHERE o.contact_id = c.value"
        " AND o.occurred_at < ?) FROM json_each(?) AS c",
        [iso(scope.as_of), start, json.dumps(ids)],
    ):
        known[int(contact_id)] = (registered_at, bool(seen_before))
    out = []
    for (contact_id, channel, campaign, staff_id, blocked), (n, hidden, first_at) in folded.items():
        registered_at, seen_before = known.get(contact_id, (None, False))
        out.append(
            ContactRow(
                contact_id,
                channel,
                campaign,
                staff_id,
                bool(blocked),
                n,
                int(hidden or 0),
                first_at,
                registered_at,
                seen_before,
            )
        )
    return out


def load_missed_rows(db: Database, scope: Scope) -> list[MissedRow]:
    start, end = scope.period.bounds()
    where, params = _touch_filters(scope.filters)
    rows = db.execute(
        "SELECT id, contact_id, channel, campaign, staff_id, occurred_at, called_back_at, hidden_caller"
        " FROM touches WHERE occurred_at >= ? AND occurred_at < ? AND channel = 'call' AND direction = 'in'"
        f" AND dropped IS NULL AND blocked = 0 AND answered = 0{where}",
        [start, end, *params],
    ).fetchall()
    return [MissedRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7])) for r in rows]


_FIRST_CHANNEL = "(SELECT t.channel FROM touches t WHERE t.contact_id = {0}.contact_id ORDER BY t.occurred_at, t.id LIMIT 1)"


def load_lead_rows(db: Database, scope: Scope) -> list[LeadRow]:
    """The leads created in the period (up to the report time), at their current stage."""
    start, end = scope.period.bounds()
    # The contact's first touch is read once as "<stored time> <channel>" (stored times are 32
    # characters), rather than by two look-ups.
    sql = (
        "SELECT * FROM (SELECT id, contact_id, temperature, stage, campaign, staff_id, substr(first, 34) AS channel,"
        " created_at, qualified_at, accepted_at, closed_at, won_amount, lost_reason, substr(first, 1, 32) FROM"
        " (SELECT l.id, l.contact_id, l.temperature, l.stage, l.campaign, l.owner_id AS staff_id, l.created_at,"
        " l.qualified_at, l.accepted_at, l.closed_at, l.won_amount, l.lost_reason,"
        " (SELECT t.occurred_at || ' ' || t.channel FROM touches t WHERE t.contact_id = l.contact_id"
        " ORDER BY t.occurred_at, t.id LIMIT 1) AS first"
        " FROM leads l WHERE l.created_at >= ? AND l.created_at < ? AND l.created_at <= ?)) AS x WHERE 1 = 1"
    )
    where, params = _touch_filters(scope.filters)
    rows = db.execute(sql + where, [start, end, iso(scope.as_of), *params]).fetchall()
    return [LeadRow(*r) for r in rows]


def load_refusal_rows(db: Database, scope: Scope) -> list[RefusalRow]:
    start, end = scope.period.bounds()
    sql = (
        "SELECT * FROM (SELECT r.id, r.reason, r.campaign, r.staff_id,"
        f" {_FIRST_CHANNEL.format('r')} AS channel"
        " FROM registrations r WHERE r.disposition = 'not_a_lead' AND r.created_at >= ? AND r.created_at < ?"
        " AND r.created_at <= ?) AS x WHERE 1 = 1"
    )
    where, params = _touch_filters(scope.filters)
    rows = db.execute(sql + where, [start, end, iso(scope.as_of), *params]).fetchall()
    return [RefusalRow(*r) for r in rows]


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
class _Flow:
    touches: int = 0
    hidden: int = 0
    blocked: int = 0
    first_at: dict[int, str] = field(default_factory=dict)
    registered_at: dict[int, str | None] = field(default_factory=dict)
    new: set[int] = field(default_factory=set)
    registered: int = 0
    registered_new: int = 0


@dataclass
class Group:
    """The facts of one group (or of the total); every figure is a property of them."""

    #: The working calendar and SLAs; only the lag and missed-call figures need them.
    rules: Rules | None = None
    contact_rows: list[ContactRow] = field(default_factory=list)
    missed_rows: list[MissedRow] = field(default_factory=list)
    lead_rows: list[LeadRow] = field(default_factory=list)
    refusal_rows: list[RefusalRow] = field(default_factory=list)
    #: None: costs cannot be attributed to this group (a channel, a staff member).
    costs: list[CampaignCost] | None = None
    #: Working minutes between two stored times, shared by a report's groups (see :class:`Facts`).
    lag: Callable[[str, str], float] | None = None
    #: Missed calls owed a call back, when the report has decided them already.
    owed_ids: frozenset[int] | None = None

    def _rules(self) -> Rules:
        if self.rules is None:
            raise ValueError("this figure is measured in working time: pass the Rules from the config")
        return self.rules

    # inbound flow

    @cached_property
    def _flow(self) -> _Flow:
        """One pass over the contact rows: a year's report has a million of them per grouping."""
        flow = _Flow()
        first = flow.first_at
        for r in self.contact_rows:
            if r.blocked:
                flow.blocked += r.touches
                continue
            flow.touches += r.touches
            flow.hidden += r.hidden
            cid = r.contact_id
            if cid is None:
                continue
            known = first.get(cid)
            if known is None:
                first[cid] = r.first_at
                flow.registered_at[cid] = r.registered_at
                if not r.seen_before:
                    flow.new.add(cid)
            elif r.first_at < known:
                first[cid] = r.first_at
        registered = flow.registered_at
        flow.registered = sum(1 for at in registered.values() if at is not None)
        flow.registered_new = sum(1 for cid in flow.new if registered[cid] is not None)
        return flow

    @property
    def inbound_touches(self) -> int:
        return self._flow.touches

    @property
    def hidden_caller_touches(self) -> int:
        return self._flow.hidden

    @property
    def blocked_touches(self) -> int:
        return self._flow.blocked

    @property
    def contacts(self) -> dict[int, ContactFacts]:
        """Each inbound contact: its first touch in the period, first registration, and newness."""
        flow = self._flow
        return {
            cid: ContactFacts(at, flow.registered_at[cid], cid in flow.new)
            for cid, at in flow.first_at.items()
        }

    @property
    def inbound_contacts(self) -> int:
        return len(self._flow.first_at)

    @property
    def new_contacts(self) -> int:
        return len(self._flow.new)

    @property
    def registered(self) -> int:
        return self._flow.registered

    @property
    def registered_new(self) -> int:
        return self._flow.registered_new

    @property
    def lrr(self) -> float | None:
        return ratio(self.registered, self.inbound_contacts)

    @property
    def lrr_new(self) -> float | None:
        return ratio(self.registered_new, self.new_contacts)

    @cached_property
    def registration_lags(self) -> list[float]:
        """Working minutes from each contact's first touch in the period to its first registration."""
        lag = self._lag()
        registered = self._flow.registered_at
        return [
            lag(first_at, at)
            for cid, first_at in self._flow.first_at.items()
            if (at := registered[cid]) is not None and at >= first_at
        ]

    def _lag(self) -> Callable[[str, str], float]:
        if self.lag is not None:
            return self.lag
        calendar = self._rules().calendar
        return lambda a, b: calendar.working_minutes_between(parse_iso(a), parse_iso(b))

    @property
    def registration_lag_p50(self) -> float | None:
        return percentile(self.registration_lags, 0.5)

    @property
    def registration_lag_p90(self) -> float | None:
        return percentile(self.registration_lags, 0.9)

    @property
    def registered_within_sla(self) -> int:
        return sum(1 for lag in self.registration_lags if lag <= self._rules().registration_minutes)

    # missed calls

    @property
    def missed_calls(self) -> int:
        return len(self.missed_rows)

    @property
    def missed_hidden_caller(self) -> int:
        return sum(1 for r in self.missed_rows if r.hidden)

    @cached_property
    def missed_not_called_back_rows(self) -> list[MissedRow]:
        if self.owed_ids is not None:
            return [r for r in self.missed_rows if r.touch_id in self.owed_ids]
        return [r for r in self.missed_rows if not r.hidden and not self._called_back_in_time(r)]

    @property
    def missed_not_called_back(self) -> int:
        return len(self.missed_not_called_back_rows)

    def _called_back_in_time(self, row: MissedRow) -> bool:
        if row.called_back_at is None:
            return False
        missed_at, back_at = parse_iso(row.occurred_at), parse_iso(row.called_back_at)
        # A working-minute deadline is never earlier than the same minutes of real time.
        rules = self._rules()
        if back_at <= missed_at + timedelta(minutes=rules.callback_minutes):
            return True
        return back_at <= rules.callback_deadline(missed_at)

    # leads

    @property
    def leads(self) -> int:
        return len(self.lead_rows)

    @property
    def leads_by_temperature(self) -> dict[str, int]:
        counts = Counter(r.temperature for r in self.lead_rows)
        return {t: counts.get(t, 0) for t in TEMPERATURES}

    @property
    def leads_by_stage(self) -> dict[str, int]:
        counts = Counter(r.stage for r in self.lead_rows)
        return {s: counts.get(s, 0) for s in STAGES}

    @property
    def qualified(self) -> int:
        """Leads that marketing qualified at some point, wherever they are now."""
        return sum(1 for r in self.lead_rows if r.qualified_at is not None)

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.lead_rows if r.accepted_at is not None)

    @property
    def won(self) -> int:
        return sum(1 for r in self.lead_rows if r.stage == "won")

    @property
    def lost(self) -> int:
        return sum(1 for r in self.lead_rows if r.stage == "lost")

    @property
    def revenue(self) -> float:
        return sum(r.won_amount or 0.0 for r in self.lead_rows if r.stage == "won")

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
            (parse_iso(r.closed_at) - parse_iso(r.first_touch_at)) / timedelta(days=1)
            for r in self.lead_rows
            if r.stage == "won" and r.closed_at and r.first_touch_at
        ]
        return percentile(days, 0.5)

    @property
    def not_a_lead(self) -> int:
        return len(self.refusal_rows)

    @property
    def refusal_reasons(self) -> dict[str, dict[str, int]]:
        return {
            "not_a_lead": dict(sorted(Counter(r.reason for r in self.refusal_rows).items())),
            "lost": dict(
                sorted(Counter(r.lost_reason or "other" for r in self.lead_rows if r.stage == "lost").items())
            ),
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


class Facts:
    """A report's facts, loaded once on first use and cut into groups."""

    def __init__(self, db: Database, scope: Scope, rules: Rules | None = None) -> None:
        self.db, self.scope, self.rules = db, scope, rules

    @cached_property
    def contact_rows(self) -> list[ContactRow]:
        return load_contact_rows(self.db, self.scope)

    @cached_property
    def missed_rows(self) -> list[MissedRow]:
        return load_missed_rows(self.db, self.scope)

    @cached_property
    def lead_rows(self) -> list[LeadRow]:
        return load_lead_rows(self.db, self.scope)

    @cached_property
    def refusal_rows(self) -> list[RefusalRow]:
        return load_refusal_rows(self.db, self.scope)

    @cached_property
    def costs(self) -> dict[str, CampaignCost]:
        return costs_in_period(
            self.db, self.scope.period.start, self.scope.period.end, campaign=self.scope.filters.campaign
        )

    @cached_property
    def staff_names(self) -> dict[int, str]:
        return staff_names(self.db)

    @cached_property
    def lag(self) -> Callable[[str, str], float] | None:
        """One lag per (first touch, registration), whichever groups ask for it."""
        if self.rules is None:
            return None
        # Lags run from a first touch in the period to a registration no later than the report
        # time, so the clock spans the period up to the report time (at most ten years of it;
        # older moments ask the calendar).
        today = self.scope.as_of.astimezone(self.rules.calendar.tz).date()
        last = min(self.scope.period.end, today) + timedelta(days=1)
        first = max(self.scope.period.start, today - timedelta(days=3660)) - timedelta(days=1)
        clock = WorkingClock(self.rules.calendar, first, max(first, last))
        cache: dict[tuple[str, str], float] = {}

        def lag(first_at: str, registered_at: str) -> float:
            key = (first_at, registered_at)
            found = cache.get(key)
            if found is None:
                found = cache[key] = clock.between(parse_iso(first_at), parse_iso(registered_at))
            return found

        return lag

    def total(self) -> Group:
        return self.groups("total")[TOTAL]

    def groups(self, by: GroupBy) -> dict[str, Group]:
        kinds = ("contact_rows", "missed_rows", "lead_rows", "refusal_rows")
        buckets: dict[str, list[list[Any]]] = {}
        if by == "total":
            buckets[TOTAL] = [list(getattr(self, kind)) for kind in kinds]
        else:
            key = self._key(by)
            for i, kind in enumerate(kinds):
                for row in getattr(self, kind):
                    name = key(row)
                    bucket = buckets.get(name)
                    if bucket is None:
                        bucket = buckets[name] = [[], [], [], []]
                    bucket[i].append(row)
        filters = self.scope.filters
        costs: dict[str, list[CampaignCost]] = {}
        if filters.channel is None and filters.staff_id is None:
            if by == "total":
                costs[TOTAL] = list(self.costs.values())
            elif by == "campaign":
                costs = {name: [cost] for name, cost in self.costs.items()}
        empty: list[list[Any]] = [[], [], [], []]
        groups = {
            name: Group(
                self.rules,
                contact_rows=(bucket := buckets.get(name, empty))[0],
                missed_rows=bucket[1],
                lead_rows=bucket[2],
                refusal_rows=bucket[3],
                costs=costs.get(name),
                lag=self.lag,
                owed_ids=self.owed_ids,
            )
            for name in buckets.keys() | costs.keys()
        }
        return dict(sorted(groups.items()))

    @cached_property
    def owed_ids(self) -> frozenset[int] | None:
        """The missed calls not called back in time, decided once for every grouping."""
        if self.rules is None:
            return None
        return frozenset(
            r.touch_id for r in Group(self.rules, missed_rows=self.missed_rows).missed_not_called_back_rows
        )

    def _key(self, by: GroupBy) -> Callable[[Any], str]:
        if by == "total":
            return lambda row: TOTAL
        if by == "channel":
            return lambda row: row.channel or NONE_KEY
        if by == "campaign":
            return lambda row: row.campaign or NONE_KEY
        names = self.staff_names
        return lambda row: names.get(row.staff_id, NONE_KEY) if row.staff_id is not None else NONE_KEY


# -- one function per number ---------------------------------------------------------------------


def _total(db: Database, scope: Scope, rules: Rules | None = None) -> Group:
    return Facts(db, scope, rules).total()


def inbound_touches(db: Database, scope: Scope) -> int:
    return _total(db, scope).inbound_touches


def inbound_contacts(db: Database, scope: Scope) -> int:
    return _total(db, scope).inbound_contacts


def hidden_caller_touches(db: Database, scope: Scope) -> int:
    return _total(db, scope).hidden_caller_touches


def new_contacts(db: Database, scope: Scope) -> int:
    return _total(db, scope).new_contacts


def registered(db: Database, scope: Scope) -> int:
    return _total(db, scope).registered


def lrr(db: Database, scope: Scope) -> float | None:
    return _total(db, scope).lrr


def lrr_new(db: Database, scope: Scope) -> float | None:
    return _total(db, scope).lrr_new


@dataclass(frozen=True, slots=True)
class Lag:
    p50: float | None
    p90: float | None
    count: int
    within_sla: int
    sla_minutes: int


def registration_lag(db: Database, scope: Scope, rules: Rules) -> Lag:
    group = _total(db, scope, rules)
    return Lag(
        group.registration_lag_p50,
        group.registration_lag_p90,
        len(group.registration_lags),
        group.registered_within_sla,
        rules.registration_minutes,
    )


@dataclass(frozen=True, slots=True)
class Missed:
    total: int
    not_called_back: int
    hidden_caller: int


def missed_calls(db: Database, scope: Scope, rules: Rules) -> Missed:
    group = _total(db, scope, rules)
    return Missed(group.missed_calls, group.missed_not_called_back, group.missed_hidden_caller)


def missed_not_called_back(db: Database, scope: Scope, rules: Rules) -> list[MissedRow]:
    """The missed calls still owed a call back (for the digest's buttons)."""
    return _total(db, scope, rules).missed_not_called_back_rows


def leads(db: Database, scope: Scope) -> int:
    return _total(db, scope).leads


def leads_by_temperature(db: Database, scope: Scope) -> dict[str, int]:
    return _total(db, scope).leads_by_temperature


def leads_by_stage(db: Database, scope: Scope) -> dict[str, int]:
    return _total(db, scope).leads_by_stage


def sales_acceptance_rate(db: Database, scope: Scope) -> float | None:
    return _total(db, scope).sales_acceptance_rate


def refusal_reasons(db: Database, scope: Scope) -> dict[str, dict[str, int]]:
    return _total(db, scope).refusal_reasons


def refusal_reasons_by_campaign(db: Database, scope: Scope) -> dict[str, dict[str, dict[str, int]]]:
    return {name: g.refusal_reasons for name, g in Facts(db, scope).groups("campaign").items()}


def lead_cost(db: Database, scope: Scope) -> float | None:
    return _total(db, scope).lead_cost


def lead_cost_by_campaign(db: Database, scope: Scope) -> dict[str, float | None]:
    groups = Facts(db, scope).groups("campaign")
    return {name: g.lead_cost for name, g in groups.items() if name != NONE_KEY}


def cost(db: Database, scope: Scope) -> float | None:
    return _total(db, scope).cost


def cost_per_inbound_contact(db: Database, scope: Scope) -> float | None:
    return _total(db, scope).cost_per_inbound_contact


def cost_per_client(db: Database, scope: Scope) -> float | None:
    return _total(db, scope).cost_per_client


def lead_to_client_ratio(db: Database, scope: Scope) -> float | None:
    return _total(db, scope).lead_to_client_ratio


def sales_cycle_days(db: Database, scope: Scope) -> float | None:
    return _total(db, scope).sales_cycle_days


def program_cost_share(db: Database, scope: Scope) -> float | None:
    return _total(db, scope).program_cost_share


def unregistered_contacts(db: Database, scope: Scope, limit: int = 20) -> list[dict[str, Any]]:
    """Inbound contacts of the period nobody registered yet, oldest first (for the digest's buttons)."""
    group = _total(db, scope)
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
    facts = Facts(db, scope, rules)
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
