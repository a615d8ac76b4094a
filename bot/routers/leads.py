"""A lead's card and its moves: qualified, accepted or returned, won or lost, and field changes.

Every change goes through :func:`storage.registrations.change_lead`, which checks the move and
records who made it and when; the buttons only offer the moves it allows. Staff change their own
leads; managers and owners change anyone's and reassign.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot import cards, labels
from bot.callbacks import LeadCB
from bot.catalogues import gettext as _
from bot.fsm import stop_asking
from bot.inplace import redraw_saved
from bot.parsing import parse_amount
from bot.replies import Replies
from leadline.config import Config
from storage.cards import lead_card
from storage.db import Clock, Store
from storage.registrations import MOVES, TEMPERATURES, change_lead
from storage.staff import StaffMember, active_staff

#: Starts every lead text, so a redraw can keep the registration card's part above it.
LEAD_MARK = "📇"


class LeadInput(StatesGroup):
    value = State()


def move_label(stage: str) -> str:
    return {
        "qualified": _("✔️ Qualified"),
        "accepted": _("🤝 Accepted by sales"),
        "returned": _("↩️ Return to marketing"),
        "won": _("🏆 Won"),
        "lost": _("✖️ Lost"),
        "new": _("🔄 Reopen"),
    }.get(stage, stage)


def lead_text(
    lead: dict[str, Any],
    tz: ZoneInfo,
    titles: Mapping[str, str],
    currency: str,
    *,
    with_contact: bool = True,
) -> str:
    temp = lead["temperature"]
    lines = [
        LEAD_MARK
        + " <b>"
        + _("Lead #{id}").format(id=lead["id"])
        + "</b> · "
        + labels.TEMPERATURE_ICONS.get(temp, "")
        + " "
        + labels.temperature(temp)
        + " · "
        + _("stage: {stage}").format(stage=labels.stage(lead["stage"]))
    ]
    if with_contact:
        who = [html.escape(lead["contact_name"] or "—")]
        who += [html.escape(cards.pretty_phone(p)) for p in lead["phones"][:1]] + [
            html.escape(e) for e in lead["emails"][:1]
        ]
        lines.append("👤 " + " · ".join(who))
    lines.append(f"{labels.field('need')}: {html.escape(lead['need'] or '—')}")
    for name, value in (lead["fields"] or {}).items():
        lines.append(f"{cards.field_label(name)}: {html.escape(str(value))}")
    lines.append(
        f"📣 {labels.field('campaign')}: {html.escape(labels.campaign(lead['campaign'], titles))} · "
        f"{labels.field('owner')}: {html.escape(lead['owner_name'] or '—')}"
    )
    lines.append(
        f"📅 {labels.field('follow_up')}: {cards.day(lead['follow_up_on'])} · 💰 {cards.amount(lead['amount'], currency)}"
    )
    if lead["stage"] == "won":
        lines.append(_("🏆 Won: {amount}").format(amount=cards.amount(lead["won_amount"], currency)))
    if lead["stage"] == "lost":
        lines.append(
            _("✖️ Lost: {reason}").format(reason=html.escape(labels.lost_reason(lead["lost_reason"])))
        )
    if lead["stage"] == "returned":
        lines.append(_("↩️ Returned: {reason}").format(reason=html.escape(lead["returned_reason"] or "—")))
    return "\n".join(lines)


def lead_keyboard(lead: dict[str, Any], staff: StaffMember) -> InlineKeyboardMarkup:
    lead_id = int(lead["id"])
    order = ("qualified", "accepted", "returned", "won", "lost", "new")
    moves = [
        InlineKeyboardButton(text=move_label(s), callback_data=LeadCB(act="stage", lead=lead_id, v=s).pack())
        for s in order
        if s in MOVES.get(lead["stage"], frozenset())
    ]
    keyboard = cards.rows(moves, 2)
    if lead["stage"] == "won":
        keyboard.append(
            [
                InlineKeyboardButton(
                    text="✏️ " + labels.field("won_amount"),
                    callback_data=LeadCB(act="wamt", lead=lead_id).pack(),
                )
            ]
        )
    if lead["stage"] not in ("won", "lost"):
        keyboard.append(
            [
                InlineKeyboardButton(
                    text="→ " + labels.TEMPERATURE_ICONS[t] + " " + labels.temperature(t),
                    callback_data=LeadCB(act="temp", lead=lead_id, v=t).pack(),
                )
                for t in TEMPERATURES
                if t != lead["temperature"]
            ]
        )
        extra = [
            InlineKeyboardButton(
                text="📅 " + labels.field("follow_up"), callback_data=LeadCB(act="fu", lead=lead_id).pack()
            )
        ]
        if staff.is_manager:
            extra.append(
                InlineKeyboardButton(
                    text="👤 " + labels.field("owner"), callback_data=LeadCB(act="own", lead=lead_id).pack()
                )
            )
        keyboard.append(extra)
    return InlineKeyboardMarkup(inline_keyboard=keyboard)


def lost_keyboard(lead_id: int) -> InlineKeyboardMarkup:
    choices = [
        InlineKeyboardButton(
            text=labels.lost_reason(r), callback_data=LeadCB(act="lost", lead=lead_id, v=r).pack()
        )
        for r in labels.LOST_REASONS
    ]
    back = InlineKeyboardButton(text=_("« Back"), callback_data=LeadCB(act="back", lead=lead_id).pack())
    return InlineKeyboardMarkup(inline_keyboard=[*cards.rows(choices, 2), [back]])


def follow_up_keyboard(lead_id: int) -> InlineKeyboardMarkup:
    choices = [
        InlineKeyboardButton(
            text=cards.follow_up_label(d), callback_data=LeadCB(act="fu", lead=lead_id, v=str(d)).pack()
        )
        for d in cards.FOLLOW_UP_DAYS
    ]
    back = InlineKeyboardButton(text=_("« Back"), callback_data=LeadCB(act="back", lead=lead_id).pack())
    return InlineKeyboardMarkup(inline_keyboard=[*cards.rows(choices, 3), [back]])


def owner_keyboard(lead_id: int, staff: list[StaffMember]) -> InlineKeyboardMarkup:
    choices = [
        InlineKeyboardButton(text=s.name, callback_data=LeadCB(act="own", lead=lead_id, v=str(s.id)).pack())
        for s in staff
    ]
    back = InlineKeyboardButton(text=_("« Back"), callback_data=LeadCB(act="back", lead=lead_id).pack())
    return InlineKeyboardMarkup(inline_keyboard=[*cards.rows(choices, 2), [back]])


async def show(callback: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None) -> None:
    if isinstance(callback.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_text(text, reply_markup=markup)


def keep_header(callback: CallbackQuery) -> str:
    """A lead shown under a registration card keeps the card's part above the lead's."""
    if not isinstance(callback.message, Message):
        return ""
    text = callback.message.html_text
    cut = text.find(LEAD_MARK)
    return text[:cut] if cut > 0 else ""


async def redraw(
    callback: CallbackQuery,
    lead_id: int,
    store: Store,
    config: Config,
    staff: StaffMember,
    *,
    saved: Replies | None = None,
) -> None:
    """The lead card as it is now; ``saved`` after a committed change, which Telegram cannot undo."""
    lead = await store.read(partial(lead_card, lead_id=lead_id))
    if lead is not None:
        header = keep_header(callback)
        text = header + lead_text(
            lead, config.tz, config.campaign_titles(), config.leadline.currency, with_contact=not header
        )
        if saved is None:
            await show(callback, text, lead_keyboard(lead, staff))
        else:
            await redraw_saved(callback, saved, text, lead_keyboard(lead, staff))


async def allowed(callback: CallbackQuery, lead: dict[str, Any] | None, staff: StaffMember) -> bool:
    if lead is None:
        await callback.answer(_("This lead no longer exists."), show_alert=True)
        return False
    if not staff.is_manager and lead["owner_id"] not in (None, staff.id):
        await callback.answer(
            _("This lead belongs to {owner}. Ask a manager to change it.").format(
                owner=lead["owner_name"] or "—"
            ),
            show_alert=True,
        )
        return False
    return True


async def on_button(
    callback: CallbackQuery,
    callback_data: LeadCB,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    state: FSMContext,
    replies: Replies,
) -> None:
    lead_id, act, value = callback_data.lead, callback_data.act, callback_data.v
    lead = await store.read(partial(lead_card, lead_id=lead_id))
    if not await allowed(callback, lead, staff):
        return
    assert lead is not None
    header = keep_header(callback)
    body = header + lead_text(
        lead, config.tz, config.campaign_titles(), config.leadline.currency, with_contact=not header
    )
    changes: dict[str, Any] = {}
    if act == "back":
        if isinstance(callback.message, Message):
            await stop_asking(state, callback.message.chat.id, callback.message.message_id)
        await redraw(callback, lead_id, store, config, staff)
        await callback.answer()
        return
    typing = (act == "stage" and value in ("won", "returned")) or (act == "wamt" and lead["stage"] == "won")
    if typing and isinstance(callback.message, Message):
        await state.set_state(LeadInput.value)
        await state.set_data(
            {
                "lead": lead_id,
                "field": "won_amount" if act == "wamt" else value,
                "chat": callback.message.chat.id,
                "card": callback.message.message_id,
            }
        )
        question = (
            _("✏️ Type the deal amount.")
            if value == "won" or act == "wamt"
            else _("✏️ Type why the lead goes back to marketing.")
        )
        back = InlineKeyboardButton(text=_("« Back"), callback_data=LeadCB(act="back", lead=lead_id).pack())
        await show(callback, body + "\n\n" + question, InlineKeyboardMarkup(inline_keyboard=[[back]]))
        await callback.answer()
        return
    stale = (act == "lost" and value not in labels.LOST_REASONS) or (act == "wamt" and lead["stage"] != "won")
    if stale:  # no button offers it now: forged, or from a card drawn before the lead moved
        await callback.answer(
            _("This button is from an old version of the message; open the list again."), show_alert=True
        )
        return
    if act == "stage" and value == "lost":
        await show(callback, body + "\n\n" + _("Why was the lead lost?"), lost_keyboard(lead_id))
        await callback.answer()
        return
    if act == "fu" and not value:
        await show(callback, body, follow_up_keyboard(lead_id))
        await callback.answer()
        return
    if act == "own" and not value:
        if not staff.is_manager:
            await callback.answer(_("Only a manager can give a lead to someone else."), show_alert=True)
            return
        await show(callback, body, owner_keyboard(lead_id, await store.read(active_staff)))
        await callback.answer()
        return
    if act == "stage":
        changes = {"stage": value}
    elif act == "lost":
        changes = {"stage": "lost", "reason": value}
    elif act == "temp":
        changes = {"temperature": value}
    elif act == "fu":
        changes = {"follow_up_on": cards.now_local(clock(), config.tz) + timedelta(days=int(value))}
    elif act == "own" and staff.is_manager:
        changes = {"owner_id": int(value)}
    now = clock()
    await store.write(partial(change_lead, lead_id=lead_id, at=now, staff_id=staff.id, **changes))
    await redraw(callback, lead_id, store, config, staff, saved=replies)
    await callback.answer(_("Saved."))


async def typed(
    message: Message,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    state: FSMContext,
    replies: Replies,
) -> None:
    route = await state.get_data()
    lead_id, field = int(route["lead"]), str(route["field"])
    text = (message.text or "").strip()[:500]
    changes: dict[str, Any]
    if field in ("won", "won_amount"):
        value = parse_amount(text)
        if value is None:
            await replies.send(message.chat.id, cards.not_an_amount(text))
            return
        # "won_amount" corrects the amount of a lead won before; "won" wins it.
        changes = {"won_amount": value} if field == "won_amount" else {"stage": "won", "won_amount": value}
    elif field == "follow_up":
        when = cards.follow_up_date(text, cards.now_local(clock(), config.tz))
        if isinstance(when, str):
            await replies.send(message.chat.id, when)
            return
        changes = {"follow_up_on": when}
    else:
        changes = {"stage": "returned", "reason": text}
    await state.clear()
    await store.write(partial(change_lead, lead_id=lead_id, at=clock(), staff_id=staff.id, **changes))
    lead = await store.read(partial(lead_card, lead_id=lead_id))
    if lead is not None:
        await replies.edit(
            int(route["chat"]),
            int(route["card"]),
            lead_text(lead, config.tz, config.campaign_titles(), config.leadline.currency),
            lead_keyboard(lead, staff),
        )


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="leads")
    router.callback_query.register(on_button, LeadCB.filter())
    router.message.register(typed, LeadInput.value, F.text, ~F.text.startswith("/"))
    return router
