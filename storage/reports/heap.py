"""Python's cyclic garbage collector held off while a report builds."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
#: How many blocks hold the collector off now, and whether it ran before the first of them began.
_holding = 0
_was_enabled = False


@contextmanager
def collector_held() -> Iterator[None]:
    """Hold off the cyclic collector for the block; it runs again once the last block holding it
    ends, if it ran before the first one began (the collector is the process's: reports that build
    at once in several threads share the hold).

    A year's report keeps some 300 000 containers while it builds (a contact's answers, a group's
    first touches) and frees them all by reference counting when it is done: none is in a cycle. But
    every few hundred new ones set the collector off, and its full passes walk everything the
    process holds, again and again as it grows: 0.5 s of a year's report where CPython's thresholds
    are the defaults (``leadline report``; ``leadline serve`` sets its own, see
    :data:`leadline.serve.GC_THRESHOLD`). Cycles that other threads make meanwhile are collected
    once the hold ends.
    """
    global _holding, _was_enabled
    with _lock:
        if not _holding:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holding += 1
    try:
        yield
    finally:
        with _lock:
            _holding -= 1
            if not _holding and _was_enabled:
                gc.enable()
