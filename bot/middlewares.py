"""What cuts across every update: who is writing, and may they use the bot at all.

Order matters and is set once in :func:`bot.runner.build_dispatcher`: :class:`StaffMiddleware`
(look the person up; ignore group chats other than the team chat), then the language middleware
(it needs the staff record), then :class:`StrangerGate` (it needs the language to refuse politely).
Telegram Business updates pass both: they are customers writing to a connected business account,
for capture to record (only a staff member's account, or one the source lists: bot/routers/
business.py), and never people using the bot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject, Update, User

from bot.routers.access import turn_away
from storage.chat_moves import current_chat
from storage.db import Store
from storage.staff import staff_by_telegram
from storage.unreachable import is_unreachable, reachable_again

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

#: The update kinds of a connected business account (bot/routers/business.py).
BUSINESS_UPDATES = (
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
)


def is_business(event: TelegramObject) -> bool:
    return isinstance(event, Update) and any(getattr(event, kind) is not None for kind in BUSINESS_UPDATES)


class StaffMiddleware(BaseMiddleware):
    def __init__(self, store: Store, team_chat: int) -> None:
        self.store = store
        self.team_chat = team_chat

    async def is_team_chat(self, chat_id: int) -> bool:
        """The configured team chat, or the supergroup Telegram made of it (storage/chat_moves.py):
        once it moves, its people and its cards' buttons are all in the new chat. A move is for good,
        so the id it was found under is kept."""
        if not self.team_chat:
            return False
        if chat_id == self.team_chat:
            return True
        moved = await self.store.read(partial(current_chat, chat_id=self.team_chat))
        if moved != self.team_chat:
            self.team_chat = moved
        return chat_id == moved

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if is_business(event):
            return await handler(event, data)
        chat: Chat | None = data.get("event_chat")
        user: User | None = data.get("event_from_user")
        if chat is not None and chat.type != "private" and not await self.is_team_chat(chat.id):
            return None  # the bot speaks in private chats and in the configured team chat only
        if user is None or user.is_bot:
            return None
        data["staff"] = await self.store.read(partial(staff_by_telegram, telegram_id=user.id))
        if chat is not None and await self.store.read(partial(is_unreachable, chat_id=chat.id)):
            await self.store.write(partial(reachable_again, chat_id=chat.id))  # it writes: it takes cards
        return await handler(event, data)


class StrangerGate(BaseMiddleware):
    """Anyone not on the staff gets a polite refusal, and the owners get the request to approve."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if data.get("staff") is not None or is_business(event):
            return await handler(event, data)
        chat: Chat | None = data.get("event_chat")
        if chat is not None and chat.type == "private":
            await turn_away(event, data)
        return None
