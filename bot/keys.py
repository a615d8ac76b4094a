"""The aiohttp keys of what the bot owns: the outbox sender, which every part that queues wakes; the
workflow data key of what the bot is given: the recorder of Telegram Business updates; and the
journal of the requests its webhook refuses.

A leaf: the composition root (``leadline/app.py``) fills it from :func:`bot.service.bot_service`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.outbox import OutboxSender

OUTBOX: web.AppKey[OutboxSender] = web.AppKey("outbox")


@dataclass(frozen=True, slots=True)
class BusinessAccount:
    """The business connection a Telegram Business update came through, and whose Telegram account it
    connects (``user``; None when Telegram does not know the connection): capture takes the updates of
    the staff's and the source's ``accounts`` only."""

    connection: str
    user: int | None


#: The account of the update being recorded: asked of Telegram when the bot has not seen its
#: connection yet, so it may raise as any Bot API call may (then the update is recorded again).
AccountOf = Callable[[], Awaitable[BusinessAccount]]
#: Journals and stores one Telegram Business update (its JSON) as a request of the
#: ``telegram_business`` source, through capture's pipeline; returns once it is durable. Given by
#: the composition root when such a source is configured, as the dispatcher's workflow data
#: ``RECORD_CHAT``: bot/ never imports capture/.
ChatRecorder = Callable[[bytes, AccountOf], Awaitable[None]]
RECORD_CHAT = "record_chat"
#: Journals a request to the bot's webhook that failed Telegram's secret token check (the reason
#: given, and whether it carried no secret token at all, as anyone's request may) as capture
#: journals every refused request, and answers it (401; 503 when the journal cannot be written).
#: Given by the composition root, as :data:`ChatRecorder` is.
WebhookRefusal = Callable[[web.Request, str, bool], Awaitable[web.Response]]
