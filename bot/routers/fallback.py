"""The last router: whatever no other handler took gets a reply that says what the bot understands.

Only in private chats: in the team chat, commands meant for other bots and people's chatter are
not the bot's to answer.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message

from bot.catalogues import gettext as _
from bot.replies import Replies, quoted


async def unknown_command(message: Message, replies: Replies) -> None:
    command = (message.text or "").split()[0]
    await replies.send(
        message.chat.id,
        _("I do not know the command {command}. Send /help to see what I can do.").format(
            command=quoted(command)
        ),
    )


async def not_understood(message: Message, replies: Replies) -> None:
    await replies.send(
        message.chat.id,
        _(
            "I did not understand that. Send a phone number (for example 8 916 123-45-67) or an email to"
            " register someone, /find with a name to look someone up, or /help."
        ),
    )


async def stale_button(callback: CallbackQuery) -> None:
    await callback.answer(
        _("This button is from an old version of the message; open the list again."), show_alert=True
    )


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="fallback")
    router.message.register(unknown_command, F.chat.type == "private", F.text.startswith("/"))
    router.message.register(not_understood, F.chat.type == "private")
    router.callback_query.register(stale_button)
    return router
