"""Merges of contacts, recorded with what moved so that they can be undone, and the pairs of contacts
kept apart so that no touch merges them again.

Staff act on merges here too: merging two contacts that a person says are one, undoing a merge, and
saying two are not the same person. The merges a touch makes are decided by :mod:`storage.dedup`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from storage.called_back import Deadline, default_deadline, recompute_callbacks
from storage.contacts import live_contact
from storage.db import chunks, iso
from storage.errors import AlreadyOneContact, ContactGone, MergeError, MergeGone, MergeUndone

#: Tables whose rows follow their contact through a merge.
_OWNED = ("touches", "registrations", "leads", "nudges")


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
