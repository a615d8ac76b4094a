"""Registration by typing: a number in any spelling, an email, a shared contact or a forwarded message.

The text goes through the same normalisation as telephony, so ``8 916 123-45-67`` finds the contact
a call from ``+79161234567`` created and the card registers that contact, not a second one. Someone
who never contacted us becomes a ``manual`` touch, so they are counted like any other contact.
"""

from __future__ import annotations

from functools import partial

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.types import (
    Message,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    MessageOriginUser,
)

from bot.catalogues import gettext as _
from bot.contexts import TouchContexts
from bot.parsing import identifiers_in
from bot.replies import Replies, quoted
from bot.views import send_contact, send_touch
from leadline.config import Config
from storage.db import Clock, Store
from storage.identifiers import international
from storage.manual_touches import LookUp, look_up_or_add
from storage.staff import StaffMember

#: Where hand-entered touches are recorded (``touches.source``); not a configured source.
MANUAL_SOURCE = "telegram"


def origin_name(message: Message) -> str | None:
    origin = message.forward_origin
    if isinstance(origin, MessageOriginUser):
        return origin.sender_user.full_name
    if isinstance(origin, MessageOriginHiddenUser):
        return origin.sender_user_name
    if isinstance(origin, MessageOriginChat):
        return origin.sender_chat.title
    if isinstance(origin, MessageOriginChannel):
        return origin.chat.title
    return None


async def shared_contact(
    message: Message,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    capture: TouchContexts,
    replies: Replies,
) -> None:
    assert message.contact is not None
    contact = message.contact
    name = " ".join(p for p in (contact.first_name, contact.last_name) if p) or None
    number = international(contact.phone_number)  # Telegram sends it without its "+"
    await start_from(message, number, name, None, staff, store, config, clock, capture, replies)


async def forwarded(
    message: Message,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    capture: TouchContexts,
    replies: Replies,
) -> None:
    text = message.text or message.caption or ""
    await start_from(
        message, text, origin_name(message), text or None, staff, store, config, clock, capture, replies
    )


async def typed(
    message: Message,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    capture: TouchContexts,
    replies: Replies,
) -> None:
    await start_from(message, message.text or "", None, None, staff, store, config, clock, capture, replies)


async def start_from(
    message: Message,
    text: str,
    name: str | None,
    note: str | None,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    capture: TouchContexts,
    replies: Replies,
) -> None:
    found = identifiers_in(text, config.leadline.region)
    chat_id = message.chat.id
    if not found.identifiers:
        if found.invalid:
            await replies.send(
                chat_id,
                _(
                    "“{text}” is not a phone number I can use. Type it with the area code, for example"
                    " 8 916 123-45-67 or +7 916 123-45-67."
                ).format(text=quoted(found.invalid[0])),
            )
            return
        if message.forward_origin is not None or message.contact is not None:
            await replies.send(
                chat_id, _("I found no phone number or email in that message. Type the number instead.")
            )
            return
        raise SkipHandler
    now = clock()
    ctx = capture.context(MANUAL_SOURCE, None, now)
    result: LookUp = await store.write(
        partial(
            look_up_or_add,
            idents=found.identifiers,
            ctx=ctx,
            external_id=f"telegram:{chat_id}:{message.message_id}",
            name=name,
            message=note,
            at=now,
        )
    )
    if result.touch_id is not None:
        await send_touch(replies, store, config, chat_id, result.touch_id)
        return
    if len(result.contacts) > 1:
        await replies.send(
            chat_id, _("These details belong to {n} different contacts:").format(n=len(result.contacts))
        )
    for contact_id in result.contacts:
        await send_contact(replies, store, config, chat_id, contact_id, staff)


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="lookup")
    router.message.register(shared_contact, F.contact)
    router.message.register(forwarded, F.forward_origin)
    router.message.register(typed, F.text, ~F.text.startswith("/"))
    return router
