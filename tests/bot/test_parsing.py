"""Dates as staff type them: a day without a year is the next such day, leap days included."""

from __future__ import annotations

from datetime import date

import pytest

from bot.parsing import parse_date


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
