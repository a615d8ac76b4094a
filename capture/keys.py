"""The aiohttp keys of what capture owns: the capture service and its metrics.

A leaf: the composition root (``leadline/app.py``) fills these; capture's handlers read them.
"""

from __future__ import annotations

from aiohttp import web

from capture.metrics import Metrics
from capture.pipeline import Capture

CAPTURE = web.AppKey("capture", Capture)
METRICS = web.AppKey("metrics", Metrics)
