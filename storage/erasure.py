"""Erasing a person: their data goes from every table, the raw requests and the file's free pages.

What stays is what the numbers need and names nobody: the contact row (without a name, marked
``erased_at``) with its touches, registrations and leads, so every past report comes out the same.
What goes: identifiers, block-list entries (on request; a retention pass keeps a spammer blocked),
names and texts of touches (and their number or address on a touch of someone kept apart from
them), leads and registrations, a lead's ``need`` and the reason typed when it went back to marketing, in its history and in the webhooks to a CRM, the API's idempotency keys that answered about them, the bot's unsaved drafts
about them (bot/fsm.py), the raw requests (body, headers, query, address; a row that ``leadline replay``
could run again is marked rejected with 410, so it never brings the person back), pending
recordings, Zadarma's request bindings, and the Telegram messages that showed them (a message not
sent yet is cancelled). Each erasure is recorded in ``erasures``: when, by whom, why, and which kinds
of identifier went, never their values.

Overwritten and deleted content is zeroed (``PRAGMA secure_delete``, on for every connection), and
:func:`checkpoint` then copies the write-ahead log into the file and truncates it, so no older copy
of a page survives there either. Backups keep the data until they rotate out (docs/privacy.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

from sqlite_utils import Database

from storage.chats import erased_message_id
from storage.db import Store, WriteLock, chunks, connect, iso
from storage.identifiers import Kind
from storage.subject_scans import Found, scan
from storage.subjects import Subject, subject_of, their_fields

log = logging.getLogger("leadline.erasure")

Origin = Literal["cli", "api", "bot", "retention"]
Reason = Literal["request", "unregistered", "refused"]

#: What a raw request row becomes when it could still be replayed: refused, and gone for good.
GONE_STATUS = 410
GONE_REASON = "erased: the person's data was erased"
#: A lead change whose values are the person's own words, or staff's words about them (the reason
#: typed when a lead goes back to marketing); the rest are stages, amounts, dates and the reasons
#: the buttons offer.
_TEXT_FIELDS = ("need", "returned_reason")


@dataclass(frozen=True)
class Actor:
    """Who erased: where from (``cli``, ``api``, ``bot``, ``retention``), a name to show for it (an
    API client, a staff member, the operating-system user, a retention rule) and why."""

    origin: Origin
    name: str
    staff_id: int | None = None
    reason: Reason = "request"


@dataclass(frozen=True)
class Erased:
    """One erasure's record: the contact, every contact merged into it, and rows changed per table."""

    erasure_id: int
    contact_id: int
    contact_ids: tuple[int, ...]
    touch_ids: tuple[int, ...]
    kinds: tuple[Kind, ...]
    counts: dict[str, int] = field(default_factory=dict)
    #: Whether the write-ahead log was truncated after it (see :func:`checkpoint`).
    checkpointed: bool = False


def _erase_message_ids(db: Database, touches: Sequence[int]) -> int:
    """The person's message ids as :func:`storage.chats.erased_message_id` leaves them."""
    changed = 0
    for table, column in (("touches", "id"), ("chat_messages", "touch_id")):
        for chunk in chunks(sorted(set(touches))):
            marks = ",".join("?" * len(chunk))
            rows = db.execute(
                f"SELECT source, external_id FROM {table}"
                f" WHERE external_id LIKE 'whatsapp:wamid.%' AND {column} IN ({marks})",
                list(chunk),
            ).fetchall()
            for source, external_id in rows:
                db.execute(
                    f"UPDATE {table} SET external_id = ? WHERE source = ? AND external_id = ?",
                    [erased_message_id(str(external_id)), source, external_id],
                )
                changed += 1
    return changed


def _update(db: Database, sql: str, ids: Sequence[int], params: Sequence[Any] = ()) -> int:
    """``sql`` with ``{marks}`` for an IN list, run over ``ids`` in slices; the rows it changed."""
    changed = 0
    for chunk in chunks(sorted(set(ids))):
        cursor = db.execute(sql.replace("{marks}", ",".join("?" * len(chunk))), [*params, *chunk])
        changed += max(cursor.rowcount, 0)
    return changed


def refused_before(db: Database, ids: Sequence[int], before: datetime) -> list[int]:
    """Those of ``ids`` refused (status rejected) and received before ``before``."""
    found: list[int] = []
    for chunk in chunks(sorted(set(ids))):
        marks = ",".join("?" * len(chunk))
        found += [
            int(r[0])
            for r in db.execute(
                f"SELECT id FROM journal WHERE id IN ({marks}) AND status = 'rejected' AND received_at < ?",
                [*chunk, iso(before)],
            )
        ]
    return found


def redact_requests(db: Database, ids: Sequence[int], at: datetime, how: Literal["erased", "expired"]) -> int:
    """Drop the raw request of journal rows, keeping each row (its counts and times) in place."""
    stamp = iso(at)
    if how == "expired":
        return _update(
            db,
            "UPDATE journal SET body = x'', headers = '[]', query_string = '', remote = NULL,"
            " redacted_at = ?, redacted = 'expired' WHERE id IN ({marks})",
            ids,
            [stamp],
        )
    return _update(
        db,
        "UPDATE journal SET body = x'', headers = '[]', query_string = '', remote = NULL, redacted_at = ?,"
        " redacted = 'erased', reason = CASE WHEN status = 'processed' THEN reason ELSE ? END,"
        " http_status = CASE WHEN status = 'processed' THEN http_status ELSE ? END,"
        " status = CASE WHEN status = 'processed' THEN status ELSE 'rejected' END WHERE id IN ({marks})",
        ids,
        [stamp, GONE_REASON, GONE_STATUS],
    )


def erase(
    db: Database,
    subject: Subject,
    found: Found,
    *,
    at: datetime,
    actor: Actor,
    keep_blocklist: bool = False,
    deliveries: bool = True,
) -> Erased:
    """Erase what ``subject`` and ``found`` name, in the caller's transaction, and record it.

    ``keep_blocklist`` keeps the person's numbers and addresses on the block list: a retention pass
    anonymises a spammer and keeps them blocked, a person who asks to be erased is erased there too.
    ``deliveries=False`` leaves the webhooks to a CRM to one :func:`redact_deliveries` for many people.
    """
    stamp = iso(at)
    people, touches, leads = subject.contact_ids, subject.touch_ids, subject.lead_ids
    counts: dict[str, int] = {}
    counts["journal"] = redact_requests(db, [*subject.journal_ids, *found.journal_ids], at, "erased")
    # Before the touches lose it: the business's replies still waiting in their dialogues (one sent
    # before the person first wrote answers nothing, and keeps the key) hold its chat ids, digested.
    counts["chat_replies"] = _update(
        db,
        "UPDATE chat_replies SET conversation = NULL WHERE touch_id IS NULL AND (source, conversation) IN"
        " (SELECT source, conversation FROM touches WHERE conversation IS NOT NULL AND id IN ({marks}))",
        touches,
    )
    counts["touches"] = _update(
        db,
        "UPDATE touches SET phone_raw = NULL, email_raw = NULL, name = NULL, message = NULL, payload = '{}',"
        " recording = NULL, conversation = NULL, updated_at = ? WHERE id IN ({marks})",
        touches,
        [stamp],
    )
    counts["touches"] += _erase_named_in(db, subject, stamp)
    counts["message_ids"] = _erase_message_ids(db, touches)
    counts["pending_recordings"] = _update(
        db,
        "DELETE FROM pending_recordings WHERE journal_id IN ({marks})",
        [*subject.journal_ids, *found.journal_ids],
    )
    counts["request_bindings"] = 0
    for source, call_id in subject.calls:
        counts["pending_recordings"] += db.execute(
            "DELETE FROM pending_recordings WHERE source = ? AND call_id = ?", [source, call_id]
        ).rowcount
        counts["request_bindings"] += db.execute(
            "DELETE FROM request_bindings WHERE source = ? AND value = ?", [source, call_id]
        ).rowcount
    counts["blocklist"] = 0
    if not keep_blocklist:
        for kind, value, *_ in subject.identifiers:
            counts["blocklist"] += db.execute(
                "DELETE FROM blocklist WHERE kind = ? AND value = ?", [kind, value]
            ).rowcount
    counts["identifiers"] = _update(db, "DELETE FROM identifiers WHERE contact_id IN ({marks})", people)
    counts["contacts"] = _update(
        db,
        "UPDATE contacts SET name = NULL, erased_at = ?, updated_at = ? WHERE id IN ({marks})",
        people,
        [stamp, stamp],
    )
    counts["merges"] = _forget_duplicates(db, people)
    counts["registrations"] = _update(
        db,
        "UPDATE registrations SET note = NULL WHERE note IS NOT NULL AND id IN ({marks})",
        subject.registration_ids,
    )
    counts["leads"] = _update(
        db, "UPDATE leads SET need = NULL, returned_reason = NULL, fields = '{}' WHERE id IN ({marks})", leads
    )
    fields = ",".join(f"'{f}'" for f in _TEXT_FIELDS)
    counts["lead_changes"] = _update(
        db,
        f"UPDATE lead_changes SET old = NULL, new = NULL WHERE field IN ({fields}) AND lead_id IN ({{marks}})",
        leads,
    )
    counts["nudges"] = _update(
        db,
        "UPDATE nudges SET closed_at = ?, outcome = 'erased' WHERE closed_at IS NULL AND id IN ({marks})",
        subject.nudge_ids,
        [stamp],
    )
    counts["idempotency_keys"] = _update(
        db, "DELETE FROM idempotency_keys WHERE contact_id IN ({marks})", people
    )
    counts["bot_states"] = _update(db, "DELETE FROM bot_states WHERE contact_id IN ({marks})", people)
    counts["bot_states"] += _update(db, "DELETE FROM bot_states WHERE touch_id IN ({marks})", touches)
    counts["outbox"] = blank_messages(db, found.outbox_ids)
    counts["webhook_deliveries"] = redact_deliveries(db, leads) if deliveries else 0
    kinds = tuple(subject.kinds)
    erasure_id = int(
        db.execute(
            "INSERT INTO erasures (at, origin, actor, staff_id, reason, contact_id, kinds, counts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                stamp,
                actor.origin,
                actor.name,
                actor.staff_id,
                actor.reason,
                subject.contact_id,
                json.dumps(list(kinds)),
                json.dumps(counts, sort_keys=True),
            ],
        ).lastrowid
        or 0
    )
    return Erased(erasure_id, subject.contact_id, people, touches, kinds, counts)


def _erase_named_in(db: Database, subject: Subject, stamp: str) -> int:
    """Another contact's touches that carry the person's number or address lose what is theirs: the
    column that names them, or the provider's fields that do; the rest is the other person's."""
    for column in ("phone_raw", "email_raw", "message"):
        _update(
            db,
            f"UPDATE touches SET {column} = NULL, updated_at = ? WHERE id IN ({{marks}})",
            [touch for touch, named in subject.named_in if named == column],
            [stamp],
        )
    for touch in sorted({touch for touch, named in subject.named_in if named == "payload"}):
        payload = str(db.execute("SELECT payload FROM touches WHERE id = ?", [touch]).fetchone()[0])
        theirs = their_fields(payload, subject.matcher)
        kept = {k: v for k, v in json.loads(payload).items() if k not in theirs}
        db.execute(
            "UPDATE touches SET payload = ?, updated_at = ? WHERE id = ?",
            [json.dumps(kept, ensure_ascii=False), stamp, touch],
        )
    return len({touch for touch, _ in subject.named_in})


def blank_messages(db: Database, ids: Sequence[int]) -> int:
    """Telegram messages that showed an erased person lose their text; one not sent yet never is."""
    return _update(
        db,
        "UPDATE outbox SET payload = '{}', last_error = CASE WHEN status IN ('pending', 'sending')"
        " THEN 'cancelled: it showed a person since erased' ELSE NULL END,"
        " status = CASE WHEN status IN ('pending', 'sending') THEN 'failed' ELSE status END WHERE id IN ({marks})",
        ids,
    )


def _forget_duplicates(db: Database, people: Sequence[int]) -> int:
    """A merge keeps the identifiers both contacts held, for its undo: they go, the merge stays."""
    changed = 0
    for person in people:
        changed += db.execute(
            "UPDATE merges SET moved = json_remove(moved, '$.duplicate_identifiers')"
            " WHERE json_extract(moved, '$.duplicate_identifiers') IS NOT NULL"
            " AND (survivor_id = ? OR merged_id = ?)",
            [person, person],
        ).rowcount
    return changed


def redact_deliveries(db: Database, leads: Sequence[int]) -> int:
    """A CRM's copy of a change to the person's own words in their leads loses the words (sent or
    not). Found by the lead's id in the payload, as their ``lead_changes`` are: the contact id there
    is the lead's holder when it was queued, another person's if a merge has been undone since."""
    fields = ",".join(f"'{f}'" for f in _TEXT_FIELDS)
    changed = 0
    for chunk in chunks(sorted(set(leads))):
        marks = ",".join("?" * len(chunk))
        rows = db.execute(
            "SELECT id, payload FROM webhook_deliveries WHERE event_type = 'lead.changed' AND json_valid(payload)"
            f" AND json_extract(payload, '$.data.field') IN ({fields})"
            f" AND json_extract(payload, '$.data.lead_id') IN ({marks})",
            list(chunk),
        ).fetchall()
        for delivery_id, payload in rows:
            message = json.loads(payload)
            data = message["data"]
            if data.get("old") is None and data.get("new") is None:
                continue
            data["old"] = data["new"] = None
            db.execute(
                "UPDATE webhook_deliveries SET payload = ? WHERE id = ?",
                [json.dumps(message, ensure_ascii=False), delivery_id],
            )
            changed += 1
    return changed


def checkpoint(path: Path) -> bool:
    """Copy the write-ahead log into the database file and truncate it; False if a reader still
    holds an old snapshot (the log then empties at a later checkpoint)."""
    lock = WriteLock(path)
    db = connect(path)
    try:
        db.conn.execute("PRAGMA busy_timeout = 5000")
        with lock:
            busy, _, _ = db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy
    finally:
        db.close()
        lock.close()


def _erase_job(
    db: Database, contact_id: int, read: Subject, seen: Found, at: datetime, actor: Actor
) -> Erased | None:
    """The write: the person read again inside the transaction, and the rows written since the read
    scanned (all of them, should the person have gained a number or address meanwhile)."""
    subject = subject_of(db, contact_id)
    if subject is None:
        return None
    found = seen | scan(db, subject, seen.marks) if subject.matcher == read.matcher else scan(db, subject)
    return erase(db, subject, found, at=at, actor=actor)


async def forget(store: Store, contact_id: int, *, at: datetime, actor: Actor) -> Erased | None:
    """Erase one person, then truncate the write-ahead log; None when there is no such contact.

    The long part, reading every table for the person's numbers, is a read; the writer then only
    reads the rows written since, so capture is held up for a moment, not for the whole scan.
    """
    subject = await store.read(partial(subject_of, contact_id=contact_id))
    if subject is None:
        return None
    seen = await store.read(partial(scan, subject=subject))
    erased = await store.write(
        partial(_erase_job, contact_id=contact_id, read=subject, seen=seen, at=at, actor=actor)
    )
    if erased is None:
        return None
    checkpointed = await asyncio.to_thread(checkpoint, store.path)
    log.info(
        "a person's data was erased",
        extra={
            "fields": {
                "contact": erased.contact_id,
                "origin": actor.origin,
                "by": actor.name,
                "kinds": list(erased.kinds),
                "checkpointed": checkpointed,
                **{f"rows_{table}": n for table, n in erased.counts.items() if n},
            }
        },
    )
    return replace(erased, checkpointed=checkpointed)
