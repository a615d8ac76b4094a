"""Contacts staff enter by hand: a typed number or address finds the contact telephony or a form
already made, and a stranger to the base becomes a ``manual`` touch, counted like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from storage.contacts import find_by_identifier, live_contact
from storage.events import ContactEvent
from storage.identifiers import Identifier
from storage.registrations import is_registered
from storage.touches import EventContext, record_contact_event


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
