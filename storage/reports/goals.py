"""The month's goals: what happened in the month so far against the config's targets, and where the
month is heading at the current rate."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from storage.db import iso
from storage.reports.figures import ratio, rounded
from storage.reports.loaders import FIRST_LEAD
from storage.reports.scope import Period, Rules


@dataclass(frozen=True, slots=True)
class GoalProgress:
    target: float
    actual: float
    projected: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "actual": rounded(self.actual, 2),
            "projected": rounded(self.projected, 1),
            "share": rounded(ratio(self.actual, self.target), 4),
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
    first = FIRST_LEAD.format("l")  # a person is one lead, however many records were merged into them
    leads_made = db.execute(
        f"SELECT COUNT(*) FROM leads l WHERE created_at >= ? AND created_at < ? AND {first}", [start, until]
    ).fetchone()[0]
    qualified = db.execute(
        f"SELECT COUNT(*) FROM leads l WHERE qualified_at >= ? AND qualified_at < ? AND {first}",
        [start, until],
    ).fetchone()[0]
    clients, revenue = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(won_amount), 0) FROM leads l WHERE stage = 'won'"
        f" AND closed_at >= ? AND closed_at < ? AND {first}",
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
