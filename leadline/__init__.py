"""Leadline's composition root: the config, the app that wires capture, bot and storage, the CLI.

sqlite-utils imports numpy whenever it is installed (matplotlib brings it, for the digest's chart)
only to map numpy's number types to column types. Leadline never stores a numpy value, and that
import cost every process ~0.2 s and ~12 MB at start (bench/idle.py). So sqlite-utils is imported
first, here, with numpy hidden from it for that one import; numpy stays importable for the chart.
"""

from __future__ import annotations

import sys


def _sqlite_utils_without_numpy() -> None:
    if "sqlite_utils" in sys.modules or "numpy" in sys.modules:
        return
    sys.modules["numpy"] = None  # type: ignore[assignment]  # makes `import numpy` raise ImportError
    try:
        import sqlite_utils  # noqa: F401
    finally:
        del sys.modules["numpy"]


_sqlite_utils_without_numpy()
