"""/start, /help and /cancel: what a newcomer sees first, and the way out of any question."""

from __future__ import annotations

import html

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

from bot.catalogues import gettext as _
from bot.replies import Replies
from bot.routers.access import help_text, role_label
from storage.staff import StaffMember


async def start(message: Message, staff: StaffMember, replies: Replies) -> None:
    greeting = _("Hello, {name}! You are registered as {role}.").format(
        name=html.escape(staff.name), role=role_label(staff.role)
    )
    await replies.send(message.chat.id, greeting + "\n\n" + help_text(staff.role))


async def show_help(message: Message, staff: StaffMember, replies: Replies) -> None:
    await replies.send(message.chat.id, help_text(staff.role))


async def cancel(message: Message, state: FSMContext, replies: Replies) -> None:
    await state.clear()
    await replies.send(message.chat.id, _("Cancelled. Send a phone number or a command when you are ready."))


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="start")
    router.message.register(start, CommandStart())
    router.message.register(show_help, Command("help"))
    router.message.register(cancel, Command("cancel"))
    return router
