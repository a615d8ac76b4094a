"""Campaign costs: what each campaign cost, itemised, and its share in any report period.

A cost is written for a span of whole days (``2026-11`` is 1 to 30 November, both included) and is
taken as spread evenly over it, so a week's report carries 7/30 of a month's ad spend: lead cost
for a short period stays comparable with the month's. Costs from the config are mirrored into
``campaign_costs`` at start-up (the config is their one home, so each sync replaces them); costs
that owners add from the bot or the API are rows of their own and are never touched by a sync.
"""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlite_utils import Database

from storage.db import iso

if TYPE_CHECKING:
    from leadline.config import CampaignConfig

ORIGINS = ("config", "bot", "api")

_PART = re.compile(r"(\d{4})-(\d{2})(?:-(\d{2}))?")


@dataclass(frozen=True, slots=True)
class CostSpan:
    """Whole days from ``start`` to ``end``, both included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def overlap_days(self, start: date, end: date) -> int:
        """Days this span shares with ``start``..``end`` (both included)."""
        first, last = max(self.start, start), min(self.end, end)
        return max(0, (last - first).days + 1)


def _bound(text: str, *, last: bool) -> date:
    match = _PART.fullmatch(text.strip())
    if not match:
        raise ValueError(f"write a period as YYYY-MM, YYYY-MM-DD or FROM..TO, not {text!r}")
    year, month = int(match[1]), int(match[2])
    if match[3]:
        return date(year, month, int(match[3]))
    return date(year, month, calendar.monthrange(year, month)[1] if last else 1)


def parse_span(text: str) -> CostSpan:
    """``2026-11``, ``2026-11-05`` or ``2026-10..2026-12`` (months are whole, both ends included)."""
    first, sep, last = text.partition("..")
    start = _bound(first, last=False)
    end = _bound(last if sep else first, last=True)
    if end < start:
        raise ValueError(f"the period {text!r} ends before it starts")
    return CostSpan(start, end)


def add_cost(
    db: Database,
    campaign: str,
    period: str,
    amount: float,
    *,
    at: datetime,
    item: str = "other",
    origin: str = "bot",
    staff_id: int | None = None,
    external_id: str | None = None,
) -> int:
    """Record one cost item (``/cost brand_msk 2026-11 45000 ads`` in the bot); returns its id.

    ``external_id`` names the message it came from: a second delivery of that message records
    nothing and returns the first one's id, so the campaign's cost is not counted twice.
    """
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {', '.join(ORIGINS)}")
    if amount < 0:
        raise ValueError("a cost cannot be negative")
    span = parse_span(period)
    cursor = db.execute(
        "INSERT INTO campaign_costs (campaign, period_start, period_end, item, amount, origin, staff_id,"
        " external_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [
            campaign,
            span.start.isoformat(),
            span.end.isoformat(),
            item,
            amount,
            origin,
            staff_id,
            external_id,
            iso(at),
        ],
    )
    if cursor.rowcount == 0:
        return int(
            db.execute("SELECT id FROM campaign_costs WHERE external_id = ?", [external_id]).fetchone()[0]
        )
    return int(cursor.lastrowid or 0)


def sync_costs(db: Database, campaigns: Iterable[CampaignConfig], at: datetime) -> int:
    """Replace the config's costs with what the config says now; returns how many rows it holds."""
    db.execute("DELETE FROM campaign_costs WHERE origin = 'config'")
    count = 0
    for campaign in campaigns:
        for cost in campaign.costs:
            add_cost(db, campaign.name, cost.period, cost.amount, at=at, item=cost.item, origin="config")
            count += 1
    return count


@dataclass(frozen=True, slots=True)
class CampaignCost:
    """A campaign's cost in a report period: the pro-rata total and its items."""

    campaign: str
    total: float
    items: dict[str, float]


def costs_in_period(
    db: Database, start: date, end: date, *, campaign: str | None = None
) -> dict[str, CampaignCost]:
    """Each campaign's cost falling in ``start``..``end`` (both included), pro rata by days."""
    sql = (
        "SELECT campaign, period_start, period_end, item, amount FROM campaign_costs"
        " WHERE period_start <= ? AND period_end >= ?"
    )
    params: list[object] = [end.isoformat(), start.isoformat()]
    if campaign is not None:
        sql += " AND campaign = ?"
        params.append(campaign)
    totals: dict[str, float] = defaultdict(float)
    items: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for name, span_start, span_end, item, amount in db.execute(sql, params):
        span = CostSpan(date.fromisoformat(span_start), date.fromisoformat(span_end))
        share = float(amount) * span.overlap_days(start, end) / span.days
        totals[name] += share
        items[name][item] += share
    return {name: CampaignCost(name, totals[name], dict(items[name])) for name in sorted(totals)}


def month_span(day: date) -> tuple[date, date]:
    """The first and last day of ``day``'s month."""
    first = day.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
