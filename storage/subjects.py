"""One person as the data protection laws see them: everything Leadline holds about them, found.

A person is a live contact and every contact merged into it. What belongs to them is found two
ways: by the rows that point at them (touches, call events, registrations, leads, the journal rows
their touches came from), and by the text that names them where nothing points (a request that was
refused before it became a touch, a Telegram message, an outgoing webhook). The text is searched
for their phone numbers as digits in any spelling (``8 (916) 123-45-67``, ``+7 916 1234567``,
``79161234567``, URL-encoded) and their email addresses, never for a name alone: a name is shared by
strangers, a number is not. ``leadline subject-export`` shows the result and
:mod:`storage.erasure` erases it.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import quote, quote_plus, unquote_plus

import phonenumbers
from sqlite_utils import Database

from storage.contacts import live_contact
from storage.db import chunks
from storage.identifiers import HANDLE_KINDS, Kind, parse_query
from storage.mime import encoded_texts

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


class SubjectNotFound(LookupError):
    """No contact, or more than one (``candidates``), matches what was given; the message says which."""

    def __init__(self, message: str, candidates: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.candidates = tuple(candidates)


def find_subject(db: Database, query: str, region: str) -> int:
    """The live contact a phone number, email or ``#id`` names; raises :class:`SubjectNotFound`."""
    text = query.strip()
    if match := re.fullmatch(r"#(\d{1,18})", text):
        row = db.execute("SELECT id FROM contacts WHERE id = ?", [int(match[1])]).fetchone()
        if row is None:
            raise SubjectNotFound(f"no contact {text}")
        return live_contact(db, int(row[0]))
    ident = parse_query(text, region)
    values = {text, text.lower(), text.removeprefix("@").lower()} | (
        {ident.value} if ident is not None else set()
    )
    marks = ",".join("?" * len(values))
    rows = db.execute(
        f"SELECT DISTINCT contact_id FROM identifiers WHERE value IN ({marks}) OR raw IN ({marks})",
        [*values, *values],
    ).fetchall()
    found = sorted({live_contact(db, int(r[0])) for r in rows})
    if not found:
        raise SubjectNotFound("no contact has this phone number or email")
    if len(found) > 1:
        ids = ", ".join(f"#{i}" for i in found)
        raise SubjectNotFound(f"several contacts have it ({ids}): give the #id of the one meant", found)
    return found[0]


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


#: The columns of a touch that may hold a person's number or address as it was sent: a provider's
#: fields (``payload``) are read one by one.
TouchColumn = Literal["phone_raw", "email_raw", "message", "payload"]


@dataclass(frozen=True)
class Subject:
    """The rows that point at one person; the text scans (:func:`scan`) add what only names them."""

    contact_id: int
    contact_ids: tuple[int, ...]
    identifiers: tuple[tuple[str, str, str, bool], ...]
    touch_ids: tuple[int, ...]
    #: ``(source, external_id)`` of their call touches: pending recordings and bindings are keyed so.
    calls: tuple[tuple[str, str], ...]
    registration_ids: tuple[int, ...]
    lead_ids: tuple[int, ...]
    nudge_ids: tuple[int, ...]
    #: Journal rows their touches, call events and chat messages came from, and the retries of their
    #: forms and mail (``touch_requests``; a call's or a chat's retry names them by number or id).
    journal_ids: tuple[int, ...]
    matcher: Matcher = field(default_factory=Matcher)
    #: ``(touch id, column)`` of another contact's touches that carry their number or address: a
    #: touch that named two people a manager kept apart went to its phone's owner.
    named_in: tuple[tuple[int, TouchColumn], ...] = ()

    @property
    def kinds(self) -> list[Kind]:
        """The identifiers table holds only :data:`Kind` values: every row went through storage/identifiers.py."""
        return sorted({cast(Kind, kind) for kind, *_ in self.identifiers})


def _ids(db: Database, sql: str, params: Sequence[Any]) -> list[int]:
    return [int(r[0]) for r in db.execute(sql, list(params)).fetchall() if r[0] is not None]


def _in(db: Database, sql: str, ids: Sequence[int], extra: Sequence[Any] = ()) -> list[int]:
    """``sql`` with ``{marks}`` for an IN list of ``ids``, run in slices; the ids it returns."""
    found: list[int] = []
    for chunk in chunks(sorted(set(ids))):
        found += _ids(db, sql.replace("{marks}", ",".join("?" * len(chunk))), [*chunk, *extra])
    return found


def family(db: Database, contact_id: int) -> list[int]:
    """The contact and every contact merged into it, however deep (merges not undone)."""
    found, frontier = {contact_id}, [contact_id]
    while frontier:
        merged = _in(
            db, "SELECT merged_id FROM merges WHERE survivor_id IN ({marks}) AND undone_at IS NULL", frontier
        )
        frontier = [m for m in merged if m not in found]
        found.update(frontier)
    return sorted(found)


def subject_of(db: Database, contact_id: int, *, unlinked: bool = True) -> Subject | None:
    """What points at the person whose contact is ``contact_id`` (followed to its live contact).

    ``unlinked`` adds touches no contact holds that carry their number or address (a read of every
    such touch): an erasure on request wants them, a retention pass over many people does without.
    """
    if db.execute("SELECT 1 FROM contacts WHERE id = ?", [contact_id]).fetchone() is None:
        return None
    live = live_contact(db, contact_id)
    people = family(db, live)
    identifiers: list[tuple[str, str, str, bool]] = []
    for chunk in chunks(people):
        marks = ",".join("?" * len(chunk))
        identifiers += [
            (str(k), str(v), str(r), bool(ok))
            for k, v, r, ok in db.execute(
                f"SELECT kind, value, raw, valid FROM identifiers WHERE contact_id IN ({marks}) ORDER BY id",
                list(chunk),
            )
        ]
        # An identifier both contacts of a merge held was removed from the merged one and kept in
        # the merge's record, so that an undo can put it back.
        for (moved,) in db.execute(
            f"SELECT moved FROM merges WHERE survivor_id IN ({marks}) OR merged_id IN ({marks})",
            [*chunk, *chunk],
        ):
            for row in json.loads(moved or "{}").get("duplicate_identifiers", []):
                identifiers.append((str(row[1]), str(row[2]), str(row[3]), bool(row[4])))
    matcher = Matcher.of(identifiers)
    touches = _in(db, "SELECT id FROM touches WHERE contact_id IN ({marks})", people)
    if unlinked:
        touches += _unlinked_touches(db, matcher)
    calls: list[tuple[str, str]] = []
    for chunk in chunks(sorted(set(touches))):
        marks = ",".join("?" * len(chunk))
        calls += [
            (str(s), str(e))
            for s, e in db.execute(
                f"SELECT source, external_id FROM touches WHERE channel = 'call' AND id IN ({marks})",
                list(chunk),
            )
        ]
    leads = _in(db, "SELECT id FROM leads WHERE contact_id IN ({marks})", people)
    journal = _in(db, "SELECT journal_id FROM touches WHERE id IN ({marks})", touches)
    journal += _in(db, "SELECT journal_id FROM touch_requests WHERE touch_id IN ({marks})", touches)
    journal += _in(db, "SELECT journal_id FROM call_events WHERE touch_id IN ({marks})", touches)
    journal += _in(db, "SELECT journal_id FROM chat_messages WHERE touch_id IN ({marks})", touches)
    journal += _in(db, "SELECT journal_id FROM chat_replies WHERE touch_id IN ({marks})", touches)
    # and the replies still waiting in their dialogues (one sent before the person first wrote)
    journal += _in(
        db,
        "SELECT journal_id FROM chat_replies WHERE touch_id IS NULL AND (source, conversation) IN"
        " (SELECT source, conversation FROM touches WHERE conversation IS NOT NULL AND id IN ({marks}))",
        touches,
    )
    for source, call_id in calls:
        journal += _ids(
            db,
            "SELECT journal_id FROM pending_recordings WHERE source = ? AND call_id = ?",
            [source, call_id],
        )
    nudges = _in(db, "SELECT id FROM nudges WHERE contact_id IN ({marks})", people)
    nudges += _in(db, "SELECT id FROM nudges WHERE touch_id IN ({marks})", touches)
    nudges += _in(db, "SELECT id FROM nudges WHERE lead_id IN ({marks})", leads)
    return Subject(
        contact_id=live,
        contact_ids=tuple(people),
        identifiers=tuple(dict.fromkeys(identifiers)),
        touch_ids=tuple(sorted(set(touches))),
        calls=tuple(sorted(set(calls))),
        registration_ids=tuple(
            sorted(_in(db, "SELECT id FROM registrations WHERE contact_id IN ({marks})", people))
        ),
        lead_ids=tuple(sorted(set(leads))),
        nudge_ids=tuple(sorted(set(nudges))),
        journal_ids=tuple(sorted(set(journal))),
        matcher=matcher,
        named_in=tuple(_named_in(db, people, matcher)),
    )


def name_and_erasure(db: Database, contact_id: int) -> dict[str, Any]:
    """The contact's name and when it was erased, if it was: what ``leadline forget`` asks about."""
    return next(db.query("SELECT name, erased_at FROM contacts WHERE id = ?", [contact_id]))


def _unlinked_touches(db: Database, matcher: Matcher) -> list[int]:
    """Touches with the person's number or address that no contact holds (dropped ones)."""
    if not matcher:
        return []
    rows = db.execute(
        "SELECT id, phone_raw, email_raw FROM touches WHERE contact_id IS NULL"
        " AND (phone_raw IS NOT NULL OR email_raw IS NOT NULL)"
    )
    return [int(i) for i, p, e in rows if matcher(" ".join(filter(None, (p, e))))]


def _named_in(db: Database, people: Sequence[int], matcher: Matcher) -> list[tuple[int, TouchColumn]]:
    """The columns of other people's touches that carry the person's number or address.

    Only a contact a manager kept apart from them (an undone merge, "not the same person") holds
    such a touch: from then on a touch naming both goes to the one its phone belongs to, and its
    email stays the other's (docs/privacy.md, "Splits that stick"). So only those contacts, and the
    ones merged into them since, are read.
    """
    if not matcher:
        return []
    apart = _in(db, "SELECT high_id FROM merge_exceptions WHERE low_id IN ({marks})", people)
    apart += _in(db, "SELECT low_id FROM merge_exceptions WHERE high_id IN ({marks})", people)
    others = {c for a in set(apart) for c in family(db, live_contact(db, a))} - set(people)
    found: list[tuple[int, TouchColumn]] = []
    for chunk in chunks(sorted(others)):
        rows = db.execute(
            "SELECT id, phone_raw, email_raw, message, payload FROM touches"
            f" WHERE contact_id IN ({','.join('?' * len(chunk))})",
            list(chunk),
        )
        for touch_id, *values in rows:
            found += [
                (int(touch_id), column)
                for column, value in zip(_TOUCH_COLUMNS, values, strict=True)
                if value
                and (their_fields(str(value), matcher) if column == "payload" else matcher(str(value)))
            ]
    return found


_TOUCH_COLUMNS: tuple[TouchColumn, ...] = ("phone_raw", "email_raw", "message", "payload")


def their_fields(payload: str, matcher: Matcher) -> dict[str, Any]:
    """The fields of a touch's ``payload`` (a provider's fields, JSON) that name the person."""
    fields = json.loads(payload or "{}")
    if not isinstance(fields, dict):
        return {}
    return {k: v for k, v in fields.items() if matcher(v if isinstance(v, str) else json.dumps(v))}


@dataclass(frozen=True)
class Marks:
    """How far a text scan went in each table (the highest id it read), so a later scan goes on."""

    journal: int = 0
    outbox: int = 0


@dataclass(frozen=True)
class Found:
    """Rows that only name the person, and how far the scans that found them went."""

    journal_ids: tuple[int, ...] = ()
    outbox_ids: tuple[int, ...] = ()
    marks: Marks = Marks()

    def __or__(self, other: Found) -> Found:
        return Found(
            tuple(sorted({*self.journal_ids, *other.journal_ids})),
            tuple(sorted({*self.outbox_ids, *other.outbox_ids})),
            Marks(max(self.marks.journal, other.marks.journal), max(self.marks.outbox, other.marks.outbox)),
        )


def request_text(body: bytes, query_string: str, headers: str) -> str:
    """A raw request as the matcher reads it: its query, headers and body, and the text of each mail
    part in it that was sent base64 or quoted-printable, where capture read the person's number."""
    texts = [query_string, headers, body.decode("utf-8", "replace")]
    return "\n".join(texts + encoded_texts(body, _content_type(headers)))


def _content_type(headers: str) -> str:
    """The Content-Type among a journal row's headers (a JSON list of name and value pairs)."""
    try:
        pairs = json.loads(headers)
    except ValueError:
        return ""
    found = (
        pair[1]
        for pair in (pairs if isinstance(pairs, list) else [])
        if isinstance(pair, list) and len(pair) == 2 and str(pair[0]).lower() == "content-type"
    )
    return str(next(found, ""))


#: Which raw requests :func:`scan` reads for the person: every one (``all``), only those that never
#: became a touch (``refused``: received, rejected or failed), or none.
JournalScan = Literal["all", "refused", "none"]
_NOT_TOUCHES = "status IN ('received', 'rejected', 'failed')"


def scan(db: Database, subject: Subject, after: Marks = Marks(), *, journal: JournalScan = "all") -> Found:
    """The journal rows and outbox messages past ``after`` that name the person or show their cards.

    Every raw request is searched in SQL for the person's numbers and addresses as raw bytes, and
    each one found is read as text; a request that never became a touch (refused, failed, waiting)
    is read as text whatever its bytes, where a number may be spaced or URL-encoded. Only a request
    the matcher finds the person in counts: a byte string inside another person's address is not
    them. Messages to Telegram are read as text, and those that carried the person's nudges or
    cards are added by their link. Costs one pass over each table past ``after``; ``journal``
    narrows the requests read (a retention pass for many people at once reads the refused ones).
    """
    matcher = subject.matcher
    top_journal = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM journal").fetchone()[0])
    top_outbox = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0])
    requests: set[int] = set()
    if matcher and journal != "none":
        needles = matcher.needles if journal == "all" else []
        terms = " OR ".join(
            [
                _NOT_TOUCHES,
                *["instr(body, ?) > 0"] * len(needles),
                *["instr(query_string, ?) > 0"] * len(needles),
            ]
        )
        # The bytes only pick the rows worth reading: ``ann@example.org`` is inside
        # ``joann@example.org``, and a chat id inside a longer number. Each row is kept only when
        # the matcher finds the person in it, whole.
        rows = db.execute(
            "SELECT id, body, query_string, headers FROM journal WHERE id > ? AND id <= ?"
            f" AND redacted_at IS NULL AND ({terms})",
            [after.journal, top_journal, *needles, *(n.decode() for n in needles)],
        )
        requests.update(
            int(i) for i, b, q, h in rows if matcher(request_text(bytes(b or b""), str(q), str(h)))
        )
    outbox: set[int] = set()
    if matcher:
        rows = db.execute(
            "SELECT id, payload FROM outbox WHERE id > ? AND id <= ? AND payload != '{}'",
            [after.outbox, top_outbox],
        )
        # A message's text is Telegram's HTML, which writes ``o'brien@`` as ``o&#x27;brien@``.
        outbox.update(int(i) for i, payload in rows if matcher(html.unescape(str(payload))))
    outbox.update(
        _in(
            db,
            "SELECT m.outbox_id FROM nudge_deliveries d JOIN nudge_messages m ON m.id = d.message_id"
            " WHERE d.nudge_id IN ({marks}) AND m.outbox_id > ?",
            subject.nudge_ids,
            [after.outbox],
        )
    )
    outbox.update(cards_of(db, subject, after.outbox))
    return Found(tuple(sorted(requests)), tuple(sorted(outbox)), Marks(top_journal, top_outbox))


def cards_of(db: Database, subject: Subject, after: int = 0) -> set[int]:
    """The Telegram messages about the person alone, by link, past outbox id ``after``: their nudges'
    cards, their cards on arrival and a sent card's edits. A card writes an address HTML-escaped
    (``o&#x27;brien@``), and a number too short to search for is on it all the same."""
    found = set(
        _in(
            db,
            "SELECT outbox_id FROM nudges WHERE id IN ({marks}) AND outbox_id > ?",
            subject.nudge_ids,
            [after],
        )
    )
    found.update(
        _in(
            db,
            "SELECT outbox_id FROM arrival_cards WHERE contact_id IN ({marks}) AND outbox_id > ?",
            subject.contact_ids,
            [after],
        )
    )
    found.update(
        _in(
            db,
            "SELECT e.id FROM arrival_cards a JOIN outbox o ON o.id = a.outbox_id JOIN outbox e"
            " ON e.chat_id = o.chat_id AND e.method = 'editMessageText'"
            " AND json_extract(e.payload, '$.message_id') = o.message_id"
            " WHERE a.contact_id IN ({marks}) AND o.message_id IS NOT NULL AND e.id > ?",
            subject.contact_ids,
            [after],
        )
    )
    return found


# -- what a person is shown ------------------------------------------------------------------------


def _rows(db: Database, sql: str, ids: Sequence[int]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for chunk in chunks(sorted(set(ids))):
        found += list(db.query(sql.replace("{marks}", ",".join("?" * len(chunk))), list(chunk)))
    return found


def _json_columns(row: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        if isinstance(row.get(name), str):
            row[name] = json.loads(row[name])
    return row


def raw_request(row: dict[str, Any]) -> dict[str, Any]:
    """A journal row as a person reads it: the body as text when it is text, else base64."""
    body = bytes(row.pop("body") or b"")
    try:
        row["body"], row["body_encoding"] = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        row["body"], row["body_encoding"] = base64.b64encode(body).decode("ascii"), "base64"
    row["headers"] = json.loads(row["headers"] or "[]")
    return row


def export_subject(db: Database, contact_id: int) -> dict[str, Any] | None:
    """Everything held about the person: contacts, identifiers, touches, registrations, leads with
    their changes, block-list entries, the raw requests, and what was said about them (Telegram
    messages, webhooks to a CRM, nudges, the bot's drafts), each row whole."""
    subject = subject_of(db, contact_id)
    if subject is None:
        return None
    found = scan(db, subject)
    people = subject.contact_ids
    leads = _rows(db, "SELECT * FROM leads WHERE id IN ({marks}) ORDER BY id", subject.lead_ids)
    changes = _rows(db, "SELECT * FROM lead_changes WHERE lead_id IN ({marks}) ORDER BY id", subject.lead_ids)
    for lead in leads:
        _json_columns(lead, "fields")
        lead["changes"] = [c for c in changes if c["lead_id"] == lead["id"]]
    blocked = [
        dict(zip(("kind", "value", "reason", "at"), r, strict=True))
        for kind, value, *_ in subject.identifiers
        for r in db.execute(
            "SELECT kind, value, reason, at FROM blocklist WHERE kind = ? AND value = ?", [kind, value]
        )
    ]
    requests = _rows(
        db,
        "SELECT id, source, provider, method, path, query_string, headers, body, body_size, remote, url, received_at,"
        " status, http_status, reason, note, processed_at, redacted, redacted_at FROM journal WHERE id IN ({marks})"
        " ORDER BY id",
        [*subject.journal_ids, *found.journal_ids],
    )
    return {
        "contact_id": subject.contact_id,
        "contacts": _rows(
            db,
            "SELECT id, name, created_at, updated_at, merged_into, blocked, do_not_contact, erased_at FROM contacts"
            " WHERE id IN ({marks}) ORDER BY id",
            people,
        ),
        "identifiers": [
            dict(zip(("kind", "value", "raw", "valid"), i, strict=True)) for i in subject.identifiers
        ],
        "touches": [
            _json_columns(t, "utm", "payload")
            for t in _rows(
                db, "SELECT * FROM touches WHERE id IN ({marks}) ORDER BY occurred_at, id", subject.touch_ids
            )
        ],
        # Another contact's touches that carry their number or address: only what names them,
        # since the rest of the touch is the other person's.
        "named_in_touches": _named_in_rows(db, subject),
        "registrations": _rows(
            db, "SELECT * FROM registrations WHERE id IN ({marks}) ORDER BY id", subject.registration_ids
        ),
        "leads": leads,
        "blocklist": blocked,
        "erasures": _rows(
            db,
            "SELECT id, at, origin, actor, reason, contact_id, kinds FROM erasures WHERE contact_id IN ({marks})",
            people,
        ),
        "requests": [raw_request(r) for r in requests],
        # What Leadline said about them, to staff and to a CRM, and what it keeps to say it.
        "messages": [
            _json_columns(m, "payload")
            for m in _rows(
                db,
                "SELECT id, chat_id, method, payload, status, created_at, sent_at FROM outbox"
                " WHERE id IN ({marks}) ORDER BY id",
                # Their cards only: a digest, a list or a search result that named them names
                # others too, and is erased for them (forget) but not shown to them.
                sorted(cards_of(db, subject)),
            )
        ],
        "webhooks": [_json_columns(w, "payload") for w in _deliveries(db, subject)],
        "nudges": _rows(
            db,
            "SELECT id, kind, level, staff_id, due_at, created_at, sent_at, acted_at FROM nudges"
            " WHERE id IN ({marks}) ORDER BY id",
            subject.nudge_ids,
        ),
        "drafts": [_json_columns(d, "data") for d in _drafts(db, people, subject.touch_ids)],
    }


def _deliveries(db: Database, subject: Subject) -> list[dict[str, Any]]:
    """The webhooks to a CRM about their registrations and leads, by the ids in the payload, as
    erasure finds them: the contact id there is the holder when it was queued, another person's if
    a merge has been undone since."""
    columns = (
        "SELECT id, endpoint, event_type, payload, status, created_at, delivered_at FROM webhook_deliveries"
        " WHERE json_valid(payload) AND"
    )
    found = {
        w["id"]: w
        for w in [
            *_rows(db, f"{columns} json_extract(payload, '$.data.lead_id') IN ({{marks}})", subject.lead_ids),
            *_rows(
                db,
                f"{columns} event_type = 'registration.created' AND json_extract(payload, '$.data.id') IN ({{marks}})",
                subject.registration_ids,
            ),
        ]
    }
    return [found[key] for key in sorted(found)]


def _named_in_rows(db: Database, subject: Subject) -> list[dict[str, Any]]:
    """Each touch of :attr:`Subject.named_in` with its id, time and channel, and what of it is the
    person's: the columns that name them, and the provider's fields that do."""
    columns: dict[int, list[TouchColumn]] = {}
    for touch_id, column in subject.named_in:
        columns.setdefault(touch_id, []).append(column)
    rows = _rows(db, "SELECT * FROM touches WHERE id IN ({marks}) ORDER BY occurred_at, id", list(columns))
    return [
        {"id": t["id"], "occurred_at": t["occurred_at"], "channel": t["channel"]}
        | {
            column: their_fields(t[column], subject.matcher) if column == "payload" else t[column]
            for column in columns[t["id"]]
        }
        for t in rows
    ]


def _drafts(db: Database, people: Sequence[int], touches: Sequence[int]) -> list[dict[str, Any]]:
    """The bot's unsaved cards about them, by contact or by touch, as erasure finds them."""
    columns = "SELECT key, state, data, contact_id, touch_id, updated_at FROM bot_states"
    found = {
        d["key"]: d
        for d in [
            *_rows(db, f"{columns} WHERE contact_id IN ({{marks}})", people),
            *_rows(db, f"{columns} WHERE touch_id IN ({{marks}})", touches),
        ]
    }
    return sorted(found.values(), key=lambda d: (d["updated_at"], d["key"]))
