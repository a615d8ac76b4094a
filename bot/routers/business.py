"""Telegram Business: the owner's own account's chats, which the bot receives once connected to it.

Every update about them goes to capture as it came, journalled before the handler returns, so
before Telegram counts it as delivered (long polling asks for the next updates only then; a webhook
is answered only then). What is a touch is capture's to decide (capture/providers/
telegram_business.py): the bot neither answers these chats nor reads them.

Anyone with Telegram Premium can connect the bot to their own account, so each update goes with
the account its connection is (:class:`ConnectionOwners`), for capture to take only the staff's and
those the source lists.
"""

from __future__ import annotations

import logging
from functools import partial

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BusinessConnection, BusinessMessagesDeleted, ErrorEvent, Message, Update
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.keys import AccountOf, BusinessAccount, ChatRecorder

log = logging.getLogger("leadline.bot")

#: The updates this router takes.
UPDATES = ("business_connection", "business_message", "edited_business_message", "deleted_business_messages")

#: Between tries of a journal write that failed: a tenth of a second, doubling up to five.
RETRY = BackoffConfig(min_delay=0.1, max_delay=5.0, factor=2.0, jitter=0.02)


#: The workflow data key of the dispatcher's :class:`ConnectionOwners`.
BUSINESS_OWNERS = "business_owners"


class ConnectionOwners:
    """Whose Telegram account each business connection is, as Telegram says.

    A ``business_connection`` update names its user; a message names only its connection, so a
    connection the bot has not seen announced since it started (one made before) is asked of
    Telegram once (``getBusinessConnection``). A connection's owner never changes, so what is
    learnt is kept; one Telegram does not know is asked again at its next update.
    """

    def __init__(self) -> None:
        self._owners: dict[str, int] = {}

    async def account(self, update: Update, bot: Bot) -> BusinessAccount:
        if (connection := update.business_connection) is not None:
            self._owners[connection.id] = connection.user.id
            return BusinessAccount(connection.id, connection.user.id)
        found = update.business_message or update.edited_business_message or update.deleted_business_messages
        connection_id = found.business_connection_id if found is not None else None
        if not connection_id:
            return BusinessAccount("", None)
        if connection_id not in self._owners:
            try:
                known = await bot.get_business_connection(connection_id)
            except TelegramBadRequest:
                return BusinessAccount(connection_id, None)
            self._owners[connection_id] = known.user.id
        return BusinessAccount(connection_id, self._owners[connection_id])


async def record(
    _: Message | BusinessConnection | BusinessMessagesDeleted,
    event_update: Update,
    bot: Bot,
    record_chat: ChatRecorder,
    business_owners: ConnectionOwners,
) -> None:
    account_of: AccountOf = partial(business_owners.account, event_update, bot)
    await record_chat(event_update.model_dump_json(by_alias=True, exclude_none=True).encode(), account_of)


def until_stored(record_chat: ChatRecorder, retry: BackoffConfig = RETRY) -> ChatRecorder:
    """The recorder for long polling, which returns only once the update is journalled.

    aiogram confirms a polled update when its handler returns, failed or not (the next getUpdates
    carries a later offset), so a failed write would lose it. With ``handle_as_tasks=False`` no
    getUpdates is sent while a handler runs: trying again until the write succeeds keeps the update
    unconfirmed meanwhile. A stop cancels the wait and a crash ends it; either way Telegram sends the
    update again, which is a no-op if its write got through after all. A webhook needs none of this:
    the failure is its non-2xx answer, and Telegram sends it again.
    """

    async def record_until_stored(update: bytes, account_of: AccountOf) -> None:
        backoff = Backoff(retry)
        while True:
            try:
                await record_chat(update, account_of)
            # Capture raises only when the journal cannot be written; the account's look-up, when
            # Telegram does not answer it (and then the update is not journalled either).
            except Exception as exc:
                if not backoff.counter:
                    log.warning(
                        "a Telegram Business update cannot be journalled; it stays unconfirmed and is"
                        " tried again until the database takes it",
                        extra={"fields": {"error": type(exc).__name__, "code": _sqlite_code(exc)}},
                    )
                await backoff.asleep()
                continue
            if backoff.counter:
                log.info(
                    "a Telegram Business update is journalled after the database refused it",
                    extra={"fields": {"retries": backoff.counter}},
                )
            return

    return record_until_stored


def _sqlite_code(exc: Exception) -> str | None:
    """SQLite's name for the failure (``SQLITE_FULL``): what went wrong, without the values it met."""
    name = getattr(exc, "sqlite_errorname", None)
    return name if isinstance(name, str) else None


def _of_business(event: ErrorEvent) -> bool:
    return any(getattr(event.update, name) is not None for name in UPDATES)


async def not_journalled(event: ErrorEvent) -> None:
    """On a webhook, a failed write must reach Telegram as an error answer, so that it sends the
    update again: raised past the errors router, which would log it, apologise and answer 200."""
    raise event.exception


def make_router() -> Router:
    """Included before the errors router, so its error handler sees these updates' failures first."""
    router = Router(name="business")
    router.errors.register(not_journalled, _of_business)
    router.business_connection.register(record)
    router.business_message.register(record)
    router.edited_business_message.register(record)
    router.deleted_business_messages.register(record)
    return router
