"""Who may use the bot: strangers are refused politely and the owners are asked, once, to let them in.

The decision is stored (``access_requests`` and a ``staff`` row), so it survives restarts; config
staff are synced at start-up by :mod:`storage.staff`, people approved here live only in the database.
"""

from __future__ import annotations

import html
from datetime import datetime
from functools import partial
from typing import Any

from aiogram import Router
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update, User
from aiogram.utils.i18n import I18n
from sqlite_utils import Database

from bot.callbacks import AccessCB
from bot.catalogues import gettext as _
from bot.commands import chat_menu_payload, help_lines
from bot.i18n import pick_locale, speaking
from bot.inplace import redraw_saved
from bot.replies import Replies, message_payload
from storage.access import AccessRequest, access_request, decide_access, request_access
from storage.db import Store
from storage.outbox import enqueue
from storage.staff import StaffMember, owners


def who(user_name: str | None, username: str | None, telegram_id: int) -> str:
    parts = [html.escape(user_name or "?")]
    if username:
        parts.append(f"@{html.escape(username)}")
    parts.append(f"id {telegram_id}")
    return ", ".join(parts)


def role_label(role: str) -> str:
    return {"staff": _("staff"), "manager": _("manager"), "owner": _("owner"), "refused": _("refused")}.get(
        role, role
    )


async def turn_away(event: Any, data: dict[str, Any]) -> None:
    """Refuse a stranger (at most once an hour) and put their request to every owner (once)."""
    user: User | None = data.get("event_from_user")
    if user is None:
        return
    store: Store = data["store"]
    i18n: I18n = data["i18n"]
    replies: Replies = data["replies"]
    now: datetime = data["clock"]()
    team = await store.read(owners)
    asks: list[tuple[int, str, tuple[str, str, str]]] = []
    for owner in team:
        with speaking(i18n, pick_locale(i18n, owner.language)):
            text = _("🙋 {who} asks for access to the bot.").format(
                who=who(user.full_name, user.username, user.id)
            )
            asks.append(
                (
                    int(owner.telegram_id or 0),
                    text,
                    (_("Approve as staff"), _("Approve as manager"), _("Refuse")),
                )
            )
    waiting = _(
        "Sorry, this bot is only for the company's staff. I have asked the owner to let you in; you will get a message here when they decide."
    )
    refused = _("Sorry, the owner has not given you access to this bot.")

    def write(db: Database) -> AccessRequest:
        request = request_access(
            db, user.id, name=user.full_name, username=user.username, language=user.language_code, at=now
        )
        if request.new:
            for chat_id, text, labels in asks:
                markup = approval_keyboard(request.id, labels)
                enqueue(
                    db,
                    chat_id,
                    message_payload(text, markup),
                    at=now,
                    dedupe_key=f"access:{request.id}:{chat_id}",
                )
        text = refused if request.refused else waiting
        enqueue(db, user.id, message_payload(text), at=now, dedupe_key=f"refusal:{user.id}:{now:%Y%m%d%H}")
        return request

    await store.write(write)
    replies.wake()
    if isinstance(event, Update) and event.callback_query is not None:
        await event.callback_query.answer()


def approval_keyboard(request_id: int, labels: tuple[str, str, str]) -> InlineKeyboardMarkup:
    staff, manager, refuse = labels
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=staff, callback_data=AccessCB(decision="staff", req=request_id).pack()
                ),
                InlineKeyboardButton(
                    text=manager, callback_data=AccessCB(decision="manager", req=request_id).pack()
                ),
            ],
            [
                InlineKeyboardButton(
                    text=refuse, callback_data=AccessCB(decision="refused", req=request_id).pack()
                )
            ],
        ]
    )


async def decide(
    callback: CallbackQuery,
    callback_data: AccessCB,
    staff: StaffMember,
    store: Store,
    clock: Any,
    i18n: I18n,
    replies: Replies,
) -> None:
    if staff.role != "owner":
        await callback.answer(_("Only an owner can give access to the bot."), show_alert=True)
        return
    request = await store.read(partial(access_request, request_id=callback_data.req))
    if request is None:
        await callback.answer(_("This request no longer exists."), show_alert=True)
        return
    now = clock()
    telegram_id = int(request["telegram_id"])
    with speaking(i18n, pick_locale(i18n, request["language"])):
        if callback_data.decision == "refused":
            news = _("Sorry, the owner has not given you access to this bot.")
            menu = None
        else:
            menu = chat_menu_payload(telegram_id, callback_data.decision)
            news = (
                _("Welcome! {owner} gave you access to the bot as {role}.").format(
                    owner=html.escape(staff.name), role=role_label(callback_data.decision)
                )
                + "\n\n"
                + help_text(callback_data.decision)
            )

    def write(db: Database) -> dict[str, Any]:
        decided = decide_access(db, callback_data.req, callback_data.decision, staff_id=staff.id, at=now)
        enqueue(db, decided["telegram_id"], message_payload(news), at=now)
        if menu is not None:  # their menu, for the role they were given; a stranger keeps the default
            enqueue(db, decided["telegram_id"], menu, at=now, method="setMyCommands")
        return decided

    await store.write(write)
    replies.wake()
    person = who(request["name"], request["username"], telegram_id)
    if callback_data.decision == "refused":
        outcome = _("❌ {who}: refused by {owner}.").format(who=person, owner=html.escape(staff.name))
    else:
        outcome = _("✅ {who}: approved as {role} by {owner}.").format(
            who=person, role=role_label(callback_data.decision), owner=html.escape(staff.name)
        )
    await callback.answer()
    await redraw_saved(callback, replies, outcome)


def help_text(role: str) -> str:
    """The commands this role can use: a command that would only refuse the reader is not offered."""
    lines = [
        _("How to use the bot:"),
        _(
            "• Send a phone number in any spelling, an email, a shared contact or a forwarded message to register the person."
        ),
        *help_lines(role),
    ]
    return "\n".join(lines)


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="access")
    router.callback_query.register(decide, AccessCB.filter())
    return router
