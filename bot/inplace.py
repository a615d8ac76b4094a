"""Redrawing the pressed message once what the press did is committed.

The redraw goes straight to Telegram, as an answer within the same update. After a committed write
it only pictures what was saved, so nothing Telegram answers may turn the press into an error: the
error answer would tell the person that nothing was saved when it was. A redraw that Telegram could
not take for now (429, a 5xx or a proxy's error page, a dropped or timed-out connection) is queued
through the outbox, which retries it, so the message does not go on showing what was there before
the save (a form already saved, a person's data already erased).
"""

from __future__ import annotations

import logging

from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.replies import Replies

log = logging.getLogger("leadline.bot")

#: What Telegram answers when it is busy or out of reach, not when it refuses the edit itself.
NOT_NOW = (TelegramRetryAfter, TelegramServerError, TelegramNetworkError, ClientDecodeError)


async def redraw_saved(
    callback: CallbackQuery, replies: Replies, text: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Edit the pressed message after a committed write; a Telegram failure is logged, never raised."""
    message = callback.message
    if not isinstance(message, Message):
        return
    try:
        await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest:  # "message is not modified", or the message is gone: nothing to redraw
        return
    except (*NOT_NOW, TelegramAPIError) as exc:
        later = isinstance(exc, NOT_NOW)
        log.warning(
            "Telegram did not take the redraw of a message after a save",
            extra={"fields": {"error": type(exc).__name__, "queued": later}},
        )
        if later:
            await replies.edit(message.chat.id, message.message_id, text, markup)
