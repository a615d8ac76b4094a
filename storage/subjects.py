"""One person as the data protection laws see them: everything Leadline holds about them, found.

A person is a live contact and every contact merged into it. What belongs to them is found two
ways: by the rows that point at them (touches, call events, registrations, leads, the journal rows
their touches came from), and by the text that names them where nothing points (a request that was
refused before it became a touch, a Telegram message, an outgoing webhook). The text is searched
for their phone numbers as digits in any spelling (``8 (916) 123-45-67``, ``+7 916 1234567``,
``79161234567``, URL-encoded) and their email addresses, never for a name alone: a name is shared by
strangers, a number is not. ``leadline subject-export`` shows the result and
:mod:`storage.erasure` erases it.

This module finds the person and the rows that point at them; the text is matched by
:mod:`storage.subject_matcher` and scanned by :mod:`storage.subject_scans`, and the export is
:mod:`storage.subject_export`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sqlite_utils import Database

from storage.contacts import live_contact
from storage.db import chunks
from storage.identifiers import Kind, parse_query
from storage.subject_matcher import Matcher


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


#: The columns of a touch that may hold a person's number or address as it was sent: a provider's
#: fields (``payload``) are read one by one.
TouchColumn = Literal["phone_raw", "email_raw", "message", "payload"]


@dataclass(frozen=True)
class Subject:
    """The rows that point at one person; the text scans (:func:`storage.subject_scans.scan`) add what
    only names them."""

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


def ids_in(db: Database, sql: str, ids: Sequence[int], extra: Sequence[Any] = ()) -> list[int]:
    """``sql`` with ``{marks}`` for an IN list of ``ids``, run in slices; the ids it returns."""
    found: list[int] = []
    for chunk in chunks(sorted(set(ids))):
        found += _ids(db, sql.replace("{marks}", ",".join("?" * len(chunk))), [*chunk, *extra])
    return found


def family(db: Database, contact_id: int) -> list[int]:
    """The contact and every contact merged into it, however deep (merges not undone)."""
    found, frontier = {contact_id}, [contact_id]
    while frontier:
        merged = ids_in(
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
    touches = ids_in(db, "SELECT id FROM touches WHERE contact_id IN ({marks})", people)
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
    leads = ids_in(db, "SELECT id FROM leads WHERE contact_id IN ({marks})", people)
    journal = ids_in(db, "SELECT journal_id FROM touches WHERE id IN ({marks})", touches)
    journal += ids_in(db, "SELECT journal_id FROM touch_requests WHERE touch_id IN ({marks})", touches)
    journal += ids_in(db, "SELECT journal_id FROM call_events WHERE touch_id IN ({marks})", touches)
    journal += ids_in(db, "SELECT journal_id FROM chat_messages WHERE touch_id IN ({marks})", touches)
    journal += ids_in(db, "SELECT journal_id FROM chat_replies WHERE touch_id IN ({marks})", touches)
    # and the replies still waiting in their dialogues (one sent before the person first wrote)
    journal += ids_in(
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
    nudges = ids_in(db, "SELECT id FROM nudges WHERE contact_id IN ({marks})", people)
    nudges += ids_in(db, "SELECT id FROM nudges WHERE touch_id IN ({marks})", touches)
    nudges += ids_in(db, "SELECT id FROM nudges WHERE lead_id IN ({marks})", leads)
    return Subject(
        contact_id=live,
        contact_ids=tuple(people),
        identifiers=tuple(dict.fromkeys(identifiers)),
        touch_ids=tuple(sorted(set(touches))),
        calls=tuple(sorted(set(calls))),
        registration_ids=tuple(
            sorted(ids_in(db, "SELECT id FROM registrations WHERE contact_id IN ({marks})", people))
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
    apart = ids_in(db, "SELECT high_id FROM merge_exceptions WHERE low_id IN ({marks})", people)
    apart += ids_in(db, "SELECT low_id FROM merge_exceptions WHERE high_id IN ({marks})", people)
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
