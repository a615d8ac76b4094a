"""Outgoing webhooks: the user's CRM hears of each registration and each lead change.

Events are not pushed from the code that registers (the bot, the API, the CLI all do): they are
collected from the ``registrations`` and ``lead_changes`` tables, past a cursor kept in ``meta``,
into ``webhook_deliveries`` (one row per event and endpoint) in one transaction. So an event is
queued exactly once whoever made it, and a crash between collecting and sending loses nothing.
Each delivery is signed per the Standard Webhooks spec with a ``webhook-id`` that stays the same
across retries (``msg_registration_<id>`` / ``msg_lead_change_<id>``), so a receiver can drop
repeats; a failure is retried with growing delays, and after the last one the row is ``failed``.
A webhook added to the config hears what happens from then on, not the whole history.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import aiohttp
from aiohttp import web
from sqlite_utils import Database
from standardwebhooks import Webhook

from leadline import keys
from leadline.config import WebhookConfig
from storage.db import Store, iso

log = logging.getLogger("leadline.webhooks")

#: Delay before each retry; after the last, the delivery is marked failed (about a day in all).
BACKOFF = (
    timedelta(seconds=5),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
POLL_SECONDS = 2.0
TIMEOUT = aiohttp.ClientTimeout(total=15)

#: What is sent: (name, table, event type, the table's rows past a cursor). The name makes the cursor's
#: key in ``meta`` (``webhooks_out.<name>_id``) and the ``webhook-id`` (``msg_<name>_<row id>``).
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


def _cursor_key(name: str) -> str:
    return f"webhooks_out.{name}_id"


def _cursor(db: Database, name: str) -> int | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", [_cursor_key(name)]).fetchone()
    return int(row[0]) if row else None


def _set_cursor(db: Database, name: str, value: int) -> None:
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [_cursor_key(name), str(value)])


def collect(db: Database, webhooks: Sequence[WebhookConfig], at: datetime, limit: int = 1000) -> int:
    """Queue a delivery per endpoint for each registration and lead change since the last call."""
    if not webhooks:
        return 0
    events: list[tuple[str, str, dict[str, Any]]] = []
    for name, table, event_type, sql in _FEEDS:
        last = _cursor(db, name)
        if last is None:  # a new webhook hears what happens from now on
            top = db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]
            _set_cursor(db, name, int(top))
            continue
        rows = list(db.query(sql, [last, limit]))
        events += [(f"msg_{name}_{r['id']}", event_type, r) for r in rows]
        if rows:
            _set_cursor(db, name, int(rows[-1]["id"]))
    stamp = iso(at)
    for webhook_id, event_type, data in events:
        payload = json.dumps({"type": event_type, "timestamp": stamp, "data": data}, ensure_ascii=False)
        for hook in webhooks:
            db.execute(
                "INSERT OR IGNORE INTO webhook_deliveries (webhook_id, endpoint, event_type, payload, next_attempt_at,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [webhook_id, hook.url, event_type, payload, stamp, stamp],
            )
    return len(events)


@dataclass(frozen=True)
class Due:
    id: int
    webhook_id: str
    endpoint: str
    payload: str
    attempts: int


def _due(db: Database, at: datetime, limit: int) -> list[Due]:
    rows = db.execute(
        "SELECT id, webhook_id, endpoint, payload, attempts FROM webhook_deliveries"
        " WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
        [iso(at), limit],
    ).fetchall()
    return [Due(*row) for row in rows]


def signed_headers(secret: str, webhook_id: str, at: datetime, payload: str) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    stamp = at.replace(microsecond=0)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, stamp, payload),
        "Content-Type": "application/json",
    }


async def deliver_due(
    store: Store,
    webhooks: Sequence[WebhookConfig],
    session: aiohttp.ClientSession,
    now: datetime,
    limit: int = 100,
) -> dict[str, int]:
    """Collect new events, then try every delivery that is due; returns counts by outcome."""
    secrets = {hook.url: hook.secret.get_secret_value() for hook in webhooks}
    await store.write(lambda db: collect(db, webhooks, now))
    due = await store.read(lambda db: _due(db, now, limit))
    counts = {"delivered": 0, "retry": 0, "failed": 0}
    for item in due:
        error: str | None = None
        secret = secrets.get(item.endpoint)
        if secret is None:
            error = "the endpoint is no longer in the config"
        else:
            try:
                headers = signed_headers(secret, item.webhook_id, now, item.payload)
                async with session.post(
                    item.endpoint, data=item.payload.encode(), headers=headers, timeout=TIMEOUT
                ) as resp:
                    if not 200 <= resp.status < 300:
                        error = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
        outcome = _settle(item, error)
        counts[outcome] += 1
        await store.write(partial(_record, item=item, error=error, outcome=outcome, now=now))
        if error:
            log.warning(
                "webhook delivery failed",
                extra={
                    "fields": {"webhook_id": item.webhook_id, "attempt": item.attempts + 1, "error": error}
                },
            )
    return counts


def _settle(item: Due, error: str | None) -> str:
    if error is None:
        return "delivered"
    return "retry" if item.attempts < len(BACKOFF) else "failed"


def _record(db: Database, item: Due, error: str | None, outcome: str, now: datetime) -> None:
    if outcome == "delivered":
        db.execute(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = ?,"
            " last_error = NULL WHERE id = ?",
            [iso(now), item.id],
        )
        return
    status = "pending" if outcome == "retry" else "failed"
    delay = BACKOFF[min(item.attempts, len(BACKOFF) - 1)]
    db.execute(
        "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
        " WHERE id = ?",
        [status, error, iso(now + delay), item.id],
    )


async def webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    """The sender, polling while the server runs (only when webhooks are configured)."""
    webhooks = app[keys.CONFIG].webhooks
    if not webhooks:
        yield
        return
    session = aiohttp.ClientSession()

    async def loop() -> None:
        while True:
            try:
                await deliver_due(app[keys.STORE], webhooks, session, app[keys.CLOCK]())
            except Exception:
                log.exception("webhook sender failed; retrying")
            await asyncio.sleep(POLL_SECONDS)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await session.close()
