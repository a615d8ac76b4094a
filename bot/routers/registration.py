"""The card's buttons and the typed answers that fill it: from a touch to a registration.

The common case is two taps: ``Lead: hot`` then ``Save`` (required fields the touch already
carries, like a form's message as the need, are filled in; anything still required is asked for,
and the bot keeps asking until it is given). Every tap re-reads the touch, so a card pressed after
its contact was merged or registered by someone else says so instead of registering twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
from datetime import date, timedelta
from functools import partial

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot import cards, labels
from bot.callbacks import CardCB
from bot.cards import CardDraft
from bot.catalogues import gettext as _
from bot.fsm import stop_asking
from bot.inplace import redraw_saved
from bot.parsing import parse_amount
from bot.replies import Replies
from bot.routers.fallback import stale_button
from bot.routers.leads import lead_keyboard, lead_text
from leadline.config import Config
from storage.cards import TouchCard, lead_card, touch_card
from storage.db import Clock, Store
from storage.errors import AlreadyRegistered, ContactMerged, NoContact
from storage.register import Card, register
from storage.registrations import REASONS, TEMPERATURES, Draft, first_touch_campaign
from storage.staff import StaffMember, active_staff, campaign_name, campaigns

MAX_TEXT = 500


class CardInput(StatesGroup):
    value = State()


def card_state(state: FSMContext, chat_id: int, message_id: int) -> FSMContext:
    """The draft of one card, shared by everyone in the chat (a card in the team chat is one card)."""
    key = dataclasses.replace(
        state.key, chat_id=chat_id, user_id=chat_id, thread_id=None, destiny=f"card:{message_id}"
    )
    return FSMContext(storage=state.storage, key=key)


async def show(callback: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Edit the pressed card in place (a reply to a button within the same update: no outbox)."""
    if isinstance(callback.message, Message):
        with contextlib.suppress(TelegramBadRequest):  # "message is not modified": nothing to redraw
            await callback.message.edit_text(text, reply_markup=markup)


def closed_card(
    card: TouchCard, touch_id: int, seen_contact: int, config: Config
) -> tuple[str, InlineKeyboardMarkup | None, str] | None:
    """What a card turns back into, and the sentence that says why, once its contact was merged or
    registered by someone else since it was drawn (by a tap or by typing); None while it can be filled in."""
    text = cards.initial_text(card, config.tz, config.campaign_titles())
    if card.contact_id != seen_contact:
        return (
            text,
            cards.initial_keyboard(card, touch_id),
            _(
                "This contact was merged with contact #{id} since the card was sent. The card now shows the merged contact."
            ).format(id=card.contact_id),
        )
    if card.registration is not None:
        return text, None, cards.already_registered(card.registration)
    return None


async def current_card(
    callback: CallbackQuery, data: CardCB, store: Store, config: Config
) -> TouchCard | None:
    """The card as it is now, or None after telling the person why this card cannot be used any more."""
    card = await store.read(partial(touch_card, touch_id=data.t))
    if card is None:
        await callback.answer(_("This contact no longer exists."), show_alert=True)
        return None
    closed = closed_card(card, data.t, data.c, config)
    if closed is not None:
        text, markup, why = closed
        await show(callback, text, markup)
        await callback.answer(why, show_alert=True)
        return None
    return card


async def load_draft(state: FSMContext, callback: CallbackQuery) -> CardDraft | None:
    if not isinstance(callback.message, Message):
        return None
    ctx = card_state(state, callback.message.chat.id, callback.message.message_id)
    return CardDraft.load(await ctx.get_data())


async def save_draft(state: FSMContext, chat_id: int, message_id: int, draft: CardDraft) -> None:
    await card_state(state, chat_id, message_id).set_data(draft.dump())


async def ask_for(state: FSMContext, chat_id: int, message_id: int, field: str | None) -> None:
    """Route the person's next typed message into this card's field (or stop routing into it)."""
    if field is None:
        await stop_asking(state, chat_id, message_id)
        return
    await state.set_state(CardInput.value)
    await state.set_data({"chat": chat_id, "card": message_id, "field": field})


def fields_of(config: Config) -> tuple[list[str], list[str]]:
    required = list(config.lead_fields.required)
    desirable = [f for f in config.lead_fields.desirable if f not in required]
    return required, desirable


async def show_form(
    callback: CallbackQuery, card: TouchCard, draft: CardDraft, config: Config, staff: StaffMember
) -> None:
    required, desirable = fields_of(config)
    await show(
        callback,
        cards.form_text(
            card, draft, config.tz, required, desirable, config.campaign_titles(), config.leadline.currency
        ),
        cards.form_keyboard(draft, required, desirable, give=staff.is_manager),
    )


# ---------------------------------------------------------------------- disposition


async def lead(
    callback: CallbackQuery,
    callback_data: CardCB,
    staff: StaffMember,
    store: Store,
    config: Config,
    state: FSMContext,
) -> None:
    card = await current_card(callback, callback_data, store, config)
    if card is None or not isinstance(callback.message, Message) or callback_data.v not in TEMPERATURES:
        return
    touch = card.touch
    # Preset to the lead's campaign by DESIGN.md's rule (the contact's earliest touch that has one),
    # not the pressed card's touch: a returning person's later touch belongs to whatever brought
    # them back, while the lead belongs to whatever found them. Staff may still change it.
    campaign = await store.read(partial(first_touch_campaign, contact_id=card.contact_id))
    need = (
        touch["message"]
        if touch["channel"] in ("form", "email", "manual", "chat") and touch["message"]
        else None
    )
    required, _desirable = fields_of(config)
    draft = CardDraft(
        touch=callback_data.t,
        contact=card.contact_id,
        temperature=callback_data.v,
        owner_id=staff.id,
        owner_name=staff.name,
        campaign=campaign,
        name=card.contact_name,
        need=str(need)[:MAX_TEXT] if need else None,
    )
    missing = draft.missing(required)
    draft.awaiting = missing[0] if missing else None
    chat_id, message_id = callback.message.chat.id, callback.message.message_id
    await save_draft(state, chat_id, message_id, draft)
    await ask_for(state, chat_id, message_id, draft.awaiting)
    await show_form(callback, card, draft, config, staff)
    await callback.answer()


async def not_a_lead(callback: CallbackQuery, callback_data: CardCB, store: Store, config: Config) -> None:
    card = await current_card(callback, callback_data, store, config)
    if card is None:
        return
    text = cards.header(card, config.tz, config.campaign_titles()) + "\n\n" + _("Why is it not a lead?")
    await show(callback, text, cards.reasons_keyboard(card, callback_data.t))
    await callback.answer()


async def back(
    callback: CallbackQuery, callback_data: CardCB, store: Store, config: Config, state: FSMContext
) -> None:
    card = await current_card(callback, callback_data, store, config)
    if card is None or not isinstance(callback.message, Message):
        return
    await card_state(state, callback.message.chat.id, callback.message.message_id).clear()
    await stop_asking(state, callback.message.chat.id, callback.message.message_id)
    await show(
        callback,
        cards.initial_text(card, config.tz, config.campaign_titles()),
        cards.initial_keyboard(card, callback_data.t),
    )
    await callback.answer()


async def why(
    callback: CallbackQuery,
    callback_data: CardCB,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    state: FSMContext,
    replies: Replies,
) -> None:
    card = await current_card(callback, callback_data, store, config)
    if card is None or callback_data.v not in REASONS:
        return
    if callback_data.v == "spam":
        text = cards.header(card, config.tz, config.campaign_titles()) + "\n\n" + cards.spam_question(card)
        await show(callback, text, cards.spam_keyboard(card, callback_data.t))
        await callback.answer()
        return
    await finish(
        callback,
        callback_data,
        Draft("not_a_lead", reason=callback_data.v),
        staff,
        store,
        config,
        clock,
        state,
        replies,
    )


async def spam(
    callback: CallbackQuery,
    callback_data: CardCB,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    state: FSMContext,
    replies: Replies,
) -> None:
    card = await current_card(callback, callback_data, store, config)
    if card is None:
        return
    draft = Draft("not_a_lead", reason="spam", block=callback_data.v == "block")
    await finish(callback, callback_data, draft, staff, store, config, clock, state, replies)


# ---------------------------------------------------------------------- the lead form


async def form(
    callback: CallbackQuery,
    callback_data: CardCB,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    state: FSMContext,
    replies: Replies,
) -> None:
    card = await current_card(callback, callback_data, store, config)
    if card is None or not isinstance(callback.message, Message):
        return
    draft = await load_draft(state, callback)
    if draft is None:
        await show(
            callback,
            cards.initial_text(card, config.tz, config.campaign_titles()),
            cards.initial_keyboard(card, callback_data.t),
        )
        await callback.answer(
            _("This card's draft was lost (the bot restarted). Please choose again."), show_alert=True
        )
        return
    chat_id, message_id = callback.message.chat.id, callback.message.message_id
    act, value = callback_data.act, callback_data.v
    required, desirable = fields_of(config)
    if act == "camp" and not value:
        await show(
            callback,
            callback.message.html_text,
            cards.campaign_keyboard(draft, await store.read(campaigns), config.campaign_titles()),
        )
        await callback.answer()
        return
    if act == "own" and not staff.is_manager:  # docs/bot.md: giving leads to others is a manager's
        await callback.answer(_("Only a manager can give a lead to someone else."), show_alert=True)
        return
    if act == "own" and not value:
        await show(
            callback, callback.message.html_text, cards.owner_keyboard(draft, await store.read(active_staff))
        )
        await callback.answer()
        return
    if act == "fu" and not value:
        await show(callback, callback.message.html_text, cards.follow_up_keyboard(draft))
        await callback.answer()
        return
    if act == "save":
        missing = draft.missing(required)
        if missing:
            draft.awaiting = missing[0]
            await save_draft(state, chat_id, message_id, draft)
            await ask_for(state, chat_id, message_id, draft.awaiting)
            await show_form(callback, card, draft, config, staff)
            await callback.answer(
                _("Fill in first: {fields}.").format(fields=", ".join(labels.field(f) for f in missing)),
                show_alert=True,
            )
            return
        registration = Draft(
            "lead",
            temperature=draft.temperature,  # type: ignore[arg-type]
            name=draft.name,
            need=draft.need,
            fields=draft.fields,
            campaign=draft.campaign,
            owner_id=draft.owner_id if staff.is_manager else staff.id,
            follow_up_on=date.fromisoformat(draft.follow_up_on) if draft.follow_up_on else None,
            amount=draft.amount,
        )
        await finish(callback, callback_data, registration, staff, store, config, clock, state, replies)
        return
    if act == "edit" and value:
        edited = cards.edited_field(value, required, desirable)
        if edited is None:  # the config's fields changed since the form was drawn: draw it afresh
            await show_form(callback, card, draft, config, staff)
            await stale_button(callback)
            return
        draft.awaiting = edited
    elif act == "camp":
        draft.campaign = await store.read(partial(campaign_name, campaign_id=int(value))) or draft.campaign
    elif act == "own":
        chosen = next((s for s in await store.read(active_staff) if s.id == int(value)), None)
        if chosen is not None:
            draft.owner_id, draft.owner_name = chosen.id, chosen.name
    elif act == "fu":
        draft.follow_up_on = (cards.now_local(clock(), config.tz) + timedelta(days=int(value))).isoformat()
    elif act == "temp" and value in TEMPERATURES:
        draft.temperature = value
    await save_draft(state, chat_id, message_id, draft)
    await ask_for(state, chat_id, message_id, draft.awaiting)
    await show_form(callback, card, draft, config, staff)
    await callback.answer()


async def finish(
    callback: CallbackQuery,
    callback_data: CardCB,
    draft: Draft,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    state: FSMContext,
    replies: Replies,
) -> None:
    """Register, then turn the card into the result (a lead card with its next moves)."""
    now = clock()
    try:
        done = await store.write(
            partial(
                register,
                whom=Card(touch_id=callback_data.t, seen_contact=callback_data.c),
                draft=draft,
                staff_id=staff.id,
                at=now,
                # The form asked for these already (CardDraft.missing); storage is the rule's one
                # home, which the API's registrations go through too.
                required=config.lead_fields.required,
            )
        )
    except (AlreadyRegistered, ContactMerged, NoContact):
        # Someone registered, merged or erased the person since the card was checked: redraws the
        # card (an erased person's is gone) and says what happened.
        await current_card(callback, callback_data, store, config)
        return
    if isinstance(callback.message, Message):
        await card_state(state, callback.message.chat.id, callback.message.message_id).clear()
        await stop_asking(state, callback.message.chat.id, callback.message.message_id)
    card = await store.read(partial(touch_card, touch_id=callback_data.t))
    if card is None:  # erased the moment after: saved all the same, and nothing left to show
        await callback.answer(_("Saved."))
        return
    text = cards.initial_text(card, config.tz, config.campaign_titles())
    markup = None
    if done.lead_id is not None:
        lead = await store.read(partial(lead_card, lead_id=done.lead_id))
        if lead is not None:
            text = (
                text
                + "\n\n"
                + lead_text(
                    lead, config.tz, config.campaign_titles(), config.leadline.currency, with_contact=False
                )
            )
            markup = lead_keyboard(lead, staff)
    await redraw_saved(callback, replies, text, markup)
    await callback.answer(_("Saved."))


# ---------------------------------------------------------------------- typed answers


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
    chat_id, message_id, field = int(route["chat"]), int(route["card"]), str(route["field"])
    draft = CardDraft.load(await card_state(state, chat_id, message_id).get_data())
    if draft is None:
        await state.clear()
        await replies.send(
            message.chat.id, _("The card you were filling in is closed. Open it again from /unregistered.")
        )
        return
    card = await store.read(partial(touch_card, touch_id=draft.touch))
    closed = None if card is None else closed_card(card, draft.touch, draft.contact, config)
    if closed is not None:  # registered or merged since the form was drawn: never drawn again
        text, markup, why = closed
        await card_state(state, chat_id, message_id).clear()
        await stop_asking(state, chat_id, message_id)
        await replies.edit(chat_id, message_id, text, markup)
        await replies.send(message.chat.id, html.escape(why))
        return
    text = (message.text or "").strip()[:MAX_TEXT]
    if field == "amount":
        value = parse_amount(text)
        if value is None:
            await replies.send(message.chat.id, cards.not_an_amount(text))
            return
        draft.amount = value
    elif field == "follow_up":
        when = cards.follow_up_date(text, cards.now_local(clock(), config.tz))
        if isinstance(when, str):
            await replies.send(message.chat.id, when)
            return
        draft.follow_up_on = when.isoformat()
    else:
        draft = draft.with_value(field, text)
    required, desirable = fields_of(config)
    missing = draft.missing(required)
    draft.awaiting = missing[0] if missing else None
    await save_draft(state, chat_id, message_id, draft)
    await ask_for(state, chat_id, message_id, draft.awaiting)
    if card is None:
        return
    await replies.edit(
        chat_id,
        message_id,
        cards.form_text(
            card, draft, config.tz, required, desirable, config.campaign_titles(), config.leadline.currency
        ),
        cards.form_keyboard(draft, required, desirable, give=staff.is_manager),
    )


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="registration")
    router.callback_query.register(lead, CardCB.filter(F.act == "lead"))
    router.callback_query.register(not_a_lead, CardCB.filter(F.act == "nal"))
    router.callback_query.register(back, CardCB.filter(F.act == "back"))
    router.callback_query.register(why, CardCB.filter(F.act == "why"))
    router.callback_query.register(spam, CardCB.filter(F.act == "spam"))
    router.callback_query.register(
        form, CardCB.filter(F.act.in_({"form", "edit", "camp", "own", "fu", "temp", "save"}))
    )
    router.message.register(typed, CardInput.value, F.text, ~F.text.startswith("/"))
    return router
