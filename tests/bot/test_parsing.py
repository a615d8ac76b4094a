"""Dates and amounts as staff type them: a day without a year is the next such day, leap days
included; money as either language writes it."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.parsing import MAX_AMOUNT, amount_too_large, parse_amount, parse_date


@pytest.mark.parametrize(
    ("typed", "today", "meant"),
    [
        ("29.02", date(2026, 11, 20), date(2028, 2, 29)),
        ("29.02", date(2028, 1, 10), date(2028, 2, 29)),
        ("29.02", date(2028, 3, 1), date(2032, 2, 29)),
        ("29.02", date(2096, 3, 1), date(2104, 2, 29)),  # 2100 is no leap year
        ("25.12", date(2026, 12, 26), date(2027, 12, 25)),
        ("1/1", date(2026, 1, 1), date(2026, 1, 1)),
        ("31.04", date(2026, 1, 1), None),
        ("29.02.2027", date(2026, 1, 1), None),
        ("2026-12-25", date(2027, 1, 1), date(2026, 12, 25)),
    ],
)
def test_a_typed_date_is_the_day_meant(typed: str, today: date, meant: date | None) -> None:
    assert parse_date(typed, today) == meant


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("150 000", 150000),
        ("150000,50", 150000.5),
        ("150 000,50 ₽", 150000.5),  # as docs/bot.md writes it in Russian
        ("RUB 150,000.50", 150000.5),  # as the bot writes money in English
        ("150,000", 150000),  # a thousands comma, not a decimal one: it was read as 150
        ("$1,200", 1200),
        ("1.500.000", 1500000),
        ("150.000,50", 150000.5),
        ("1,5к", 1500),
        ("1.5k", 1500),
        ("45k", 45000),
        ("5000 руб.", 5000),
        ("150,5", 150.5),
        ("1,2345", None),  # neither grouped thousands nor cents: refused, not guessed
        ("12,34,56", None),
        ("abc150", None),
        ("-5", None),
    ],
)
def test_a_typed_amount_is_the_money_meant(typed: str, meant: float | None) -> None:
    assert parse_amount(typed) == meant


@pytest.mark.parametrize(
    ("typed", "too_large"),
    [
        ("1 000 000 000 000", False),  # the maximum itself is an amount
        ("1 000 000 000 001", True),
        ("2000000000k", True),
        ("9" * 400, True),  # beyond a float: still a number, too large
        ("abc", False),
        ("-5", False),
        ("150 000", False),
    ],
)
def test_an_amount_too_large_is_told_from_one_that_is_no_number(typed: str, too_large: bool) -> None:
    """parse_amount gives None for both; a caller that says how to write an amount asks which it was."""
    assert amount_too_large(typed) is too_large
    if too_large:
        assert parse_amount(typed) is None
    assert MAX_AMOUNT == 1e12


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=99))
def test_money_written_either_way_reads_back(whole: int, cents: int) -> None:
    """The two ways the bot's languages write money (and staff copy it): 1,234,567.89 and 1 234 567,89."""
    value = whole + cents / 100
    english = f"{whole:,}.{cents:02d}"
    russian = f"{whole:,}".replace(",", "\u00a0") + f",{cents:02d}"
    assert parse_amount(english) == pytest.approx(value)
    assert parse_amount(russian) == pytest.approx(value)
