"""The buttons under nudges: called back, can't reach, remind me later, done, snooze, lost.

The sweep (``leadline/sweep.py``) sends the nudges; each button here maps to one function of
:mod:`storage.nudges.actions`, which acts on the whole card (every open nudge of that kind about
the same contact or lead) and says when someone else got there first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from functools import partial

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlite_utils import Database

from bot import cards, labels
from bot.callbacks import NudgeCB
from bot.catalogues import gettext as _
from bot.nudge_texts import unreachable_answer
from bot.presses import answer_quietly
from bot.replies import Replies
from bot.routers.leads import allowed
from leadline.config import Config
from storage.cards import lead_card
from storage.db import Clock, Store
from storage.nudges.actions import (
    Acted,
    cant_reach,
    follow_up_done,
    follow_up_later,
    follow_up_lost,
    get_nudge,
    mark_called_back,
    snooze,
)
from storage.nudges.rules import NudgeRules
from storage.staff import StaffMember


def outcome_text(acted: Acted, config: Config) -> str:
    if acted.already:
        return _("Someone has already taken care of this.")
    moment = cards.when(acted.remind_at.isoformat(), config.tz) if acted.remind_at else "—"
    unreachable = unreachable_answer(acted.tries, escalates=acted.escalates)
    texts = {
        "called_back": _("Marked as called back."),
        "retry": _("I will remind you to call again at {time}.").format(time=moment),
        "unreachable": unreachable,
        "snoozed": _("I will show it again at {time}.").format(time=moment),
        "done": _("Follow-up done."),
        "later": _("Follow-up moved to {day}.").format(
            day=cards.day(acted.remind_at.date() if acted.remind_at else None)
        ),
        "lost": _("The lead is marked as lost."),
    }
    return texts.get(acted.outcome, _("Saved."))


def reasons_keyboard(nudge_id: int) -> InlineKeyboardMarkup:
    choices = [
        InlineKeyboardButton(
            text=labels.lost_reason(r), callback_data=NudgeCB(act="lostr", nudge=nudge_id, v=r).pack()
        )
        for r in labels.LOST_REASONS
    ]
    return InlineKeyboardMarkup(inline_keyboard=cards.rows(choices, 2))


#: The buttons of a lead's follow-up card: each changes the lead, so only who may change it may press them.
LEAD_ACTS = frozenset({"done", "later", "lost", "lostr"})


async def _may_act_on_lead(
    callback: CallbackQuery, nudge_id: int, chat_id: int, staff: StaffMember, store: Store
) -> bool:
    """Whoever the card was sent to (its owner, or the team chat when the owner has left), else the
    lead card's own rule (its owner, nobody's lead, or a manager): callback data is the sender's to
    write, so a button pressed elsewhere is no permission."""
    nudge = await store.read(partial(get_nudge, nudge_id=nudge_id))
    if nudge is None or nudge.lead_id is None or nudge.chat_id == chat_id:
        return True  # no lead (the action says the card is gone), or pressed where the card was sent
    return await allowed(callback, await store.read(partial(lead_card, lead_id=nudge.lead_id)), staff)


async def on_button(
    callback: CallbackQuery,
    callback_data: NudgeCB,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    replies: Replies,
) -> None:
    now = clock()
    nudge_id, act, value = callback_data.nudge, callback_data.act, callback_data.v
    chat_id = callback.message.chat.id if callback.message is not None else callback.from_user.id
    if act in LEAD_ACTS and not await _may_act_on_lead(callback, nudge_id, chat_id, staff, store):
        return
    if act == "lostr" and value not in labels.LOST_REASONS:
        act = ""  # a reason no button offers: refused below, as any button it cannot have sent
    if act == "lost":
        await replies.send(chat_id, _("Why was the lead lost?"), reasons_keyboard(nudge_id))
        await answer_quietly(callback)
        return
    rules = NudgeRules.from_config(config)
    actions: dict[str, Callable[[Database], Acted]] = {
        "called": partial(mark_called_back, nudge_id=nudge_id, staff_id=staff.id, at=now),
        "cant": partial(
            cant_reach, nudge_id=nudge_id, staff_id=staff.id, chat_id=chat_id, at=now, rules=rules
        ),
        "done": partial(follow_up_done, nudge_id=nudge_id, staff_id=staff.id, at=now),
        "lostr": partial(follow_up_lost, nudge_id=nudge_id, staff_id=staff.id, at=now, reason=value),
    }
    if act == "snooze" and value.isdigit():
        until: datetime = rules.remind_at(now, float(value))
        actions["snooze"] = partial(
            snooze, nudge_id=nudge_id, staff_id=staff.id, chat_id=chat_id, at=now, until=until
        )
    if act == "later" and value.isdigit():
        actions["later"] = partial(
            follow_up_later, nudge_id=nudge_id, staff_id=staff.id, at=now, days=int(value), tz=config.tz
        )
    action = actions.get(act)
    if action is None:
        await callback.answer(
            _("This button is from an old version of the message; open the list again."), show_alert=True
        )
        return
    acted = await store.write(action)
    text = outcome_text(acted, config)
    await answer_quietly(callback, text)
    if act == "lostr" and isinstance(callback.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_text("✖️ " + text + " " + labels.lost_reason(value))


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="nudges")
    router.callback_query.register(on_button, NudgeCB.filter())
    return router
