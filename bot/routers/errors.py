"""Turn what went wrong into a reply that says what happened and what to do; never crash the bot.

Domain errors from storage (:mod:`storage.errors`) carry a code and its parameters; :func:`sentence`
words them in the reader's language. Anything else is logged with its traceback and answered with an
apology: the writer runs each step in its own savepoint, so a failed step has saved nothing. A
failure of Telegram's own (busy, out of reach, refusing an edit) can come after a step committed,
so its answer claims nothing about what was saved.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aiogram import Router
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent, Message, User
from aiogram.utils.i18n import I18n

from bot import labels
from bot.catalogues import gettext as _
from bot.i18n import pick_locale, speaking
from bot.replies import Replies
from bot.routers.access import role_label
from storage.errors import (
    AccessDecided,
    AlreadyOneContact,
    AlreadyRegistered,
    BadDisposition,
    BadTemperature,
    ContactGone,
    ContactMerged,
    DomainError,
    FieldRequired,
    MergeError,
    MergeGone,
    MergeUndone,
    NoAccessRequest,
    NoCampaign,
    NoContact,
    NoLead,
    NotEditable,
    NoTouch,
    NudgeError,
    OwnNumber,
    ReasonRequired,
    RegistrationError,
    ReminderGone,
    SnoozeTooShort,
    StageNotAllowed,
    StageReasonRequired,
    UnknownDecision,
    WonAmountRequired,
)
from storage.staff import StaffMember

log = logging.getLogger("leadline.bot")


def sentence(error: DomainError) -> str:
    """What a registration, merge or nudge error says to the reader, in their language.

    :class:`storage.errors.PlanError` is worded by ``/plan`` itself, which knows what to suggest.
    """
    match error:
        case StageNotAllowed(old=old, new=new, allowed=allowed):
            return _("A lead at stage “{old}” cannot become “{new}”; it can become: {allowed}.").format(
                old=labels.stage(old),
                new=labels.stage(new),
                allowed=", ".join(labels.stage(s) for s in allowed) or _("nothing (the lead is closed)"),
            )
        case StageReasonRequired(stage=stage):
            return _("Say why the lead is {stage}.").format(stage=labels.stage(stage))
        case NoContact(contact_id=record) | NoLead(lead_id=record) | NoTouch(touch_id=record):
            return _("Record #{id} no longer exists.").format(id=record)
        case BadTemperature():
            return _("A lead needs a temperature: hot, warm or cold.")
        case ReasonRequired():
            return _("Choose why this is not a lead.")
        case FieldRequired(fields=missing):
            return _("A lead needs: {fields}.").format(fields=", ".join(labels.field(f) for f in missing))
        case BadDisposition():
            return _("Register the contact as a lead or as not a lead.")
        case NotEditable(field=field):
            return _("“{field}” cannot be changed here.").format(field=field)
        case WonAmountRequired():
            return _("A won lead needs the deal amount.")
        case AlreadyRegistered():
            return _("This contact is already registered.")
        case ContactMerged(new_id=new_id):
            return _("This contact was merged into #{id}.").format(id=new_id)
        case NoCampaign(campaign=name, campaigns=()):
            return _(
                "There is no campaign “{name}”, and none is set up yet: add campaigns to the config."
            ).format(name=name)
        case NoCampaign(campaign=name, campaigns=known):
            return _("There is no campaign “{name}”. The campaigns are: {names}.").format(
                name=name, names=", ".join(known)
            )
        case OwnNumber():
            return _("That is one of our own tracking numbers: give the contact's own phone or email.")
        case AccessDecided(decision=decision, decided_by=decided_by):
            return _("Already answered: {decision} ({by}).").format(
                decision=role_label(decision), by=decided_by or "?"
            )
        case NoAccessRequest():
            return _("This request no longer exists.")
        case UnknownDecision():
            return _("This button is from an old version of the message; open the list again.")
        case AlreadyOneContact():
            return _("These are already one contact.")
        case ContactGone():
            return _("One of the contacts no longer exists.")
        case MergeGone():
            return _("This merge no longer exists.")
        case MergeUndone():
            return _("This merge was already undone.")
        case ReminderGone():
            return _("This reminder no longer exists.")
        case SnoozeTooShort():
            return _("Snooze by a day or more.")
    log.warning("no sentence for a domain error", extra={"fields": {"code": error.code}})
    return str(error)


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


async def domain_error(event: ErrorEvent, **data: Any) -> None:
    error = event.exception
    assert isinstance(error, DomainError)
    i18n, locale = _locale(data)
    with speaking(i18n, locale):
        await _reply(event, data, sentence(error))


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
        if isinstance(event.exception, TelegramAPIError | ClientDecodeError):
            text = _(
                "Telegram did not take the update of this message, so it may be out of date."
                " Open it again to see what was saved."
            )
        else:
            text = _("Something went wrong on our side, and nothing was saved. Please try again.")
        await _reply(event, data, text)


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="errors")
    router.errors.register(domain_error, ExceptionTypeFilter(RegistrationError, MergeError, NudgeError))
    router.errors.register(unexpected)
    return router
