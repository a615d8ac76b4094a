"""Every aiohttp ``AppKey`` in one place, so a dependency has one name and one type."""

from __future__ import annotations

from aiohttp import web

from bot.outbox import OutboxSender
from capture.metrics import Metrics
from capture.pipeline import Capture, Clock
from leadline.config import Config
from leadline.sweep import Sweeper
from storage.db import Store

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)
CAPTURE = web.AppKey("capture", Capture)
METRICS = web.AppKey("metrics", Metrics)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
OUTBOX = web.AppKey("outbox", OutboxSender)
SWEEPER = web.AppKey("sweeper", Sweeper)
