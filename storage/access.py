"""Access requests: a stranger who writes to the bot asks once, and an owner's answer makes them staff.

The answer runs whole inside one writer job, so two owners answering at once cannot both decide:
the second is told who answered first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from storage.db import iso
from storage.errors import AccessDecided, NoAccessRequest, UnknownDecision


@dataclass(frozen=True, slots=True)
class AccessRequest:
    id: int
    new: bool
    refused: bool


def access_request(db: Database, request_id: int) -> dict[str, Any] | None:
    return next(db.query("SELECT * FROM access_requests WHERE id = ?", [request_id]), None)


def request_access(
    db: Database,
    telegram_id: int,
    *,
    name: str | None,
    username: str | None,
    language: str | None,
    at: datetime,
) -> AccessRequest:
    """A stranger wrote to the bot: one open request per person, so owners are asked once."""
    row = db.execute(
        "SELECT id, decision FROM access_requests WHERE telegram_id = ? ORDER BY id DESC LIMIT 1",
        [telegram_id],
    ).fetchone()
    if row is not None and row[1] in (None, "refused"):
        return AccessRequest(int(row[0]), new=False, refused=row[1] == "refused")
    cursor = db.execute(
        "INSERT INTO access_requests (telegram_id, name, username, language, requested_at) VALUES (?, ?, ?, ?, ?)",
        [telegram_id, name, username, language, iso(at)],
    )
    return AccessRequest(int(cursor.lastrowid or 0), new=True, refused=False)


def decide_access(
    db: Database, request_id: int, decision: str, *, staff_id: int, at: datetime
) -> dict[str, Any]:
    """An owner's answer; approval makes (or re-activates) the staff row. Returns the request."""
    if decision not in ("staff", "manager", "refused"):
        raise UnknownDecision(decision)
    row = db.execute(
        "SELECT a.telegram_id, a.name, a.username, a.language, a.decision, s.name FROM access_requests a"
        " LEFT JOIN staff s ON s.id = a.decided_by WHERE a.id = ?",
        [request_id],
    ).fetchone()
    if row is None:
        raise NoAccessRequest(request_id)
    telegram_id, name, username, language, decided, decided_by = row
    if decided is not None:
        raise AccessDecided(str(decided), decided_by)
    stamp = iso(at)
    db.execute(
        "UPDATE access_requests SET decision = ?, decided_by = ?, decided_at = ? WHERE id = ?",
        [decision, staff_id, stamp, request_id],
    )
    if decision != "refused":
        display = name or (f"@{username}" if username else str(telegram_id))
        existing = db.execute("SELECT id FROM staff WHERE telegram_id = ?", [telegram_id]).fetchone()
        if existing:
            db.execute(
                "UPDATE staff SET role = ?, active = 1, approved_by = ? WHERE id = ?",
                [decision, staff_id, existing[0]],
            )
        else:
            db.execute(
                "INSERT INTO staff (name, telegram_id, role, language, from_config, active, approved_by, created_at)"
                " VALUES (?, ?, ?, ?, 0, 1, ?, ?)",
                [display, telegram_id, decision, language, staff_id, stamp],
            )
    return {"telegram_id": int(telegram_id), "name": name, "language": language, "decision": decision}
