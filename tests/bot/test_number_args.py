"""What owners type after /cost, /report and /plan, read as the bot records it (or refused)."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from bot.number_args import ArgumentError, parse_cost, parse_period, parse_plan

MSK = ZoneInfo("Europe/Moscow")
CAMPAIGNS = ["brand_msk", "vk_ads"]


@pytest.mark.parametrize(
    ("typed", "amount", "item"),
    [
        ("brand_msk 2026-11 45000 ads", 45000.0, "ads"),
        ("brand_msk 2026-11 45 000 ads", 45000.0, "ads"),
        ("brand_msk 2026-11 45 тыс", 45000.0, "other"),
        ("brand_msk 2026-11 45 k", 45000.0, "other"),
        ("brand_msk 2026-11 1 000 000 ₽", 1_000_000.0, "other"),
        ("BRAND_MSK 2026-11 45k Wages", 45000.0, "wages"),
    ],
)
def test_cost_amounts_as_owners_write_them(typed, amount, item):
    args = parse_cost(typed, CAMPAIGNS)
    assert (args.campaign, args.amount, args.item) == ("brand_msk", amount, item)


@pytest.mark.parametrize(
    "typed", ["brand_msk 2026-11 " + "9" * 400, "brand_msk 2026-11 0", "brand_msk 2026-11 -5"]
)
def test_absurd_cost_amounts_are_refused(typed):
    with pytest.raises(ArgumentError) as caught:
        parse_cost(typed, CAMPAIGNS)
    assert caught.value.problem == "amount"


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("9999-12", "period"),
        ("0001-01-01", "period"),
        ("2025-01..2026-12", "period_too_long"),
        ("2026-11-15..2026-11-01", "period_backwards"),
    ],
)
def test_report_periods_the_bot_will_not_build(typed, problem):
    with pytest.raises(ArgumentError) as caught:
        parse_period(typed, MSK, date(2026, 11, 23))
    assert caught.value.problem == problem


def test_a_year_is_still_a_report():
    period = parse_period("2025-12..2026-11", MSK, date(2026, 11, 23))
    assert (period.start, period.end) == (date(2025, 12, 1), date(2026, 11, 30))


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("clients=2 lead-to-qualified=1e-400 qualified-to-won=10%", "rate"),
        ("revenue=" + "9" * 400, "amount"),
    ],
)
def test_plans_that_would_overflow_are_refused(typed, problem):
    with pytest.raises(ArgumentError) as caught:
        parse_plan(typed)
    assert caught.value.problem == problem
