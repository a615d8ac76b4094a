"""Outgoing webhooks: the user's CRM hears of each registration and each lead change.

Events are collected into a queue in the database (``storage/webhook_deliveries.py``), so an
event is queued exactly once whoever made it, and a crash between collecting and sending loses
nothing. Each delivery is signed per the Standard Webhooks spec with a ``webhook-id`` made when
the event is collected and stored with it (``msg_registration_<id>_<random>``,
``msg_lead_change_<id>_<random>``): the same across retries, so a receiver can drop repeats, and
never the id of another event, even after a restore rolls the row ids back. Each endpoint's queue
goes strictly in order: a failure is retried with growing delays, and what was queued after it
waits behind it. Past the last delay it is retried at that delay for as long as the journal keeps
raw requests (:func:`keep_trying`), so no outage a business sits out loses an event; only then is
the row ``failed``, counted on ``/metrics`` and listed and requeued by ``leadline webhooks``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from sqlite_utils import Database
from standardwebhooks import Webhook

from leadline import keys
from leadline.config import WebhookConfig
from storage import webhook_deliveries as deliveries
from storage.db import Clock, Store

log = logging.getLogger("leadline.webhooks")

#: Delay before each retry; after the last, the retries go on at the last (top) delay until the
#: delivery is as old as the bound :func:`keep_trying` gives, and only then is it marked failed.
BACKOFF = (
    timedelta(seconds=5),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
#: How long a delivery is tried for when ``[retention] journal_days`` is 0 (the journal kept for
#: good): as long as the default retention, far past any outage a business sits out.
KEEP_TRYING = timedelta(days=90)
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
    clock: Clock,
    limit: int = 100,
    *,
    give_up_after: timedelta = KEEP_TRYING,
) -> dict[str, int]:
    """One round: collect new events, then try each endpoint's queue in order up to its first
    failure, beside the others' (an endpoint that hangs delays only its own); returns counts by
    outcome."""
    await collect(store, webhooks, clock)
    rounds = [
        deliver_endpoint(store, hook, session, clock, limit, give_up_after=give_up_after)
        for hook in endpoints(webhooks)
    ]
    results = await asyncio.gather(*rounds, give_up_unconfigured(store, webhooks, clock, limit))
    return {outcome: sum(r[outcome] for r in results) for outcome in ("delivered", "retry", "failed")}


def keep_trying(journal_days: int) -> timedelta:
    """How long after it was queued a delivery is still tried: as long as the journal keeps the raw
    requests (``[retention] journal_days``), so an outage of days, a weekend or a holiday, loses
    nothing; :data:`KEEP_TRYING` when the journal is kept for good."""
    return timedelta(days=journal_days) if journal_days else KEEP_TRYING


def host_of(url: str) -> str:
    """What of a webhook's URL a person is shown, in the log and ``leadline webhooks``: the host
    (and port), never the path or query, where a CRM may put its token."""
    parts = urlsplit(url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "(no host)"


def label(key: str) -> str:
    """How a webhook stored under ``key`` (its name, else its URL) is shown: the name, or the host."""
    return host_of(key) if "://" in key else key


def endpoints(webhooks: Sequence[WebhookConfig]) -> list[WebhookConfig]:
    """One per key, its name or else its URL (the last one written wins, as its secret did): each
    gets one queue."""
    return list({hook.key: hook for hook in webhooks}.values())


async def collect(store: Store, webhooks: Sequence[WebhookConfig], clock: Clock) -> int:
    """Queue the events made since the last collect, one delivery per endpoint."""
    return await store.write(lambda db: deliveries.collect(db, webhooks, clock()))


async def deliver_endpoint(
    store: Store,
    hook: WebhookConfig,
    session: aiohttp.ClientSession,
    clock: Clock,
    limit: int = 100,
    *,
    give_up_after: timedelta = KEEP_TRYING,
) -> dict[str, int]:
    """Try this endpoint's due deliveries in order, one at a time, each signed as it is sent. The
    first that fails stops the round: what was queued after it waits until it is delivered, so the
    CRM hears each lead's changes in the order they were made, never an old stage after a new one."""
    due = await store.read(lambda db: deliveries.due(db, clock(), limit, endpoint=hook.key))
    secret = hook.secret.get_secret_value()
    counts = {"delivered": 0, "retry": 0, "failed": 0}
    for item in due:
        error = await _attempt(session, item, hook.url, secret, clock)
        outcome = await _finish(store, item, error, clock, give_up_after)
        counts[outcome] += 1
        if outcome == "retry":
            break
    return counts


async def give_up_unconfigured(
    store: Store, webhooks: Sequence[WebhookConfig], clock: Clock, limit: int = 100
) -> dict[str, int]:
    """Deliveries queued for an endpoint since taken out of the config fail their attempts, and are
    given up after the backoff (about 18 h), not kept trying: a webhook taken out on purpose is not
    a CRM that is down. One put back within that time, or given a name that takes over its URL's
    queue, sends them; ``leadline webhooks requeue`` puts failed ones back once it is."""
    keys = [hook.key for hook in webhooks]
    due = await store.read(lambda db: deliveries.due_elsewhere(db, clock(), limit, keys))
    counts = {"delivered": 0, "retry": 0, "failed": 0}
    for item in due:
        error = "the endpoint is no longer in the config"
        counts[await _finish(store, item, error, clock, timedelta(0))] += 1
    return counts


async def _attempt(
    session: aiohttp.ClientSession, item: deliveries.Due, url: str, secret: str, clock: Clock
) -> str | None:
    """One POST; its error, or None for a 2xx. Whatever goes wrong with one item (a key the library
    refuses, a URL it cannot send to) is that item's error: recorded and retried, and the rest go on."""
    try:
        # Signed with the time it is sent at, not when the round began: a receiver refuses a
        # timestamp more than 5 minutes old, and a round can wait that long on a slow endpoint.
        headers = signed_headers(secret, item.webhook_id, clock(), item.payload)
        # A redirect is not followed: aiohttp would follow a 301/302 as a GET without the body,
        # and a 2xx to that would mark delivered an event the CRM never got.
        async with session.post(
            url,
            data=item.payload.encode(),
            headers=headers,
            timeout=TIMEOUT,
            allow_redirects=False,
        ) as resp:
            return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except Exception as exc:
        # Kept, logged and shown by `leadline webhooks`: an error that quotes the URL (an invalid
        # one, say) names its host instead, never its path or query.
        error = f"{type(exc).__name__}: {exc}"
        for spelled in (url, url.split("?")[0].split("#")[0]):
            error = error.replace(spelled, host_of(url))
        return error


async def _finish(
    store: Store, item: deliveries.Due, error: str | None, clock: Clock, give_up_after: timedelta
) -> str:
    """Record the attempt's outcome (a retry's delay counts from now) and log a failure.

    The line names the delivery by its row id, the number ``leadline webhooks`` shows and
    ``requeue`` takes, and the webhook by its name or host: the ``webhook-id`` has digit runs the
    log's scrubber masks as a phone number, and a URL's path or query may hold the CRM's token."""
    now = clock()
    outcome = _settle(item, error, now, give_up_after)
    await store.write(partial(_record, item=item, error=error, outcome=outcome, now=now))
    if error:
        fields = {
            "webhook": label(item.endpoint),
            "delivery": item.id,
            "attempt": item.attempts + 1,
            "outcome": outcome,
            "error": error,
        }
        log.warning("webhook delivery failed", extra={"fields": fields})
    return outcome


def _settle(item: deliveries.Due, error: str | None, now: datetime, give_up_after: timedelta) -> str:
    """Delivered, or tried again: through the backoff, then at its top delay while the delivery is
    younger than ``give_up_after``; past both, failed."""
    if error is None:
        return "delivered"
    if item.attempts < len(BACKOFF) or now - item.created_at < give_up_after:
        return "retry"
    return "failed"


def _record(db: Database, item: deliveries.Due, error: str | None, outcome: str, now: datetime) -> None:
    if error is None:
        deliveries.delivered(db, item.id, now)
        return
    delay = BACKOFF[min(item.attempts, len(BACKOFF) - 1)]
    deliveries.not_delivered(db, item.id, error, next_attempt_at=now + delay, final=outcome == "failed")


async def webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    """The sender while the server runs (when webhooks are configured): one task collects the
    events and gives up on endpoints taken out of the config, and each endpoint has a task of its own,
    so one that hangs (each attempt waits up to :data:`TIMEOUT`) holds back no other."""
    webhooks = app[keys.CONFIG].webhooks
    store, clock = app[keys.STORE], app[keys.CLOCK]
    give_up_after = keep_trying(app[keys.CONFIG].retention.journal_days)
    if not webhooks:
        # The endpoints' cursors go: a webhook added later hears what happens from then on, not
        # what happened while there was none.
        await collect(store, webhooks, clock)
        yield
        return
    session = aiohttp.ClientSession()
    hooks = endpoints(webhooks)
    wakes = [asyncio.Event() for _ in hooks]

    async def collect_round() -> None:
        if await collect(store, webhooks, clock):
            for wake in wakes:
                wake.set()
        await give_up_unconfigured(store, webhooks, clock)

    tasks = [asyncio.create_task(_every(collect_round))]
    tasks += [
        asyncio.create_task(
            _every(partial(deliver_endpoint, store, hook, session, clock, give_up_after=give_up_after), wake)
        )
        for hook, wake in zip(hooks, wakes, strict=True)
    ]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()


async def _every(step: Callable[[], Awaitable[object]], wake: asyncio.Event | None = None) -> None:
    """Run ``step`` every :data:`POLL_SECONDS`, or sooner when ``wake`` is set; a failure is logged."""
    while True:
        if wake is not None:
            wake.clear()
        try:
            await step()
        except Exception:
            log.exception("webhook sender failed; retrying")
        if wake is None:
            await asyncio.sleep(POLL_SECONDS)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), POLL_SECONDS)
