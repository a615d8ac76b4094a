"""Delivery through aiogram: the outbox sender's transport when there is a bot token.

Apart from :mod:`bot.outbox` so that a process without a token, which writes each message to the
log instead, never imports aiogram (seconds and ~150 MB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiogram.methods
from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods.base import TelegramMethod
from aiogram.types import FSInputFile, Message
from pydantic import ValidationError

from bot.outbox import FILE_FIELDS, Attempt, Delivered, Failed, Moved, RetryAfter, Transient
from storage.outbox_sending import OutboxRow

#: Bot API method name (``sendMessage``) → aiogram's method class.
METHODS: dict[str, type[TelegramMethod[Any]]] = {
    cls.__api_method__: cls
    for cls in vars(aiogram.methods).values()
    if isinstance(cls, type)
    and issubclass(cls, TelegramMethod)
    and isinstance(getattr(cls, "__api_method__", None), str)
}


#: The 400s that refuse the chat rather than the message: the bot is not in it, may no longer write
#: in it (an admin restricted it), or the group is gone. Like a 403, no later card would get through.
CHAT_GONE_400S = (
    "chat not found",
    "have no rights to send a message",
    "not enough rights to send",
    "chat_write_forbidden",
    "chat_restricted",
    "group chat was deactivated",
)


def chat_is_gone(description: str) -> bool:
    """Whether a 400's description refuses every message to the chat, not just this one."""
    lowered = description.lower()
    return any(words in lowered for words in CHAT_GONE_400S)


def build_method(row: OutboxRow) -> TelegramMethod[Any]:
    """The aiogram method object for a row; raises ValueError for an unknown method or bad payload."""
    cls = METHODS.get(row.method)
    if cls is None:
        raise ValueError(f"unknown Bot API method {row.method!r}")
    # A row's chat is where the call goes; a call without a chat (a chat's command menu names it in
    # its scope) keeps it only as the outbox's key for ordering and rate limits.
    params: dict[str, Any] = {**row.payload}
    if "chat_id" in cls.model_fields:
        params["chat_id"] = row.chat_id
    for key in FILE_FIELDS:
        value = params.get(key)
        if isinstance(value, str) and value.startswith("file://"):
            params[key] = FSInputFile(value.removeprefix("file://"))
    try:
        return cls.model_validate(params)
    except ValidationError as exc:
        raise ValueError(
            f"bad payload for {row.method}: {exc.error_count()} error(s): {exc.errors()[0]['msg']}"
        ) from None


@dataclass
class BotTransport:
    """Delivers through aiogram, and sorts its exceptions into retry, back off or give up.

    A call times out after the bot session's ``timeout`` (``[telegram] request_timeout_seconds``),
    which is shorter than a stop's wait for the sends in flight.
    """

    bot: Bot

    async def deliver(self, row: OutboxRow) -> Attempt:
        try:
            method = build_method(row)
        except ValueError as exc:
            return Failed(str(exc))
        try:
            result = await self.bot(method)
        except TelegramRetryAfter as exc:
            return RetryAfter(float(exc.retry_after), exc.message)
        except TelegramMigrateToChat as exc:
            return Moved(int(exc.migrate_to_chat_id))
        except TelegramUnauthorizedError as exc:
            return Transient(f"the bot token was refused: {exc.message}")
        except TelegramBadRequest as exc:
            if "message is not modified" in exc.message:
                return Delivered(None)
            return Failed(exc.message, chat_gone=chat_is_gone(exc.message))
        except TelegramForbiddenError as exc:  # blocked, kicked, deactivated, never started
            return Failed(f"{type(exc).__name__}: {exc.message}", chat_gone=True)
        except (TelegramServerError, TelegramNetworkError) as exc:
            return Transient(f"{type(exc).__name__}: {exc.message}")
        except TelegramAPIError as exc:  # forbidden (blocked by the user), not found, too large
            return Failed(f"{type(exc).__name__}: {exc.message}")
        except ClientDecodeError as exc:
            if isinstance(exc.data, dict) and exc.data.get("ok") is True:
                return Delivered(None)  # Telegram took it; only its answer did not parse
            return Transient(f"unreadable answer: {exc.message}")
        return Delivered(result.message_id if isinstance(result, Message) else None)
