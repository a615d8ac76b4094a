"""Phones read from free text: what a person typed is a phone, the digits of a link they pasted are not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.identifiers import find_phones

#: Digits that are a valid Russian number wherever they stand (``+7 495 123-45-67`` once read in RU).
ID_DIGITS = st.sampled_from(["4951234567", "3456789012", "79161234567", "89161234567", "84951234567"])
PATH_CHARS = st.text(alphabet="abcxyz0123456789-_/.?=&#%+", max_size=12)
LINK_START = st.sampled_from(
    [
        "https://www.avito.ru/",
        "http://vk.com/",
        "HTTPS://ozon.ru/",
        "www.wildberries.ru/",
        "avito.ru/",
        "vk.com/",
    ]
)
#: What people write around a link: nothing, words, or a phone of their own.
AROUND = st.sampled_from(
    ["", "Интересует", "Здравствуйте, ещё продаёте?", "звоните +7 916 123-45-67", "8 903 555-44-33"]
)


@given(LINK_START, PATH_CHARS, ID_DIGITS, PATH_CHARS, AROUND, AROUND)
def test_the_digits_of_a_link_never_become_a_phone(
    start: str, path: str, digits: str, tail: str, before: str, after: str
) -> None:
    link = f"{start}{path}{digits}{tail}"
    own = dict.fromkeys(find_phones(before, "RU") + find_phones(after, "RU"))
    assert find_phones(f"{before} {link} {after}", "RU") == list(own)


@pytest.mark.parametrize(
    ("text", "phones"),
    [
        ("https://www.avito.ru/moskva/mebel/divan_4951234567 +7 916 123-45-67", ["+7 916 123-45-67"]),
        ("+79161234567 https://www.avito.ru/moskva/mebel/divan_4951234567", ["+79161234567"]),
        ("Диван avito.ru/moskva/divan_3456789012\nМой номер 8 (916) 123-45-67", ["8 (916) 123-45-67"]),
        ("(https://vk.com/market-123_4951234567) 89161234567", ["89161234567"]),
        ("звоните 8-916-123-45-67,site.ru/x_4951234567", ["8-916-123-45-67"]),
        ("+79161234567https://ozon.ru/product/4951234567", ["+79161234567"]),
        ("ivan@mail.ru, 89161234567", ["89161234567"]),
        ("8.916.123/45-67", ["8.916.123/45-67"]),
    ],
    ids=[
        "after a link",
        "before a link",
        "on the next line",
        "after a bracketed link",
        "glued by a comma",
        "glued to the scheme",
        "after an address",
        "dots and a slash, no link",
    ],
)
def test_a_phone_next_to_a_link_is_still_a_phone(text: str, phones: list[str]) -> None:
    assert find_phones(text, "RU") == phones
