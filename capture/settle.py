"""Settling a parsed request while it is judged, before anyone is answered.

A 2xx tells the sender that its request became a touch, so whatever storage would fail on later is
decided here, once, for every channel (HTTP, SMTP, IMAP, AMI and replay all go through
``Capture.judge``). What can be repaired without guessing is repaired and said in the journal
row's note and the touch's fields: text SQLite cannot store, a time nobody can mean, identifiers
beyond what one touch keeps. What cannot is refused with a 400 that names it: a number no call can
have, nesting no provider sends. The journal keeps the raw bytes either way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses
from typing import Any

from capture.providers.base import (
    MAX_DEPTH,
    BadRequest,
    CallEvent,
    ContactEvent,
    Event,
    ParseResult,
    ReplyEvent,
    quoted,
)
from storage.identifiers import MAX_HANDLE_CHARS
from storage.touches import MAX_TEXT_CHARS

#: Phones and emails one touch keeps as match keys; the rest stay in its message. Nobody has more,
#: and each one costs a look-up in the write that holds the database lock.
MAX_IDENTIFIERS = 20
#: No phone number or email address is longer (an address is at most 254 characters, RFC 5321); a
#: longer "identifier" is text, and kept as text: an index of megabyte keys costs every later write.
MAX_IDENTIFIER_CHARS = 254
#: A name is a name.
MAX_NAME_CHARS = 1024
#: A call longer than a week is a broken counter, not a call.
MAX_CALL_SECONDS = 7 * 24 * 3600
#: The largest integer SQLite stores.
MAX_INTEGER = 2**63 - 1
#: Events dated before this come from a clock that was never set (the epoch, a zero timestamp).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
#: How far past its receipt an event may be dated: time zones and clocks disagree by hours, not days.
AHEAD = timedelta(days=1)
#: The key of a touch's fields that lists what settling changed, for whoever reads the touch.
SETTLED_FIELD = "leadline_settled"

#: Integer attributes of an event with their meaning and range; any other must fit SQLite.
_RANGES: dict[str, tuple[str, int, int]] = {
    "duration_s": ("the call's duration", 0, MAX_CALL_SECONDS),
    "talk_s": ("the call's talk time", 0, MAX_CALL_SECONDS),
    "seq": ("the event's sequence number", 0, MAX_INTEGER),
}
#: Each event type's attributes, looked up once rather than per event.
_NAMES = {kind: tuple(f.name for f in fields(kind)) for kind in (ContactEvent, CallEvent, ReplyEvent)}
_SURROGATE = re.compile("[\ud800-\udfff]")


def text(value: str) -> str:
    """NUL removed and lone surrogates (bytes that were not UTF-8) as U+FFFD: text SQLite can store."""
    if "\x00" in value:  # memchr: a megabyte in well under a millisecond
        value = value.replace("\x00", "")
    if value.isascii():  # a flag of the string, not a scan: most values end here
        return value
    try:
        value.encode("utf-8")  # one pass in C, ten times faster than a regex search
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    return value


def seconds(value: object, name: str) -> int | None:
    """A count of seconds as a provider writes it (``94``, ``"94"``, ``"94.0"``); None when empty.

    What no call can last (negative, not finite, over a week) is the sender's error, named as they
    named it.
    """
    written = "" if value is None else str(value).strip()
    if not written:
        return None
    try:
        number = float(written)
    except ValueError:
        raise BadRequest(f"{name} is not a number of seconds: {quoted(written)}") from None
    if not 0 <= number <= MAX_CALL_SECONDS:  # NaN fails both comparisons
        raise BadRequest(f"{name} of {_shown(written)} s is out of range: 0 to {MAX_CALL_SECONDS} s (a week)")
    return int(number)


def settle(
    result: ParseResult, replay_key: str | None, received_at: datetime
) -> tuple[ParseResult, str | None]:
    """The parse result and replay key as storage can take them; raises :class:`BadRequest` for what
    cannot be stored without guessing."""
    received = _aware(received_at)
    notes: list[str] = []
    events = [
        event if _as_sent(event, received) else _event(event, received, notes) for event in result.events
    ]
    note = "; ".join(([text(result.note)] if result.note else []) + notes) or None
    key = None if replay_key is None else text(replay_key)
    if note == result.note and all(a is b for a, b in zip(events, result.events, strict=True)):
        return result, key  # the usual request: nothing to settle, nothing copied
    return replace(result, events=events, note=note), key


def _as_sent(event: Event, received_at: datetime) -> bool:
    """Whether :func:`_event` would keep ``event`` as it is, as it keeps nearly every form and chat
    message: decided with a few calls into C for the whole event, where :func:`_event` makes a call
    or more per field (a form's settling cost 151k instructions; ``bench/instructions.py``).

    It answers True only for what it can see at once needs nothing: text storable and within its
    limits, identifiers few, distinct and short enough, a time within range, flat fields. Anything
    else (handles, recipients, nesting, numbers) is for :func:`_event`, so it may send there an event
    that needs nothing, but never keeps one that does (tests/capture/test_settle_shortcut.py).
    """
    if type(event) is not ContactEvent or event.handles != () or event.to_address or event.campaign_ref:
        return False
    moment = event.occurred_at
    if moment is not None and (
        type(moment) is not datetime or not EARLIEST <= _aware(moment) <= received_at + AHEAD
    ):
        return False
    phones, emails, former = event.phones, event.emails, event.former_ids
    if type(phones) is not tuple or type(emails) is not tuple or type(former) is not tuple:
        return False
    identifiers = phones + emails
    texts = [
        value
        for value in (event.channel, event.external_id, event.name, event.message, event.tracking_number)
        if value is not None
    ]
    texts += [value for value in (event.region, event.dropped, event.conversation) if value is not None]
    if {*map(type, texts), *map(type, identifiers), *map(type, former)} - {str}:
        return False
    if len(identifiers) > MAX_IDENTIFIERS or len(set(phones)) < len(phones) or len(set(emails)) < len(emails):
        return False
    if max(map(len, identifiers), default=0) > MAX_IDENTIFIER_CHARS:
        return False
    if len(event.name or "") > MAX_NAME_CHARS or max(map(len, texts), default=0) > MAX_TEXT_CHARS:
        return False
    utm, fields = event.utm, event.fields
    flat = (not utm or (type(utm) is dict and _flat_text(utm))) and (
        not fields or (type(fields) is dict and _flat_text(fields))
    )
    return flat and _storable([*texts, *identifiers, *former])


def _event(event: Event, received_at: datetime, notes: list[str]) -> Event:
    flags: list[str] = []
    changed: dict[str, Any] = {}
    for name in _NAMES[type(event)]:
        value = getattr(event, name)
        if not value:
            continue  # None, False, 0, "" and empty containers settle to themselves: no call
        if type(value) is str and _plain(value):
            continue
        settled = _value(name, value, received_at, flags)
        if settled is not value and settled != value:
            changed[name] = settled
    if isinstance(event, ContactEvent):
        # The identifier rules read what settling made of the fields they look at.
        names = ("phones", "emails", "message", "handles", "to_address")
        changes = {name: changed.get(name, getattr(event, name)) for name in names}
        _keep_identifiers(changes, flags)
        _keep_handles(changes, flags)
        _readable_recipients(changes, flags)
        for name in names:
            value = changes[name]
            if value is not getattr(event, name) and value != getattr(event, name):
                changed[name] = value
    if flags:
        notes += flags
    if flags and not isinstance(event, ReplyEvent):  # a reply keeps no fields: its note says it
        fields = (
            changed["fields"] if "fields" in changed else _value("fields", event.fields, received_at, flags)
        )
        changed["fields"] = {**fields, SETTLED_FIELD: flags}
    # Only what settling changed is copied: an event as sent is kept as it is.
    return replace(event, **changed) if changed else event


def _value(name: str, value: Any, received_at: datetime, flags: list[str]) -> Any:
    if isinstance(value, str):
        return _cut(name, text(value), MAX_NAME_CHARS if name == "name" else MAX_TEXT_CHARS, flags)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, tuple):
        return tuple(text(v) if isinstance(v, str) else v for v in value)
    if isinstance(value, datetime):
        return _moment(name, value, received_at, flags)
    if isinstance(value, int):
        return _integer(name, value)
    try:
        return _tree(value, 1)
    except _Refused as refused:
        path = ".".join([name, *(key[:40] for key in reversed(refused.path[-3:]))])
        more = ".…" if len(refused.path) > 3 else ""
        raise BadRequest(f"{path}{more}: {refused.problem}") from None


def _integer(name: str, value: int) -> int:
    what, low, high = _RANGES.get(name, (name, -MAX_INTEGER, MAX_INTEGER))
    if not low <= value <= high:
        unit = " s" if high == MAX_CALL_SECONDS else ""
        raise BadRequest(
            f"{what} ({name}) of {_shown(str(value))}{unit} is out of range: {low} to {high}{unit}"
        )
    return value


def _moment(name: str, value: datetime, received_at: datetime, flags: list[str]) -> datetime:
    moment = _aware(value)
    if moment < EARLIEST:
        why = "before 2000"
    elif moment > received_at + AHEAD:
        why = "more than a day after it was received"
    else:
        return value
    flags.append(f"{name} {moment.isoformat()} is {why}: the time received is used")
    return received_at


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cut(name: str, value: str, limit: int, flags: list[str]) -> str:
    if len(value) <= limit:
        return value
    flags.append(f"{name} cut from {len(value)} to {limit} characters: the whole request is in the journal")
    return value[:limit] + "…"


def _readable_recipients(changes: dict[str, Any], flags: list[str]) -> None:
    """Attribution reads the recipients with the stdlib's address parser, which recurses on nested
    comments (``((((…``): what it cannot read is dropped here, before the answer, not failed later."""
    to = changes.get("to_address")
    if not to:
        return
    try:
        getaddresses([to])
    except (RecursionError, ValueError, IndexError):
        changes["to_address"] = None
        flags.append("to_address could not be read as addresses: no campaign is taken from it")


def _keep_identifiers(changes: dict[str, Any], flags: list[str]) -> None:
    """At most :data:`MAX_IDENTIFIERS`, shared fairly when both kinds are many; the rest to the message.

    A value too long to be a phone or an address goes to the message too, cut like any text.
    """
    long = [v for v in (*changes["phones"], *changes["emails"]) if len(v) > MAX_IDENTIFIER_CHARS]
    if long:
        flags.append(f"{len(long)} value(s) too long for a phone or an email: kept as text in the message")
        text_kept = "\n".join(v[:MAX_TEXT_CHARS] for v in long)
        changes["message"] = _cut(
            "message", "\n\n".join(filter(None, [changes["message"], text_kept])), MAX_TEXT_CHARS, flags
        )
    phones: tuple[str, ...] = tuple(
        dict.fromkeys(v for v in changes["phones"] if len(v) <= MAX_IDENTIFIER_CHARS)
    )
    emails: tuple[str, ...] = tuple(
        dict.fromkeys(v for v in changes["emails"] if len(v) <= MAX_IDENTIFIER_CHARS)
    )
    kept_phones = min(len(phones), max(MAX_IDENTIFIERS // 2, MAX_IDENTIFIERS - len(emails)))
    kept_emails = min(len(emails), MAX_IDENTIFIERS - kept_phones)
    rest = phones[kept_phones:] + emails[kept_emails:]
    changes["phones"], changes["emails"] = phones[:kept_phones], emails[:kept_emails]
    if rest:
        changes["message"] = "\n\n".join(filter(None, [changes["message"], "\n".join(rest)]))
        flags.append(
            f"{len(rest)} more phones and emails than the {MAX_IDENTIFIERS} a touch keeps: they are in its message"
        )


def _keep_handles(changes: dict[str, Any], flags: list[str]) -> None:
    """Chat ids as text SQLite stores, at most :data:`MAX_IDENTIFIERS`, none longer than any id is."""
    given = changes["handles"]
    fit = [
        (text(str(kind)), text(str(value)))
        for kind, value in given[:MAX_IDENTIFIERS]
        if len(str(value)) <= MAX_HANDLE_CHARS
    ]
    if len(fit) < len(given):
        flags.append(
            f"{len(given) - len(fit)} chat id(s) too long, or past the {MAX_IDENTIFIERS} a touch keeps"
        )
    changes["handles"] = tuple(dict.fromkeys(fit))


class _Refused(Exception):
    """A value deep inside an event's fields that cannot be stored; ``path`` is filled on the way out."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str] = []


def _tree(value: Any, depth: int) -> Any:
    """Fields as a provider nested them, their text settled; recursion is bounded by MAX_DEPTH."""
    if isinstance(value, str):
        return _leaf(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise _Refused(f"{value} is not a finite number")
    if not isinstance(value, dict | list | tuple | Mapping):  # dict first: the ABC's check is slow
        return value
    if depth > MAX_DEPTH:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict | Mapping):
        if type(value) is dict and _flat_text(value):
            return value
        settled: dict[Any, Any] = {}
        for key, item in value.items():
            name = text(key) if isinstance(key, str) else key
            if isinstance(item, str):  # most fields: no call, no frame
                settled[name] = _leaf(item)
                continue
            try:
                settled[name] = _tree(item, depth + 1)
            except _Refused as refused:
                refused.path.append(str(name))
                raise
        return settled
    items: list[Any] = []
    for n, item in enumerate(value):
        try:
            items.append(_tree(item, depth + 1))
        except _Refused as refused:
            refused.path.append(str(n))
            raise
    return items


def _plain(value: str) -> bool:
    """Text that settles to itself whatever its field: ASCII, no NUL, short. Most values are."""
    return value.isascii() and "\x00" not in value and len(value) <= MAX_NAME_CHARS


def _flat_text(value: dict[Any, Any]) -> bool:
    """A form's fields, as most are: names and values that are text settling to themselves. Tested
    in a few calls into C for the whole dict, not a call per value."""
    if {*map(type, value), *map(type, value.values())} != {str}:
        return False
    return max(map(len, value.values())) <= MAX_TEXT_CHARS and _storable([*value, *value.values()])


def _storable(texts: list[str]) -> bool:
    """No NUL and no lone surrogate in any of ``texts``: what :func:`text` keeps as it is."""
    every = "".join(texts)
    if "\x00" in every:
        return False
    if every.isascii():
        return True
    try:
        every.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _leaf(value: str) -> str:
    """A field's text as a touch keeps it: the whole value stays in the journal's raw request."""
    value = text(value)
    return value if len(value) <= MAX_TEXT_CHARS else value[:MAX_TEXT_CHARS] + "…"


def _shown(written: str) -> str:
    return written if len(written) <= 24 else written[:20] + "…"
