"""The aiohttp keys of what the bot owns: the outbox sender, which every part that queues wakes.

A leaf: the composition root (``leadline/app.py``) fills it from :func:`bot.service.bot_service`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.outbox import OutboxSender

OUTBOX: web.AppKey[OutboxSender] = web.AppKey("outbox")
