"""/find: a contact by phone in any spelling, by email, or by part of a name."""

from __future__ import annotations

from functools import partial

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.callbacks import OpenCB
from bot.catalogues import gettext as _
from bot.replies import Replies, quoted
from bot.views import CONTACT_TOUCHES, send_contact
from leadline.config import Config
from storage.cards import contact_summary
from storage.contacts import search_contacts
from storage.db import Store
from storage.staff import StaffMember

MAX_RESULTS = 10


async def find(
    message: Message,
    command: CommandObject,
    staff: StaffMember,
    store: Store,
    config: Config,
    replies: Replies,
) -> None:
    query = (command.args or "").strip()
    chat_id = message.chat.id
    if not query:
        await replies.send(
            chat_id, _("Type /find and a phone number, an email or part of a name, e.g. /find Ivan.")
        )
        return
    found = await store.read(
        partial(
            search_contacts,
            query=query,
            region=config.leadline.region,
            limit=MAX_RESULTS,
            regions=config.phone_regions,
        )
    )
    if not found:
        await replies.send(
            chat_id,
            _("Nothing found for “{query}”. To register someone new, send their phone number.").format(
                query=quoted(query)
            ),
        )
        return
    if len(found) == 1:
        await send_contact(replies, store, config, chat_id, found[0], staff)
        return
    buttons = []
    lines = [_("Found {n} contacts for “{query}”:").format(n=len(found), query=quoted(query))]
    for number, contact_id in enumerate(found, start=1):
        contact = await store.read(partial(contact_summary, contact_id=contact_id, touches=CONTACT_TOUCHES))
        if contact is None:
            continue
        label = contact["name"] or (contact["phones"] + contact["emails"] + ["—"])[0]
        # Cut like a quote: a form keeps names of up to 1,024 characters, and ten in full would be
        # a list Telegram refuses.
        lines.append(f"{number}. {quoted(str(label))} (#{contact_id})")
        buttons.append(
            InlineKeyboardButton(text=str(number), callback_data=OpenCB(kind="contact", id=contact_id).pack())
        )
    markup = InlineKeyboardMarkup(inline_keyboard=[buttons[i : i + 5] for i in range(0, len(buttons), 5)])
    await replies.send(chat_id, "\n".join(lines), markup)


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="find")
    router.message.register(find, Command("find"))
    return router
