"""Merge two contacts the automatic rules did not join, undo a wrong merge, or say two contacts are
not the same person; managers only.

Merges are recorded in ``merges`` (who, when, what moved), so an undo gives back exactly what moved.
An undo and a "not the same person" record an exception, so no later touch joins the two again.
"""

from __future__ import annotations

import contextlib
import re
from functools import partial

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.callbacks import MergeCB
from bot.catalogues import gettext as _
from bot.inplace import redraw_saved
from bot.replies import Replies, quoted
from bot.views import CONTACT_TOUCHES, contact_text
from leadline.config import Config
from storage.cards import contact_summary
from storage.contacts import live_contact, search_contacts
from storage.db import Clock, Store
from storage.merges import apart_by_staff, merge_by_staff, undo_merge_by_staff
from storage.reports.scope import Rules
from storage.staff import StaffMember


class MergeInput(StatesGroup):
    other = State()


async def edit(callback: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    if isinstance(callback.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_text(text, reply_markup=markup)


async def managers_only(callback: CallbackQuery, staff: StaffMember) -> bool:
    if staff.is_manager:
        return True
    await callback.answer(_("Only a manager can merge contacts."), show_alert=True)
    return False


async def ask(
    callback: CallbackQuery, callback_data: MergeCB, staff: StaffMember, state: FSMContext, replies: Replies
) -> None:
    if not await managers_only(callback, staff):
        return
    await state.set_state(MergeInput.other)
    await state.set_data({"a": callback_data.a})
    chat_id = callback.message.chat.id if callback.message is not None else callback.from_user.id
    await replies.send(
        chat_id,
        _("Send the phone number, email or #number of the contact to merge with #{id}, or /cancel.").format(
            id=callback_data.a
        ),
    )
    await callback.answer()


async def other(
    message: Message, staff: StaffMember, store: Store, config: Config, state: FSMContext, replies: Replies
) -> None:
    a = int((await state.get_data())["a"])
    text = (message.text or "").strip()
    chat_id = message.chat.id
    if match := re.fullmatch(r"#?(\d{1,9})", text):
        found = [int(match[1])]
    else:
        found = await store.read(
            partial(
                search_contacts,
                query=text,
                region=config.leadline.region,
                limit=3,
                regions=config.phone_regions,
            )
        )
    if not found:
        await replies.send(
            chat_id,
            _("No contact found for “{text}”. Try the phone number or #number.").format(text=quoted(text)),
        )
        return
    if len(found) > 1:
        await replies.send(
            chat_id,
            _("Several contacts match “{text}”. Send the phone number or #number.").format(text=quoted(text)),
        )
        return
    b = await store.read(partial(live_contact, contact_id=found[0]))
    first = await store.read(partial(contact_summary, contact_id=a, touches=CONTACT_TOUCHES))
    second = await store.read(partial(contact_summary, contact_id=b, touches=CONTACT_TOUCHES))
    if first is None or second is None or second["erased_at"] is not None:  # an erased one is nobody
        await replies.send(
            chat_id,
            _("No contact found for “{text}”. Try the phone number or #number.").format(text=quoted(text)),
        )
        return
    if first["id"] == second["id"] or await store.read(partial(live_contact, contact_id=a)) == b:
        await state.clear()
        await replies.send(chat_id, _("That is the same contact."))
        return
    await state.clear()
    question = _("Merge these two contacts? The older one keeps everything of both; you can undo it later.")
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=_("🔗 Merge"), callback_data=MergeCB(act="do", a=a, b=b).pack()),
                InlineKeyboardButton(text=_("Cancel"), callback_data=MergeCB(act="no", a=a, b=b).pack()),
            ],
            [
                InlineKeyboardButton(
                    text=_("🙅 Not the same person"), callback_data=MergeCB(act="apart", a=a, b=b).pack()
                )
            ],
        ]
    )
    body = "\n\n".join(
        [
            question,
            contact_text(first, config.tz, config.campaign_titles()),
            contact_text(second, config.tz, config.campaign_titles()),
        ]
    )
    await replies.send(chat_id, body, markup)


async def do_merge(
    callback: CallbackQuery,
    callback_data: MergeCB,
    staff: StaffMember,
    store: Store,
    clock: Clock,
    config: Config,
    replies: Replies,
) -> None:
    if not await managers_only(callback, staff):
        return
    merge_id, survivor, merged = await store.write(
        partial(
            merge_by_staff,
            a=callback_data.a,
            b=callback_data.b,
            staff_id=staff.id,
            at=clock(),
            deadline=Rules.from_config(config).callback_deadline,
        )
    )
    undo = InlineKeyboardButton(
        text=_("↩️ Undo merge with #{id}").format(id=merged),
        callback_data=MergeCB(act="undo", a=merge_id).pack(),
    )
    await redraw_saved(
        callback,
        replies,
        _("🔗 Merged: contact #{merged} is now part of #{survivor}.").format(
            merged=merged, survivor=survivor
        ),
        InlineKeyboardMarkup(inline_keyboard=[[undo]]),
    )
    await callback.answer(_("Saved."))


async def undo(
    callback: CallbackQuery,
    callback_data: MergeCB,
    staff: StaffMember,
    store: Store,
    clock: Clock,
    config: Config,
    replies: Replies,
) -> None:
    if not await managers_only(callback, staff):
        return
    restored = await store.write(
        partial(
            undo_merge_by_staff,
            merge_id=callback_data.a,
            staff_id=staff.id,
            at=clock(),
            deadline=Rules.from_config(config).callback_deadline,
        )
    )
    await redraw_saved(
        callback, replies, _("↩️ Merge undone: contact #{id} is separate again.").format(id=restored)
    )
    await callback.answer(_("Saved."))


async def apart(
    callback: CallbackQuery,
    callback_data: MergeCB,
    staff: StaffMember,
    store: Store,
    clock: Clock,
    replies: Replies,
) -> None:
    if not await managers_only(callback, staff):
        return
    await store.write(
        partial(apart_by_staff, a=callback_data.a, b=callback_data.b, staff_id=staff.id, at=clock())
    )
    await redraw_saved(
        callback,
        replies,
        _("🙅 Kept apart: #{a} and #{b} are two people, and no touch will merge them.").format(
            a=callback_data.a, b=callback_data.b
        ),
    )
    await callback.answer(_("Saved."))


async def cancel(callback: CallbackQuery) -> None:
    await edit(callback, _("Cancelled."))
    await callback.answer()


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="merge")
    router.callback_query.register(ask, MergeCB.filter(F.act == "ask"))
    router.message.register(other, MergeInput.other, F.text, ~F.text.startswith("/"))
    router.callback_query.register(do_merge, MergeCB.filter(F.act == "do"))
    router.callback_query.register(undo, MergeCB.filter(F.act == "undo"))
    router.callback_query.register(apart, MergeCB.filter(F.act == "apart"))
    router.callback_query.register(cancel, MergeCB.filter(F.act == "no"))
    return router
