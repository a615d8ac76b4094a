"""The bot's part of ``leadline serve``: the outbox sender always, the Telegram bot with a token.

Without ``[telegram] token`` the sender writes each queued message to the log, and aiogram is never
imported: it costs a process seconds and ~150 MB, and nothing without a token needs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from bot.contexts import TouchContexts
from bot.dialer import Dialer
from bot.keys import ChatRecorder, WebhookRefusal
from bot.outbox import OutboxSender
from leadline.config import Config
from storage.db import Clock, Store


@contextlib.asynccontextmanager
async def bot_service(
    config: Config,
    store: Store,
    clock: Clock,
    contexts: TouchContexts,
    dialer: Dialer,
    app: web.Application,
    record_chat: ChatRecorder | None = None,
    refused: WebhookRefusal | None = None,
) -> AsyncIterator[OutboxSender]:
    """Started, yielded, stopped: the sender that delivers the outbox (``app`` takes the webhook's route)."""
    if config.telegram.token.get_secret_value():
        from bot.runner import running_bot  # aiogram: only a process with a token pays for it

        async with running_bot(config, store, clock, contexts, dialer, app, record_chat, refused) as sender:
            yield sender
        return
    sender = OutboxSender(store, clock, None)
    sender.start()
    try:
        yield sender
    finally:
        await sender.stop(config.telegram.stop_wait_seconds)
