"""One contact per person: the deduplication every channel and the bot go through.

A touch's valid phone numbers and emails are looked up; none found makes a new contact, one found
is that contact, and several found means the touch has shown two records to be one person: the
oldest survives, the others' identifiers, touches, registrations and leads move to it, and the merge
is recorded with what moved so that a manager can undo a wrong one (:mod:`storage.merges`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlite_utils import Database

from storage.called_back import Deadline
from storage.db import chunks, iso
from storage.identifiers import Identifier
from storage.merges import merge_contacts
from storage.records import record


@record
class Claim:
    """What one touch says about its person: the identifiers it came with, a name, and when."""

    identifiers: Sequence[Identifier]
    name: str | None
    at: datetime


@record
class Resolution:
    contact_id: int
    created: bool
    merged: tuple[int, ...] = ()


#: Called before a merge with the resolutions made so far (see :func:`resolve_contacts`).
BeforeMerge = Callable[[Sequence["Resolution | None"]], None]


def resolve_contacts(
    db: Database,
    claims: Sequence[Claim],
    *,
    before_merge: BeforeMerge | None = None,
    deadline: Deadline | None = None,
) -> list[Resolution | None]:
    """The contact of each claim in turn, created or merged as needed (None for a claim with no
    identifiers): the one dedup rule, for a burst of webhooks and a single registration alike.

    A burst pays one look-up for all its identifiers and one statement per table, not several
    per claim: the single writer pays per statement. Each claim is resolved against what the
    claims before it made, so a batch leaves the rows that the same claims one by one leave.
    A merge moves rows in the database, so before one the batch writes what it holds and calls
    ``before_merge`` with the resolutions so far, for the caller to write the rows it made for
    them (their touches), which must move with the merged contact too. ``deadline`` is the
    call-back SLA a merge judges the calls' marks by (:func:`merge_contacts`).
    """
    batch = _Batch(db, {i.value for claim in claims for i in claim.identifiers})
    results: list[Resolution | None] = []
    for claim in claims:
        if not claim.identifiers:
            results.append(None)
            continue
        stamp = iso(claim.at)
        found = batch.owners_of(claim.identifiers)
        merged: list[int] = []
        if not found:
            contact_id = batch.new_contact(claim.name or None, stamp)
        else:
            contact_id = found[0]
            if len(found) > 1:
                batch.write()
                group = _mergeable(db, found, batch.phone_owner(claim.identifiers))
                contact_id = _oldest(db, group)
                if len(group) > 1 and before_merge is not None:
                    before_merge(results)
                for other in group:
                    if other != contact_id:
                        merge_contacts(
                            db, contact_id, other, reason="shared identifier", at=claim.at, deadline=deadline
                        )
                        batch.moved(other, contact_id)
                        merged.append(other)
            if claim.name:
                batch.renames.append((claim.name, stamp, contact_id))
        batch.add_identifiers(contact_id, claim.identifiers, stamp)
        results.append(Resolution(contact_id, created=not found, merged=tuple(merged)))
    batch.write()
    return results


class _Batch:
    """The identifier rows a batch of claims can meet, and the rows it has yet to write."""

    def __init__(self, db: Database, values: set[str]) -> None:
        self.db = db
        self.contacts: list[tuple[object, ...]] = []
        self.identifiers: list[tuple[object, ...]] = []
        self.renames: list[tuple[object, ...]] = []
        #: (kind, value) → the contact holding it as a valid identifier: the match keys.
        self.owners: dict[tuple[str, str], int] = {}
        #: (contact, kind, value) of every row held, valid or not: a contact holds each once.
        self.holding: set[tuple[int, str, str]] = set()
        self._next_contact = 0
        # Every row holding one of the batch's values, read at once: flat IN lists (an OR term per
        # identifier would reach SQLite's expression depth limit), in slices SQLite accepts.
        for chunk in chunks(sorted(values)):
            marks = ",".join("?" * len(chunk))
            rows = self.db.conn.execute(
                f"SELECT contact_id, kind, value, valid FROM identifiers WHERE value IN ({marks})", chunk
            )
            for contact, kind, value, valid in rows:
                self.holding.add((int(contact), str(kind), str(value)))
                if valid:
                    self.owners[(str(kind), str(value))] = int(contact)

    def owners_of(self, idents: Sequence[Identifier]) -> list[int]:
        return sorted({self.owners[k] for i in idents if i.valid and (k := (i.kind, i.value)) in self.owners})

    def phone_owner(self, idents: Sequence[Identifier]) -> int | None:
        """Whose is the claim's first known phone: where a touch goes between two people kept apart."""
        return next(
            (
                self.owners[k]
                for i in idents
                if i.kind == "phone" and i.valid and (k := (i.kind, i.value)) in self.owners
            ),
            None,
        )

    def new_contact(self, name: str | None, stamp: str) -> int:
        if not self._next_contact:
            # Rows go in with executemany, which reports no ids: give each the id SQLite would
            # (the table has no AUTOINCREMENT), so ids are those of one insert at a time.
            row = self.db.conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM contacts").fetchone()
            self._next_contact = int(row[0])
        contact_id = self._next_contact
        self._next_contact += 1
        self.contacts.append((contact_id, name, stamp, stamp))
        return contact_id

    def add_identifiers(self, contact_id: int, idents: Sequence[Identifier], stamp: str) -> None:
        for i in idents:
            if (contact_id, i.kind, i.value) in self.holding:
                continue  # as INSERT OR IGNORE would: the contact has it already, valid or not
            if i.valid and self.owners.get((i.kind, i.value), contact_id) != contact_id:
                continue  # someone kept apart from this contact holds it (a split that sticks)
            self.holding.add((contact_id, i.kind, i.value))
            self.identifiers.append((contact_id, i.kind, i.value, i.raw, int(i.valid), stamp))
            if i.valid:
                self.owners[(i.kind, i.value)] = contact_id

    def moved(self, merged: int, survivor: int) -> None:
        """What :func:`merge_contacts` did to the rows held: all of ``merged``'s are the survivor's."""
        for kind, value in [(k, v) for c, k, v in self.holding if c == merged]:
            self.holding.discard((merged, kind, value))
            self.holding.add((survivor, kind, value))
        for key, owner in self.owners.items():
            if owner == merged:
                self.owners[key] = survivor

    def write(self) -> None:
        """One prepared statement a table for what the claims so far made."""
        conn = self.db.conn
        if self.contacts:
            conn.executemany(
                "INSERT INTO contacts (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)", self.contacts
            )
        if self.identifiers:
            conn.executemany(
                "INSERT OR IGNORE INTO identifiers (contact_id, kind, value, raw, valid, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                self.identifiers,
            )
        if self.renames:
            conn.executemany(
                "UPDATE contacts SET name = COALESCE(name, ?), updated_at = ? WHERE id = ?", self.renames
            )
        self.contacts, self.identifiers, self.renames = [], [], []


def _mergeable(db: Database, found: Sequence[int], anchor: int | None) -> list[int]:
    """Which of the contacts one claim names may become one: all of them, unless a manager kept some
    apart (:func:`storage.merges.keep_apart`). Then the claim stays with the contact its phone belongs to (else the
    oldest), joined only by those kept apart from none of the group, oldest first."""
    apart = _kept_apart(db, found)
    if not apart:
        return list(found)
    order = _by_age(db, found)
    first = anchor if anchor is not None else order[0]
    group = [first]
    for other in order:
        if other != first and not any(frozenset((other, g)) in apart for g in group):
            group.append(other)
    return group


def _kept_apart(db: Database, live: Sequence[int]) -> set[frozenset[int]]:
    """Pairs of these live contacts that an exception keeps apart, through any contact merged into
    either (an exception names the contacts as they were when a manager split them)."""
    marks = ",".join("?" * len(live))
    rows = db.conn.execute(
        "WITH RECURSIVE g(root, id) AS ("
        f" SELECT id, id FROM contacts WHERE id IN ({marks})"
        " UNION SELECT g.root, c.id FROM contacts c JOIN g ON c.merged_into = g.id)"
        " SELECT DISTINCT a.root, b.root FROM merge_exceptions e"
        " JOIN g a ON a.id = e.low_id JOIN g b ON b.id = e.high_id WHERE a.root != b.root",
        list(live),
    ).fetchall()
    return {frozenset((int(a), int(b))) for a, b in rows}


def _by_age(db: Database, ids: Sequence[int]) -> list[int]:
    marks = ",".join("?" * len(ids))
    rows = db.conn.execute(
        f"SELECT id FROM contacts WHERE id IN ({marks}) ORDER BY created_at, id", list(ids)
    )
    return [int(r[0]) for r in rows]


def _oldest(db: Database, ids: Sequence[int]) -> int:
    if len(ids) == 1:
        return ids[0]
    marks = ",".join("?" * len(ids))
    row = db.conn.execute(
        f"SELECT id FROM contacts WHERE id IN ({marks}) ORDER BY created_at, id LIMIT 1", list(ids)
    ).fetchone()
    return int(row[0])
