"""Touches: one row per inbound event, written once and never edited by processing.

A touch is keyed by its source and the provider's id for the event, so a provider's retry finds
the row it already made and changes nothing. Call touches are the exception that proves the rule:
many notifications describe one call, and ``storage/calls.py`` folds them into the one row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from storage.attribution import CampaignIndex
from storage.blocking import NO_RULES, BlockRules, blocked_keys
from storage.db import chunks, iso
from storage.dedup import Claim, Resolution, resolve_contacts
from storage.events import ContactEvent
from storage.identifiers import Identifier, email, handle, phone_matches, typed_phone
from storage.json_text import dumps
from storage.records import record
from storage.registrations import Draft

#: Text a touch keeps of one value (a chat's messages together count as one); the whole request
#: stays in the journal. ``capture.settle`` holds every parsed event to it.
MAX_TEXT_CHARS = 65_536
#: How long a chat may be quiet and still be the same conversation (``conversation_gap_hours``).
CONVERSATION_GAP = timedelta(hours=24)
#: A phone field is searched for numbers in this much of it: a person's numbers are far shorter,
#: and the matcher costs microseconds a character (64 KB of "+7 916 " held the loop for 0.35 s).
MAX_PHONE_FIELD_CHARS = 1024


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
    #: The config's ``[[block]]`` rules, beside the block list in the database.
    blocking: BlockRules = NO_RULES
    #: For a source that says ``register``: how the system registers each of its touches.
    registers: Draft | None = None
    #: The source's ``conversation_gap_hours``: a chat message after a longer silence is a new touch.
    conversation_gap: timedelta = CONVERSATION_GAP

    def of_request(self, journal_id: int | None, received_at: datetime) -> EventContext:
        """This source's context for one of its requests: everything else is the source's.

        Copied without ``__init__``, as :func:`copy.copy` would, at a fraction of its cost: a frozen
        dataclass sets each of its 13 fields through ``object.__setattr__``, and a context built
        afresh cost some 40k instructions a request (bench/instructions.py).
        """
        copied = object.__new__(EventContext)
        copied.__dict__.update(self.__dict__, journal_id=journal_id, received_at=received_at)
        return copied


@record
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
        dumps(dict(touch.utm)) if touch.utm else "{}",
        touch.tracking_number,
        touch.to_address,
        touch.dropped,
        int(touch.blocked),
        touch.staff_id,
        dumps(dict(touch.payload)) if touch.payload else "{}",
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


_LINK_REPEAT = (
    "INSERT OR IGNORE INTO touch_requests (touch_id, journal_id)"
    " SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM touches WHERE id = ? AND journal_id = ?)"
)


def link_repeat(db: Database, touch_id: int, journal_id: int | None) -> None:
    """Tie the raw request of a repeated event (a provider's retry) to the touch it repeated: it
    makes no touch but names the person as the first did, and erasure must find it. Called only
    for a repeat, so a new touch's write costs nothing more; a journal row replayed into the touch
    it made already is that touch's own, and needs no link."""
    if journal_id is not None:
        db.conn.execute(_LINK_REPEAT, (touch_id, journal_id, touch_id, journal_id))


def identifiers_of(
    phones: tuple[str, ...],
    emails: tuple[str, ...],
    region: str,
    handles: tuple[tuple[str, str], ...] = (),
) -> list[Identifier]:
    """The identifiers a form, mail, chat or hand-entered touch names: a phone field may hold an
    email address (:func:`storage.identifiers.typed_phone`), or more than one number."""
    found = (
        [i for p in phones for i in _phone_field(p, region)]
        + [email(e) for e in emails]
        + [handle(kind, value) for kind, value in handles]
    )
    return [i for i in found if i is not None]


def _phone_field(raw: str, region: str) -> list[Identifier | None]:
    """A field that is not one valid number ("89161234567 WhatsApp", two numbers with a comma) names
    the valid numbers written in it; only a field with none is kept as written, flagged.

    The field read whole comes first: it is the usual case, and the matcher costs many times more.
    """
    whole = typed_phone(raw, region)
    if whole is None or whole.valid or whole.kind != "phone":
        return [whole]
    found: dict[str, Identifier | None] = {}
    for match in phone_matches(raw[:MAX_PHONE_FIELD_CHARS], region):
        found.setdefault(match.value, Identifier("phone", match.value, match.raw, True))
    return list(found.values()) or [whole]


def event_identifiers(event: ContactEvent, ctx: EventContext) -> list[Identifier]:
    """The person's identifiers: our own tracking numbers in a signature or a form are not theirs."""
    return [
        i
        for i in identifiers_of(event.phones, event.emails, event.region or ctx.region, event.handles)
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
            ref=event.campaign_ref,
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
    """:func:`record_contact_events` for one event."""
    return record_contact_events(db, [(event, ctx)])[0]


def record_contact_events(
    db: Database, items: Sequence[tuple[ContactEvent, EventContext]]
) -> list[tuple[int, bool]]:
    """Store forms, mail and manual entries as touches on their contacts: ``(touch id, new)`` each.

    A retry (an event whose source and id, or one of its ``former_ids``, are already stored, or
    came earlier in ``items``) changes nothing but its raw request's link (:func:`link_repeat`).
    Contacts are resolved for all the events at once by :func:`storage.dedup.resolve_contacts`,
    and the touches written with one statement.
    """
    keys = {(ctx.source, key) for event, ctx in items for key in (event.external_id, *event.former_ids)}
    known = _existing_touches(db, keys)
    idents = [event_identifiers(event, ctx) for event, ctx in items]
    on_list = blocked_keys(db, {(i.kind, i.value) for found in idents for i in found if i.valid})
    keys_new: set[tuple[str, str]] = set()
    new: list[int] = []  # the items that make a touch: the first of each id not stored yet
    claims: list[Claim] = []
    claim_of: dict[int, int] = {}  # item → its claim
    repeats: list[int] = []  # the items whose touch is stored already, or made by an earlier item
    for n, ((event, ctx), found) in enumerate(zip(items, idents, strict=True)):
        key = (ctx.source, event.external_id)
        if key in known or key in keys_new:
            repeats.append(n)
            continue
        stored = next((known[(ctx.source, f)] for f in event.former_ids if (ctx.source, f) in known), None)
        if stored is not None:  # stored under the key an earlier release gave it
            known[key] = stored
            repeats.append(n)
            continue
        keys_new.add(key)
        new.append(n)
        if found and event.dropped is None:
            claim_of[n] = len(claims)
            claims.append(Claim(found, event.name, event.occurred_at or ctx.received_at))
    next_touch = _next_id(db, "touches")
    made: dict[int, int] = {}  # item → the touch it made
    written = 0  # how many of ``new`` have their touch written

    def write_touches(resolved: Sequence[Resolution | None]) -> None:
        """Write the touches of the new items whose contacts are known, in order."""
        nonlocal written, next_touch
        rows: list[tuple[object, ...]] = []
        for n in new[written:]:
            claim = claim_of.get(n)
            if claim is not None and claim >= len(resolved):
                break
            resolution = resolved[claim] if claim is not None else None
            event, ctx = items[n]
            is_blocked = any(
                (i.kind, i.value) in on_list or ctx.blocking.matches(i.kind, i.value)
                for i in idents[n]
                if i.valid
            )
            touch = _contact_touch(event, ctx, resolution.contact_id if resolution else None, is_blocked)
            made[n] = known[(ctx.source, event.external_id)] = next_touch + len(rows)
            rows.append((made[n], *_touch_params(touch)))
        if rows and db.conn.executemany(_INSERT_TOUCH_WITH_ID, rows).rowcount != len(rows):
            raise LookupError("a touch was there already")  # cannot be: they were looked up first
        written += len(rows)
        next_touch += len(rows)

    # The call-back SLA is the config's, one for every source.
    deadline = next((ctx.callback_deadline for _, ctx in items), None)
    write_touches(resolve_contacts(db, claims, before_merge=write_touches, deadline=deadline))
    for n in repeats:
        event, ctx = items[n]
        link_repeat(db, known[(ctx.source, event.external_id)], ctx.journal_id)
    return [
        (made[n], True) if n in made else (known[(ctx.source, event.external_id)], False)
        for n, (event, ctx) in enumerate(items)
    ]


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
