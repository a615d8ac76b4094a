"""The Telegram bot inside ``leadline serve``, started only with a token (see :mod:`bot.service`).

An aiogram Bot (pointed at ``[telegram] api_url`` when given, e.g. a self-hosted Bot API server), a
Dispatcher with the routers, long polling as a task (or a webhook through aiogram's
``SimpleRequestHandler`` on this same server when ``webhook_url`` is set), and the outbox sender.
Telegram being unreachable at start-up delays the bot; it never stops the server from starting.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.types import BotCommandScopeDefault
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.commands import EVERYONES_ROLE, MENU_CALLS, menu, staff_menus
from bot.contexts import TouchContexts
from bot.dialer import Dialer
from bot.fsm import DatabaseStorage
from bot.i18n import CatalogueI18n, LanguageMiddleware, load_i18n, speaking
from bot.keys import RECORD_CHAT, ChatRecorder, WebhookRefusal
from bot.middlewares import StaffMiddleware, StrangerGate
from bot.outbox import OutboxSender
from bot.replies import Replies
from bot.routers import (
    access,
    arrivals,
    blocklist,
    business,
    dial,
    do_not_contact,
    errors,
    fallback,
    find,
    forget,
    leads,
    lists,
    lookup,
    merge,
    nudges,
    numbers,
    registration,
    start,
)
from bot.transport import BotTransport
from leadline.config import Config
from storage.chat_moves import current_chat
from storage.db import Clock, Store
from storage.given_secrets import same_secret
from storage.outbox import enqueue_changed
from storage.staff import active_staff, former_staff

log = logging.getLogger("leadline.bot")

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def make_bot(config: Config) -> Bot:
    """The bot, whose calls time out before a stop stops waiting for the outbox's sends in flight."""
    api = config.telegram.api_url
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(api) if api else PRODUCTION,
        timeout=config.telegram.request_timeout_seconds,
    )
    return Bot(
        config.telegram.token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode="HTML"),
    )


def build_dispatcher(
    config: Config,
    store: Store,
    clock: Clock,
    replies: Replies,
    contexts: TouchContexts,
    i18n: CatalogueI18n,
    dialer: Dialer,
    record_chat: ChatRecorder | None = None,
) -> Dispatcher:
    """Services reach handlers as typed parameters (workflow data); middlewares only for what cuts across.

    Telegram Business updates are asked for only with ``record_chat`` (a ``telegram_business`` source
    is configured): aiogram asks Telegram for the update types some handler takes.
    """
    dp = Dispatcher(storage=DatabaseStorage(store, clock))
    dp["store"] = store
    dp["config"] = config
    dp["clock"] = clock
    dp["replies"] = replies
    dp["capture"] = contexts
    dp["dialer"] = dialer
    dp.update.outer_middleware(StaffMiddleware(store, config.telegram.team_chat))
    dp.update.outer_middleware(LanguageMiddleware(i18n))
    dp.update.outer_middleware(StrangerGate())
    if record_chat is not None:
        dp[RECORD_CHAT] = record_chat
        dp[business.BUSINESS_OWNERS] = business.ConnectionOwners()
        dp.include_router(business.make_router())
    dp.include_routers(
        errors.make_router(),
        access.make_router(),
        start.make_router(),
        registration.make_router(),
        leads.make_router(),
        nudges.make_router(),
        dial.make_router(),
        arrivals.make_router(),
        lists.make_router(),
        find.make_router(),
        numbers.make_router(),
        merge.make_router(),
        forget.make_router(),
        blocklist.make_router(),
        do_not_contact.make_router(),
        lookup.make_router(),
        fallback.make_router(),
    )
    return dp


async def _retrying(what: str, call: Callable[[], Awaitable[Any]]) -> None:
    """Telegram may be down at start-up: keep trying with backoff, without holding up the server."""
    delay = 1.0
    while True:
        try:
            await call()
            return
        except Exception as exc:  # any failure here only delays the bot
            log.warning(
                "telegram not ready", extra={"fields": {"step": what, "error": str(exc), "retry_s": delay}}
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)


async def _set_default_commands(bot: Bot, i18n: CatalogueI18n) -> None:
    """The menu of whoever has none of their own (the team chat, a stranger): what everybody on the
    staff may use, in each language (the default scope without a language speaks the config's)."""
    for locale in (None, *i18n.available_locales):
        with speaking(i18n, locale or i18n.default_locale):
            commands = menu(EVERYONES_ROLE)
        await bot.set_my_commands(commands, scope=BotCommandScopeDefault(), language_code=locale)


async def _queue_staff_menus(
    store: Store, clock: Clock, i18n: CatalogueI18n, wake: Callable[[], None]
) -> None:
    """Each person's own menu, for their role in their language, queued in the outbox: its rate limits
    and retries apply, and someone who never opened the bot (Telegram refuses their chat) holds up
    nobody. A menu already set as it should be is not set again; someone no longer let in loses theirs."""
    calls = staff_menus(i18n, await store.read(active_staff), await store.read(former_staff))
    now = clock()
    if await store.write(partial(enqueue_changed, calls=calls, at=now, kinds=MENU_CALLS)):
        wake()


async def _tell_if_team_chat_moved(config: Config, store: Store) -> None:
    """At every start while the config names a team chat Telegram has moved: the bot follows the
    move (storage/chat_moves.py), but only the operator can make the config say it."""
    team_chat = config.telegram.team_chat
    if not team_chat:
        return
    now = await store.read(partial(current_chat, chat_id=team_chat))
    if now != team_chat:
        log.warning(
            "[telegram] team_chat is a group Telegram made a supergroup with a new chat id; the bot"
            " uses the new id, and the config should name it",
            extra={"fields": {"team_chat": team_chat, "new_chat": now}},
        )


class Polling:
    """Long polling as a task; ``stop`` ends it whether or not Telegram ever answered.

    aiogram's polling asks for ``getMe`` once, without a retry, and ends for good on its failure: a
    single 502 or hang there left the bot deaf until a restart. So ``getMe`` is retried like every
    other start-up call, and polling that ends with an error is started again.
    """

    def __init__(
        self, dp: Dispatcher, bot: Bot, i18n: CatalogueI18n, queue_menus: Callable[[], Awaitable[None]]
    ) -> None:
        self.dp, self.bot, self.i18n, self.queue_menus = dp, bot, i18n, queue_menus
        self.polling = False
        dp.startup.register(self._on_startup)
        dp.shutdown.register(self._on_shutdown)
        self.task = asyncio.create_task(self._run(), name="leadline-bot-polling")

    async def _on_startup(self) -> None:
        self.polling = True

    async def _on_shutdown(self) -> None:
        self.polling = False

    async def _run(self) -> None:
        await _retrying("staff menus", self.queue_menus)
        await _retrying("deleteWebhook", lambda: self.bot.delete_webhook(drop_pending_updates=False))
        await _retrying("setMyCommands", lambda: _set_default_commands(self.bot, self.i18n))
        await _retrying("getMe", self.bot.me)  # cached by aiogram: its polling asks for it again
        delay = 1.0
        while True:
            try:
                await self.dp.start_polling(
                    self.bot,
                    polling_timeout=20,
                    handle_as_tasks=False,
                    handle_signals=False,
                    close_bot_session=False,
                )
                return  # stopped by ``stop``
            except Exception as exc:  # polling ended on its own: the bot would hear nothing until a restart
                log.warning(
                    "telegram polling ended; starting it again",
                    extra={"fields": {"error": f"{type(exc).__name__}: {exc}", "retry_s": delay}},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def stop(self) -> None:
        if self.polling and not self.task.done():
            await self.dp.stop_polling()
        if not self.task.done():
            self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        except Exception:  # the stop must go on to the outbox's sends in flight and the session
            log.exception("telegram polling had failed")


class JournalledRequestHandler(SimpleRequestHandler):
    """aiogram's handler, whose refusals are journalled: anyone can post to the webhook's URL, and a
    forged update must show in ``leadline journal`` like a forged request to any source."""

    def __init__(self, dp: Dispatcher, bot: Bot, secret: str, refused: WebhookRefusal | None) -> None:
        super().__init__(dispatcher=dp, bot=bot, secret_token=secret, handle_in_background=False)
        self.refused = refused

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        """As aiogram's, on bytes: its compare of two strings raises on a non-ASCII one (a 500 for
        anyone who sends ``é``), where the stdlib compares bytes of any value."""
        return same_secret(telegram_secret_token, self.secret_token) if self.secret_token else True

    async def handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER)
        if self.refused is not None and not self.verify_secret(given or "", self.bot):
            reason = f"missing {SECRET_HEADER}" if given is None else f"wrong {SECRET_HEADER}"
            return await self.refused(request, f"{reason}: not an update from Telegram", given is None)
        return await super().handle(request)


class Webhook:
    """Updates posted by Telegram to ``webhook_url``, checked against the secret token."""

    def __init__(
        self,
        app: web.Application,
        dp: Dispatcher,
        bot: Bot,
        config: Config,
        i18n: CatalogueI18n,
        queue_menus: Callable[[], Awaitable[None]],
        refused: WebhookRefusal | None = None,
    ) -> None:
        self.dp, self.bot, self.config, self.i18n, self.queue_menus = dp, bot, config, i18n, queue_menus
        self.secret = (
            config.telegram.webhook_secret.get_secret_value()
            or hashlib.sha256(config.telegram.token.get_secret_value().encode()).hexdigest()[:48]
        )
        path = urlsplit(config.telegram.webhook_url).path or WEBHOOK_PATH
        JournalledRequestHandler(dp, bot, self.secret, refused).register(app, path=path)
        self.task = asyncio.create_task(self._run(), name="leadline-bot-webhook")

    async def _run(self) -> None:
        await self.dp.emit_startup(bot=self.bot, **self.dp.workflow_data)
        await _retrying("staff menus", self.queue_menus)
        url = self.config.telegram.webhook_url
        allowed = self.dp.resolve_used_update_types()
        await _retrying(
            "setWebhook", lambda: self.bot.set_webhook(url, secret_token=self.secret, allowed_updates=allowed)
        )
        await _retrying("setMyCommands", lambda: _set_default_commands(self.bot, self.i18n))

    async def stop(self) -> None:
        if not self.task.done():
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.dp.emit_shutdown(bot=self.bot, **self.dp.workflow_data)


@contextlib.asynccontextmanager
async def running_bot(
    config: Config,
    store: Store,
    clock: Clock,
    contexts: TouchContexts,
    dialer: Dialer,
    app: web.Application,
    record_chat: ChatRecorder | None = None,
    refused: WebhookRefusal | None = None,
) -> AsyncIterator[OutboxSender]:
    """The bot and its outbox sender, from start-up to a clean stop; the sender is yielded."""
    bot = make_bot(config)
    sender = OutboxSender(store, clock, BotTransport(bot))
    i18n = load_i18n(config.leadline.language)
    replies = Replies(store, clock, sender.wake)
    polling = not config.telegram.webhook_url
    if record_chat is not None and polling:
        record_chat = business.until_stored(record_chat)
    dp = build_dispatcher(config, store, clock, replies, contexts, i18n, dialer, record_chat)
    await _tell_if_team_chat_moved(config, store)
    sender.start()
    queue_menus = partial(_queue_staff_menus, store, clock, i18n, sender.wake)
    runner: Polling | Webhook = (
        Polling(dp, bot, i18n, queue_menus)
        if polling
        else Webhook(app, dp, bot, config, i18n, queue_menus, refused)
    )
    try:
        yield sender
    finally:
        await runner.stop()
        await sender.stop(config.telegram.stop_wait_seconds)
        await bot.session.close()
