"""What the bot reads: staff by Telegram id, touch cards, lead cards, and the paged lists.

"Unregistered" follows DESIGN.md: a registration belongs to the contact, so an inbound touch is
waiting for registration while its contact has none. Inbound means what the reports count:
direction ``in``, not dropped, not blocked, with a contact (a hidden caller cannot be registered).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from storage.contacts import live_contact

#: An inbound touch that counts, written against the ``touches`` table aliased ``t``.
INBOUND = "t.direction = 'in' AND t.dropped IS NULL AND t.blocked = 0 AND t.contact_id IS NOT NULL"
UNREGISTERED = f"{INBOUND} AND NOT EXISTS (SELECT 1 FROM registrations r WHERE r.contact_id = t.contact_id)"
MISSED = f"{INBOUND} AND t.channel = 'call' AND t.answered = 0 AND t.hidden_caller = 0 AND t.called_back_at IS NULL"
OPEN_STAGES = ("new", "qualified", "accepted", "returned")


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _one(cursor: Any) -> dict[str, Any] | None:
    found = _dicts(cursor)
    return found[0] if found else None


# ---------------------------------------------------------------------- staff


@dataclass(frozen=True, slots=True)
class StaffMember:
    id: int
    name: str
    telegram_id: int | None
    role: str
    language: str | None

    @property
    def is_manager(self) -> bool:
        """Managers and owners see and change everyone's work."""
        return self.role in ("owner", "manager")


_STAFF = "SELECT id, name, telegram_id, role, language FROM staff"


def _staff(row: Any) -> StaffMember:
    return StaffMember(int(row[0]), str(row[1]), row[2], str(row[3]), row[4])


def staff_by_telegram(db: Database, telegram_id: int) -> StaffMember | None:
    row = db.execute(f"{_STAFF} WHERE telegram_id = ? AND active = 1", [telegram_id]).fetchone()
    return _staff(row) if row else None


def staff_by_id(db: Database, staff_id: int) -> StaffMember | None:
    row = db.execute(f"{_STAFF} WHERE id = ?", [staff_id]).fetchone()
    return _staff(row) if row else None


def active_staff(db: Database) -> list[StaffMember]:
    return [_staff(r) for r in db.execute(f"{_STAFF} WHERE active = 1 ORDER BY name, id")]


def owners(db: Database) -> list[StaffMember]:
    return [
        _staff(r)
        for r in db.execute(f"{_STAFF} WHERE active = 1 AND role = 'owner' AND telegram_id IS NOT NULL")
    ]


def campaigns(db: Database) -> list[tuple[int, str]]:
    return [(int(r[0]), str(r[1])) for r in db.execute("SELECT id, name FROM campaigns ORDER BY name")]


def campaign_name(db: Database, campaign_id: int) -> str | None:
    row = db.execute("SELECT name FROM campaigns WHERE id = ?", [campaign_id]).fetchone()
    return str(row[0]) if row else None


def access_request(db: Database, request_id: int) -> dict[str, Any] | None:
    return _one(db.execute("SELECT * FROM access_requests WHERE id = ?", [request_id]))


# ---------------------------------------------------------------------- cards


@dataclass(frozen=True)
class Registration:
    disposition: str
    reason: str | None
    staff_name: str | None
    created_at: str
    lead_id: int | None
    temperature: str | None


@dataclass(frozen=True)
class TouchCard:
    """Everything a registration card shows about one touch and its contact."""

    touch: dict[str, Any]
    contact_id: int
    contact_name: str | None
    phones: list[str]
    emails: list[str]
    earlier_touches: int
    registration: Registration | None
    blocked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def registration_of(db: Database, contact_id: int) -> Registration | None:
    row = db.execute(
        "SELECT r.disposition, r.reason, s.name, r.created_at, l.id, l.temperature FROM registrations r"
        " LEFT JOIN staff s ON s.id = r.staff_id LEFT JOIN leads l ON l.registration_id = r.id"
        " WHERE r.contact_id = ? ORDER BY r.created_at DESC, r.id DESC LIMIT 1",
        [contact_id],
    ).fetchone()
    return Registration(*row) if row else None


def identifiers(db: Database, contact_id: int) -> tuple[list[str], list[str]]:
    """The contact's phones and emails (valid ones first), as staff dial and write them."""
    rows = db.execute(
        "SELECT kind, value FROM identifiers WHERE contact_id = ? ORDER BY valid DESC, id", [contact_id]
    ).fetchall()
    return [str(v) for k, v in rows if k == "phone"], [str(v) for k, v in rows if k == "email"]


def touch_card(db: Database, touch_id: int) -> TouchCard | None:
    """The card of a touch, on the contact that holds it now (merges move touches)."""
    touch = _one(
        db.execute(
            "SELECT id, source, channel, direction, contact_id, occurred_at, campaign, phone_raw, email_raw, name,"
            " message, call_status, answered, talk_s, duration_s, recording, staff_id, blocked, hidden_caller"
            " FROM touches WHERE id = ?",
            [touch_id],
        )
    )
    if touch is None or touch["contact_id"] is None:
        return None
    contact_id = live_contact(db, int(touch["contact_id"]))
    contact = db.execute("SELECT name, blocked FROM contacts WHERE id = ?", [contact_id]).fetchone()
    earlier = db.execute(
        "SELECT COUNT(*) FROM touches WHERE contact_id = ? AND direction = 'in' AND dropped IS NULL"
        " AND (occurred_at < ? OR (occurred_at = ? AND id < ?))",
        [contact_id, touch["occurred_at"], touch["occurred_at"], touch_id],
    ).fetchone()[0]
    phones, emails = identifiers(db, contact_id)
    return TouchCard(
        touch=touch,
        contact_id=contact_id,
        contact_name=contact[0] if contact else None,
        phones=phones,
        emails=emails,
        earlier_touches=int(earlier),
        registration=registration_of(db, contact_id),
        blocked=bool(contact[1]) if contact else False,
    )


def newest_inbound_touch(db: Database, contact_id: int) -> int | None:
    row = db.execute(
        "SELECT t.id FROM touches t WHERE t.contact_id = ? AND t.direction = 'in' AND t.dropped IS NULL"
        " ORDER BY t.occurred_at DESC, t.id DESC LIMIT 1",
        [contact_id],
    ).fetchone()
    return int(row[0]) if row else None


def lead_card(db: Database, lead_id: int) -> dict[str, Any] | None:
    lead = _one(
        db.execute(
            "SELECT l.*, c.name AS contact_name, s.name AS owner_name FROM leads l"
            " JOIN contacts c ON c.id = l.contact_id LEFT JOIN staff s ON s.id = l.owner_id WHERE l.id = ?",
            [lead_id],
        )
    )
    if lead is None:
        return None
    lead["fields"] = json.loads(lead["fields"] or "{}")
    lead["phones"], lead["emails"] = identifiers(db, int(lead["contact_id"]))
    return lead


def leads_of_contact(db: Database, contact_id: int) -> list[int]:
    return [
        int(r[0])
        for r in db.execute("SELECT id FROM leads WHERE contact_id = ? ORDER BY id DESC", [contact_id])
    ]


def contact_summary(db: Database, contact_id: int) -> dict[str, Any] | None:
    """What /find shows: the contact, its touches, its registration, its leads and merges."""
    contact = _one(
        db.execute(
            "SELECT id, name, created_at, merged_into, blocked FROM contacts WHERE id = ?", [contact_id]
        )
    )
    if contact is None:
        return None
    contact["phones"], contact["emails"] = identifiers(db, contact_id)
    contact["touches"] = _dicts(
        db.execute(
            "SELECT id, channel, direction, occurred_at, campaign, call_status, answered FROM touches"
            " WHERE contact_id = ? ORDER BY occurred_at DESC, id DESC LIMIT 5",
            [contact_id],
        )
    )
    contact["touch_count"] = db.execute(
        "SELECT COUNT(*) FROM touches WHERE contact_id = ?", [contact_id]
    ).fetchone()[0]
    contact["registration"] = registration_of(db, contact_id)
    contact["leads"] = leads_of_contact(db, contact_id)
    contact["merges"] = _dicts(
        db.execute(
            "SELECT m.id, m.merged_id, c.name AS merged_name, m.reason, m.at FROM merges m"
            " JOIN contacts c ON c.id = m.merged_id WHERE m.survivor_id = ? AND m.undone_at IS NULL ORDER BY m.id",
            [contact_id],
        )
    )
    unregistered = db.execute(
        f"SELECT t.id FROM touches t WHERE t.contact_id = ? AND {UNREGISTERED} ORDER BY t.occurred_at DESC, t.id DESC"
        " LIMIT 1",
        [contact_id],
    ).fetchone()
    contact["unregistered_touch"] = int(unregistered[0]) if unregistered else None
    return contact


# ---------------------------------------------------------------------- lists


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def _mine(staff_id: int | None) -> tuple[str, list[Any]]:
    """A staff member's own work: touches they handled, and touches nobody handled yet."""
    if staff_id is None:
        return "", []
    return " AND (t.staff_id = ? OR t.staff_id IS NULL)", [staff_id]


def unregistered(db: Database, staff_id: int | None, page: int, size: int = 5) -> Page:
    """One row per contact waiting for registration (its newest touch), newest first."""
    mine, params = _mine(staff_id)
    base = (
        f"SELECT t.contact_id, MAX(t.id) AS touch_id, COUNT(*) AS touches, MAX(t.occurred_at) AS last_at"
        f" FROM touches t WHERE {UNREGISTERED}{mine} GROUP BY t.contact_id"
    )
    total = db.execute(f"SELECT COUNT(*) FROM ({base})", params).fetchone()[0]
    items = _dicts(
        db.execute(
            f"SELECT x.*, t.channel, t.phone_raw, t.email_raw, c.name FROM ({base}) x"
            " JOIN touches t ON t.id = x.touch_id JOIN contacts c ON c.id = x.contact_id"
            " ORDER BY x.last_at DESC, x.touch_id DESC LIMIT ? OFFSET ?",
            [*params, size, page * size],
        )
    )
    _add_identifiers(db, items)
    return Page(items, int(total), page, size)


def missed(db: Database, staff_id: int | None, page: int, size: int = 5) -> Page:
    """Missed inbound calls nobody has called back yet, newest first."""
    mine, params = _mine(staff_id)
    where = f"FROM touches t JOIN contacts c ON c.id = t.contact_id WHERE {MISSED}{mine}"
    total = db.execute(f"SELECT COUNT(*) {where}", params).fetchone()[0]
    items = _dicts(
        db.execute(
            f"SELECT t.id AS touch_id, t.contact_id, t.occurred_at AS last_at, t.channel, t.phone_raw, c.name {where}"
            " ORDER BY t.occurred_at DESC, t.id DESC LIMIT ? OFFSET ?",
            [*params, size, page * size],
        )
    )
    _add_identifiers(db, items)
    return Page(items, int(total), page, size)


def open_leads(db: Database, owner_id: int | None, page: int, size: int = 5) -> Page:
    """Open leads, hot first, then by follow-up date (undated last)."""
    where = f"FROM leads l JOIN contacts c ON c.id = l.contact_id WHERE l.stage IN {OPEN_STAGES!r}"
    params: list[Any] = []
    if owner_id is not None:
        where += " AND l.owner_id = ?"
        params.append(owner_id)
    total = db.execute(f"SELECT COUNT(*) {where}", params).fetchone()[0]
    items = _dicts(
        db.execute(
            f"SELECT l.id AS lead_id, l.contact_id, l.temperature, l.stage, l.follow_up_on, c.name {where}"
            " ORDER BY CASE l.temperature WHEN 'hot' THEN 0 WHEN 'warm' THEN 1 ELSE 2 END,"
            " l.follow_up_on IS NULL, l.follow_up_on, l.id DESC LIMIT ? OFFSET ?",
            [*params, size, page * size],
        )
    )
    _add_identifiers(db, items)
    return Page(items, int(total), page, size)


def _add_identifiers(db: Database, items: list[dict[str, Any]]) -> None:
    for item in items:
        item["phones"], item["emails"] = identifiers(db, int(item["contact_id"]))
