"""The contact card's "do not contact" button: owners and managers mark a person (or clear the mark),
and the card is redrawn with it. What the mark does is storage's (storage/contacts.py)."""

from __future__ import annotations

from functools import partial

from aiogram import F, Router
from aiogram.types import CallbackQuery

from bot.callbacks import ContactCB
from bot.catalogues import gettext as _
from bot.inplace import redraw_saved
from bot.replies import Replies
from bot.views import CONTACT_TOUCHES, contact_keyboard, contact_text
from leadline.config import Config
from storage.cards import contact_summary
from storage.contacts import set_do_not_contact
from storage.db import Clock, Store
from storage.staff import StaffMember


async def mark(
    callback: CallbackQuery,
    callback_data: ContactCB,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    replies: Replies,
) -> None:
    if not staff.is_manager:
        await callback.answer(_("Only a manager or an owner can change this."), show_alert=True)
        return
    value = bool(callback_data.v)
    contact_id = await store.write(
        partial(set_do_not_contact, contact_id=callback_data.c, value=value, at=clock())
    )
    contact = await store.read(partial(contact_summary, contact_id=contact_id, touches=CONTACT_TOUCHES))
    if contact is not None:
        await redraw_saved(
            callback,
            replies,
            contact_text(contact, config.tz, config.campaign_titles()),
            contact_keyboard(contact, staff),
        )
    await callback.answer(
        _("Marked: left out of campaigns from now on.")
        if value
        else _("Mark cleared: may be contacted again.")
    )


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="do_not_contact")
    router.callback_query.register(mark, ContactCB.filter(F.act == "dnc"))
    return router
