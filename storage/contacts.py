"""One contact per person: the deduplication every channel and the bot go through.

A touch's valid phone numbers and emails are looked up; none found makes a new contact, one found
is that contact, and several found means the touch has shown two records to be one person: the
oldest survives, the others' identifiers, touches, registrations and leads move to it, and the merge
is recorded with what moved so that a manager can undo a wrong one.

Staff act on contacts here too: merging two that a person says are one, undoing a merge, and
putting a contact's numbers and addresses on the block list.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from storage.called_back import Deadline, default_deadline, recompute_callbacks
from storage.db import chunks, iso
from storage.errors import AlreadyOneContact, ContactGone, MergeError, MergeGone, MergeUndone, NoContact
from storage.identifiers import Identifier

#: Tables whose rows follow their contact through a merge.
_OWNED = ("touches", "registrations", "leads", "nudges")


@dataclass(frozen=True, slots=True)
class Claim:
    """What one touch says about its person: the identifiers it came with, a name, and when."""

    identifiers: Sequence[Identifier]
    name: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Resolution:
    contact_id: int
    created: bool
    merged: tuple[int, ...] = ()


#: Called before a merge with the resolutions made so far (see :func:`resolve_contacts`).
BeforeMerge = Callable[[Sequence["Resolution | None"]], None]


def find_by_identifier(db: Database, ident: Identifier) -> int | None:
    if not ident.valid:
        return None
    row = db.execute(
        "SELECT contact_id FROM identifiers WHERE kind = ? AND value = ? AND valid = 1",
        [ident.kind, ident.value],
    ).fetchone()
    return int(row[0]) if row else None


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
    apart (:func:`keep_apart`). Then the claim stays with the contact its phone belongs to (else the
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


def keep_apart(
    db: Database, a: int, b: int, *, reason: str, at: datetime, staff_id: int | None = None
) -> None:
    """Record that contacts ``a`` and ``b`` are two people: no touch merges them again."""
    if a == b:
        raise ValueError("a contact cannot be kept apart from itself")
    db.execute(
        "INSERT OR IGNORE INTO merge_exceptions (low_id, high_id, reason, staff_id, at) VALUES (?, ?, ?, ?, ?)",
        [min(a, b), max(a, b), reason, staff_id, iso(at)],
    )


def _oldest(db: Database, ids: Sequence[int]) -> int:
    if len(ids) == 1:
        return ids[0]
    marks = ",".join("?" * len(ids))
    row = db.conn.execute(
        f"SELECT id FROM contacts WHERE id IN ({marks}) ORDER BY created_at, id LIMIT 1", list(ids)
    ).fetchone()
    return int(row[0])


#: What a merge records that the survivor took from the merged contact (in ``merges.moved``), so
#: that an undo gives it back: its name, its block, its "do not contact" mark.
_TAKEN = ("name_taken", "blocked_taken", "do_not_contact_taken")


def merge_contacts(
    db: Database,
    survivor: int,
    merged: int,
    *,
    reason: str,
    at: datetime,
    staff_id: int | None = None,
    touch_id: int | None = None,
    deadline: Deadline | None = None,
) -> int:
    """Move everything of ``merged`` to ``survivor`` and record what moved; returns the merge id.

    One person's missed call is called back by their own answered call on the other number too, so
    the survivor's marks are judged again by ``deadline`` (the call-back SLA; 30 real minutes when
    None), as capture judges them when a call's contact changes.
    """
    if survivor == merged:
        raise ValueError("a contact cannot be merged into itself")
    moved: dict[str, list[int]] = {}
    # An identifier both contacts hold (an invalid number typed twice) stays with the survivor;
    # the merged contact's copy is removed and recorded so that an undo can put it back.
    duplicate_rows = db.execute(
        "SELECT id, kind, value, raw, valid, created_at FROM identifiers m WHERE contact_id = ? AND EXISTS"
        " (SELECT 1 FROM identifiers s WHERE s.contact_id = ? AND s.kind = m.kind AND s.value = m.value)",
        [merged, survivor],
    ).fetchall()
    if duplicate_rows:
        marks = ",".join("?" * len(duplicate_rows))
        db.execute(f"DELETE FROM identifiers WHERE id IN ({marks})", [r[0] for r in duplicate_rows])
    for table in ("identifiers", *_OWNED):
        ids = [int(r[0]) for r in db.execute(f"SELECT id FROM {table} WHERE contact_id = ?", [merged])]
        moved[table] = ids
        db.execute(f"UPDATE {table} SET contact_id = ? WHERE contact_id = ?", [survivor, merged])
    stamp = iso(at)
    db.execute("UPDATE contacts SET merged_into = ?, updated_at = ? WHERE id = ?", [survivor, stamp, merged])
    takes = db.execute(
        "SELECT s.name IS NULL AND m.name IS NOT NULL, s.blocked = 0 AND m.blocked = 1,"
        " s.do_not_contact = 0 AND m.do_not_contact = 1 FROM contacts s, contacts m WHERE s.id = ? AND m.id = ?",
        [survivor, merged],
    ).fetchone()
    # The person is one: their name if the survivor has none, and what was said of either of them
    # (blocked as spam, not to be contacted) holds for both.
    of_merged = "(SELECT {} FROM contacts WHERE id = :merged)"
    db.execute(
        f"UPDATE contacts SET name = COALESCE(name, {of_merged.format('name')}),"
        f" blocked = MAX(blocked, {of_merged.format('blocked')}),"
        f" do_not_contact_at = CASE WHEN do_not_contact = 0 AND {of_merged.format('do_not_contact')} = 1"
        f" THEN {of_merged.format('do_not_contact_at')} ELSE do_not_contact_at END,"
        f" do_not_contact = MAX(do_not_contact, {of_merged.format('do_not_contact')}), updated_at = :at"
        " WHERE id = :survivor",
        {"merged": merged, "survivor": survivor, "at": stamp},
    )
    moved["duplicate_identifiers"] = [list(r) for r in duplicate_rows]  # type: ignore[misc]
    # Whether, not what: the values themselves stay on the merged contact, for an undo.
    for flag, taken in zip(_TAKEN, takes, strict=True):
        if taken:
            moved[flag] = True  # type: ignore[assignment]
    cursor = db.execute(
        "INSERT INTO merges (survivor_id, merged_id, reason, staff_id, touch_id, moved, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [survivor, merged, reason, staff_id, touch_id, json.dumps(moved), stamp],
    )
    recompute_callbacks(db, survivor, deadline or default_deadline, at)
    return int(cursor.lastrowid or 0)


def undo_merge(
    db: Database,
    merge_id: int,
    *,
    at: datetime,
    staff_id: int | None = None,
    deadline: Deadline | None = None,
) -> int:
    """Give a wrongly merged contact back what was moved from it; returns the restored contact.

    Two people again: neither's missed call stays called back by the other's call, so both have
    their marks judged again by ``deadline``, as after a merge.
    """
    row = db.execute(
        "SELECT survivor_id, merged_id, moved, undone_at FROM merges WHERE id = ?", [merge_id]
    ).fetchone()
    if row is None:
        raise LookupError(f"no merge {merge_id}")
    survivor, merged, moved_json, undone = row
    if undone:
        raise ValueError(f"merge {merge_id} was already undone")
    # An erased person is nobody, as for a merge: split, they would count as two in the past
    # reports that their erasure left as they were.
    erased = db.execute(
        "SELECT 1 FROM contacts WHERE id IN (?, ?) AND erased_at IS NOT NULL LIMIT 1", [survivor, merged]
    ).fetchone()
    if erased is not None:
        raise ContactGone()
    moved: dict[str, list[Any]] = json.loads(moved_json)
    name_taken, blocked_taken, dnc_taken = (bool(moved.pop(flag, False)) for flag in _TAKEN)
    if name_taken:
        # The survivor had no name and took the merged one's: it gives it back, unless staff
        # have named it since. So do those it passed the name on to by merges of its own.
        for named in (int(survivor), *_name_passed_on(db, int(survivor))):
            db.execute(
                "UPDATE contacts SET name = NULL WHERE id = ? AND name IS (SELECT name FROM contacts WHERE id = ?)",
                [named, merged],
            )
    # Where the survivor's rows are now: it may itself have been merged into another since.
    holder = live_contact(db, int(survivor))
    if blocked_taken:  # it was blocked only as the merged one's: a spammer's merge, undone
        db.execute("UPDATE contacts SET blocked = 0 WHERE id = ?", [holder])
    if dnc_taken:  # unless they asked not to be contacted themselves since (a mark of another time)
        db.execute(
            "UPDATE contacts SET do_not_contact = 0, do_not_contact_at = NULL WHERE id = ?"
            " AND do_not_contact_at IS (SELECT do_not_contact_at FROM contacts WHERE id = ?)",
            [holder, merged],
        )
    for row in moved.pop("duplicate_identifiers", []):
        db.execute(
            "INSERT OR IGNORE INTO identifiers (id, contact_id, kind, value, raw, valid, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [row[0], merged, *row[1:]],
        )
    for table, ids in moved.items():
        for chunk in chunks(ids):
            marks = ",".join("?" * len(chunk))
            db.execute(
                f"UPDATE {table} SET contact_id = ? WHERE contact_id = ? AND id IN ({marks})",
                [merged, holder, *chunk],
            )
    stamp = iso(at)
    db.execute("UPDATE contacts SET merged_into = NULL, updated_at = ? WHERE id = ?", [stamp, merged])
    db.execute("UPDATE merges SET undone_at = ?, undone_by = ? WHERE id = ?", [stamp, staff_id, merge_id])
    # The merge's own pair, which outlives the holder's: undone in turn, the survivor is its own
    # contact again, and a touch naming it and the restored one must not join them once more.
    for kept in {int(survivor), holder}:
        keep_apart(db, kept, int(merged), reason="undone", at=at, staff_id=staff_id)
    for contact in (holder, int(merged)):
        recompute_callbacks(db, contact, deadline or default_deadline, at)
    return int(merged)


def _name_passed_on(db: Database, contact_id: int) -> list[int]:
    """The contacts this one's name went on to: each merged it in since, having no name of its own
    then (its merge recorded ``name_taken``), up to the first that had one."""
    out: list[int] = []
    current = contact_id
    while True:
        row = db.execute(
            "SELECT m.survivor_id, m.moved FROM merges m JOIN contacts c ON c.id = m.merged_id"
            " AND c.merged_into = m.survivor_id WHERE m.merged_id = ? AND m.undone_at IS NULL"
            " ORDER BY m.id DESC LIMIT 1",
            [current],
        ).fetchone()
        if row is None or not json.loads(row[1]).get("name_taken") or int(row[0]) in (contact_id, *out):
            return out
        current = int(row[0])
        out.append(current)


def merge_by_staff(
    db: Database, a: int, b: int, *, staff_id: int, at: datetime, deadline: Deadline | None = None
) -> tuple[int, int, int]:
    """Merge two contacts a person says are one; the older survives. Returns (merge id, survivor, merged)."""
    first, second = live_contact(db, a), live_contact(db, b)
    if first == second:
        raise AlreadyOneContact()
    # An erased contact is nobody: merged with someone, it would give the erased touches a person
    # again, and hide the live one behind a contact no card is drawn for.
    rows = db.execute(
        "SELECT id FROM contacts WHERE id IN (?, ?) AND erased_at IS NULL ORDER BY created_at, id",
        [first, second],
    ).fetchall()
    if len(rows) != 2:
        raise ContactGone()
    survivor, merged = int(rows[0][0]), int(rows[1][0])
    _forget_exceptions(db, survivor, merged)
    merge_id = merge_contacts(
        db, survivor, merged, reason="merged by staff", at=at, staff_id=staff_id, deadline=deadline
    )
    return merge_id, survivor, merged


def _forget_exceptions(db: Database, a: int, b: int) -> None:
    """A manager merging two contacts by hand overrides every exception between them."""
    db.execute(
        "WITH RECURSIVE g(root, id) AS (SELECT id, id FROM contacts WHERE id IN (?, ?)"
        " UNION SELECT g.root, c.id FROM contacts c JOIN g ON c.merged_into = g.id)"
        " DELETE FROM merge_exceptions WHERE EXISTS (SELECT 1 FROM g x JOIN g y ON x.root != y.root"
        " WHERE x.id = merge_exceptions.low_id AND y.id = merge_exceptions.high_id)",
        [a, b],
    )


def apart_by_staff(db: Database, a: int, b: int, *, staff_id: int, at: datetime) -> None:
    """A manager says two contacts are not the same person: they are never merged automatically."""
    first, second = live_contact(db, a), live_contact(db, b)
    if first == second:
        raise AlreadyOneContact()
    if db.execute("SELECT COUNT(*) FROM contacts WHERE id IN (?, ?)", [first, second]).fetchone()[0] != 2:
        raise ContactGone()
    keep_apart(db, first, second, reason="not_same_person", at=at, staff_id=staff_id)


def undo_merge_by_staff(
    db: Database, merge_id: int, *, staff_id: int, at: datetime, deadline: Deadline | None = None
) -> int:
    try:
        return undo_merge(db, merge_id, at=at, staff_id=staff_id, deadline=deadline)
    except MergeError:
        raise  # worded already (a ValueError too, which means "undone" below)
    except LookupError:
        raise MergeGone(merge_id) from None
    except ValueError:
        raise MergeUndone(merge_id) from None


def live_contact(db: Database, contact_id: int) -> int:
    """Follow merges to the contact that holds this one's data now."""
    seen: set[int] = set()
    current = contact_id
    while current not in seen:
        seen.add(current)
        row = db.execute("SELECT merged_into FROM contacts WHERE id = ?", [current]).fetchone()
        if row is None or row[0] is None:
            return current
        current = int(row[0])
    return current


def contact_card(db: Database, contact_id: int) -> dict[str, Any] | None:
    """A contact with its identifiers and touches, newest first: what ``leadline contacts`` shows."""
    fields = ("id", "name", "created_at", "merged_into", "blocked", "do_not_contact")
    row = db.execute(f"SELECT {', '.join(fields)} FROM contacts WHERE id = ?", [contact_id]).fetchone()
    if row is None:
        return None
    card: dict[str, Any] = dict(zip(fields, row, strict=True))
    card["identifiers"] = [
        dict(zip(("kind", "value", "raw", "valid"), r, strict=True))
        for r in db.execute(
            "SELECT kind, value, raw, valid FROM identifiers WHERE contact_id = ? ORDER BY id", [contact_id]
        )
    ]
    columns = ("id", "channel", "direction", "source", "occurred_at", "campaign", "call_status", "message")
    card["touches"] = [
        dict(zip(columns, r, strict=True))
        for r in db.execute(
            f"SELECT {', '.join(columns)} FROM touches WHERE contact_id = ? ORDER BY occurred_at DESC, id DESC",
            [contact_id],
        )
    ]
    return card


def phones_and_emails(db: Database, contact_id: int) -> tuple[list[str], list[str]]:
    """The contact's phones and emails (valid ones first), as staff dial and write them."""
    rows = db.execute(
        "SELECT kind, value FROM identifiers WHERE contact_id = ? ORDER BY valid DESC, id", [contact_id]
    ).fetchall()
    return [str(v) for k, v in rows if k == "phone"], [str(v) for k, v in rows if k == "email"]


def chat_ids(db: Database, contact_id: int) -> list[tuple[str, str]]:
    """The contact's chat ids, ``(kind, value)``, usernames (kept, never matched) and valid ids first:
    who they are where they wrote, as people would recognise them."""
    rows = db.execute(
        "SELECT kind, value FROM identifiers WHERE contact_id = ? AND kind NOT IN ('phone', 'email')"
        " ORDER BY kind LIKE '%\\_username' ESCAPE '\\' DESC, valid DESC, id",
        [contact_id],
    ).fetchall()
    return [(str(k), str(v)) for k, v in rows]


def blockable(db: Database, contact_id: int) -> list[tuple[str, str]]:
    """What of the contact can go on the block list, ``(kind, value)``: phones, then emails, then chat
    ids. Only valid ones: an invalid one is never a match key (DESIGN.md), so listing it blocks nobody."""
    rows = db.execute(
        "SELECT kind, value FROM identifiers WHERE contact_id = ? AND valid = 1"
        " ORDER BY kind != 'phone', kind != 'email', id",
        [contact_id],
    ).fetchall()
    return [(str(k), str(v)) for k, v in rows]


def block_contact(db: Database, contact_id: int, *, staff_id: int | None, at: datetime) -> int:
    """Put what :func:`blockable` names on the block list; returns how many were added. The contact is
    marked blocked only when something of it is on the list: a mark with no entry could never be
    taken off, and would promise a block that catches nothing."""
    idents = blockable(db, contact_id)
    added = 0
    for kind, value in idents:
        cursor = db.execute(
            "INSERT OR IGNORE INTO blocklist (kind, value, staff_id, reason, at) VALUES (?, ?, ?, 'spam', ?)",
            [kind, value, staff_id, iso(at)],
        )
        added += cursor.rowcount
    if idents:
        db.execute("UPDATE contacts SET blocked = 1, updated_at = ? WHERE id = ?", [iso(at), contact_id])
    return added


def set_do_not_contact(db: Database, contact_id: int, value: bool, *, at: datetime) -> int:
    """Mark a person as not to be contacted (or clear it): they stay out of the lists meant for
    campaigns, while their touches still count. Returns the contact marked: the one that holds the
    given one's data now."""
    live = live_contact(db, contact_id)
    cursor = db.execute(
        "UPDATE contacts SET do_not_contact = ?, do_not_contact_at = ?, updated_at = ? WHERE id = ?",
        [int(value), iso(at) if value else None, iso(at), live],
    )
    if cursor.rowcount != 1:
        raise NoContact(contact_id)
    return live


def search_contacts(
    db: Database, query: str, region: str, limit: int = 20, regions: Sequence[str] = ()
) -> list[int]:
    """Contacts by phone in any spelling, by email, by a chat id or @username, or by part of a name.

    A phone is read in ``region`` and then in each of ``regions`` (those the sources set): a BY
    source's contact is found by "8 029 123-45-67" as it was written, which RU reads as no number.
    """
    from storage.identifiers import parse_query

    handle = query.strip()
    readings = {
        i.value: i for r in dict.fromkeys([region, *regions]) if (i := parse_query(query, r)) is not None
    }
    idents = list(readings.values())
    if not idents or handle.startswith("@"):  # a valid phone or an address is looked up as one
        chats = db.execute(
            "SELECT DISTINCT contact_id FROM identifiers WHERE kind NOT IN ('phone', 'email')"
            " AND value IN (?, ?) LIMIT ?",
            [handle, handle.removeprefix("@").lower(), limit],
        ).fetchall()
        if chats:
            return sorted({live_contact(db, int(r[0])) for r in chats})
    if idents:
        found = [live_contact(db, f) for i in idents if (f := find_by_identifier(db, i)) is not None]
        if found:
            return list(dict.fromkeys(found))[:limit]
        rows = db.execute(
            "SELECT DISTINCT contact_id FROM identifiers WHERE value IN (SELECT value FROM json_each(?))"
            " OR raw = ? LIMIT ?",
            [json.dumps(list(readings)), query.strip(), limit],
        )
        return [int(r[0]) for r in rows]
    text = query.strip()
    if not text:
        return []
    rows = db.execute(
        "SELECT id FROM contacts WHERE merged_into IS NULL AND name LIKE ? ESCAPE '\\' COLLATE NOCASE"
        " ORDER BY id LIMIT ?",
        ["%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%", limit],
    )
    found_ids = [int(r[0]) for r in rows]
    if not found_ids:
        # Lower-casing Cyrillic is beyond SQLite's NOCASE; compare in Python for short lists.
        lowered = text.casefold()
        rows = db.execute("SELECT id, name FROM contacts WHERE merged_into IS NULL AND name IS NOT NULL")
        found_ids = [int(r[0]) for r in rows if lowered in str(r[1]).casefold()][:limit]
    return found_ids
