"""The figures a digest shows, read from the database once and written in each reader's language
by :mod:`bot.digest` (the words) and :mod:`bot.digest_chart` (the chart)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from babel import Locale
from babel.numbers import format_currency
from sqlite_utils import Database

from leadline.config import Config
from storage.reports.facts import Facts
from storage.reports.figures import Group
from storage.reports.report import (
    Owed,
    build_report,
    missed_contacts,
    unanswered_contacts,
    unregistered_contacts,
)
from storage.reports.scope import Period, Rules, Scope

#: How many contacts the digest lists by name; the rest are a count.
LIST_LIMIT = 5
CHART_DAYS = 14
#: A day with fewer inbound contacts than this gets no LRR point on the chart: 1 of 2 registered
#: is "50 %" and would swing the line more than a busy day's real change (docs/report.md).
MIN_CONTACTS_FOR_LRR = 5


@dataclass(frozen=True)
class Figures:
    """What a digest says, in no language yet: read once, then written in each language its
    readers speak, so a digest to a Russian and an English owner runs its queries once."""

    period: Period
    total: Group
    #: The same weekdays a week (or whole weeks) earlier, and their figures: a one-day report, or
    #: any morning digest.
    compared_with: Period | None
    before: Group | None
    #: The heading names the days ("Fri 20 – Sun 22 Nov 2026"), as the morning digest does; else a
    #: period of more than a day is named as the command wrote it ("2026-11").
    names_days: bool
    #: :func:`storage.reports.report.build_report` for the month of the period's last day, up to it.
    month_report: dict[str, Any]
    #: Contacts still unregistered and missed calls nobody has called back yet (by /missed's rule,
    #: not the SLA's), the first few of each (never an erased person: nothing to do about them).
    waiting: Owed
    missed: Owed
    #: The contact of the period who has waited longest for any answer, if anyone still waits.
    slowest: dict[str, Any] | None
    #: The chart's days: each day's figures, up to the period's last day.
    series: list[tuple[date, Group]]
    registration_minutes: int
    #: The chart's days that are not working days (weekends, public holidays): shaded on it.
    days_off: frozenset[date] = frozenset()
    #: The period's figures per channel (call, form, email, chat, manual), by the channel's code.
    by_channel: Mapping[str, Group] = field(default_factory=dict)


def comparison_span(period: Period) -> Period:
    """The same weekdays before ``period``: a week earlier, or as many whole weeks as it takes not to
    overlap it (the New Year break's 13 days are set against the 13 days two weeks before)."""
    return period.previous(7 * -(-period.days // 7))


def gather(db: Database, config: Config, period: Period, now: datetime, *, digest: bool = False) -> Figures:
    """Every figure the digest for ``period`` shows, as of ``now``. ``digest``: the morning digest,
    which compares any span with the same weekdays before it; ``/report`` compares a single day only,
    once it is over (a week or a month against the previous one would be a different question)."""
    rules = Rules.from_config(config)
    tz = config.tz
    scope = Scope(period, as_of=now)
    facts = Facts(db, scope, rules)
    total = facts.total()
    # A day not over yet (/report today) has no whole day to set against another.
    day_over = period.end < now.astimezone(tz).date()
    compared_with = comparison_span(period) if digest or (period.days == 1 and day_over) else None
    # The earlier span as it stood as long after it as the period is now (on the office clock, so a
    # change of summer time keeps 09:00 at 09:00): measured as of now, it has had a week more to be
    # registered and answered, and every change would lean down.
    before = None
    if compared_with:
        then = now.astimezone(tz) - (period.start - compared_with.start)
        before = Facts(db, Scope(compared_with, as_of=then), rules).total()
    month = Period.month(period.end, tz)
    month_report = build_report(
        db, Scope(Period(month.start, min(month.end, period.end), tz), as_of=now), rules
    )
    series = daily_series(db, rules, period.end, now)
    return Figures(
        period=period,
        total=total,
        compared_with=compared_with,
        before=before,
        names_days=digest or period.days == 1,
        month_report=month_report,
        waiting=unregistered_contacts(db, scope, limit=LIST_LIMIT),
        missed=missed_contacts(db, period, limit=LIST_LIMIT),
        slowest=next(iter(unanswered_contacts(db, total, limit=1)), None),
        series=series,
        registration_minutes=rules.registration_minutes,
        days_off=frozenset(day for day, _group in series if not rules.calendar.is_working_day(day)),
        by_channel=facts.groups("channel"),
    )


def daily_series(
    db: Database, rules: Rules, last: date, now: datetime, days: int = CHART_DAYS
) -> list[tuple[date, Group]]:
    """Each of the ``days`` days up to ``last``: its figures, for the chart."""
    tz = rules.calendar.tz
    series = []
    for offset in range(days - 1, -1, -1):
        day = last - timedelta(days=offset)
        series.append((day, Facts(db, Scope(Period.day(day, tz), as_of=now), rules).total()))
    return series


def leadless(campaign: Mapping[str, Any]) -> bool:
    """A campaign (its report figures) that spent money and brought no lead: its lead cost has no
    end, so it is the dearest of all, not one to leave out for having none."""
    return not campaign["leads"] and (campaign["cost"] or 0) > 0


def dearest_campaigns(by_campaign: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """The campaigns with a lead cost or with spend and no lead, dearest first: those with no lead,
    the biggest spender first, then by lead cost (the digest names the first, the chart draws six)."""
    ranked = [(name, g) for name, g in by_campaign.items() if g["lead_cost"] is not None or leadless(g)]

    def dearness(item: tuple[str, Mapping[str, Any]]) -> tuple[bool, float]:
        g = item[1]
        return (True, g["cost"]) if leadless(g) else (False, g["lead_cost"])

    return sorted(ranked, key=dearness, reverse=True)


def whole(value: float | None) -> str:
    """A count as the digest and its chart write it: whole, thousands apart by a space."""
    return "–" if value is None else f"{value:,.0f}".replace(",", " ")


def money(value: float | None, currency: str, locale: str, *, exact: bool = False) -> str:
    """An amount in ``[leadline] currency`` as the reader's language writes money, whole:
    ``45 000 ₽``, ``$45,000``, ``€1,950``; a currency with no symbol of its own keeps its code,
    set apart from the digits (``RUB 45,000``). ``exact`` keeps the cents of an amount that has
    them (``166,67 ₽``): a cost read back to the owner who typed it must be what was recorded."""
    if value is None:
        return "–"
    pattern = Locale.parse(locale).currency_formats["standard"].pattern.split(";")[0]
    if exact and round(value, 2) != round(value):
        text = format_currency(value, currency, format=pattern, locale=locale)
    else:
        pattern = re.sub(r"\.0+", "", pattern)  # whole amounts: an owner reads 45 000, not 45 000,00
        text = format_currency(round(value), currency, format=pattern, locale=locale, currency_digits=False)
    text = re.sub(r"([A-Z]{3})(?=[\d\-−])", "\\1\u00a0", text)
    return re.sub(r"(?<=\d)([A-Z]{3})", "\u00a0\\1", text)
