"""Phone numbers, emails and chat ids as match keys: normalised, validated, and masked for logs.

Every channel and the bot call these, so a number typed in chat finds the call that telephony
reported. An identifier that does not parse is kept as written with ``valid=False`` and is never
used to match two touches: a typo must not join two strangers.

Chats name people by their own ids (:data:`HANDLE_KINDS`): a Telegram, VK or Avito user id, a
WhatsApp business-scoped user id, a username. Each kind is its own namespace: the VK user 300000001
and the Telegram user 300000001 are strangers, so a value matches only within its kind. A username
(:data:`SEARCH_ONLY`) is kept to find and show its person by, never to match: people give theirs up
and others take it, so two stable ids that held one username are still two people.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, cast

import phonenumbers

Kind = Literal[
    "phone",
    "email",
    "telegram_id",
    "telegram_username",
    "vk_id",
    "avito_id",
    "whatsapp_id",
    "whatsapp_username",
]

#: The chat kinds and what a valid value of each looks like once normalised (usernames are
#: lower-cased without their ``@``: Telegram and WhatsApp compare them so).
HANDLE_KINDS: dict[str, re.Pattern[str]] = {
    "telegram_id": re.compile(r"[1-9][0-9]{0,15}"),
    "telegram_username": re.compile(r"[a-z][a-z0-9_]{3,31}"),
    "vk_id": re.compile(r"[1-9][0-9]{0,15}"),
    "avito_id": re.compile(r"[1-9][0-9]{0,18}"),
    # Meta's business-scoped user id: a country code, a dot, up to 128 letters and digits.
    "whatsapp_id": re.compile(r"[A-Z]{2}\.[A-Za-z0-9]{1,128}"),
    "whatsapp_username": re.compile(r"[a-z0-9_.]{1,64}"),
}
#: Kinds kept as ``valid=False`` whatever they look like: a username passes from one person to
#: another (FORMATS §8.1: the identity is ``from.id``, the username changes), and every message that
#: brings one brings its sender's stable id too, which is the match key.
SEARCH_ONLY = frozenset({"telegram_username", "whatsapp_username"})
#: Longer than any valid handle: such a value is text, and is not even kept as an invalid one.
MAX_HANDLE_CHARS = 160

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


def typed_phone(raw: str, region: str) -> Identifier | None:
    """A phone a person typed into a form or a message: an ``@`` there is no withheld caller ID.

    People type their address into a free-text "phone" field; that address is theirs, and a
    contact to answer. Other text with an ``@`` is kept as written and flagged, like any number
    that does not parse. Calls keep :func:`phone`, where a SIP URI is a hidden caller.
    """
    text = raw.strip()
    if "@" not in text:
        return phone(raw, region)
    found = email(text)
    if found is not None and found.valid:
        return found
    return Identifier("phone", text, text, False)


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
    # Loaded with the first address, not with every process: ~20 ms of start-up (bench/idle.py).
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(lowered, check_deliverability=False)
    except EmailNotValidError:
        return Identifier("email", lowered, text, False)
    return Identifier("email", lowered, text, True)


def handle(kind: str, raw: str | int | None) -> Identifier | None:
    """A chat id as a match key; one that does not look like its kind, and a username, are kept but
    never matched."""
    if raw is None or kind not in HANDLE_KINDS:
        return None
    text = str(raw).strip()
    if not text or len(text) > MAX_HANDLE_CHARS:
        return None
    value = text if kind == "whatsapp_id" else text.removeprefix("@").lower()
    valid = kind not in SEARCH_ONLY and HANDLE_KINDS[kind].fullmatch(value) is not None
    return Identifier(cast(Kind, kind), value, text, valid)


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
