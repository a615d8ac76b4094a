"""The buttons of a card on arrival that are not the registration's own (those are ``CardCB``, handled by
the registration router on the same message): a missed call's "Called back" and "Can't reach", and
a manager's "Give to…", which hands the card to someone else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlite_utils import Database

from bot.arrival_texts import render_arrival
from bot.callbacks import ArrivalCB
from bot.catalogues import gettext as _
from bot.dialer import Dialer
from bot.presses import answer_quietly
from bot.replies import Replies
from bot.routers.nudges import outcome_text
from leadline.config import Config
from storage.arrival_cards import ArrivalRules, card_view
from storage.card_moves import give_card
from storage.db import Clock, Store
from storage.nudges.actions import Acted, callback_nudge, cant_reach, mark_called_back
from storage.nudges.rules import NudgeRules
from storage.staff import StaffMember, active_staff


async def on_call_button(
    callback: CallbackQuery,
    callback_data: ArrivalCB,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
) -> None:
    """ "Called back" and "Can't reach" act through the touch's call-back nudge (made now if the SLA
    has not made it yet), as the nudge's own buttons do; the card then loses its buttons."""
    now = clock()
    touch_id = callback_data.t
    chat_id = callback.message.chat.id if callback.message is not None else callback.from_user.id
    rules = NudgeRules.from_config(config)
    opened = partial(callback_nudge, touch_id=touch_id, staff_id=staff.id, chat_id=chat_id, at=now)

    def called(db: Database) -> Acted:
        return mark_called_back(db, opened(db), staff_id=staff.id, at=now)

    def cant(db: Database) -> Acted:
        return cant_reach(db, opened(db), staff_id=staff.id, chat_id=chat_id, at=now, rules=rules)

    actions: dict[str, Callable[[Database], Acted]] = {"called": called, "cant": cant}
    acted = await store.write(actions[callback_data.act])
    await answer_quietly(callback, outcome_text(acted, config))
    if acted.outcome != "retry" and isinstance(callback.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_reply_markup(reply_markup=None)


async def on_give(
    callback: CallbackQuery, callback_data: ArrivalCB, staff: StaffMember, store: Store, config: Config
) -> None:
    """A manager's "Give to…": the card's buttons become the staff to choose from."""
    if not staff.is_manager:
        await callback.answer(_("Only a manager can give a card to someone else."), show_alert=True)
        return
    people = await store.read(active_staff)
    choices = [
        InlineKeyboardButton(
            text=person.name, callback_data=ArrivalCB(act="to", t=callback_data.t, v=person.id).pack()
        )
        for person in people
        if person.telegram_id is not None
    ]
    back = InlineKeyboardButton(
        text=_("« Back"), callback_data=ArrivalCB(act="back", t=callback_data.t).pack()
    )
    keyboard = [choices[i : i + 2] for i in range(0, len(choices), 2)] + [[back]]
    await callback.answer()
    if isinstance(callback.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_reply_markup(
                reply_markup=InlineKeyboardMarkup(inline_keyboard=keyboard)
            )


def _rules(config: Config, dialer: Dialer) -> ArrivalRules:
    """The arrival pass's rules, with the sources whose missed calls the bot's dialer can call back."""
    dialable = frozenset(s.name for s in config.sources if dialer.can_dial(s.name))
    return replace(ArrivalRules.from_config(config), dialable=dialable)


async def on_back(
    callback: CallbackQuery, callback_data: ArrivalCB, store: Store, config: Config, dialer: Dialer
) -> None:
    """Back from the list of staff: the card's own buttons again."""
    view = await store.read(partial(card_view, touch_id=callback_data.t, rules=_rules(config, dialer)))
    await callback.answer()
    if view is None or not isinstance(callback.message, Message):
        return
    markup = render_arrival(view, config.campaign_titles()).get("reply_markup")
    with contextlib.suppress(TelegramBadRequest):
        await callback.message.edit_reply_markup(
            reply_markup=InlineKeyboardMarkup.model_validate(markup) if markup else None
        )


async def on_give_to(
    callback: CallbackQuery,
    callback_data: ArrivalCB,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    replies: Replies,
    dialer: Dialer,
) -> None:
    if not staff.is_manager:
        await callback.answer(_("Only a manager can give a card to someone else."), show_alert=True)
        return
    rules = _rules(config, dialer)
    given = await store.write(
        partial(give_card, touch_id=callback_data.t, staff_id=callback_data.v, at=clock(), rules=rules,
                render=partial(render_arrival, titles=config.campaign_titles()))
    )  # fmt: skip
    if given.already:
        await callback.answer(_("Someone has already taken care of this."))
        return
    replies.wake()
    await answer_quietly(callback, _("Given."))


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="arrivals")
    router.callback_query.register(on_call_button, ArrivalCB.filter((F.act == "called") | (F.act == "cant")))
    router.callback_query.register(on_give, ArrivalCB.filter(F.act == "give"))
    router.callback_query.register(on_give_to, ArrivalCB.filter(F.act == "to"))
    router.callback_query.register(on_back, ArrivalCB.filter(F.act == "back"))
    return router
