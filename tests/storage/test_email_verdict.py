"""An email's validity is email-validator's verdict, also where Leadline reaches it without calling it
for the whole address (a common local part beside a domain already judged)."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from storage.identifiers import email


def library_says_valid(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


#: What addresses are made of, and what breaks them: dots, dashes, quotes, brackets, spaces, a second
#: @, Punycode, letters of other scripts, a fullwidth at-sign, a reserved top-level domain.
PARTS = st.sampled_from(
    [
        "a", "ivan", "o'neil", "x+tag", "a.b", ".", "..", "-", "_", "~", "{", "=", "1", "9", "@", "@@", "\"",
        "<", ">", "(", " ", "\t", "xn--", "ab--", "-x", "x-", "com", "ru", "ru.", ".ru", "local", "test",
        "localhost", "arpa", "onion", "invalid", "example", "gmail", "mail", "рф", "почта", "é", "ß", "\uff20",
        "\u00a0", "\x00", "\u200b", "1234567890" * 7, "a" * 63, "b" * 64,
    ]
)  # fmt: skip


#: Half of the domains are ones people have, so that what stands before the @ decides.
DOMAINS = st.one_of(
    st.sampled_from(["mail.ru", "gmail.com", "sub.example.com", "почта.рф", "xn--d1acufc.xn--p1ai", "x.co"]),
    st.lists(PARTS, max_size=9).map("".join),
)


@settings(max_examples=3000)
@given(st.lists(PARTS, max_size=9).map("".join), DOMAINS)
@example("ivan", "mail.ru")
@example("a" * 64, "b" * 63 + ".com")
@example("a" * 65, "example.com")
@example("x" * 60, ".".join(["d" * 60] * 3) + ".ru")
@example("ivan", "ab--c.ru")
@example("ivan", "xn--d1acufc.xn--p1ai")
@example("ivan", "xn--zz.com")
@example("ivan", "host.local")
@example("ivan", "123.456")
@example("ivan", "-mail.ru")
def test_an_address_is_valid_exactly_when_email_validator_says_so(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    found = email(address)
    if found is None:  # nothing but spaces
        assert not address.strip()
        return
    assert found.valid == library_says_valid(address.strip().lower())


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("Ivan.Petrov@Mail.RU", True),
        ("ivan@mail", False),  # no period after the @
        ("ivan@mail.123", False),  # no top-level domain ends in a digit
        ("ivan..petrov@mail.ru", False),
        ("ivan@mail..ru", False),
        ("ivan@test.local", False),  # reserved for special use
        ("a" * 64 + "@" + "b" * 61 + "." + "c" * 60 + "." + "d" * 63 + ".ru", True),  # 254 characters
        ("a" * 64 + "@" + "b" * 62 + "." + "c" * 60 + "." + "d" * 63 + ".ru", False),  # 255
        ("иван@почта.рф", True),
    ],
)
def test_addresses_people_write(address: str, valid: bool) -> None:
    found = email(address)
    assert found is not None
    assert (found.value, found.valid) == (address.lower(), valid)
