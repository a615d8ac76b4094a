"""The aiohttp keys of what storage owns: the store, and the clock every part reads "now" from.

A leaf, as every package's ``keys`` module is: the composition root (``leadline/app.py``) fills
these, and the handlers of ``capture/`` and the root read them.
"""

from __future__ import annotations

from aiohttp import web

from storage.db import Clock, Store

STORE = web.AppKey("store", Store)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
