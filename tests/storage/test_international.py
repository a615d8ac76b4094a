"""International digits written without their ``+`` (Mango, a Telegram contact, a form's JSON
number): one rule, which gives the ``+`` back only where that makes a valid number."""

from __future__ import annotations

import pytest

from storage.identifiers import international


@pytest.mark.parametrize(
    ("raw", "min_digits", "meant"),
    [
        ("375291234567", 8, "+375291234567"),  # Minsk, from Mango
        ("79161234567", 8, "+79161234567"),
        ("4930123456", 8, "+4930123456"),  # Berlin: Mango writes the country code
        ("4959000012", 11, "4959000012"),  # a form's 10 digits may be national: left to the region
        ("99999999999", 8, "99999999999"),  # no number with a "+": left to the region
        ("89161234567", 8, "89161234567"),  # a national 8…
        ("101", 8, "101"),  # an extension
        ("+79161234567", 8, "+79161234567"),
        ("7916 123", 8, "7916 123"),
    ],
)
def test_the_plus_comes_back_only_where_it_makes_a_number(raw: str, min_digits: int, meant: str) -> None:
    assert international(raw, min_digits=min_digits) == meant
