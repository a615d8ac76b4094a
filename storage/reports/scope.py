"""What a report covers (whole local days, a channel, campaign or person, the report time) and what it
is measured against (the config's working calendar, SLAs and goals)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from storage.db import iso, now_utc
from storage.worktime import WorkingCalendar

if TYPE_CHECKING:
    from leadline.config import Config, GoalsSection

GroupBy = Literal["total", "channel", "campaign", "staff"]
GROUPINGS: tuple[GroupBy, ...] = ("channel", "campaign", "staff")
TOTAL = ""
#: The group key of touches and leads without a campaign or a staff member.
NONE_KEY = "(none)"
CHANNELS = ("call", "form", "email", "manual", "chat")


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
    #: A staff member's rows, all those under one name (:func:`storage.staff.staff_called`), as
    #: ``by_staff`` groups them.
    staff_id: tuple[int, ...] | None = None

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

    def last_missed_due_by(self, as_of: datetime) -> datetime:
        """The latest moment a call could be missed and have its :meth:`callback_deadline` at or
        before ``as_of``: a call missed later is still within its time to be called back."""
        return self.calendar.latest_start_due_by(as_of, self.callback_minutes)


def _goals(section: GoalsSection) -> dict[str, float]:
    return {k: float(v) for k, v in section.model_dump().items() if v is not None}
