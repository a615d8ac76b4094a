"""What staff type, read the forgiving way: amounts with spaces, dates without a year, numbers in any spelling.

Phone numbers and emails go through :mod:`storage.identifiers`, the same normalisation telephony
and forms use, so a number typed in chat finds the contact a call created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from storage.identifiers import Identifier, PhoneMatch, email, phone_matches

_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
#: A run of digits with the separators people put in phone numbers, within one line; at least 5
#: digits counted later. Only what the phone matcher did not take is read this way.
_PHONE_RE = re.compile(r"(?<![\w@])\+?\(?\d(?:[\d().\-]|[^\S\n]){3,}\d(?![\w@])")


#: No amount an owner types is larger; a longer run of digits is a slip (or an attempt at ``inf``).
MAX_AMOUNT = 1e12


#: A currency written beside an amount: its sign, or its code as the bot writes money (``RUB 150,000.50``).
_CODES = "rub|usd|eur|kzt|byn|uah|gbp|cny|try|aed"
_CURRENCY = re.compile(rf"^(?:{_CODES}|[₽$€£])|(?:{_CODES}|[₽$€£]|руб\.?|р\.?)$")
#: Digits grouped by thousands with commas (``150,000``), optionally with cents (``150,000.50``).
_COMMA_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?")
#: Digits grouped by thousands with dots (``150.000``, ``1.500.000``), optionally with cents after a comma.
_DOT_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?")


def parse_amount(text: str) -> float | None:
    """``150 000``, ``150 000,50 ₽``, ``RUB 150,000.50``, ``1.5k``/``1,5к`` → a number; None if it is
    not one (or absurd: above :data:`MAX_AMOUNT`, which :func:`amount_too_large` tells apart).

    A comma before three digits groups thousands (``150,000`` is 150 000, not 150); before one or two
    it is the decimal mark (``150000,50``, ``1,5к``). What fits neither is refused, never guessed.
    """
    value = _read_amount(text)
    return value if value is not None and value <= MAX_AMOUNT else None


def amount_too_large(text: str) -> bool:
    """An amount written right but above :data:`MAX_AMOUNT`, which :func:`parse_amount` refuses as it
    refuses text that is no amount: a caller says the maximum then, not how to write a number."""
    value = _read_amount(text)
    return value is not None and value > MAX_AMOUNT


def _read_amount(text: str) -> float | None:
    """:func:`parse_amount` without its maximum (a run of 400 digits is ``inf``)."""
    cleaned = "".join(c for c in text.strip().lower() if not c.isspace() and c not in "\u200b'")
    for _ in range(2):  # a sign and a code may both be there (RUB 150 000 ₽)
        cleaned = _CURRENCY.sub("", cleaned)
    multiplier = 1.0
    if cleaned.endswith(("k", "к", "тыс", "тыс.")):
        multiplier = 1000.0
        cleaned = re.sub(r"(k|к|тыс\.?)$", "", cleaned)
    if _COMMA_THOUSANDS.fullmatch(cleaned):  # 150,000 / 150,000.50
        cleaned = cleaned.replace(",", "")
    elif _DOT_THOUSANDS.fullmatch(cleaned) and ("," in cleaned or cleaned.count(".") > 1):  # 1.500.000
        cleaned = cleaned.replace(".", "").replace(",", ".")
    else:  # 150000,50 / 1,5к / 150.5
        cleaned = cleaned.replace(",", ".")
    if not re.fullmatch(r"\d+(\.\d{1,2})?", cleaned):
        return None
    return float(cleaned) * multiplier


def parse_date(text: str, today: date) -> date | None:
    """``25.12``, ``25.12.2026``, ``2026-12-25``; a day without a year is the next such day."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
        match = re.fullmatch(r"(\d{1,2})[./](\d{1,2})(?:[./](\d{2}|\d{4}))?", text)
        if match is None:
            return None
        day, month = int(match[1]), int(match[2])
        if match[3]:
            year = int(match[3]) + (2000 if len(match[3]) == 2 else 0)
            return date(year, month, day)
        # The next such day: 29.02 waits for its leap year, at most eight years on (2096 -> 2104).
        days = (
            d for year in range(today.year, today.year + 9) if (d := _day(year, month, day)) and d >= today
        )
        return next(days, None)
    except ValueError:
        return None


def _day(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


@dataclass(frozen=True)
class Found:
    """Identifiers found in a message: usable ones, and phone-like text that is no valid number."""

    identifiers: list[Identifier]
    invalid: list[str]


#: How many trailing groups of a run are let go to find the number before them: a time or a quantity.
_TRAILING_GROUPS = 2


def _leading_number(text: str, start: int, end: int, region: str) -> list[PhoneMatch]:
    """The number the matcher finds in the first groups of the run ``text[start:end]``.

    The matcher reads "8 916 123-45-67 10:30" as one run that is no number, and gives up: a time or
    a count typed after a number must not cost the number. The text before the run goes along, so
    a company-details label still stands before it.
    """
    ends = [m.end() for m in re.finditer(r"\S+", text[start:end])][:-1]
    for cut in ends[::-1][:_TRAILING_GROUPS]:
        found = [m for m in phone_matches(text[: start + cut], region) if m.start >= start]
        if found:
            return found
    return []


def identifiers_in(text: str, region: str) -> Found:
    good: list[Identifier] = []
    bad: list[str] = []
    for raw in _EMAIL_RE.findall(text):
        found = email(raw)
        if found is not None and found.valid:
            good.append(found)
        else:
            bad.append(raw)
    rest = _EMAIL_RE.sub(" ", text)
    # The numbers the matcher finds, as in mail and chats: a second line or a quantity next to one
    # stays out of it. Only the digit runs it did not take can be a number typed wrong.
    taken = phone_matches(rest, region)
    left, start = [], 0
    for m in taken:
        left += [rest[start : m.start], "\n"]
        start = m.end
    left.append(rest[start:])
    leftover = "".join(left)  # as long as ``rest``: a run's place in it is its place in ``rest``
    for run in _PHONE_RE.finditer(leftover):
        if len(re.sub(r"\D", "", run[0])) < 5:
            continue
        inside = _leading_number(rest, run.start(), run.end(), region)
        taken += inside
        if not inside:
            bad.append(run[0].strip())
    good += [Identifier("phone", m.value, m.raw, True) for m in sorted(taken, key=lambda m: m.start)]
    unique = list({(i.kind, i.value): i for i in good}.values())
    return Found(unique, bad)
