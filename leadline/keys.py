"""Every aiohttp ``AppKey`` the composition root fills: its own, and those each package declares.

``capture/keys.py``, ``bot/keys.py`` and ``storage/keys.py`` declare the keys of what those packages
own; the config and the sweeper are the root's. Gathered here so the root's modules (and the tests,
which drive the root) have one name and one type per dependency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.keys import OUTBOX
from capture.keys import CAPTURE, METRICS
from leadline.config import Config
from storage.keys import CLOCK, STORE

if TYPE_CHECKING:
    from leadline.arrivals import Arrivals
    from leadline.sweep import Sweeper

__all__ = ["ARRIVALS", "CAPTURE", "CLOCK", "CONFIG", "METRICS", "OUTBOX", "STORE", "SWEEPER"]

CONFIG = web.AppKey("config", Config)
SWEEPER: web.AppKey[Sweeper] = web.AppKey("sweeper")
ARRIVALS: web.AppKey[Arrivals] = web.AppKey("arrivals")
