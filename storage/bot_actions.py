"""What the bot writes beyond :mod:`storage.registrations`: access requests, manual touches, cards.

Each function is one step a person takes in chat, run whole inside one writer job, so a tap either
lands completely or not at all. Checks that depend on the current state (is the contact already
registered? was it merged since the card was drawn?) run inside the same transaction as the write
they guard, so two people tapping at once cannot both register one contact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlite_utils import Database

from storage.contacts import find_by_identifier, live_contact, merge_contacts, undo_merge
from storage.db import iso
from storage.events import ContactEvent
from storage.identifiers import Identifier
from storage.registrations import (
    Registered,
    Registration,
    RegistrationError,
    Temperature,
    is_registered,
    register,
    registration_of,
)
from storage.touches import EventContext, record_contact_event


class AlreadyRegistered(RegistrationError):
    """Someone registered this contact after the card was drawn."""

    def __init__(self, contact_id: int, registration: Registration | None) -> None:
        super().__init__(f"contact #{contact_id} is already registered")
        self.contact_id = contact_id
        self.registration = registration


class ContactMerged(RegistrationError):
    """The card's contact was merged into another one after the card was drawn."""

    def __init__(self, old_id: int, new_id: int) -> None:
        super().__init__(f"contact #{old_id} was merged into #{new_id}")
        self.old_id = old_id
        self.new_id = new_id


class AccessDecided(RegistrationError):
    """Another owner already answered this access request."""

    def __init__(self, decision: str, decided_by: str | None) -> None:
        super().__init__(f"this request was already answered: {decision}")
        self.decision = decision
        self.decided_by = decided_by


# ---------------------------------------------------------------------- access


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
        raise RegistrationError(f"unknown decision {decision!r}")
    row = db.execute(
        "SELECT a.telegram_id, a.name, a.username, a.language, a.decision, s.name FROM access_requests a"
        " LEFT JOIN staff s ON s.id = a.decided_by WHERE a.id = ?",
        [request_id],
    ).fetchone()
    if row is None:
        raise RegistrationError(f"no access request #{request_id}")
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


# ---------------------------------------------------------------------- touches and registration


def add_manual_touch(
    db: Database,
    ctx: EventContext,
    *,
    external_id: str,
    phones: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
    name: str | None = None,
    message: str | None = None,
    at: datetime,
) -> int:
    """A contact staff reported by hand: a ``manual`` touch, deduplicated like any other channel."""
    event = ContactEvent(
        channel="manual",
        external_id=external_id,
        occurred_at=at,
        phones=phones,
        emails=emails,
        name=name,
        message=message,
    )
    touch_id, _ = record_contact_event(db, event, ctx)
    return touch_id


@dataclass(frozen=True)
class Draft:
    """A registration as the card collected it."""

    disposition: str
    temperature: Temperature | None = None
    reason: str | None = None
    name: str | None = None
    need: str | None = None
    fields: Mapping[str, Any] | None = None
    campaign: str | None = None
    owner_id: int | None = None
    follow_up_on: date | None = None
    amount: float | None = None
    block: bool = False


def current_contact(db: Database, touch_id: int, seen_contact: int) -> int:
    """The touch's contact now; raises if it was merged away or registered since the card was drawn."""
    row = db.execute("SELECT contact_id FROM touches WHERE id = ?", [touch_id]).fetchone()
    if row is None or row[0] is None:
        raise RegistrationError(f"no touch #{touch_id}")
    contact_id = live_contact(db, int(row[0]))
    seen_now = live_contact(db, seen_contact)
    if contact_id != seen_contact and seen_now == contact_id:
        raise ContactMerged(seen_contact, contact_id)
    if is_registered(db, contact_id):
        raise AlreadyRegistered(contact_id, registration_of(db, contact_id))
    return contact_id


def register_touch(
    db: Database, touch_id: int, seen_contact: int, draft: Draft, *, staff_id: int, at: datetime
) -> Registered:
    """Register the contact behind a card, with every guard inside the same transaction."""
    contact_id = current_contact(db, touch_id, seen_contact)
    if draft.name:
        db.execute(
            "UPDATE contacts SET name = ?, updated_at = ? WHERE id = ?", [draft.name, iso(at), contact_id]
        )
    registered = register(
        db,
        contact_id,
        "lead" if draft.disposition == "lead" else "not_a_lead",
        at=at,
        staff_id=staff_id,
        reason=draft.reason,
        temperature=draft.temperature,
        touch_id=touch_id,
        campaign=draft.campaign,
        origin="bot",
        need=draft.need,
        fields=draft.fields,
        follow_up_on=draft.follow_up_on,
        amount=draft.amount,
        owner_id=draft.owner_id,
    )
    if draft.block:
        block_contact(db, contact_id, staff_id=staff_id, at=at)
    return registered


def block_contact(db: Database, contact_id: int, *, staff_id: int | None, at: datetime) -> int:
    """Put the contact's valid numbers and addresses on the block list; returns how many were added."""
    added = 0
    for kind, value in db.execute(
        "SELECT kind, value FROM identifiers WHERE contact_id = ? AND valid = 1", [contact_id]
    ).fetchall():
        cursor = db.execute(
            "INSERT OR IGNORE INTO blocklist (kind, value, staff_id, reason, at) VALUES (?, ?, ?, 'spam', ?)",
            [kind, value, staff_id, iso(at)],
        )
        added += cursor.rowcount
    db.execute("UPDATE contacts SET blocked = 1, updated_at = ? WHERE id = ?", [iso(at), contact_id])
    return added


@dataclass(frozen=True)
class LookUp:
    """What a typed number or address led to: the contacts it names, and the touch to register, if any."""

    contacts: list[int]
    touch_id: int | None
    created: bool


def look_up_or_add(
    db: Database,
    idents: list[Identifier],
    ctx: EventContext,
    *,
    external_id: str,
    name: str | None,
    message: str | None,
    at: datetime,
) -> LookUp:
    """Find the contact telephony or a form already made; a stranger to the base becomes a manual touch.

    A known, unregistered contact gets the card of its newest inbound touch; a registered one gets
    no touch (its card is shown instead). ``external_id`` makes a re-delivered chat message a no-op.
    """
    found = sorted({live_contact(db, cid) for i in idents if (cid := find_by_identifier(db, i)) is not None})
    if len(found) > 1:
        return LookUp(found, None, created=False)
    if found and is_registered(db, found[0]):
        return LookUp(found, None, created=False)
    if found:
        row = db.execute(
            "SELECT id FROM touches WHERE contact_id = ? AND direction = 'in' AND dropped IS NULL"
            " ORDER BY occurred_at DESC, id DESC LIMIT 1",
            [found[0]],
        ).fetchone()
        if row is not None:
            return LookUp(found, int(row[0]), created=False)
    phones = tuple(i.raw for i in idents if i.kind == "phone")
    emails = tuple(i.raw for i in idents if i.kind == "email")
    touch_id = add_manual_touch(
        db, ctx, external_id=external_id, phones=phones, emails=emails, name=name, message=message, at=at
    )
    contact = db.execute("SELECT contact_id FROM touches WHERE id = ?", [touch_id]).fetchone()
    return LookUp(
        [int(contact[0])] if contact and contact[0] is not None else [], touch_id, created=not found
    )


class MergeError(RegistrationError):
    """A merge or undo that cannot be made as asked (the message says why, for people)."""


def merge_by_staff(db: Database, a: int, b: int, *, staff_id: int, at: datetime) -> tuple[int, int, int]:
    """Merge two contacts a person says are one; the older survives. Returns (merge id, survivor, merged)."""
    first, second = live_contact(db, a), live_contact(db, b)
    if first == second:
        raise MergeError("these are already one contact")
    rows = db.execute(
        "SELECT id FROM contacts WHERE id IN (?, ?) ORDER BY created_at, id", [first, second]
    ).fetchall()
    if len(rows) != 2:
        raise MergeError("one of the contacts no longer exists")
    survivor, merged = int(rows[0][0]), int(rows[1][0])
    merge_id = merge_contacts(db, survivor, merged, reason="merged by staff", at=at, staff_id=staff_id)
    return merge_id, survivor, merged


def undo_merge_by_staff(db: Database, merge_id: int, *, staff_id: int, at: datetime) -> int:
    try:
        return undo_merge(db, merge_id, at=at, staff_id=staff_id)
    except LookupError:
        raise MergeError("this merge no longer exists") from None
    except ValueError:
        raise MergeError("this merge was already undone") from None
