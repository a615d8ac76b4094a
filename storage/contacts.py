"""A contact as staff find, read and mark it: the contact that holds a merged one's data now, its
card, its numbers, addresses and chat ids, the search for it, and its marks (its numbers and
addresses put on the block list, "do not contact").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from storage.db import iso
from storage.errors import NoContact
from storage.identifiers import Identifier, parse_query


def find_by_identifier(db: Database, ident: Identifier) -> int | None:
    if not ident.valid:
        return None
    row = db.execute(
        "SELECT contact_id FROM identifiers WHERE kind = ? AND value = ? AND valid = 1",
        [ident.kind, ident.value],
    ).fetchone()
    return int(row[0]) if row else None


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
