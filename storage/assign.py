"""Who takes a form, a letter or a chat: the assignment rule, data in and data out.

The rule never reads the database: the arrival pass gathers the candidates (who takes touches by
round robin, who is on shift now, how many each has been given today) and stores what it returns,
so the same question always gets the same answer and a property test can state what is fair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal

from leadline.config import HoursSection

Mode = Literal["round_robin", "owner", "team"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One person who takes touches by round robin, as the rule sees them at one moment."""

    staff_id: int
    on_shift: bool
    #: Touches given to them since the start of the office's day.
    taken_today: int


@dataclass(frozen=True, slots=True)
class Assignment:
    """A staff member, or None for the team chat (and, without one, the managers)."""

    staff_id: int | None
    why: Literal["source_owner", "round_robin", "owner", "team"]


def on_shift(shift: HoursSection | None, local: datetime) -> bool:
    """Whether ``local`` (the office's clock) falls in a person's shift; no shift is always on.

    Shifts are written as ``[working_time]`` is: days of the week and hours within a day (``24:00``
    ends at midnight).
    """
    if shift is None:
        return True
    start, end = shift.start_end
    now = local.timetz().replace(tzinfo=None)
    return local.weekday() in shift.weekdays and start <= now and (end == time(0, 0) or now < end)


def present(shift: HoursSection | None, local: datetime, *, working: bool, holiday: bool) -> bool:
    """Whether round robin may give a person a touch at ``local``: without a shift, whenever the
    office works (so at night or on a holiday the team chat takes it); with one, in it, but never on
    a holiday, when nobody is at work."""
    if shift is None:
        return working
    return not holiday and on_shift(shift, local)


def assign(
    mode: Mode, candidates: Sequence[Candidate], source_owner: int | None, owner: int | None
) -> Assignment:
    """Who is given a new form, letter or chat.

    A source's owner wins over the mode. Round robin gives it to the person on shift with the fewest
    touches today, the first in the config's order on a tie, so over a day the counts of people on
    shift never differ by more than one; with nobody on shift it goes to the team chat.
    """
    if source_owner is not None:
        return Assignment(source_owner, "source_owner")
    if mode == "owner":
        return Assignment(owner, "owner")
    if mode == "round_robin":
        present = [c for c in candidates if c.on_shift]
        if present:
            chosen = min(enumerate(present), key=lambda pair: (pair[1].taken_today, pair[0]))[1]
            return Assignment(chosen.staff_id, "round_robin")
    return Assignment(None, "team")
