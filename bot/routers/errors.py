"""Turn what went wrong into a reply that says what happened and what to do; never crash the bot.

Domain errors from storage (:class:`RegistrationError`, :class:`MergeError`, :class:`NudgeError`)
carry an English sentence meant for people; it is translated here. Anything else is logged with its
traceback and answered with an apology: the writer runs each step in its own savepoint, so a failed
step has saved nothing.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent, Message, User
from aiogram.utils.i18n import I18n

from bot import labels
from bot.catalogues import gettext as _
from bot.i18n import pick_locale, speaking
from bot.replies import Replies
from bot.routers.access import role_label
from storage.access import AccessDecided
from storage.contacts import MergeError
from storage.nudges.actions import NudgeError
from storage.registrations import STAGES, RegistrationError
from storage.staff import StaffMember

log = logging.getLogger("leadline.bot")


def translate(message: str) -> str:
    """A storage error's sentence in the reader's language (the sentence is English in storage)."""
    if match := re.fullmatch(r"a (\w+) lead cannot become (\w+); it can become: (.*)", message):
        allowed = ", ".join(labels.stage(s) for s in match[3].split(", ") if s in STAGES)
        return _("A lead at stage “{old}” cannot become “{new}”; it can become: {allowed}.").format(
            old=labels.stage(match[1]),
            new=labels.stage(match[2]),
            allowed=allowed or _("nothing (the lead is closed)"),
        )
    if match := re.fullmatch(r"say why the lead is (\w+)", message):
        return _("Say why the lead is {stage}.").format(stage=labels.stage(match[1]))
    if match := re.fullmatch(r"no (contact|lead|touch) #(\d+)", message):
        return _("Record #{id} no longer exists.").format(id=match[2])
    known = {
        "a lead needs a temperature: hot, warm or cold": _("A lead needs a temperature: hot, warm or cold."),
        "temperature must be hot, warm or cold": _("A lead needs a temperature: hot, warm or cold."),
        "a won lead needs the deal amount": _("A won lead needs the deal amount."),
        "these are already one contact": _("These are already one contact."),
        "one of the contacts no longer exists": _("One of the contacts no longer exists."),
        "this merge no longer exists": _("This merge no longer exists."),
        "this merge was already undone": _("This merge was already undone."),
        "this reminder no longer exists": _("This reminder no longer exists."),
    }
    if message in known:
        return known[message]
    if message.startswith("a not-a-lead needs a reason"):
        return _("Choose why this is not a lead.")
    return message


async def _reply(event: ErrorEvent, data: dict[str, Any], text: str) -> None:
    update = event.update
    with contextlib.suppress(TelegramAPIError):
        if update.callback_query is not None:
            await update.callback_query.answer(text, show_alert=True)
            return
        if isinstance(update.message, Message):
            replies: Replies = data["replies"]
            await replies.send(update.message.chat.id, text)


def _locale(data: dict[str, Any]) -> tuple[I18n, str]:
    i18n: I18n = data["i18n"]
    staff: StaffMember | None = data.get("staff")
    user: User | None = data.get("event_from_user")
    return i18n, pick_locale(i18n, staff.language if staff else None, user.language_code if user else None)


async def already_decided(event: ErrorEvent, **data: Any) -> None:
    error = event.exception
    assert isinstance(error, AccessDecided)
    i18n, locale = _locale(data)
    with speaking(i18n, locale):
        text = _("Already answered: {decision} ({by}).").format(
            decision=role_label(error.decision), by=error.decided_by or "?"
        )
        await _reply(event, data, text)


async def domain_error(event: ErrorEvent, **data: Any) -> None:
    i18n, locale = _locale(data)
    with speaking(i18n, locale):
        await _reply(event, data, translate(str(event.exception)))


async def unexpected(event: ErrorEvent, **data: Any) -> None:
    log.error(
        "bot update failed",
        exc_info=(type(event.exception), event.exception, event.exception.__traceback__),
        extra={"fields": {"update_id": event.update.update_id}},
    )
    if "i18n" not in data:
        return
    i18n, locale = _locale(data)
    with speaking(i18n, locale):
        await _reply(
            event, data, _("Something went wrong on our side, and nothing was saved. Please try again.")
        )


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="errors")
    router.errors.register(already_decided, ExceptionTypeFilter(AccessDecided))
    router.errors.register(domain_error, ExceptionTypeFilter(RegistrationError, MergeError, NudgeError))
    router.errors.register(unexpected)
    return router
