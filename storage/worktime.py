"""Working time: the clock that SLAs, nudges and the registration-lag report run on.

A lead that calls on Friday evening has not been waiting "all weekend" for registration: nobody
was supposed to be there. So every SLA in Leadline is measured in *working minutes*: time inside
the configured working hours, on working days that are not public or extra holidays.

Everything here is computed from the calendar and its arguments alone (no clock, no I/O), so the
scheduler, the reports and the tests get the same answer for the same inputs.

Two rules keep the arithmetic honest:

* Working periods are defined in local wall time (``09:00-18:00`` means nine o'clock on the office
  clock, summer or winter), but durations are measured in real elapsed time (UTC), because a lead
  waits real minutes. Python's aware-datetime arithmetic within one ``ZoneInfo`` is wall-clock
  arithmetic and would be wrong across a DST change, so all sums are done in UTC.
* Every function walks day by day over whole working periods, never minute by minute: a sweep may
  ask for 10 000 deadlines, and a New Year run of holidays is skipped in a handful of steps.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import holidays

if TYPE_CHECKING:
    from leadline.config import WorkingTimeSection

__all__ = ["WorkingCalendar"]

_ONE_DAY = timedelta(days=1)
#: Consecutive days off after which we conclude the calendar has no working time at all, rather
#: than loop forever. Ten years is far beyond any real run of holidays.
_MAX_DAYS_OFF = 3660


class _Holidays:
    """The ``holidays`` country object plus what we derive from it, one year at a time.

    The package computes a whole year on first touch and mutates itself while doing so, and the
    scheduler and the HTTP handlers may ask from different threads; hence the lock. The per-year
    results are frozen sets, so lookups after the first are plain set membership.
    """

    def __init__(self, code: str) -> None:
        self.code = code
        self._lock = threading.Lock()
        self._years: dict[int, tuple[frozenset[date], frozenset[date]]] = {}
        self._country: holidays.HolidayBase | None = None
        if not code:
            return
        country, _, subdiv = code.partition("-")
        # The country's calendar is built on the first question: the package then imports all of
        # its ~250 countries (~0.2 s, ~8 MB), which a process answering none yet need not wait for.
        # A code is still checked now, so a wrong one stops the start: the country against the
        # package's names, and a subdivision, which only its country knows, by building it.
        if not hasattr(holidays, country):
            raise self._unknown(f"Country {country} not available")
        if subdiv:
            self._country = self._build()

    def _build(self) -> holidays.HolidayBase:
        country, _, subdiv = self.code.partition("-")
        try:
            return holidays.country_holidays(country, subdiv=subdiv or None, years=())
        except NotImplementedError as exc:
            raise self._unknown(str(exc)) from None

    def _unknown(self, why: str) -> ValueError:
        # The package signals an unknown country or subdivision with NotImplementedError, which
        # reads like a bug in our code; users need to know it is their config.
        return ValueError(
            f"unknown holidays country {self.code!r}: use a code the 'holidays' package knows, "
            f"such as RU, DE or US (optionally with a subdivision, e.g. DE-BY), "
            f"or an empty string for no public holidays ({why})"
        )

    def year(self, year: int) -> tuple[frozenset[date], frozenset[date]]:
        """(days off, weekend days that are working days) for ``year``."""
        cached = self._years.get(year)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._years.get(year)
            if cached is not None:
                return cached
            result: tuple[frozenset[date], frozenset[date]] = (frozenset(), frozenset())
            if self.code and self._country is None:
                self._country = self._build()
            if self._country is not None:
                country = self._country
                # A transfer decree for one year can move a working day into its neighbour
                # (a Saturday in late December worked for a day off in January), and the package
                # records it only when it computes the year that holds the decree.
                for y in (year - 1, year, year + 1):
                    if 1 <= y <= 9999:
                        country.get(date(y, 1, 1))  # computes the whole year (expand=True)
                off = frozenset(d for d in country if d.year == year)
                workdays = frozenset(d for d in country.weekend_workdays if d.year == year)
                result = (off, workdays)
            self._years[year] = result
            return result


@dataclass(frozen=True)
class WorkingCalendar:
    """When a business works: weekdays, daily hours in its time zone, and the days it does not.

    Besides public holidays, the ``holidays`` package knows the weekend days that a government
    decree turns into working days (in Russia a Saturday is often worked in exchange for a Monday
    off next to a holiday). Those count as working days here whatever ``weekdays`` says, because a
    business on the standard five-day week does work them; ``extra_holidays`` still wins over them.
    """

    tz: ZoneInfo
    weekdays: frozenset[int]
    start: time
    end: time
    holidays_country: str = ""
    extra_holidays: frozenset[date] = frozenset()
    _holidays: _Holidays = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.weekdays:
            raise ValueError("working_time.days is empty: there would be no working time at all")
        if not set(self.weekdays) <= set(range(7)):
            raise ValueError(f"weekdays must be 0 (Monday) .. 6 (Sunday), got {sorted(self.weekdays)}")
        if self.end != time(0) and self.end <= self.start:
            raise ValueError("the end of working hours must come after the start")
        code = self.holidays_country.strip().upper()
        object.__setattr__(self, "holidays_country", code)
        object.__setattr__(self, "_holidays", _Holidays(code))

    @classmethod
    def from_config(cls, section: WorkingTimeSection, tz: ZoneInfo) -> WorkingCalendar:
        start, end = section.start_end
        return cls(
            tz=tz,
            weekdays=section.weekdays,
            start=start,
            end=end,
            holidays_country=section.holidays,
            extra_holidays=frozenset(section.extra_holidays),
        )

    # -- days ---------------------------------------------------------------------------------

    def is_working_day(self, d: date) -> bool:
        if d in self.extra_holidays:
            return False
        off, weekend_workdays = self._holidays.year(d.year)
        if d in off:
            return False
        return d.weekday() in self.weekdays or d in weekend_workdays

    def is_holiday(self, d: date) -> bool:
        """Whether ``d`` is a public or the config's own holiday: nobody is at work, shift or not."""
        return d in self.extra_holidays or d in self._holidays.year(d.year)[0]

    def _period(self, d: date) -> tuple[datetime, datetime] | None:
        """The working period of local day ``d`` as UTC instants, or None on a day off.

        ``combine`` with fold=0 maps a wall time that a DST jump skips to the instant it would
        have had before the jump (02:30 on spring-forward day becomes 03:30 summer time), and a
        repeated wall time to its first occurrence; both keep periods inside their own day.
        """
        if not self.is_working_day(d):
            return None
        start, end = self.hours_of(d)
        return (start, end) if end > start else None

    def hours_of(self, d: date) -> tuple[datetime, datetime]:
        """Local day ``d``'s working hours as UTC instants, whether or not it is a working day.

        An ``end`` of 00:00 is the midnight that ends the day (``00:00-24:00`` is round the clock).
        """
        start = datetime.combine(d, self.start, tzinfo=self.tz).astimezone(UTC)
        end_day = d + _ONE_DAY if self.end == time(0) else d
        return start, datetime.combine(end_day, self.end, tzinfo=self.tz).astimezone(UTC)

    def _periods_from(self, d: date, *, back: bool = False) -> Iterator[tuple[datetime, datetime]]:
        """Working periods of day ``d`` and every later day, in order; with ``back``, of ``d`` and
        every earlier day, latest first."""
        step, way = (-_ONE_DAY, "before") if back else (_ONE_DAY, "from")
        days_off = 0
        while True:
            period = self._period(d)
            if period is None:
                days_off += 1
                if days_off > _MAX_DAYS_OFF:
                    raise ValueError(f"no working time in the {_MAX_DAYS_OFF} days {way} {d}")
            else:
                days_off = 0
                yield period
            d += step

    def _utc(self, at: datetime) -> tuple[datetime, date]:
        """``at`` as a UTC instant, and the local day to start scanning from.

        Scanning starts a day early: in a zone whose clocks fall back across midnight a local
        date can repeat, and one extra day checked costs nothing.
        """
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"a timezone-aware datetime is needed, got naive {at.isoformat()}")
        return at.astimezone(UTC), at.astimezone(self.tz).date() - _ONE_DAY

    def _first_period_ending_after(self, t: datetime, first_day: date) -> tuple[datetime, datetime]:
        for start, end in self._periods_from(first_day):
            if end > t:
                return start, end
        raise AssertionError("unreachable: _periods_from is infinite or raises")  # pragma: no cover

    # -- moments ------------------------------------------------------------------------------

    def is_working_time(self, at: datetime) -> bool:
        t, first_day = self._utc(at)
        start, _ = self._first_period_ending_after(t, first_day)
        return start <= t

    def next_working_moment(self, at: datetime) -> datetime:
        """``at`` if someone is at work then, else when work next begins (in the calendar's zone)."""
        t, first_day = self._utc(at)
        start, _ = self._first_period_ending_after(t, first_day)
        return max(start, t).astimezone(self.tz)

    def add_working_minutes(self, at: datetime, minutes: float) -> datetime:
        """The earliest moment by which ``minutes`` of working time have passed since ``at``.

        This is an SLA deadline: a call at Friday 18:55 with a 15-minute SLA is due Monday 09:15.
        A deadline that uses up the day exactly falls on the end of hours (17:45 + 15 is 18:00),
        not on the next morning. Zero minutes give ``at`` itself.
        """
        if not math.isfinite(minutes) or minutes < 0:
            raise ValueError(f"minutes must be a finite number >= 0, got {minutes!r}")
        t, first_day = self._utc(at)
        remaining = timedelta(minutes=minutes)
        if not remaining:
            return t.astimezone(self.tz)
        for start, end in self._periods_from(first_day):
            if end <= t:
                continue
            t = max(t, start)
            available = end - t
            if remaining <= available:
                return (t + remaining).astimezone(self.tz)
            remaining -= available
        raise AssertionError("unreachable: _periods_from is infinite or raises")  # pragma: no cover

    def latest_start_due_by(self, at: datetime, minutes: float) -> datetime:
        """The latest moment from which ``minutes`` of working time are over by ``at``: whatever
        started then or earlier has its :meth:`add_working_minutes` deadline at or before ``at``,
        whatever started later has it after (a report time on Monday 08:00 with a 30-minute SLA:
        Friday 17:30). So a report tells the missed calls whose call-back deadline has come by one
        comparison of times, rather than a deadline worked out for each call.
        """
        if not math.isfinite(minutes) or minutes < 0:
            raise ValueError(f"minutes must be a finite number >= 0, got {minutes!r}")
        t, _ = self._utc(at)
        remaining = timedelta(minutes=minutes)
        if not remaining:
            return t.astimezone(self.tz)
        # From a day after ``at``'s local day, as :meth:`_utc` scans from a day before it: where the
        # clocks go back across midnight a local date can repeat, and one day more costs nothing.
        for start, end in self._periods_from(at.astimezone(self.tz).date() + _ONE_DAY, back=True):
            if start >= t:
                continue
            t = min(t, end)
            available = t - start
            if remaining <= available:
                return (t - remaining).astimezone(self.tz)
            remaining -= available
            t = start
        raise AssertionError("unreachable: _periods_from is infinite or raises")  # pragma: no cover

    def working_minutes_between(self, start: datetime, end: datetime) -> float:
        """Working minutes in [start, end): how long a lead really waited, by the SLA's clock.

        The inverse of :meth:`add_working_minutes` (to the microsecond that ``timedelta`` keeps).
        """
        t0, first_day = self._utc(start)
        t1, _ = self._utc(end)
        if t1 <= t0:
            return 0.0
        total = timedelta()
        for period_start, period_end in self._periods_from(first_day):
            if period_start >= t1:
                break
            overlap = min(period_end, t1) - max(period_start, t0)
            if overlap > timedelta():
                total += overlap
        return total / timedelta(minutes=1)
