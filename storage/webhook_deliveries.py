"""The outgoing webhooks' queue: one row per event and endpoint, collected past a cursor.

An endpoint is a ``[[webhooks]]`` entry, known by its ``name``, else by its URL: the ``endpoint``
columns hold that key, and the URL a delivery is posted to is the config's at the time it is sent,
so a named webhook's URL can change and its queue goes on to the new one.

Events are not pushed from the code that registers (the bot, the API, the CLI all do): they are
collected from the ``registrations`` and ``lead_changes`` tables, past each endpoint's cursors in
``webhook_cursors``, into ``webhook_deliveries`` in one transaction. So an event is queued exactly
once per endpoint whoever made it, and a crash between collecting and sending loses nothing. A
webhook added to the config, or put back after a spell without it, hears what happens from then on,
not the history.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from storage.db import chunks, iso, parse_iso

if TYPE_CHECKING:
    from leadline.config import WebhookConfig

#: What is sent: (name, table, event type, the table's rows past a cursor). The name is the cursor's
#: ``feed`` in ``webhook_cursors`` and begins the ``webhook-id`` (:func:`new_webhook_id`).
_FEEDS = (
    (
        "registration",
        "registrations",
        "registration.created",
        "SELECT r.id, r.contact_id, r.disposition, r.reason, r.campaign, r.staff_id, r.origin, r.created_at,"
        " l.id AS lead_id, l.temperature FROM registrations r LEFT JOIN leads l ON l.registration_id = r.id"
        " WHERE r.id > ? ORDER BY r.id LIMIT ?",
    ),
    (
        "lead_change",
        "lead_changes",
        "lead.changed",
        "SELECT c.id, c.lead_id, l.contact_id, c.field, c.old, c.new, c.staff_id, c.at FROM lead_changes c"
        " JOIN leads l ON l.id = c.lead_id WHERE c.id > ? ORDER BY c.id LIMIT ?",
    ),
)


def new_webhook_id(name: str, row_id: int) -> str:
    """A new event's ``webhook-id``, stored with its deliveries so that each retry sends it again.

    The row id says which row it came from; the random part keeps it unique when ids come round
    again (``leadline restore`` rolls them back, and a receiver drops as a repeat an id it has seen).
    """
    return f"msg_{name}_{row_id}_{uuid.uuid4().hex[:16]}"


def collect(db: Database, webhooks: Sequence[WebhookConfig], at: datetime, limit: int = 1000) -> int:
    """Queue a delivery per endpoint for each registration and lead change past that endpoint's
    cursor; returns how many were queued.

    Each endpoint has its own cursors in ``webhook_cursors``, and its deliveries, under its key: the
    webhook's ``name``, else its URL (the ``endpoint`` column holds that key). One seen for the first
    time starts at the newest row, and the cursors of an endpoint not in ``webhooks`` are dropped, so
    a webhook added, or put back after a spell without it, hears what happens from then on: called
    with no webhooks at all (``serve`` starting without any), it drops them all. A webhook given a
    name takes over what its URL had (:func:`_adopt`), so it can then change its URL and keep it.
    """
    urls = sorted({hook.key for hook in webhooks})
    for hook in webhooks:
        if hook.name is not None and hook.url not in urls:
            _adopt(db, hook.url, hook.name)
    marks = ",".join("?" * len(urls))
    db.execute(f"DELETE FROM webhook_cursors WHERE endpoint NOT IN ({marks})", urls)
    cursors = {
        (str(e), str(f)): int(last)
        for e, f, last in db.execute("SELECT endpoint, feed, last_id FROM webhook_cursors")
    }
    stamp, queued = iso(at), 0
    for name, table, event_type, sql in _FEEDS:
        fetched: dict[int, list[dict[str, Any]]] = {}  # endpoints at the same cursor read once
        for url in urls:
            last = cursors.get((url, name))
            if last is None:
                top = int(db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0])
                db.execute(
                    "INSERT INTO webhook_cursors (endpoint, feed, last_id) VALUES (?, ?, ?)", [url, name, top]
                )
                continue
            if last not in fetched:
                fetched[last] = list(db.query(sql, [last, limit]))
            rows = fetched[last]
            for row in rows:
                payload = json.dumps(
                    {"type": event_type, "timestamp": stamp, "data": row}, ensure_ascii=False
                )
                db.execute(
                    "INSERT INTO webhook_deliveries (webhook_id, endpoint, event_type, payload, next_attempt_at,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [new_webhook_id(name, row["id"]), url, event_type, payload, stamp, stamp],
                )
            if rows:
                db.execute(
                    "UPDATE webhook_cursors SET last_id = ? WHERE endpoint = ? AND feed = ?",
                    [int(rows[-1]["id"]), url, name],
                )
            queued += len(rows)
    return queued


def _adopt(db: Database, url: str, name: str) -> None:
    """A webhook that was known by its URL and is now named: its deliveries, and its place in the
    history unless the name has one already, go under the name."""
    if db.execute("SELECT 1 FROM webhook_cursors WHERE endpoint = ?", [name]).fetchone() is None:
        db.execute("UPDATE webhook_cursors SET endpoint = ? WHERE endpoint = ?", [name, url])
    db.execute("UPDATE webhook_deliveries SET endpoint = ? WHERE endpoint = ?", [name, url])


@dataclass(frozen=True)
class Due:
    id: int
    webhook_id: str
    endpoint: str
    payload: str
    attempts: int
    #: When it was queued: a delivery is tried until it is as old as the sender's bound.
    created_at: datetime


_COLUMNS = "id, webhook_id, endpoint, payload, attempts, created_at"
_DUE = f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE status = 'pending'"


def _due(row: Sequence[Any]) -> Due:
    delivery_id, webhook_id, endpoint, payload, attempts, created_at = row
    return Due(
        int(delivery_id),
        str(webhook_id),
        str(endpoint),
        str(payload),
        int(attempts),
        parse_iso(str(created_at)),
    )


def due(db: Database, at: datetime, limit: int, *, endpoint: str) -> list[Due]:
    """One endpoint's deliveries due at ``at``, in the order the events were queued, up to the first
    that is not due: each endpoint is sent to on its own, strictly in order, so a CRM never hears a
    lead's later change before an earlier one that is waiting out a retry."""
    rows = db.execute(
        f"SELECT {_COLUMNS}, next_attempt_at FROM webhook_deliveries"
        " WHERE status = 'pending' AND endpoint = ? ORDER BY id LIMIT ?",
        [endpoint, limit],
    ).fetchall()
    stamp, ready = iso(at), []
    for *item, next_attempt_at in rows:
        if next_attempt_at > stamp:
            break
        ready.append(_due(item))
    return ready


def due_elsewhere(db: Database, at: datetime, limit: int, endpoints: Sequence[str]) -> list[Due]:
    """The due deliveries of every endpoint not in ``endpoints`` (taken out of the config)."""
    marks = ",".join("?" * len(endpoints))
    rows = db.execute(
        f"{_DUE} AND endpoint NOT IN ({marks}) AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
        [*endpoints, iso(at), limit],
    ).fetchall()
    return [_due(row) for row in rows]


def delivered(db: Database, delivery_id: int, at: datetime) -> None:
    db.execute(
        "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = ?,"
        " last_error = NULL WHERE id = ?",
        [iso(at), delivery_id],
    )


def not_delivered(
    db: Database, delivery_id: int, error: str, *, next_attempt_at: datetime, final: bool
) -> None:
    """One more failed attempt: pending again from ``next_attempt_at``, or after the last one, failed."""
    db.execute(
        "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
        " WHERE id = ?",
        ["failed" if final else "pending", error, iso(next_attempt_at), delivery_id],
    )


#: What a delivery can be: waiting for an attempt, done, or given up (``leadline webhooks requeue``).
STATUSES = ("pending", "delivered", "failed")


@dataclass(frozen=True)
class Stats:
    """What ``/metrics`` publishes: deliveries by status (each present, 0 included) and when the
    oldest pending one was queued (None when nothing waits)."""

    by_status: dict[str, int]
    oldest_pending: datetime | None


def stats(db: Database) -> Stats:
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in db.execute("SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status"):
        counts[str(status)] = int(count)
    oldest = db.execute("SELECT MIN(created_at) FROM webhook_deliveries WHERE status = 'pending'").fetchone()[
        0
    ]
    return Stats(counts, parse_iso(str(oldest)) if oldest is not None else None)


@dataclass(frozen=True)
class Listed:
    """One delivery as ``leadline webhooks`` shows it."""

    id: int
    endpoint: str
    event_type: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None
    #: The payload was emptied by retention (``[retention] journal_days``): it cannot be sent again.
    expired: bool


def listing(db: Database, statuses: Sequence[str], limit: int) -> tuple[list[Listed], bool]:
    """The oldest ``limit`` deliveries with one of ``statuses``, in queue order; and whether more match."""
    marks = ",".join("?" * len(statuses))
    rows = db.execute(
        "SELECT id, endpoint, event_type, status, attempts, created_at, next_attempt_at, last_error,"
        f" payload = '{{}}' FROM webhook_deliveries WHERE status IN ({marks}) ORDER BY id LIMIT ?",
        [*statuses, limit + 1],
    ).fetchall()
    found = [
        Listed(
            int(i),
            str(endpoint),
            str(event_type),
            str(status),
            int(attempts),
            parse_iso(str(created)),
            parse_iso(str(following)),
            None if error is None else str(error),
            bool(expired),
        )
        for i, endpoint, event_type, status, attempts, created, following, error, expired in rows
    ]
    return found[:limit], len(found) > limit


def requeue(db: Database, ids: Sequence[int] | None, at: datetime) -> list[int]:
    """Failed deliveries (those of ``ids``, or all when None) pending again from ``at``, with the
    retries of a new one; returns their ids. One whose payload retention emptied stays failed."""
    where = "status = 'failed' AND payload != '{}'"
    if ids is None:
        found = [
            int(r[0]) for r in db.execute(f"SELECT id FROM webhook_deliveries WHERE {where} ORDER BY id")
        ]
    else:
        found = []
        for chunk in chunks(sorted(set(ids))):
            marks = ",".join("?" * len(chunk))
            found += [
                int(r[0])
                for r in db.execute(
                    f"SELECT id FROM webhook_deliveries WHERE {where} AND id IN ({marks}) ORDER BY id",
                    list(chunk),
                )
            ]
    for chunk in chunks(found):
        marks = ",".join("?" * len(chunk))
        db.execute(
            f"UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ? WHERE id IN ({marks})",
            [iso(at), *chunk],
        )
    return found
