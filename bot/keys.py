"""The aiohttp keys of what the bot owns: the outbox sender, which every part that queues wakes, and
the dropper of unsaved drafts, which an erasure calls.

A leaf: the composition root (``leadline/app.py``) fills it from :func:`bot.service.bot_service`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.outbox import OutboxSender

OUTBOX: web.AppKey[OutboxSender] = web.AppKey("outbox")
#: Drops the bot's unsaved card drafts about these contacts and touches, once they are erased;
#: set by the bot when it runs in this process.
DROP_DRAFTS: web.AppKey[Callable[[Sequence[int], Sequence[int]], Awaitable[int]]] = web.AppKey("drop_drafts")
