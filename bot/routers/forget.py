"""/forget: an owner erases a person who asked to be forgotten, after a confirm button.

What is erased and what stays is storage/erasure.py's; this router finds the person, asks, erases,
and redraws the question without the person's data in it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from functools import partial

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _

from bot.callbacks import ForgetCB
from bot.inplace import redraw_saved
from bot.replies import Replies, quoted
from bot.views import CONTACT_TOUCHES, contact_text
from leadline.config import Config
from storage.cards import contact_summary
from storage.db import Store
from storage.erasure import Actor, forget
from storage.staff import StaffMember
from storage.subjects import SubjectNotFound, find_subject


def owners_only() -> str:
    return _("Only an owner can erase a person's data.")


async def ask(
    message: Message,
    command: CommandObject,
    staff: StaffMember,
    store: Store,
    config: Config,
    replies: Replies,
) -> None:
    chat_id = message.chat.id
    if staff.role != "owner":
        await replies.send(chat_id, owners_only())
        return
    who = (command.args or "").strip()
    if not who:
        await replies.send(
            chat_id,
            _(
                "Send /forget with the person's phone number, email or #number, e.g. /forget +7 916 123-45-67."
            ),
        )
        return
    try:
        contact_id = await store.read(partial(find_subject, query=who, region=config.leadline.region))
    except SubjectNotFound as exc:
        text = (
            _("Several contacts match “{text}”: {ids}. Send /forget with the #number of the one to erase.")
            if exc.candidates
            else _("Nobody found for “{text}”. Send the phone number, email or #number.")
        )
        ids = ", ".join(f"#{i}" for i in exc.candidates)
        await replies.send(chat_id, text.format(text=quoted(who), ids=ids))
        return
    summary = await store.read(partial(contact_summary, contact_id=contact_id, touches=CONTACT_TOUCHES))
    if summary is None:
        await replies.send(chat_id, _("This contact no longer exists."))
        return
    question = _(
        "Erase everything Leadline holds about this person? Their phones, emails, name, messages and raw"
        " requests go for good. Their touches stay, anonymous, so past reports do not change."
    )
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("🗑 Erase"), callback_data=ForgetCB(act="do", c=contact_id).pack()
                ),
                InlineKeyboardButton(text=_("Cancel"), callback_data=ForgetCB(act="no", c=contact_id).pack()),
            ]
        ]
    )
    await replies.send(
        chat_id, question + "\n\n" + contact_text(summary, config.tz, config.campaign_titles()), markup
    )


async def edit(callback: CallbackQuery, text: str) -> None:
    """The question, redrawn without the person's data (Telegram keeps what a chat shows)."""
    if isinstance(callback.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_text(text)


async def erase(
    callback: CallbackQuery,
    callback_data: ForgetCB,
    staff: StaffMember,
    store: Store,
    clock: Callable[[], datetime],
    replies: Replies,
) -> None:
    if staff.role != "owner":
        await callback.answer(owners_only(), show_alert=True)
        return
    actor = Actor("bot", f"bot: {staff.name}", staff_id=staff.id)
    erased = await forget(store, callback_data.c, at=clock(), actor=actor)
    if erased is None:
        await callback.answer(_("This contact no longer exists."), show_alert=True)
        return
    await redraw_saved(
        callback,
        replies,
        _(
            "🗑 Erased: contact #{id} holds no personal data any more. Its touches ({touches}) stay,"
            " anonymous, in the reports. Backups keep the data until they rotate out."
        ).format(id=erased.contact_id, touches=len(erased.touch_ids)),
    )
    await callback.answer(_("Erased."))


async def cancel(callback: CallbackQuery) -> None:
    await edit(callback, _("Cancelled."))
    await callback.answer()


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="forget")
    # Private chats only: the question shows the person's numbers, not for the whole team chat.
    router.message.register(ask, Command("forget"), F.chat.type == "private")
    router.callback_query.register(erase, ForgetCB.filter(F.act == "do"))
    router.callback_query.register(cancel, ForgetCB.filter(F.act == "no"))
    return router
