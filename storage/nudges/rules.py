"""What every sweep measures against: the kinds of nudge, and the config's SLAs, batching and owners
as one value, with the SLA cut-off a query compares stored times with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from storage.worktime import WorkingCalendar

if TYPE_CHECKING:
    from leadline.config import Config


#: What a nudge asks for: a registration, a call back, a follow-up, or a change to a lead left alone.
Kind = Literal["register", "callback", "follow_up", "stale"]

KINDS: tuple[Kind, ...] = ("register", "callback", "follow_up", "stale")
LEAD_KINDS = ("follow_up", "stale")
OPEN_STAGES_SQL = "stage NOT IN ('won', 'lost')"


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
