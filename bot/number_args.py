"""What owners type after /report, /plan and /cost, read into data; what cannot be read says which part.

Plain functions of the typed text, no Telegram and no language: the handlers in :mod:`bot.routers.numbers`
turn an :class:`ArgumentError` into a reply in the reader's language. The words are the command
line's (``leadline report --period``, ``leadline plan --clients``), so the docs teach one spelling.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from typing import Literal
from zoneinfo import ZoneInfo

from bot.parsing import parse_amount
from storage.attribution import campaign_named
from storage.costs import CostSpan, parse_span
from storage.plan import MIN_CLIENTS, fraction
from storage.reports.scope import Period

Problem = Literal[
    "period",
    "period_backwards",
    "period_too_long",
    "plan_option",
    "plan_missing",
    "plan_extra",
    "clients",
    "rate",
    "amount",
    "cost_usage",
    "campaign",
    "cost_period",
    "item",
]


class ArgumentError(ValueError):
    """One argument that could not be read: ``problem`` says which kind, ``value`` what was typed."""

    def __init__(self, problem: Problem, value: str = "") -> None:
        super().__init__(f"{problem}: {value!r}")
        self.problem: Problem = problem
        self.value = value


# ---------------------------------------------------------------------- /report

#: Years a report may name: comparisons and charts step back weeks from the period's start.
YEARS = (2000, 2100)
#: A report in chat is at most a year plus a day: longer ones hold a reader thread for seconds and
#: belong to ``leadline report``.
MAX_REPORT_DAYS = 366

#: The Russian words for the periods people name most; the rest are the command line's words.
PERIOD_WORDS = {"сегодня": "today", "вчера": "yesterday", "неделя": "week", "месяц": "month"}


def _named(word: str, tz: ZoneInfo, today: date) -> Period:
    return Period.parse(PERIOD_WORDS.get(word, word), tz, today)


def parse_period(text: str | None, tz: ZoneInfo, today: date) -> Period:
    """``/report``'s period: yesterday when nothing is given (the digest's day), any ``--period`` of
    ``leadline report`` (``week``, ``2026-11``, ``2026-11-05``…), or ``FROM..TO`` with either kind at
    each end (``2026-11-01..2026-11-15``, ``2026-09..2026-11``)."""
    words = re.sub(r"\s*\.\.\s*", "..", (text or "").strip()).lower()
    if not words:
        return Period.day(today - timedelta(days=1), tz)
    first, sep, last = words.partition("..")
    try:
        start = _named(first, tz, today)
        end = _named(last, tz, today) if sep else start
    except (ValueError, OverflowError):  # 9999-12 overflows the day after the period
        raise ArgumentError("period", (text or "").strip()) from None
    if not (YEARS[0] <= start.start.year and end.end.year <= YEARS[1]):
        raise ArgumentError("period", (text or "").strip())
    if end.end < start.start:
        raise ArgumentError("period_backwards", (text or "").strip())
    if (end.end - start.start).days + 1 > MAX_REPORT_DAYS:
        raise ArgumentError("period_too_long", (text or "").strip())
    return Period(start.start, end.end, tz)


# ---------------------------------------------------------------------- /plan


@dataclass(frozen=True)
class PlanArgs:
    """``leadline plan``'s options; None is "not given" (the goals and the last 90 days fill it in)."""

    clients: int | None = None
    revenue: Fraction | None = None
    average_deal: Fraction | None = None
    contact_to_lead: Fraction | None = None
    lead_to_qualified: Fraction | None = None
    qualified_to_won: Fraction | None = None
    margin: Fraction = Fraction(1)

    @property
    def rates_given(self) -> bool:
        return self.lead_to_qualified is not None and self.qualified_to_won is not None


#: Option names as ``leadline plan`` spells them (``deal`` is short for ``average-deal``).
PLAN_OPTIONS = {
    "clients": "clients",
    "revenue": "revenue",
    "average-deal": "average_deal",
    "deal": "average_deal",
    "contact-to-lead": "contact_to_lead",
    "lead-to-qualified": "lead_to_qualified",
    "qualified-to-won": "qualified_to_won",
    "margin": "margin",
}
RATES = frozenset({"contact_to_lead", "lead_to_qualified", "qualified_to_won", "margin"})
#: What a positional number means, in order: ``/plan 300000 100000``.
PLAN_POSITIONAL = ("revenue", "average_deal")


def _option(word: str) -> str | None:
    # Phones turn a typed "--" into a dash; "--clients", "—clients" and "clients" are all the option.
    name = word.lstrip("-—–").lower().replace("_", "-")
    return PLAN_OPTIONS.get(name)


def _amount(text: str) -> Fraction:
    value = parse_amount(text)
    if value is None or value <= 0:
        raise ArgumentError("amount", text)
    return fraction(value)


#: The smallest rate that makes a plan: below one in ten thousand the figures only overflow.
MIN_RATE = Fraction(1, 10_000)


def _rate(text: str) -> Fraction:
    try:
        value = fraction(text.strip().replace(",", "."))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise ArgumentError("rate", text) from None
    if not MIN_RATE <= value <= 1:
        raise ArgumentError("rate", text)
    return value


def _plan_value(field: str, text: str) -> int | Fraction:
    if field == "clients":
        # Storage's rule (the command line's too), refused here to say what was typed.
        if not re.fullmatch(r"\d+", text) or int(text) < MIN_CLIENTS:
            raise ArgumentError("clients", text)
        return int(text)
    return _rate(text) if field in RATES else _amount(text)


def _is_number(word: str) -> bool:
    return parse_amount(word) is not None or bool(re.fullmatch(r"-?[\d.,]+%?", word))


def parse_plan(text: str | None) -> PlanArgs:
    """``/plan [revenue [average deal]]`` and any of ``leadline plan``'s options as ``name=value`` or
    ``name value``: ``/plan clients=2``, ``/plan 300000 100000 lead-to-qualified=20%``."""
    words = (text or "").split()
    given: dict[str, int | Fraction] = {}
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if "=" in word:
            name, _, value = word.partition("=")
            field = _option(name)
            if field is None:
                raise ArgumentError("plan_option", name)
        elif (named := _option(word)) is not None:
            if i >= len(words):
                raise ArgumentError("plan_missing", word)
            field, value = named, words[i]
            i += 1
        elif _is_number(word):
            free = [slot for slot in PLAN_POSITIONAL if slot not in given]
            if not free:
                raise ArgumentError("plan_extra", word)
            field, value = free[0], word
        else:
            raise ArgumentError("plan_option", word)
        given[field] = _plan_value(field, value)
    return PlanArgs(**given)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- /cost


@dataclass(frozen=True)
class CostArgs:
    campaign: str
    #: As typed and as :func:`storage.costs.add_cost` reads it: ``2026-11``, ``2026-11-05``, ``FROM..TO``.
    period: str
    span: CostSpan
    amount: float
    item: str


#: A cost item is one word of the owner's choosing (the config's are e.g. ads, wages, desk).
_ITEM = re.compile(r"[^\W\d][\w-]{0,39}")
DEFAULT_ITEM = "other"


def parse_cost(text: str | None, campaigns: Sequence[str]) -> CostArgs:
    """``/cost <campaign> <YYYY-MM> <amount> [item]``: the campaign must exist (any letter case), the
    amount may be written ``45000``, ``45 000`` or ``45k``, the item defaults to ``other``."""
    words = (text or "").split()
    if len(words) < 3:
        raise ArgumentError("cost_usage", (text or "").strip())
    name, period, *rest = words
    campaign = campaign_named(name, campaigns)
    if campaign is None:
        raise ArgumentError("campaign", name)
    try:
        span = parse_span(period)
    except ValueError:
        raise ArgumentError("cost_period", period) from None
    item = DEFAULT_ITEM
    # "45 000", "45 тыс" and "1 000 000 ₽" are all amounts; only a last word that is not part of one
    # is the item.
    if len(rest) > 1 and parse_amount(" ".join(rest)) is None and parse_amount(rest[-1]) is None:
        item = rest.pop()
        if not _ITEM.fullmatch(item):
            raise ArgumentError("item", item)
    amount_text = " ".join(rest)
    amount = parse_amount(amount_text)
    if amount is None or amount <= 0:
        raise ArgumentError("amount", amount_text)
    return CostArgs(campaign, period, span, amount, item.lower())
