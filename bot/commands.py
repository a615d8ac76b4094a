"""The bot's commands, written once: who may use each, and the one text that says what it does.

Both /help and Telegram's command menu (the "/" button) are read from :data:`COMMANDS`, so a person
is offered the same commands, described the same way, in both, and never one that would only refuse
them. Telegram shows a chat the menu of its narrowest scope: the default scope holds what everybody on
the staff may use, and each person gets a menu of their own (a chat scope) for their role.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiogram.types import BotCommand, BotCommandScopeChat
from aiogram.utils.i18n import I18n

from bot.catalogues import gettext as _
from bot.i18n import pick_locale, speaking
from storage.staff import StaffMember

EVERYONE = frozenset({"staff", "manager", "owner"})
MANAGERS = frozenset({"manager", "owner"})
OWNERS = frozenset({"owner"})


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    #: Read at the moment of use, so that it speaks the language current then.
    describe: Callable[[], str]
    roles: frozenset[str] = EVERYONE
    #: /start and /help are how one gets to /help: listing them there tells the reader nothing.
    in_help: bool = True


COMMANDS: tuple[Command, ...] = (
    Command("start", lambda: _("your role and the commands you can use"), in_help=False),
    Command("unregistered", lambda: _("contacts waiting for registration")),
    Command("missed", lambda: _("missed calls nobody has called back")),
    Command("leads", lambda: _("your open leads")),
    Command("find", lambda: _("find a contact by phone, email or part of a name")),
    Command("report", lambda: _("the numbers for a period, e.g. /report week"), MANAGERS),
    Command("plan", lambda: _("how many contacts and leads a target needs, e.g. /plan clients=2"), MANAGERS),
    Command("blocked", lambda: _("the block list, with a button to unblock each entry"), MANAGERS),
    Command("cost", lambda: _("record a campaign cost, e.g. /cost brand_msk 2026-11 45000 ads"), OWNERS),
    Command(
        "forget", lambda: _("erase a person who asked to be forgotten, e.g. /forget +7 916 123-45-67"), OWNERS
    ),
    Command("help", lambda: _("what the bot can do"), in_help=False),
    Command("cancel", lambda: _("stop what you are typing")),
)

#: The Bot API calls that set or remove a chat's menu (the outbox's rows for them), the removal last
#: as :func:`storage.outbox.enqueue_changed` takes them.
MENU_CALLS = ("setMyCommands", "deleteMyCommands")

#: The role whose commands everybody may use: the default menu's, for anyone without one of their own.
EVERYONES_ROLE = "staff"


def commands_for(role: str) -> list[Command]:
    return [c for c in COMMANDS if role in c.roles]


def help_lines(role: str) -> list[str]:
    return [
        _("• /{command}: {description}").format(command=c.name, description=c.describe())
        for c in commands_for(role)
        if c.in_help
    ]


def menu(role: str) -> list[BotCommand]:
    return [BotCommand(command=c.name, description=c.describe()) for c in commands_for(role)]


def chat_menu_payload(telegram_id: int, role: str) -> dict[str, Any]:
    """A ``setMyCommands`` for one person's private chat with the bot, as the outbox queues it.

    No ``language_code``: the menu is in the person's language whatever their app's, as the bot's
    messages to them are.
    """
    return {
        "commands": [c.model_dump(mode="json", exclude_none=True) for c in menu(role)],
        "scope": BotCommandScopeChat(chat_id=telegram_id).model_dump(mode="json", exclude_none=True),
    }


def chat_menu_removal(telegram_id: int) -> dict[str, Any]:
    """A ``deleteMyCommands`` for one person's chat: they see the default menu again."""
    return {"scope": BotCommandScopeChat(chat_id=telegram_id).model_dump(mode="json", exclude_none=True)}


def staff_menus(
    i18n: I18n, active: Iterable[StaffMember], former: Iterable[StaffMember]
) -> list[tuple[int, str, dict[str, Any]]]:
    """The menu calls (chat, method, payload) that make Telegram show each person what they may use:
    their role's commands in their language, or, for someone no longer let in, the default menu."""
    calls: list[tuple[int, str, dict[str, Any]]] = []
    for person in active:
        if person.telegram_id is not None:
            with speaking(i18n, pick_locale(i18n, person.language)):
                payload = chat_menu_payload(person.telegram_id, person.role)
            calls.append((person.telegram_id, "setMyCommands", payload))
    calls += [
        (p.telegram_id, "deleteMyCommands", chat_menu_removal(p.telegram_id))
        for p in former
        if p.telegram_id is not None
    ]
    return calls
