"""The composition root: one aiohttp application that runs every part of Leadline.

Each long-lived resource is an ``app.cleanup_ctx`` generator (set up, yield, tear down), so the
order of start-up and shutdown is written once and a failed start unwinds what was started. A
worker process (``[http] workers``, see ``leadline/workers.py``) gets the capture and API half only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from functools import partial

import aiohttp
from aiohttp import web
from sqlite_utils import Database

from bot.keys import AccountOf, ChatRecorder, WebhookRefusal
from bot.service import bot_service
from capture.dial import PbxDialer
from capture.metrics import Metrics
from capture.pipeline import FINISHED_ELSEWHERE, Capture, replay
from capture.providers import PROVIDERS
from capture.providers.base import RawRequest, make_headers
from capture.providers.telegram_business import ACCOUNT_HEADER
from capture.server import journal_refusal, setup_routes
from leadline import keys
from leadline.api_routes import setup_api
from leadline.callback_marks import remark_in_background
from leadline.config import Config, SourceConfig
from leadline.workers import orphan_watch_ctx, supervisor_ctx
from storage.costs import sync_costs
from storage.db import Clock, Store, now_utc
from storage.staff import config_staff_ids, staff_by_extension, sync_campaigns, sync_staff
from storage.worktime import WorkingCalendar

log = logging.getLogger("leadline")

#: The journal's source for requests the bot's webhook refuses when no ``telegram_business`` source
#: is configured (``leadline journal --source telegram:webhook``). No source can be named so: the
#: ``:`` is not allowed in a source's name.
BOT_WEBHOOK_SOURCE = "telegram:webhook"


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[keys.CONFIG]
    store = await Store.open_async(config.database_path, on_commit=app[keys.METRICS].committed)
    app[keys.STORE] = store
    yield
    await store.close()


async def build_capture(
    config: Config,
    store: Store,
    clock: Clock = now_utc,
    *,
    sync: bool = True,
    on_touches: Callable[[Sequence[str]], None] | None = None,
) -> Capture:
    """The capture service with staff and campaigns synced from the config into the database.

    A worker passes ``sync=False``: its primary has synced them already. A server passes its
    metrics' ``touches_created`` as ``on_touches``; a command that replays has no ``/metrics``.
    """

    def synced(db: Database) -> tuple[dict[str, int], dict[str, int]]:
        names = sync_staff(db, config.staff, clock())
        sync_campaigns(db, config.campaigns, clock())
        sync_costs(db, config.campaigns, clock())
        return names, staff_by_extension(db)

    def as_synced(db: Database) -> tuple[dict[str, int], dict[str, int]]:
        return config_staff_ids(db, config.staff), staff_by_extension(db)

    names, extensions = await (store.write(synced) if sync else store.read(as_synced))
    return Capture(
        config=config,
        store=store,
        clock=clock,
        staff_by_extension=extensions,
        owner_by_source={s.name: names[s.owner] for s in config.sources if s.owner and s.owner in names},
        callback_deadline=_callback_deadline(config),
        on_touches=on_touches,
    )


async def capture_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[keys.STORE]
    capture = await build_capture(
        app[keys.CONFIG], store, app[keys.CLOCK], on_touches=app[keys.METRICS].touches_created
    )
    app[keys.CAPTURE] = capture
    # Less those a `leadline replay` run at the same time finished first.
    finished = [o for o in await replay(capture, unprocessed_only=True) if o.status != FINISHED_ELSEWHERE]
    failing = [o.journal_id for o in finished if o.status == "failed"]
    if len(finished) > len(failing):
        log.info(
            "finished journal rows left from the last run",
            extra={"fields": {"rows": len(finished) - len(failing)}},
        )
    if failing:
        log.warning(
            "journal rows still fail: `leadline replay` lists them with their reasons,"
            " /metrics counts them in leadline_journal_failed",
            extra={"fields": {"rows": len(failing), "first_id": failing[0]}},
        )
    # Beside capture, not before it: a large base's past takes a while to judge again.
    remarking = asyncio.create_task(
        remark_in_background(capture.config, store, capture.clock, _callback_deadline(capture.config))
    )
    yield
    remarking.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await remarking


def business_source(config: Config) -> SourceConfig | None:
    """The (first) ``telegram_business`` source: the bot's updates of the business account are its."""
    return next((s for s in config.sources if PROVIDERS[s.provider].via_bot), None)


def chat_recorder(capture: Capture, config: Config) -> ChatRecorder | None:
    """What the bot hands each Telegram Business update to: the pipeline every webhook goes through,
    as a request of the (first) ``telegram_business`` source, with the account whose connection it
    came through; None without such a source. A connection whose updates are refused (not the
    staff's, not listed) is logged once, with the account to list if it is the business's own."""
    source = business_source(config)
    if source is None:
        return None
    refused: set[str] = set()

    async def record(update: bytes, account_of: AccountOf) -> None:
        account = await account_of()
        headers = {"Content-Type": "application/json"}
        if account.user is not None:
            headers[ACCOUNT_HEADER] = str(account.user)
        raw = RawRequest(source.name, "POST", "", "", make_headers(headers), update, capture.clock())
        outcome = await capture.ingest(raw, source)
        if outcome.http_status == 403:
            if account.connection not in refused:
                refused.add(account.connection)
                log.warning(
                    "Telegram Business updates of a connection neither on the staff nor in the source's"
                    " accounts are refused: list its account under the source's accounts if it is yours",
                    extra={"fields": {"account": account.user, "journal_id": outcome.journal_id}},
                )
        elif outcome.status != "processed":
            log.warning(
                "a Telegram Business update was not processed; it is in the journal",
                extra={"fields": {"journal_id": outcome.journal_id, "status": outcome.status}},
            )

    return record


def webhook_refusal(config: Config) -> WebhookRefusal:
    """What the bot's webhook hands a request that failed the secret token check: capture's journal,
    under the ``telegram_business`` source when one is configured (its updates come that way)."""
    source = business_source(config)
    name, provider = (source.name, source.provider) if source else (BOT_WEBHOOK_SOURCE, None)

    async def record(request: web.Request, reason: str, anonymous: bool) -> web.Response:
        return await journal_refusal(
            request,
            source=name,
            provider=provider,
            reason=reason,
            url=config.telegram.webhook_url,
            anonymous=anonymous,
        )

    return record


async def bot_ctx(app: web.Application) -> AsyncIterator[None]:
    """The outbox sender, and the bot when there is a token: the primary's only. The bot's
    ``📞 Call back`` reaches the PBXs through the dialer's own HTTP session, closed after the bot."""
    config, store, clock = app[keys.CONFIG], app[keys.STORE], app[keys.CLOCK]
    capture = app[keys.CAPTURE]
    async with aiohttp.ClientSession() as http:
        dialer = PbxDialer(config, http)
        async with bot_service(
            config,
            store,
            clock,
            capture,
            dialer,
            app,
            chat_recorder(capture, config),
            webhook_refusal(config),
        ) as sender:
            app[keys.OUTBOX] = sender
            yield


async def arrivals_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cards on arrival: the primary's only; capture wakes the pass after each commit."""
    from leadline.arrivals import Arrivals
    from storage.card_moves import chat_refused

    sender = app[keys.OUTBOX]
    arrivals = Arrivals(app[keys.CONFIG], app[keys.STORE], app[keys.CLOCK], sender.wake)
    app[keys.ARRIVALS] = arrivals
    await arrivals.start()
    capture = app[keys.CAPTURE]
    if arrivals.rules.on_arrival:
        capture.on_stored = arrivals.wake
        # A card Telegram refuses for good for its chat goes to the next person in the same write.
        sender.on_chat_refused = partial(chat_refused, rules=arrivals.rules, render=arrivals.render)
    try:
        yield
    finally:
        capture.on_stored = None
        sender.on_chat_refused = None
        await arrivals.stop()


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sweeps and digests: the primary's only, so only it imports APScheduler and the digest."""
    from leadline.scheduler import scheduler_ctx as run_scheduler

    async with contextlib.asynccontextmanager(run_scheduler)(app):
        yield


async def worker_capture_ctx(app: web.Application) -> AsyncIterator[None]:
    app[keys.CAPTURE] = await build_capture(
        app[keys.CONFIG],
        app[keys.STORE],
        app[keys.CLOCK],
        sync=False,
        on_touches=app[keys.METRICS].touches_created,
    )
    yield


def _callback_deadline(config: Config) -> Callable[[datetime], datetime]:
    calendar = WorkingCalendar.from_config(config.working_time, config.tz)
    minutes = config.sla.callback_minutes
    return lambda at: calendar.add_working_minutes(at, minutes)


async def background_ctx(source: SourceConfig, app: web.Application) -> AsyncIterator[None]:
    async with PROVIDERS[source.provider].background()(app[keys.CAPTURE], source):
        yield


def init_app(
    config: Config, *, clock: Clock = now_utc, worker_command: Sequence[str] = ()
) -> web.Application:
    """The primary's application; ``worker_command`` starts each of ``[http] workers`` - 1 workers."""
    app = _base_app(config, clock)
    app.cleanup_ctx.append(capture_ctx)
    # Sources that listen or poll by themselves start before the bot: an SMTP port that cannot be
    # bound stops the start before any bot has polled (a second one, even briefly, takes updates).
    for source in config.sources:
        registered = PROVIDERS[source.provider]
        if not registered.over_http and not registered.via_bot:
            app.cleanup_ctx.append(partial(background_ctx, source))
    app.cleanup_ctx.append(bot_ctx)
    app.cleanup_ctx.append(arrivals_ctx)
    app.cleanup_ctx.append(scheduler_ctx)
    setup_routes(app)
    setup_api(app)
    if worker_command and config.http.workers > 1:
        app.cleanup_ctx.append(partial(supervisor_ctx, worker_command, config.http.workers - 1))
    return app


def init_worker_app(config: Config, *, primary_pid: int, clock: Clock = now_utc) -> web.Application:
    """A worker's application: webhooks, health, metrics and the API, and nothing that must run once."""
    app = _base_app(config, clock)
    app.cleanup_ctx.append(worker_capture_ctx)
    app.cleanup_ctx.append(partial(orphan_watch_ctx, primary_pid))
    setup_routes(app)
    setup_api(app, send_webhooks=False)
    return app


def _base_app(config: Config, clock: Clock) -> web.Application:
    # aiohttp's access log would print URLs with ?token=…; our own request line replaces it. Bodies
    # are inflated by capture.server.read_body, which notices a compressed stream cut off.
    app = web.Application(
        client_max_size=config.http.max_body_bytes,
        handler_args={"access_log": None, "auto_decompress": False},
    )
    app[keys.CONFIG] = config
    app[keys.CLOCK] = clock
    app[keys.METRICS] = Metrics()
    app.cleanup_ctx.append(store_ctx)
    return app
