"""Touches: one row per inbound event, written once and never edited by processing.

A touch is keyed by its source and the provider's id for the event, so a provider's retry finds
the row it already made and changes nothing. Call touches are the exception that proves the rule:
many notifications describe one call, and ``storage/calls.py`` folds them into the one row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from storage.attribution import CampaignIndex
from storage.contacts import resolve_contact
from storage.db import iso
from storage.events import ContactEvent
from storage.identifiers import Identifier, email, phone


@dataclass(frozen=True)
class EventContext:
    """What storing one source's events needs to know beyond the events themselves."""

    source: str
    received_at: datetime
    region: str
    campaigns: CampaignIndex
    journal_id: int | None = None
    default_campaign: str | None = None
    default_owner: int | None = None
    #: PBX extension → staff id, to know who answered a call.
    staff_by_extension: Mapping[str, int] = field(default_factory=dict)
    #: When a missed call at a given moment must have been called back (working time).
    callback_deadline: Callable[[datetime], datetime] | None = None


@dataclass(frozen=True, slots=True)
class NewTouch:
    source: str
    external_id: str
    channel: str
    occurred_at: datetime
    received_at: datetime
    contact_id: int | None
    journal_id: int | None = None
    direction: str = "in"
    campaign: str | None = None
    hidden_caller: bool = False
    phone_raw: str | None = None
    email_raw: str | None = None
    name: str | None = None
    message: str | None = None
    utm: Mapping[str, str] = field(default_factory=dict)
    tracking_number: str | None = None
    to_address: str | None = None
    dropped: str | None = None
    blocked: bool = False
    staff_id: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


def find_touch(db: Database, source: str, external_id: str) -> int | None:
    row = db.conn.execute(
        "SELECT id FROM touches WHERE source = ? AND external_id = ?", (source, external_id)
    ).fetchone()
    return int(row[0]) if row else None


_INSERT_TOUCH = (
    "INSERT INTO touches (source, external_id, channel, direction, contact_id, journal_id, occurred_at,"
    " received_at, campaign, hidden_caller, phone_raw, email_raw, name, message, utm, tracking_number,"
    " to_address, dropped, blocked, staff_id, payload, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (source, external_id) DO NOTHING"
)


def insert_touch(db: Database, touch: NewTouch) -> tuple[int, bool]:
    """The touch's id and whether it is new; an existing (source, external_id) is left untouched.

    Callers have usually just looked the touch up, so the insert comes first and the look-up
    happens only when it finds the touch already there.
    """
    received = iso(touch.received_at)
    cursor = db.conn.execute(
        _INSERT_TOUCH,
        (
            touch.source,
            touch.external_id,
            touch.channel,
            touch.direction,
            touch.contact_id,
            touch.journal_id,
            iso(touch.occurred_at),
            received,
            touch.campaign,
            int(touch.hidden_caller),
            touch.phone_raw,
            touch.email_raw,
            touch.name,
            touch.message,
            json.dumps(dict(touch.utm), ensure_ascii=False) if touch.utm else "{}",
            touch.tracking_number,
            touch.to_address,
            touch.dropped,
            int(touch.blocked),
            touch.staff_id,
            json.dumps(dict(touch.payload), ensure_ascii=False, default=str) if touch.payload else "{}",
            received,
        ),
    )
    if cursor.rowcount == 1:
        return int(cursor.lastrowid or 0), True
    existing = find_touch(db, touch.source, touch.external_id)
    if existing is None:  # only a conflict on (source, external_id) skips the insert
        raise LookupError(f"touch {touch.external_id!r} of {touch.source!r} neither inserted nor found")
    return existing, False


def is_blocked(db: Database, kind: str, value: str) -> bool:
    """Numbers and addresses staff marked as spam: still journalled and counted apart, never nudged."""
    row = db.conn.execute("SELECT 1 FROM blocklist WHERE kind = ? AND value = ?", (kind, value)).fetchone()
    return row is not None


def identifiers_of(phones: tuple[str, ...], emails: tuple[str, ...], region: str) -> list[Identifier]:
    found = [phone(p, region) for p in phones] + [email(e) for e in emails]
    return [i for i in found if i is not None]


def any_blocked(db: Database, idents: list[Identifier]) -> bool:
    valid = [i for i in idents if i.valid]
    if not valid:
        return False
    clause = " OR ".join(["(kind = ? AND value = ?)"] * len(valid))
    params = [p for i in valid for p in (i.kind, i.value)]
    return db.conn.execute(f"SELECT 1 FROM blocklist WHERE {clause} LIMIT 1", params).fetchone() is not None


def record_contact_event(db: Database, event: ContactEvent, ctx: EventContext) -> tuple[int, bool]:
    """Store a form, mail or manual event as one touch on its contact; a retry changes nothing."""
    existing = find_touch(db, ctx.source, event.external_id)
    if existing is not None:
        return existing, False
    region = event.region or ctx.region
    # Our own tracking numbers in a letter's signature or a form are not the person's number.
    idents = [
        i
        for i in identifiers_of(event.phones, event.emails, region)
        if not (i.kind == "phone" and i.value in ctx.campaigns.by_number)
    ]
    occurred = event.occurred_at or ctx.received_at
    contact_id = None
    if idents and event.dropped is None:
        resolution = resolve_contact(db, idents, name=event.name, at=occurred)
        contact_id = resolution.contact_id if resolution else None
    campaign = ctx.campaigns.attribute(
        region=region,
        tracking_number=event.tracking_number,
        utm=event.utm,
        to_address=event.to_address,
        default=ctx.default_campaign,
    )
    return insert_touch(
        db,
        NewTouch(
            source=ctx.source,
            external_id=event.external_id,
            channel=event.channel,
            occurred_at=occurred,
            received_at=ctx.received_at,
            contact_id=contact_id,
            journal_id=ctx.journal_id,
            campaign=campaign,
            phone_raw=event.phones[0] if event.phones else None,
            email_raw=event.emails[0] if event.emails else None,
            name=event.name,
            message=event.message,
            utm=event.utm,
            tracking_number=event.tracking_number,
            to_address=event.to_address,
            dropped=event.dropped,
            blocked=any_blocked(db, idents),
            payload=event.fields,
        ),
    )
