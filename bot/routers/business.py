"""Telegram Business: the owner's own account's chats, which the bot receives once connected to it.

Every update about them goes to capture as it came, journalled before the handler returns, so
before Telegram counts it as delivered (long polling asks for the next updates only then; a webhook
is answered only then). What is a touch is capture's to decide (capture/providers/
telegram_business.py): the bot neither answers these chats nor reads them.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.types import BusinessConnection, BusinessMessagesDeleted, Message, Update

from bot.keys import ChatRecorder


async def record(
    _: Message | BusinessConnection | BusinessMessagesDeleted, event_update: Update, record_chat: ChatRecorder
) -> None:
    await record_chat(event_update.model_dump_json(by_alias=True, exclude_none=True).encode())


def make_router() -> Router:
    router = Router(name="business")
    router.business_connection.register(record)
    router.business_message.register(record)
    router.edited_business_message.register(record)
    router.deleted_business_messages.register(record)
    return router
