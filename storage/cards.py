"""What the bot's cards show: a touch's (to register it), a lead's, and a contact's (/find).

Each card is read on the contact that holds the data now, since merges move touches, registrations
and leads; the bot draws the card and keeps none of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from storage.contacts import blockable, chat_ids, live_contact, phones_and_emails
from storage.lists import UNREGISTERED
from storage.registrations import Registration, registration_of


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
    do_not_contact: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``(kind, value)`` of the contact's chat ids, for a person known by nothing else.
    chat_ids: list[tuple[str, str]] = field(default_factory=list)
    #: The URL that opens a chat touch's conversation (capture's ``conversation_url``), if any.
    conversation_url: str | None = None
    #: ``(kind, value)`` of what "Spam, and block" would put on the block list (valid ones only).
    blockable: list[tuple[str, str]] = field(default_factory=list)


def touch_card(db: Database, touch_id: int) -> TouchCard | None:
    """The card of a touch, on the contact that holds it now (merges move touches)."""
    touch = next(
        db.query(
            "SELECT id, source, channel, direction, contact_id, occurred_at, campaign, phone_raw, email_raw, name,"
            " message, call_status, answered, talk_s, duration_s, recording, staff_id, blocked, hidden_caller,"
            " json_extract(payload, '$.conversation_url') AS conversation_url"
            " FROM touches WHERE id = ?",
            [touch_id],
        ),
        None,
    )
    if touch is None or touch["contact_id"] is None:
        return None
    contact_id = live_contact(db, int(touch["contact_id"]))
    contact = db.execute(
        "SELECT name, blocked, erased_at, do_not_contact FROM contacts WHERE id = ?", [contact_id]
    ).fetchone()
    if contact is not None and contact[2] is not None:
        return None  # an erased person is nobody to register (storage/erasure.py)
    earlier = db.execute(
        "SELECT COUNT(*) FROM touches WHERE contact_id = ? AND direction = 'in' AND dropped IS NULL"
        " AND (occurred_at < ? OR (occurred_at = ? AND id < ?))",
        [contact_id, touch["occurred_at"], touch["occurred_at"], touch_id],
    ).fetchone()[0]
    phones, emails = phones_and_emails(db, contact_id)
    return TouchCard(
        touch=touch,
        contact_id=contact_id,
        contact_name=contact[0] if contact else None,
        phones=phones,
        emails=emails,
        earlier_touches=int(earlier),
        registration=registration_of(db, contact_id),
        blocked=bool(contact[1]) if contact else False,
        do_not_contact=bool(contact[3]) if contact else False,
        chat_ids=chat_ids(db, contact_id),
        conversation_url=touch.pop("conversation_url"),
        blockable=blockable(db, contact_id),
    )


def lead_card(db: Database, lead_id: int) -> dict[str, Any] | None:
    lead = next(
        db.query(
            "SELECT l.*, c.name AS contact_name, s.name AS owner_name FROM leads l"
            " JOIN contacts c ON c.id = l.contact_id LEFT JOIN staff s ON s.id = l.owner_id WHERE l.id = ?",
            [lead_id],
        ),
        None,
    )
    if lead is None:
        return None
    lead["fields"] = json.loads(lead["fields"] or "{}")
    lead["phones"], lead["emails"] = phones_and_emails(db, int(lead["contact_id"]))
    return lead


def leads_of_contact(db: Database, contact_id: int) -> list[int]:
    return [
        int(r[0])
        for r in db.execute("SELECT id FROM leads WHERE contact_id = ? ORDER BY id DESC", [contact_id])
    ]


def contact_summary(db: Database, contact_id: int, *, touches: int) -> dict[str, Any] | None:
    """What /find shows: the contact, its newest ``touches`` touches and their count, its
    registration, its leads and merges."""
    contact = next(
        db.query(
            "SELECT id, name, created_at, merged_into, blocked, do_not_contact, erased_at FROM contacts WHERE id = ?",
            [contact_id],
        ),
        None,
    )
    if contact is None:
        return None
    contact["phones"], contact["emails"] = phones_and_emails(db, contact_id)
    contact["touches"] = list(
        db.query(
            "SELECT id, channel, direction, occurred_at, campaign, call_status, answered FROM touches"
            " WHERE contact_id = ? ORDER BY occurred_at DESC, id DESC LIMIT ?",
            [contact_id, touches],
        )
    )
    contact["touch_count"] = db.execute(
        "SELECT COUNT(*) FROM touches WHERE contact_id = ?", [contact_id]
    ).fetchone()[0]
    contact["registration"] = registration_of(db, contact_id)
    contact["leads"] = leads_of_contact(db, contact_id)
    contact["merges"] = list(
        db.query(
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
