"""Working minutes fast enough for a year's report: a lag is a subtraction of two positions on a clock
laid out once per report, not a walk over the calendar."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise

from storage.db import iso, parse_iso
from storage.worktime import WorkingCalendar


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
                start, end = calendar.hours_of(day)
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
