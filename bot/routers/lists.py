"""/unregistered, /missed and /leads: paged lists whose buttons open each item's card.

A staff member sees their own work (and what nobody has handled yet); managers and owners see
everyone's. Turning a page edits the list in place; opening an item sends its card.
"""

from __future__ import annotations

import contextlib
import html
from typing import Any
from zoneinfo import ZoneInfo

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot import cards, labels
from bot.callbacks import OpenCB, PageCB
from bot.catalogues import gettext as _
from bot.dialer import Dialer
from bot.replies import Replies
from bot.views import send_contact, send_lead, send_touch
from leadline.config import Config
from storage.db import Store
from storage.lists import Mark, Page, Turn, missed, open_leads, unregistered
from storage.staff import StaffMember

PAGE_SIZE = 5


def _who(item: dict[str, Any]) -> str:
    parts = [cards.pretty_phone(p) for p in item["phones"][:1]] + item["emails"][:1]
    if not parts and item.get("chat_ids"):
        parts = [labels.chat_id(*item["chat_ids"][0])]
    if item.get("name"):
        parts.insert(0, str(item["name"]))
    return html.escape(" · ".join(parts) or "—")


def _line(kind: str, number: int, item: dict[str, Any], tz: ZoneInfo) -> str:
    if kind == "leads":
        temp = item["temperature"]
        line = (
            f"{number}. {labels.TEMPERATURE_ICONS.get(temp, '')} {_who(item)} · {labels.stage(item['stage'])}"
        )
        if item["follow_up_on"]:
            line += f" · 📅 {cards.day(item['follow_up_on'])}"
        return line
    icon = labels.CHANNEL_ICONS.get(item["channel"], "•")
    line = f"{number}. {icon} {_who(item)} · {cards.when(item['last_at'], tz)}"
    if kind == "unreg" and int(item.get("touches") or 1) > 1:
        count = int(item["touches"])
        line += " · " + _("{n} touch", "{n} touches", count).format(n=count)
    if item.get("handler"):
        line += " · 👤 " + html.escape(str(item["handler"]))
    return line


def _title(kind: str, everyone: bool) -> str:
    if kind == "unreg":
        return (
            _("Waiting for registration")
            if everyone
            else _("Waiting for registration (yours and unassigned)")
        )
    if kind == "missed":
        return (
            _("Missed calls not called back")
            if everyone
            else _("Missed calls not called back (yours and unassigned)")
        )
    return _("Open leads (everyone's)") if everyone else _("Your open leads")


def _empty(kind: str) -> str:
    if kind == "unreg":
        return _("Nothing is waiting for registration. Well done!")
    if kind == "missed":
        return _("Every missed call has been called back.")
    return _("No open leads.")


LISTS = {"unreg": unregistered, "missed": missed, "leads": open_leads}


async def fetch(store: Store, kind: str, staff: StaffMember, everyone: bool, turn: Turn | None) -> Page:
    scope = None if everyone else staff.id
    query = LISTS[kind]
    result: Page = await store.read(lambda db: query(db, scope, PAGE_SIZE, turn))
    return result


def render(kind: str, page: Page, everyone: bool, tz: ZoneInfo) -> tuple[str, InlineKeyboardMarkup | None]:
    title = f"<b>{_title(kind, everyone)}</b>"
    if page.total == 0:
        return title + "\n\n" + _empty(kind), None
    lines = [
        title
        + " — "
        + _("{total} in all, page {page} of {pages}").format(
            total=page.total, page=page.page + 1, pages=page.pages
        ),
        "",
    ]
    opens: list[InlineKeyboardButton] = []
    for offset, item in enumerate(page.items):
        number = page.start + offset + 1
        lines.append(_line(kind, number, item, tz))
        target = (
            OpenCB(kind="lead", id=item["lead_id"])
            if kind == "leads"
            else OpenCB(kind="touch", id=item["touch_id"])
        )
        opens.append(InlineKeyboardButton(text=str(number), callback_data=target.pack()))
    keyboard = [opens]
    nav: list[InlineKeyboardButton] = []
    for text, go, mark, shown in (
        ("«", "p", page.first, page.start > 0),
        ("»", "n", page.last, page.has_next),
    ):
        if shown and mark is not None:
            data = PageCB(kind=kind, everyone=everyone, go=go, key=mark.key, id=mark.id)
            nav.append(InlineKeyboardButton(text=text, callback_data=data.pack()))
    if nav:
        keyboard.append(nav)
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=keyboard)


async def send_list(
    message: Message,
    kind: str,
    everyone: bool,
    staff: StaffMember,
    store: Store,
    config: Config,
    replies: Replies,
) -> None:
    page = await fetch(store, kind, staff, everyone, None)
    text, markup = render(kind, page, everyone, config.tz)
    await replies.send(message.chat.id, text, markup)


async def unregistered_list(
    message: Message, staff: StaffMember, store: Store, config: Config, replies: Replies
) -> None:
    await send_list(message, "unreg", staff.is_manager, staff, store, config, replies)


async def missed_list(
    message: Message, staff: StaffMember, store: Store, config: Config, replies: Replies
) -> None:
    await send_list(message, "missed", staff.is_manager, staff, store, config, replies)


async def leads_list(
    message: Message,
    command: CommandObject,
    staff: StaffMember,
    store: Store,
    config: Config,
    replies: Replies,
) -> None:
    everyone = staff.is_manager and (command.args or "").strip().lower() in ("all", "все")
    await send_list(message, "leads", everyone, staff, store, config, replies)


async def turn_page(
    callback: CallbackQuery, callback_data: PageCB, staff: StaffMember, store: Store, config: Config
) -> None:
    """Turn to the page past (or before) the mark the button carries; a button no list of ours drew
    (an old one, a client's own) is answered as such and changes nothing."""
    everyone = callback_data.everyone and staff.is_manager
    mark = Mark(callback_data.key, callback_data.id)
    turn = Turn(mark, forward=callback_data.go == "n") if callback_data.go else None
    page = None
    if callback_data.kind in LISTS and callback_data.go in ("", "n", "p"):
        page = await fetch(store, callback_data.kind, staff, everyone, turn)
    if page is None or page.reset:
        await callback.answer(
            _("This button is from an old version of the message; open the list again."), show_alert=True
        )
        return
    text, markup = render(callback_data.kind, page, everyone, config.tz)
    if isinstance(callback.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_text(text, reply_markup=markup)
    await callback.answer()


async def open_item(
    callback: CallbackQuery,
    callback_data: OpenCB,
    staff: StaffMember,
    store: Store,
    config: Config,
    replies: Replies,
    dialer: Dialer,
) -> None:
    chat_id = callback.message.chat.id if callback.message is not None else callback.from_user.id
    if callback_data.kind == "touch":
        found = await send_touch(replies, store, config, chat_id, callback_data.id, dialer)
    elif callback_data.kind == "lead":
        found = await send_lead(replies, store, config, chat_id, callback_data.id, staff)
    else:
        found = await send_contact(replies, store, config, chat_id, callback_data.id, staff)
    if found:
        await callback.answer()
    else:
        await callback.answer(_("This item no longer exists. Open the list again."), show_alert=True)


async def open_digest_contact(
    callback: CallbackQuery, staff: StaffMember, store: Store, config: Config, replies: Replies
) -> None:
    """The digest's buttons (``contact:<id>``, drawn by ``bot/digest.py``) open the contact's card."""
    chat_id = callback.message.chat.id if callback.message is not None else callback.from_user.id
    contact_id = int((callback.data or "contact:0").split(":", 1)[1])
    if await send_contact(replies, store, config, chat_id, contact_id, staff):
        await callback.answer()
    else:
        await callback.answer(_("This item no longer exists. Open the list again."), show_alert=True)


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="lists")
    router.message.register(unregistered_list, Command("unregistered"))
    router.message.register(missed_list, Command("missed"))
    router.message.register(leads_list, Command("leads"))
    router.callback_query.register(turn_page, PageCB.filter())
    router.callback_query.register(open_item, OpenCB.filter())
    router.callback_query.register(open_digest_contact, F.data.regexp(r"^contact:\d+$"))
    return router
