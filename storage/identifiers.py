"""Phone numbers and emails as match keys: normalised, validated, and masked for logs.

Every channel and the bot call these, so a number typed in chat finds the call that telephony
reported. An identifier that does not parse is kept as written with ``valid=False`` and is never
used to match two touches: a typo must not join two strangers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import phonenumbers
from email_validator import EmailNotValidError, validate_email

Kind = Literal["phone", "email"]

#: What PBXs and trackers send when the caller's number is withheld.
_HIDDEN = {"", "anonymous", "<unknown>", "unknown", "private", "restricted", "unavailable", "hidden", "null"}


@dataclass(frozen=True, slots=True)
class Identifier:
    kind: Kind
    value: str
    raw: str
    valid: bool


def is_hidden_caller(raw: str | None) -> bool:
    """True for a withheld caller ID, or an address that is no phone number (SIP URI, Twilio client)."""
    if raw is None:
        return True
    text = raw.strip().lower()
    return text in _HIDDEN or text.startswith(("sip:", "client:")) or "@" in text


def phone(raw: str | int | None, region: str) -> Identifier | None:
    """E.164 for a valid number in ``region``'s conventions; None for a hidden caller."""
    if raw is None:
        return None
    return _phone(str(raw), region)


@lru_cache(maxsize=65536)
def _phone(raw: str, region: str) -> Identifier | None:
    """Cached: the same callers call again, and parsing a number is the costly part of a touch."""
    text = raw.strip()
    if is_hidden_caller(text):
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return Identifier("phone", text, text, False)
    if not phonenumbers.is_valid_number(number):
        return Identifier("phone", text, text, False)
    return Identifier(
        "phone", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), text, True
    )


def email(raw: str | None) -> Identifier | None:
    """Trimmed and lower-cased; syntax checked without any network look-up."""
    if raw is None:
        return None
    return _email(raw)


@lru_cache(maxsize=65536)
def _email(raw: str) -> Identifier | None:
    text = raw.strip()
    if not text:
        return None
    lowered = text.lower()
    try:
        validate_email(lowered, check_deliverability=False)
    except EmailNotValidError:
        return Identifier("email", lowered, text, False)
    return Identifier("email", lowered, text, True)


def parse_query(text: str, region: str) -> Identifier | None:
    """What a person typed to find someone: an email, a phone number, or neither (a name)."""
    text = text.strip()
    if "@" in text:
        return email(text)
    if len(re.sub(r"\D", "", text)) >= 5:
        found = phone(text, region)
        if found is not None and found.valid:
            return found
    return None


def mask(value: str | None) -> str:
    """Keep the ends, hide the middle: enough to tell two log lines apart, not to call anyone."""
    if not value:
        return ""
    if "@" in value:
        local, _, domain = value.partition("@")
        return (local[:1] + "***@" + domain[:1] + "***") if local else "***@***"
    if len(value) <= 4:
        return "***"
    return value[:3] + "*" * (len(value) - 5) + value[-2:]
