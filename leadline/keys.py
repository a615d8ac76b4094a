"""Every aiohttp ``AppKey`` in one place, so a dependency has one name and one type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from capture.metrics import Metrics
from capture.pipeline import Capture, Clock
from leadline.config import Config
from storage.db import Store

if TYPE_CHECKING:  # aiogram takes seconds to import; processes without the bot never need it
    from bot.outbox import OutboxSender
    from leadline.sweep import Sweeper

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)
CAPTURE = web.AppKey("capture", Capture)
METRICS = web.AppKey("metrics", Metrics)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
OUTBOX: web.AppKey[OutboxSender] = web.AppKey("outbox")
SWEEPER: web.AppKey[Sweeper] = web.AppKey("sweeper")
#: Drops the bot's unsaved card drafts about these contacts and touches, once they are erased;
#: set by the bot when it runs in this process.
DROP_DRAFTS: web.AppKey[Callable[[Sequence[int], Sequence[int]], Awaitable[int]]] = web.AppKey("drop_drafts")
