"""Whether a text names a person: their phone numbers in any spelling, their email addresses, their
chat ids and usernames, never a name alone (a name is shared by strangers, a number is not)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, unquote_plus

import phonenumbers

from storage.identifiers import HANDLE_KINDS

#: A run of digits as people and providers write a phone number: spaces, dashes, dots, brackets.
_PHONE_RUN = re.compile(r"\d[\d\s\-().]{5,}\d")
#: The characters RFC 5322 allows in an unquoted local part (``o'brien@``, ``a&b@``).
_ATEXT = r"[\w.!#$%&'*+/=?^`{|}~\-]"
#: An address in text: a local part of at most 64 such characters (RFC 5321's limit, which also
#: keeps the search linear in a long run of letters) and a dotted domain.
_EMAIL = re.compile(rf"({_ATEXT}{{1,64}})@([\w\-]+(?:\.[\w\-]+)+)")
_LOCAL_CHAR = re.compile(_ATEXT)
#: Where an address may begin inside such a run: after a character other than letters, digits and
#: ``.+-`` (``email=ann@``, ``'ann@'``); ``joann@`` holds no ``ann@``.
_ADDRESS_START = re.compile(r"[^\w.+\-]")
#: A chat id or username as it stands in text: letters, digits, ``_`` and ``.`` (WhatsApp's ``RU.…``).
_WORD = re.compile(r"[\w.]+")
#: A JSON string escape: ``\n`` and the like glue letters onto an address, ``\uXXXX`` hides one.
_JSON_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|([nrtbf\"/\\]))")


def _addresses(text: str) -> Iterator[str]:
    """Every address ``text`` may name whole: each run of local-part characters before an ``@``,
    and the tails of it that begin after a character that begins no common address, each with its
    domain."""
    for match in _EMAIL.finditer(text):
        local, domain = match[1], match[2]
        if not (match.start() and _LOCAL_CHAR.match(text, match.start() - 1)):  # the run, whole
            yield f"{local}@{domain}"
        for start in _ADDRESS_START.finditer(local):
            yield f"{local[start.end() :]}@{domain}"


def _unescape(match: re.Match[str]) -> str:
    if match[1]:
        return chr(int(match[1], 16))
    return " " if match[2] in "nrtbf" else match[2]  # a line break parts words; \/ is a slash


#: The fewest digits a number needs to be searched for in text (shorter ones match too much).
_MIN_DIGITS = 7


@dataclass(frozen=True)
class Matcher:
    """Whether a text names the person: one of their numbers in any spelling, or an email of theirs.

    Numbers are compared by their national digits (``9161234567`` for ``+7 916 123-45-67``) inside
    each run of digits in the text, so a country code, a trunk prefix or the spaces around do not
    matter. Built for many people at once too (a retention pass), at the cost of a set look-up per
    window of digits.
    """

    numbers: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    #: Chat ids and usernames, lower-cased, matched as whole words (``300000001``, ``test_alex_k``).
    handles: frozenset[str] = frozenset()
    #: Those identifiers as they were typed (``+7 916 123-45-67``, ``Ann.B@…``), for the byte search
    #: alone: a provider's retry carries the same bytes as the request that made the touch.
    typed: frozenset[str] = frozenset()

    @classmethod
    def of(cls, identifiers: Iterable[tuple[str, str, str, bool]]) -> Matcher:
        """From ``(kind, value, raw, valid)`` as the identifiers table holds them."""
        numbers: set[str] = set()
        emails: set[str] = set()
        handles: set[str] = set()
        typed: set[str] = set()
        for kind, value, raw, valid in identifiers:
            if kind == "email":
                emails.update(e.strip().lower() for e in (value, raw) if "@" in e)
            elif kind in HANDLE_KINDS:
                handles.add(value.lower())
            elif (digits := national_digits(value, valid)) is not None:
                numbers.add(digits)
            else:
                continue  # a number too short to search for
            typed.add(raw.strip())
        return cls(frozenset(numbers), frozenset(emails), frozenset(handles), frozenset(typed) - {""})

    def __or__(self, other: Matcher) -> Matcher:
        return Matcher(
            self.numbers | other.numbers,
            self.emails | other.emails,
            self.handles | other.handles,
            self.typed | other.typed,
        )

    def __bool__(self) -> bool:
        return bool(self.numbers or self.emails or self.handles)

    @property
    def needles(self) -> list[bytes]:
        """Byte strings a raw request naming the person contains in its most common spellings, for
        a scan in SQL (``instr``) that needs no decoding: digits, E.164 digits, the email as is and
        URL-encoded, and each identifier as it was typed, as is and form-encoded."""
        found: set[bytes] = set()
        for number in self.numbers:
            found.add(number.encode())
        for email in self.emails:
            found.update({email.encode(), quote(email, safe="").encode()})
        found.update(h.encode() for h in self.handles)
        for typed in self.typed:
            found.update({typed.encode(), quote_plus(typed).encode()})
        return sorted(found)

    def __call__(self, text: str) -> bool:
        if not self:
            return False
        if "\\" in text:  # a JSON body's escapes: "wife:\nann@" names ann@, and "\u0418" is И
            text = _JSON_ESCAPE.sub(_unescape, text)
        texts = [text, unquote_plus(text)] if "%" in text or "+" in text else [text]
        if self.emails and any(e in self.emails for each in texts for e in _addresses(each.lower())):
            return True
        if self.handles and any(
            w.strip(".") in self.handles for each in texts for w in _WORD.findall(each.lower())
        ):
            return True
        lengths = {len(n) for n in self.numbers}
        for run in _PHONE_RUN.findall(texts[-1]):
            digits = re.sub(r"\D", "", run)
            for size in lengths:
                for start in range(0, len(digits) - size + 1):
                    if digits[start : start + size] in self.numbers:
                        return True
        return False


def national_digits(value: str, valid: bool = True) -> str | None:
    """The digits a number is searched for by: the national significant number of a valid one
    (stored in E.164), the digits of one kept as typed; None when too few to tell people apart."""
    digits = re.sub(r"\D", "", value)
    if valid and value.startswith("+"):
        with contextlib.suppress(phonenumbers.NumberParseException):
            digits = phonenumbers.national_significant_number(phonenumbers.parse(value, None))
    return digits if len(digits) >= _MIN_DIGITS else None
