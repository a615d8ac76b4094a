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
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, cast

import phonenumbers

from storage.records import record

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


@record
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


#: Every Unicode space separator (category Zs) but the plain space: thin, narrow no-break and figure
#: spaces come with numbers pasted from typeset text, and phonenumbers reads only some of them as gaps.
SPACE_SEPARATORS = (
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
)
_PLAIN_SPACES = str.maketrans(dict.fromkeys(SPACE_SEPARATORS, " "))


def plain_spaces(text: str) -> str:
    """``text`` with each space separator a plain space, character for character: what every phone
    is parsed from, so a number reads alike in every typeface it was pasted from."""
    return text.translate(_PLAIN_SPACES)


def phone(raw: str | int | None, region: str) -> Identifier | None:
    """E.164 for a valid number in ``region``'s conventions; None for a hidden caller."""
    if raw is None:
        return None
    return _phone(str(raw), region)


#: Fewer digits than this is an internal extension, not an international number without its ``+``.
_INTERNATIONAL_DIGITS = 8


def international(raw: str, *, min_digits: int = _INTERNATIONAL_DIGITS) -> str:
    """A number from a sender that writes international digits without the ``+`` (Mango, a Telegram
    contact: FORMATS §0.5; a phone a form sent as a JSON number), with it when that makes a valid
    number: read in a region, ``375291234567`` was no number and ``4930123456`` an Ivanovo one. A
    national ``8…``, an extension (fewer than ``min_digits``) and anything else stay as written.
    A sender whose digits may be national asks for more (``4959000012`` is a Moscow number without
    its trunk prefix, yet also a valid German one once given a ``+``).
    """
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) >= min_digits and text[0] not in "08"):
        return raw
    try:
        valid = phonenumbers.is_valid_number(phonenumbers.parse("+" + text))
    except phonenumbers.NumberParseException:
        valid = False
    return "+" + text if valid else raw


@lru_cache(maxsize=65536)
def _phone(raw: str, region: str) -> Identifier | None:
    """Cached: the same callers call again, and parsing a number is the costly part of a touch."""
    text = raw.strip()
    if is_hidden_caller(text):
        return None
    try:
        number = phonenumbers.parse(plain_spaces(text), region)
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


#: Company details in a signature or an invoice: the number after such a label is a tax, register,
#: bank or account number, however much it looks like a phone (``ИНН 7712345678`` is a valid Kazakh
#: mobile), and taking it for one would join every person who signs with that company's details.
_REQUISITES = re.compile(r"(?<!\w)(?:ИНН|КПП|ОГРН(?:ИП)?|БИК|ОКПО|[рк]/с|сч[её]т)[\s:.№|\-]*$", re.IGNORECASE)
#: How far before a number its label is looked for: the label and the punctuation after it.
_LABEL_REACH = 24


@dataclass(frozen=True, slots=True)
class PhoneMatch:
    """A valid number found in free text: as written, in E.164, and where it stands."""

    raw: str
    value: str
    start: int
    end: int


def phone_matches(text: str, region: str) -> list[PhoneMatch]:
    """Every valid number written in ``text``, in order: the one reading of free text, so every
    channel that reads it agrees on what a phone is."""
    found: list[PhoneMatch] = []
    plain = plain_spaces(text)
    for match in phonenumbers.PhoneNumberMatcher(plain, region):
        if _REQUISITES.search(plain[max(0, match.start - _LABEL_REACH) : match.start]):
            continue
        e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        found.append(PhoneMatch(text[match.start : match.end], e164, match.start, match.end))
    return found


#: A link: with its scheme, from ``www.``, or a bare domain with a path (``avito.ru/…``). The domain
#: ends on letters, so a number written with dots and a slash (``8.916.123/45-67``) is no link.
_LINK = re.compile(
    r"(?i:https?://|(?<![\w.-])www\.)\S+"
    r"|(?<![\w.@/-])[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}/\S*"
)


def _without_links(text: str) -> str:
    """``text`` with each link blanked to spaces of its length, so what stands around it keeps its place."""
    return _LINK.sub(lambda link: " " * len(link[0]), text)


def find_phones(text: str, region: str) -> list[str]:
    """Valid numbers written anywhere in ``text``, as written, each once, in the order they appear.

    Not in a link: the digits of a listing's or a product's URL are its id, and every buyer who
    pastes the same link would otherwise be joined into one contact by it.
    """
    seen: dict[str, str] = {}
    for match in phone_matches(_without_links(text), region):
        seen.setdefault(match.value, match.raw)
    return list(seen.values())


def email(raw: str | None) -> Identifier | None:
    """Trimmed and lower-cased; syntax checked without any network look-up."""
    if raw is None:
        return None
    return _email(raw)


def email_key(raw: str) -> str | None:
    """The value :func:`email` gives ``raw`` (what addresses are matched by), without its verdict:
    for a lookup by address, which needs no verdict and so never loads email-validator (start-up
    builds the campaigns' addresses this way, bench/idle.py)."""
    return raw.strip().lower() or None


@lru_cache(maxsize=65536)
def _email(raw: str) -> Identifier | None:
    text = raw.strip()
    lowered = email_key(text)
    if lowered is None:
        return None
    return Identifier("email", lowered, text, _valid_address(lowered))


#: RFC 5322's dot-atom in ASCII: email-validator takes such a local part as it is, before and apart
#: from anything it checks after the @ (``validate_email_local_part``).
_DOT_ATOM = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
#: The longest address email-validator takes (RFC 5321's path limit less its brackets).
EMAIL_MAX_CHARS = 254


def _valid_address(lowered: str) -> bool:
    """email-validator's verdict on the address.

    Judging a whole address costs ~300k instructions, most of them on the domain (IDNA, character by
    character): more than storing the touch. Almost every address is a dot-atom before the @ beside
    a domain many others share (mail.ru, gmail.com), so such an address takes the verdict the library
    gave its domain once (:func:`_valid_domain`); anything else is judged whole. The two agree on
    every address: tests/storage/test_email_verdict.py.
    """
    local, at, domain = lowered.rpartition("@")
    if at and len(lowered) <= EMAIL_MAX_CHARS and lowered.isascii() and _DOT_ATOM.fullmatch(local):
        return _valid_domain(domain)
    return _library_verdict(lowered)


@lru_cache(maxsize=4096)
def _valid_domain(domain: str) -> bool:
    """Whether email-validator takes an address on ``domain`` whose local part is a plain dot-atom."""
    return _library_verdict(f"a@{domain}")


def _library_verdict(address: str) -> bool:
    # Loaded with the first address, not with every process: ~20 ms of start-up (bench/idle.py).
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


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


#: What people, browsers and curl put between a phone's digits: spaces (zero-width ones too), dashes
#: of every width, brackets, dots, slashes, a form's ``+`` for a space, and the percent-encodings of
#: these (``%20``, ``%28``, ``%29``, ``%2B``, ``%2D``, ``%2E``, ``%2F``; UTF-8's for the dashes,
#: zero-width spaces and the no-break space). Every alternative starts with its own character.
_PHONE_GAP = (
    r"(?:[\s\-().+/\u2010-\u2015\u2212\ufe58\ufe63\uff0d\u200b-\u200d\u2060\ufeff]"
    r"|%(?:2[089BbDdEeFf]|[Ee]2%(?:80%(?:9[0-5]|8[BbCcDd])|81%[Aa]0|88%92)|[Cc]2%[Aa]0))"
)
#: Not the hex digits of a percent-escape (``%20``): they are no digits of a number, and a run
#: started on each of ``%20%20…`` would read the rest of the line once per escape.
_NOT_ESCAPED = r"(?<!%)(?<!%[0-9A-Fa-f])"
#: A phone-like run: digits with those gaps between them, ending on a digit. Every repetition is
#: possessive and none can fail after the first digit, so no input makes it backtrack.
_PHONE = re.compile(_NOT_ESCAPED + r"(?:\+|%2[Bb])?\d(?:" + _PHONE_GAP + r"*+\d)*+")
#: A ``+`` or ``/`` between digits, also percent-encoded: it joins a phone's groups, but just as
#: often two numbers (``1048576/2097152``, ``441+442+443+444``).
_JOIN = re.compile(r"([+/]|%2[BbFf])")
#: The most digits a number spelled without an international prefix has (``8 916 123-45-67``);
#: with one (``+``, ``00``), E.164's 15. A run joined by ``+`` or ``/`` and longer is two numbers.
NATIONAL_DIGITS = 11
INTERNATIONAL_DIGITS = 15
_DAY = r"(?:0[1-9]|[12]\d|3[01])"
#: A date in a run of digits (``2026-11-23``, ``2026/11/23``, ``23.11.2026``, ``11/23/2026``): kept,
#: as the slashes and dots that join it to a time's digits would otherwise make it a number.
_DATE = re.compile(
    r"(?<!\d)" + _NOT_ESCAPED + r"(?:(?:19|20)\d\d([-/.])(?:0[1-9]|1[0-2])\1" + _DAY
    + "|" + _DAY + r"([-/.])" + _DAY + r"\2(?:19|20)\d\d)(?!\d)"
)  # fmt: skip
#: An ISO datetime (``2026-12-07T14:40:46.976047+00:00``, ``… 14:40:46Z``): kept whole, as the
#: ``+`` of its offset would otherwise join its seconds' fraction and its offset into a number.
_DATETIME = re.compile(
    r"(?<!\d)\d{4}-(?:0[1-9]|1[0-2])-" + _DAY + r"[Tt ]\d\d:\d\d(?::\d\d(?:[.,]\d++)?+)?+"
    r"(?:[Zz]|[+-]\d\d:?\d\d)?+"
)
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
#: Fewer digits than this is no full phone number: ids, byte counts, times stay readable.
PHONE_DIGITS = 9


def _digits(run: str) -> str:
    """The run's digits, not counting those of its percent-escapes (``%20``)."""
    return "".join(c for c in (_ESCAPE.sub("", run) if "%" in run else run) if c.isdigit())


def mask_phones(text: str) -> str:
    """``text`` with every phone number in it masked, in any spelling a person or a URL gives it;
    the one rule for everything written to a log. Linear in ``len(text)``."""
    return _around(_DATETIME, text, lambda part: _PHONE.sub(_phone_run, part))


def _around(kept: re.Pattern[str], text: str, masked: Callable[[str], str]) -> str:
    """``text`` with ``kept``'s matches as they are and each stretch between them ``masked``."""
    out: list[str] = []
    start = 0
    for match in kept.finditer(text):
        out.append(masked(text[start : match.start()]))
        out.append(match[0])
        start = match.end()
    out.append(masked(text[start:]))
    return "".join(out)


def _phone_run(match: re.Match[str]) -> str:
    run = match[0]
    if len(_digits(run)) < PHONE_DIGITS:
        return run
    # A date beside a number ("2026-11-23 +79161234567") is kept and the number masked: each
    # stretch between dates is judged on its own.
    return _around(_DATE, run, lambda part: _PHONE.sub(_masked_number, part))


def _masked_number(match: re.Match[str]) -> str:
    run = match[0]
    digits = _digits(run)
    if len(digits) < PHONE_DIGITS:
        return run
    international = run[:1] == "+" or run[:3] in ("%2B", "%2b") or digits[:2] == "00"
    if len(digits) > (INTERNATIONAL_DIGITS if international else NATIONAL_DIGITS) and _JOIN.search(run):
        # Too long for one phone: the numbers its ``+`` and ``/`` join are judged one by one.
        parts = _JOIN.split(run)
        return "".join(part if i % 2 else _PHONE.sub(_masked_number, part) for i, part in enumerate(parts))
    return mask(digits)
