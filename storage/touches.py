"""Touches: one row per inbound event, written once and never edited by processing.

A touch is keyed by its source and the provider's id for the event, so a provider's retry finds
the row it already made and changes nothing. Call touches are the exception that proves the rule:
many notifications describe one call, and ``storage/calls.py`` folds them into the one row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from storage.attribution import CampaignIndex
from storage.contacts import resolve_contact
from storage.db import chunks, iso
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


def _touch_params(touch: NewTouch) -> tuple[object, ...]:
    received = iso(touch.received_at)
    return (
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
    )


def insert_touch(db: Database, touch: NewTouch) -> tuple[int, bool]:
    """The touch's id and whether it is new; an existing (source, external_id) is left untouched.

    Callers have usually just looked the touch up, so the insert comes first and the look-up
    happens only when it finds the touch already there.
    """
    cursor = db.conn.execute(_INSERT_TOUCH, _touch_params(touch))
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
    return bool(_blocked(db, {(i.kind, i.value) for i in idents if i.valid}))


def _event_identifiers(event: ContactEvent, ctx: EventContext) -> list[Identifier]:
    """The person's identifiers: our own tracking numbers in a signature or a form are not theirs."""
    return [
        i
        for i in identifiers_of(event.phones, event.emails, event.region or ctx.region)
        if not (i.kind == "phone" and i.value in ctx.campaigns.by_number)
    ]


def _contact_touch(event: ContactEvent, ctx: EventContext, contact_id: int | None, blocked: bool) -> NewTouch:
    return NewTouch(
        source=ctx.source,
        external_id=event.external_id,
        channel=event.channel,
        occurred_at=event.occurred_at or ctx.received_at,
        received_at=ctx.received_at,
        contact_id=contact_id,
        journal_id=ctx.journal_id,
        campaign=ctx.campaigns.attribute(
            region=event.region or ctx.region,
            tracking_number=event.tracking_number,
            utm=event.utm,
            to_address=event.to_address,
            default=ctx.default_campaign,
        ),
        phone_raw=event.phones[0] if event.phones else None,
        email_raw=event.emails[0] if event.emails else None,
        name=event.name,
        message=event.message,
        utm=event.utm,
        tracking_number=event.tracking_number,
        to_address=event.to_address,
        dropped=event.dropped,
        blocked=blocked,
        payload=event.fields,
    )


def record_contact_event(db: Database, event: ContactEvent, ctx: EventContext) -> tuple[int, bool]:
    """Store a form, mail or manual event as one touch on its contact; a retry changes nothing."""
    existing = find_touch(db, ctx.source, event.external_id)
    if existing is not None:
        return existing, False
    idents = _event_identifiers(event, ctx)
    contact_id = None
    if idents and event.dropped is None:
        resolution = resolve_contact(db, idents, name=event.name, at=event.occurred_at or ctx.received_at)
        contact_id = resolution.contact_id if resolution else None
    return insert_touch(db, _contact_touch(event, ctx, contact_id, any_blocked(db, idents)))


@dataclass
class ContactEventsPlan:
    """What :func:`record_contact_event` on each event in turn would write, ready to write at once.

    ``results`` has one ``(touch id, new)`` per event planned: all of them, or those before the
    first event that would merge two contacts (merges stay with :func:`resolve_contact`, the one
    place that records them).
    """

    results: list[tuple[int, bool]] = field(default_factory=list)
    contacts: list[tuple[object, ...]] = field(default_factory=list)
    identifiers: list[tuple[object, ...]] = field(default_factory=list)
    renames: list[tuple[object, ...]] = field(default_factory=list)
    touches: list[tuple[object, ...]] = field(default_factory=list)
    #: Per planned event, how many rows of each list above it had added by its end.
    marks: list[tuple[int, int, int, int]] = field(default_factory=list)

    def write(self, db: Database, events: int) -> None:
        """Write the rows of the first ``events`` events planned, one prepared statement a table."""
        if events == 0:
            return
        contacts, identifiers, renames, touches = self.marks[events - 1]
        conn = db.conn
        conn.executemany(
            "INSERT INTO contacts (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
            self.contacts[:contacts],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO identifiers (contact_id, kind, value, raw, valid, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            self.identifiers[:identifiers],
        )
        conn.executemany(
            "UPDATE contacts SET name = COALESCE(name, ?), updated_at = ? WHERE id = ?",
            self.renames[:renames],
        )
        if conn.executemany(_INSERT_TOUCH_WITH_ID, self.touches[:touches]).rowcount != touches:
            raise LookupError("a planned touch was there already")  # cannot be: the look-up came first


def plan_contact_events(
    db: Database, items: Sequence[tuple[ContactEvent, EventContext]]
) -> ContactEventsPlan:
    """Plan a burst of events with one look-up per table instead of several per event.

    Under a burst of webhooks the single writer pays per statement. Contacts are resolved in order
    against what the earlier events of the same burst made, exactly as one by one would.
    """
    keys = {(ctx.source, event.external_id) for event, ctx in items}
    existing = _existing_touches(db, keys)
    idents = [_event_identifiers(event, ctx) for event, ctx in items]
    valid: set[tuple[str, str]] = {(i.kind, i.value) for found in idents for i in found if i.valid}
    held = _held(db, {i.value for found in idents for i in found})
    owners = {(kind, value): contact for contact, kind, value, is_valid in held if is_valid}
    holding = {(contact, kind, value) for contact, kind, value, _ in held}
    blocked = _blocked(db, valid)
    next_contact = _next_id(db, "contacts")
    next_touch = _next_id(db, "touches")
    plan = ContactEventsPlan()
    for (event, ctx), found in zip(items, idents, strict=True):
        key = (ctx.source, event.external_id)
        if key in existing:
            plan.results.append((existing[key], False))
        else:
            contact_id = None
            if found and event.dropped is None:
                stamp = iso(event.occurred_at or ctx.received_at)
                matched = {owners[k] for i in found if i.valid and (k := (i.kind, i.value)) in owners}
                if len(matched) > 1:
                    break
                if matched:
                    contact_id = matched.pop()
                    if event.name:
                        plan.renames.append((event.name, stamp, contact_id))
                else:
                    contact_id = next_contact
                    next_contact += 1
                    plan.contacts.append((contact_id, event.name or None, stamp, stamp))
                for i in found:
                    if (contact_id, i.kind, i.value) in holding:
                        continue  # INSERT OR IGNORE: the contact has it already, valid or not
                    holding.add((contact_id, i.kind, i.value))
                    plan.identifiers.append((contact_id, i.kind, i.value, i.raw, int(i.valid), stamp))
                    if i.valid:
                        owners[(i.kind, i.value)] = contact_id
            is_blocked = any((i.kind, i.value) in blocked for i in found if i.valid)
            touch = _contact_touch(event, ctx, contact_id, is_blocked)
            plan.touches.append((next_touch, *_touch_params(touch)))
            plan.results.append((next_touch, True))
            existing[key] = next_touch
            next_touch += 1
        plan.marks.append((len(plan.contacts), len(plan.identifiers), len(plan.renames), len(plan.touches)))
    return plan


_INSERT_TOUCH_WITH_ID = _INSERT_TOUCH.replace("(source,", "(id, source,", 1).replace(
    "VALUES (?,", "VALUES (?, ?,", 1
)


def _next_id(db: Database, table: str) -> int:
    """The id SQLite would give the next row (the tables have no AUTOINCREMENT), for rows written
    with executemany, which reports no ids."""
    return int(db.conn.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}").fetchone()[0])


def _existing_touches(db: Database, keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for source in {s for s, _ in keys}:
        for ids in chunks(sorted(e for s, e in keys if s == source)):
            marks = ",".join("?" * len(ids))
            rows = db.conn.execute(
                f"SELECT external_id, id FROM touches WHERE source = ? AND external_id IN ({marks})",
                [source, *ids],
            )
            found.update({(source, str(e)): int(i) for e, i in rows})
    return found


def _held(db: Database, values: set[str]) -> list[tuple[int, str, str, bool]]:
    """Every identifier row with one of these values: who holds it, and whether it is valid."""
    held: list[tuple[int, str, str, bool]] = []
    for chunk in chunks(sorted(values)):
        marks = ",".join("?" * len(chunk))
        rows = db.conn.execute(
            f"SELECT contact_id, kind, value, valid FROM identifiers WHERE value IN ({marks})", chunk
        )
        held += [(int(c), str(k), str(v), bool(ok)) for c, k, v, ok in rows]
    return held


def _blocked(db: Database, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (kind, value) pairs staff blocked."""
    blocked: set[tuple[str, str]] = set()
    for values in chunks(sorted({v for _, v in keys})):
        marks = ",".join("?" * len(values))
        rows = db.conn.execute(f"SELECT kind, value FROM blocklist WHERE value IN ({marks})", values)
        blocked |= {(str(k), str(v)) for k, v in rows if (k, v) in keys}
    return blocked
