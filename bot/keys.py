"""The aiohttp keys of what the bot owns: the outbox sender, which every part that queues wakes; the
workflow data key of what the bot is given: the recorder of Telegram Business updates; and the
journal of the requests its webhook refuses.

A leaf: the composition root (``leadline/app.py``) fills it from :func:`bot.service.bot_service`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.outbox import OutboxSender

OUTBOX: web.AppKey[OutboxSender] = web.AppKey("outbox")
#: Journals and stores one Telegram Business update (its JSON) as a request of the
#: ``telegram_business`` source, through capture's pipeline; returns once it is durable. Given by
#: the composition root when such a source is configured, as the dispatcher's workflow data
#: ``RECORD_CHAT``: bot/ never imports capture/.
ChatRecorder = Callable[[bytes], Awaitable[None]]
RECORD_CHAT = "record_chat"
#: Journals a request to the bot's webhook that failed Telegram's secret token check (the reason
#: given, and whether it carried no secret token at all, as anyone's request may) as capture
#: journals every refused request, and answers it (401; 503 when the journal cannot be written).
#: Given by the composition root, as :data:`ChatRecorder` is.
WebhookRefusal = Callable[[web.Request, str, bool], Awaitable[web.Response]]
