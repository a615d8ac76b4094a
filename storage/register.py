"""Registering someone: the one way the bot, the JSON API and the demo record a registration.

Whoever the edge knows the person by (the touch a card was drawn for, or a phone and an email),
every step is written in one transaction: the checks that depend on the current state (is the
contact already registered? was it merged or erased since the card was drawn?), the touch entered
by hand for someone with no touch yet (DESIGN.md, "touch"), the registration with its lead, and the
block list. So two people tapping at once cannot both register one contact, a refused registration
leaves no touch behind, a Save racing an erasure writes no name back, and nobody registered is
missing from the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import cast

from sqlite_utils import Database

from storage.contacts import block_contact, live_contact
from storage.db import iso, savepoint
from storage.errors import OwnNumber
from storage.identifiers import Identifier
from storage.manual_touches import find_or_enter
from storage.registrations import (
    Disposition,
    Draft,
    Registered,
    current_contact,
    is_erased,
    is_registered,
    record_registration,
)
from storage.touches import EventContext


@dataclass(frozen=True, slots=True)
class Card:
    """A card in the bot: the touch it was drawn for, and the contact it showed then."""

    touch_id: int
    seen_contact: int


@dataclass(frozen=True, slots=True)
class Person:
    """Whoever these numbers and addresses name; someone with no touch yet gets one entered by hand,
    recorded under ``ctx``'s source with ``external_id`` (a retry that repeats it finds that touch)."""

    identifiers: tuple[Identifier, ...]
    ctx: EventContext
    external_id: str
    name: str | None = None


def register(
    db: Database,
    whom: Card | Person,
    draft: Draft,
    *,
    at: datetime,
    staff_id: int | None = None,
    origin: str = "bot",
    required: Sequence[str] = (),
) -> Registered:
    """Register ``whom`` as ``draft`` says; raises :class:`RegistrationError`, having written
    nothing, when the card is out of date, no phone or email given is the person's own, or the
    draft lacks what its disposition needs. ``required`` is ``[lead_fields] required``, which a
    lead must have: the API and the bot pass it (the bot's form asks for those fields first, so a
    person hears which are missing before the button)."""
    contact_id: int | None
    touch_id: int | None
    with savepoint(db, "register"):
        if isinstance(whom, Card):
            contact_id = current_contact(db, whom.touch_id, whom.seen_contact)
            touch_id, created = whom.touch_id, False
        else:
            entered = find_or_enter(
                db, list(whom.identifiers), whom.ctx, external_id=whom.external_id, name=whom.name, at=at
            )
            contact_id, touch_id, created = entered.contact_id, entered.touch_id, entered.created
        if contact_id is None:
            raise OwnNumber()
        if draft.name:
            db.execute(
                "UPDATE contacts SET name = ?, updated_at = ? WHERE id = ?", [draft.name, iso(at), contact_id]
            )
        registered = record_registration(
            db,
            contact_id,
            cast(Disposition, draft.disposition),
            at=at,
            staff_id=staff_id,
            reason=draft.reason,
            temperature=draft.temperature,
            touch_id=touch_id,
            campaign=draft.campaign,
            origin=origin,
            need=draft.need,
            fields=draft.fields,
            follow_up_on=draft.follow_up_on,
            amount=draft.amount,
            owner_id=draft.owner_id,
            note=draft.note,
            required=required,
        )
        if draft.block:
            block_contact(db, contact_id, staff_id=staff_id, at=at)
    return replace(registered, contact_created=created)


def register_by_system(db: Database, touch_id: int, draft: Draft, *, at: datetime) -> Registered | None:
    """Register a touch's contact as its source's config says (DESIGN.md: "or, for a source configured
    so, the system"), origin ``system``. Only an inbound touch that counts, of a contact not yet
    registered: a blocked, dropped or hidden caller's touch is nobody to register, nor is a person
    erased (a call's last notification may come after the erasure), and a person registered before
    keeps what staff said. A call only once it is over, since its last notification may still block
    it (``short_call_seconds``) or show it was outbound."""
    row = db.execute(
        "SELECT contact_id FROM touches WHERE id = ? AND direction = 'in' AND blocked = 0 AND dropped IS NULL"
        " AND contact_id IS NOT NULL AND (channel != 'call' OR call_final = 1)",
        [touch_id],
    ).fetchone()
    if row is None:
        return None
    contact_id = live_contact(db, int(row[0]))
    if is_registered(db, contact_id) or is_erased(db, contact_id):
        return None
    return register(db, Card(touch_id, contact_id), draft, at=at, origin="system")
