"""Sending the three kinds of card as new messages: a touch's, a contact's, a lead's.

The lists, /find and the typed look-ups all open cards the same way, through the outbox.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot import cards, labels
from bot.callbacks import ContactCB, MergeCB, OpenCB
from bot.catalogues import gettext as _
from bot.dialer import Dialer
from bot.replies import Replies
from bot.routers.leads import lead_keyboard, lead_text
from leadline.config import Config
from storage.cards import contact_summary, lead_card, touch_card
from storage.db import Store
from storage.staff import StaffMember

#: How many of a contact's newest touches its card lists; the card gives the count of all.
CONTACT_TOUCHES = 5


def contact_text(contact: dict[str, Any], tz: ZoneInfo, titles: Mapping[str, str]) -> str:
    lines = ["👤 <b>" + html.escape(contact["name"] or _("No name")) + f"</b> (#{contact['id']})"]
    who = [html.escape(cards.pretty_phone(p)) for p in contact["phones"]] + [
        html.escape(e) for e in contact["emails"]
    ]
    if who:
        lines.append(" · ".join(who))
    if contact["blocked"]:
        lines.append("🚫 " + _("On the block list"))
    if contact["do_not_contact"]:
        lines.append(cards.do_not_contact_line())
    lines.append(_("Touches: {n}").format(n=contact["touch_count"]))
    for touch in contact["touches"]:
        icon = labels.CHANNEL_ICONS.get(touch["channel"], "•")
        direction = "→" if touch["direction"] == "out" else "←"
        lines.append(
            f"  {icon} {direction} {cards.when(touch['occurred_at'], tz)} · {html.escape(labels.campaign(touch['campaign'], titles))}"
        )
    registration = contact["registration"]
    lines.append(cards.registered_line(registration, tz) if registration else "⏳ " + _("Not registered yet"))
    for merge in contact["merges"]:
        lines.append(
            "🔗 "
            + _("Merged with #{id} ({name})").format(
                id=merge["merged_id"], name=html.escape(merge["merged_name"] or "—")
            )
        )
    return "\n".join(lines)


def contact_keyboard(contact: dict[str, Any], staff: StaffMember) -> InlineKeyboardMarkup | None:
    keyboard: list[list[InlineKeyboardButton]] = []
    if contact["unregistered_touch"]:
        keyboard.append(
            [
                InlineKeyboardButton(
                    text=_("📋 Register"),
                    callback_data=OpenCB(kind="touch", id=contact["unregistered_touch"]).pack(),
                )
            ]
        )
    for lead_id in contact["leads"][:3]:
        keyboard.append(
            [
                InlineKeyboardButton(
                    text=_("📇 Lead #{id}").format(id=lead_id),
                    callback_data=OpenCB(kind="lead", id=lead_id).pack(),
                )
            ]
        )
    if staff.is_manager:
        keyboard.append(
            [
                InlineKeyboardButton(
                    text=_("🔗 Merge with…"), callback_data=MergeCB(act="ask", a=contact["id"]).pack()
                )
            ]
        )
        keyboard.append(
            [
                InlineKeyboardButton(
                    text=_("✅ May be contacted again")
                    if contact["do_not_contact"]
                    else _("🚷 Do not contact"),
                    callback_data=ContactCB(
                        act="dnc", c=contact["id"], v=0 if contact["do_not_contact"] else 1
                    ).pack(),
                )
            ]
        )
        for merge in contact["merges"]:
            keyboard.append(
                [
                    InlineKeyboardButton(
                        text=_("↩️ Undo merge with #{id}").format(id=merge["merged_id"]),
                        callback_data=MergeCB(act="undo", a=merge["id"]).pack(),
                    )
                ]
            )
    return InlineKeyboardMarkup(inline_keyboard=keyboard) if keyboard else None


async def send_touch(
    replies: Replies,
    store: Store,
    config: Config,
    chat_id: int,
    touch_id: int,
    dialer: Dialer | None = None,
) -> bool:
    """The touch's registration card; given the ``dialer``, a missed call's card can be called back."""
    card = await store.read(partial(touch_card, touch_id=touch_id))
    if card is None:
        return False
    can_dial = dialer is not None and dialer.can_dial(str(card.touch["source"]))
    keyboard = cards.initial_keyboard(card, touch_id, can_dial=can_dial)
    await replies.send(chat_id, cards.initial_text(card, config.tz, config.campaign_titles()), keyboard)
    return True


async def send_contact(
    replies: Replies, store: Store, config: Config, chat_id: int, contact_id: int, staff: StaffMember
) -> bool:
    contact = await store.read(partial(contact_summary, contact_id=contact_id, touches=CONTACT_TOUCHES))
    if contact is None:
        return False
    await replies.send(
        chat_id, contact_text(contact, config.tz, config.campaign_titles()), contact_keyboard(contact, staff)
    )
    return True


async def send_lead(
    replies: Replies, store: Store, config: Config, chat_id: int, lead_id: int, staff: StaffMember
) -> bool:
    lead = await store.read(partial(lead_card, lead_id=lead_id))
    if lead is None:
        return False
    await replies.send(
        chat_id,
        lead_text(lead, config.tz, config.campaign_titles(), config.leadline.currency),
        lead_keyboard(lead, staff),
    )
    return True
