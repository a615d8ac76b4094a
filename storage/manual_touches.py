"""Contacts staff enter by hand: a typed number or address finds the contact telephony or a form
already made, and a stranger to the base becomes a ``manual`` touch, counted like any other.

Someone registered who has no touch yet gets one the same way (DESIGN.md, "touch"), whether staff
typed them in the bot or a CRM sent them through the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from storage.contacts import find_by_identifier, live_contact
from storage.dedup import Claim, resolve_contacts
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
    contact = touch_contact(db, touch_id)
    return LookUp([contact] if contact is not None else [], touch_id, created=not found)


@dataclass(frozen=True, slots=True)
class Entered:
    """Whom a registration by phone or email is for, and the touch entered by hand, if one was."""

    contact_id: int | None
    touch_id: int | None
    created: bool


def find_or_enter(
    db: Database,
    idents: list[Identifier],
    ctx: EventContext,
    *,
    external_id: str,
    name: str | None,
    at: datetime,
) -> Entered:
    """The contact these identifiers name, found, made or merged as capture would; someone with no
    touch yet gets a manual touch, so that they count like everyone else.

    Someone we only called (an outbound touch) gets none: they did not contact us. ``contact_id``
    is None only when no identifier can be the contact's (none given, or our own tracking numbers).
    """
    known = {live_contact(db, cid) for i in idents if (cid := find_by_identifier(db, i)) is not None}
    if any(_has_touch(db, contact) for contact in known):
        [resolution] = resolve_contacts(db, [Claim(idents, name, at)], deadline=ctx.callback_deadline)
        return Entered(resolution.contact_id if resolution else None, None, created=False)
    touch_id = add_manual_touch(
        db,
        ctx,
        external_id=external_id,
        phones=tuple(i.raw for i in idents if i.kind == "phone"),
        emails=tuple(i.raw for i in idents if i.kind == "email"),
        name=name,
        at=at,
    )
    return Entered(touch_contact(db, touch_id), touch_id, created=not known)


def _has_touch(db: Database, contact_id: int) -> bool:
    return (
        db.execute("SELECT 1 FROM touches WHERE contact_id = ? LIMIT 1", [contact_id]).fetchone() is not None
    )


def touch_contact(db: Database, touch_id: int) -> int | None:
    row = db.execute("SELECT contact_id FROM touches WHERE id = ?", [touch_id]).fetchone()
    return int(row[0]) if row and row[0] is not None else None
