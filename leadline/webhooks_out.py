"""Outgoing webhooks: the user's CRM hears of each registration and each lead change.

Events are collected into a queue in the database (``storage/webhook_deliveries.py``), so an
event is queued exactly once whoever made it, and a crash between collecting and sending loses
nothing. Each delivery is signed per the Standard Webhooks spec with a ``webhook-id`` that stays
the same across retries (``msg_registration_<id>`` / ``msg_lead_change_<id>``), so a receiver can
drop repeats; a failure is retried with growing delays, and after the last one the row is ``failed``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from functools import partial

import aiohttp
from aiohttp import web
from sqlite_utils import Database
from standardwebhooks import Webhook

from leadline import keys
from leadline.config import WebhookConfig
from storage import webhook_deliveries as deliveries
from storage.db import Store

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
    await store.write(lambda db: deliveries.collect(db, webhooks, now))
    due = await store.read(lambda db: deliveries.due(db, now, limit))
    counts = {"delivered": 0, "retry": 0, "failed": 0}
    for item in due:
        error: str | None = None
        secret = secrets.get(item.endpoint)
        if secret is None:
            error = "the endpoint is no longer in the config"
        else:
            # Whatever goes wrong with one item (a key the library refuses, a URL it cannot send to)
            # is that item's error: it is recorded and retried, and the batch goes on.
            try:
                headers = signed_headers(secret, item.webhook_id, now, item.payload)
                # A redirect is not followed: aiohttp would follow a 301/302 as a GET without the body,
                # and a 2xx to that would mark delivered an event the CRM never got.
                async with session.post(
                    item.endpoint,
                    data=item.payload.encode(),
                    headers=headers,
                    timeout=TIMEOUT,
                    allow_redirects=False,
                ) as resp:
                    if not 200 <= resp.status < 300:
                        error = f"HTTP {resp.status}"
            except Exception as exc:
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


def _settle(item: deliveries.Due, error: str | None) -> str:
    if error is None:
        return "delivered"
    return "retry" if item.attempts < len(BACKOFF) else "failed"


def _record(db: Database, item: deliveries.Due, error: str | None, outcome: str, now: datetime) -> None:
    if error is None:
        deliveries.delivered(db, item.id, now)
        return
    delay = BACKOFF[min(item.attempts, len(BACKOFF) - 1)]
    deliveries.not_delivered(db, item.id, error, next_attempt_at=now + delay, final=outcome == "failed")


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
