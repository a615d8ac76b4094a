"""Answering a button press once what it asked for is saved.

Telegram takes the answer to a press only for a short while after it, and only once: a press
handled after a restart, or behind a slow update, gets 400 "query is too old". By then the action is
written, so the answer is only the spinner's end and a toast; its failure must neither stop the card
from being redrawn nor reach the error handler, which would tell the person nothing was saved.
"""

from __future__ import annotations

import logging

from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery

log = logging.getLogger("leadline.bot")


async def answer_quietly(
    callback: CallbackQuery, text: str | None = None, *, show_alert: bool = False
) -> None:
    """Answer the press if Telegram still takes it; the caller goes on either way."""
    try:
        await callback.answer(text, show_alert=show_alert)
    except TelegramAPIError as exc:
        log.info("a press was saved but not answered", extra={"fields": {"error": exc.message}})
