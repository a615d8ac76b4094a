"""/blocked: the block list a page at a time, with a button to take each entry off; managers and owners.

What blocking means is storage/blocking.py's. The config's ``[[block]]`` rules are shown under the
list; only the config changes them.
"""

from __future__ import annotations

import contextlib
import html
from functools import partial
from zoneinfo import ZoneInfo

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot import cards
from bot.callbacks import BlockCB
from bot.catalogues import gettext as _
from bot.inplace import redraw_saved
from bot.replies import Replies
from leadline.config import Config
from storage.blocking import BlockRules, blocklist_page, blocklist_size, unblock
from storage.db import Clock, Store
from storage.staff import StaffMember

PAGE_SIZE = 8


def managers_only() -> str:
    return _("Only a manager or an owner can see and change the block list.")


def _rules(config: Config) -> list[str]:
    rules = BlockRules.build(config.block, config.leadline.region)
    shown = [_("numbers starting {prefix}").format(prefix=p) for p in rules.prefixes]
    shown += [html.escape(cards.pretty_phone(n)) for n in sorted(rules.numbers)]
    shown += [html.escape(e) for e in sorted(rules.emails)]
    if rules.short_call_seconds:
        shown.append(
            _("calls shorter than {n} s from a number never seen before").format(n=rules.short_call_seconds)
        )
    return shown


async def render(store: Store, config: Config, page: int) -> tuple[str, InlineKeyboardMarkup | None]:
    total = await store.read(blocklist_size)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(0, page), pages - 1)
    entries = await store.read(partial(blocklist_page, offset=page * PAGE_SIZE, limit=PAGE_SIZE))
    lines = ["🚫 <b>" + _("Block list") + "</b>"]
    if total == 0:
        lines.append(_("Nobody is on the block list."))
    else:
        lines[0] += " — " + _("{total} in all, page {page} of {pages}").format(
            total=total, page=page + 1, pages=pages
        )
    keyboard: list[list[InlineKeyboardButton]] = []
    tz: ZoneInfo = config.tz
    for n, entry in enumerate(entries, page * PAGE_SIZE + 1):
        value = cards.pretty_phone(entry["value"]) if entry["kind"] == "phone" else entry["value"]
        by = f" · {html.escape(entry['staff'])}" if entry["staff"] else ""
        lines.append(f"{n}. {html.escape(value)} · {cards.when(entry['at'], tz)}{by}")
        keyboard.append(
            [
                InlineKeyboardButton(
                    text=_("✅ Unblock {value}").format(value=value),
                    callback_data=BlockCB(act="un", id=entry["id"], page=page).pack(),
                )
            ]
        )
    nav = [
        InlineKeyboardButton(text=text, callback_data=BlockCB(act="page", page=target).pack())
        for text, target in (("«", page - 1), ("»", page + 1))
        if 0 <= target < pages
    ]
    if nav:
        keyboard.append(nav)
    rules = _rules(config)
    if rules:
        lines += ["", _("Blocked by the config's rules (change them there):"), *("• " + r for r in rules)]
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=keyboard) if keyboard else None


async def show(message: Message, staff: StaffMember, store: Store, config: Config, replies: Replies) -> None:
    if not staff.is_manager:
        await replies.send(message.chat.id, managers_only())
        return
    text, markup = await render(store, config, 0)
    await replies.send(message.chat.id, text, markup)


async def redraw(callback: CallbackQuery, store: Store, config: Config, page: int) -> None:
    text, markup = await render(store, config, page)
    if isinstance(callback.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_text(text, reply_markup=markup)


async def turn_page(
    callback: CallbackQuery, callback_data: BlockCB, staff: StaffMember, store: Store, config: Config
) -> None:
    if not staff.is_manager:
        await callback.answer(managers_only(), show_alert=True)
        return
    await redraw(callback, store, config, callback_data.page)
    await callback.answer()


async def take_off(
    callback: CallbackQuery,
    callback_data: BlockCB,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    replies: Replies,
) -> None:
    if not staff.is_manager:
        await callback.answer(managers_only(), show_alert=True)
        return
    entry = await store.write(partial(unblock, entry_id=callback_data.id, at=clock()))
    await redraw_saved(callback, replies, *await render(store, config, callback_data.page))
    if entry is None:
        await callback.answer(_("This entry is no longer on the block list."), show_alert=True)
        return
    await callback.answer(_("Unblocked: their touches count again."))


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="blocklist")
    # Private chats only: the list shows full numbers and addresses, not for the whole team chat.
    private = F.message.chat.type == "private"  # its buttons too: callback data can be sent from any chat
    router.message.register(show, Command("blocked"), F.chat.type == "private")
    router.callback_query.register(turn_page, BlockCB.filter(F.act == "page"), private)
    router.callback_query.register(take_off, BlockCB.filter(F.act == "un"), private)
    return router
