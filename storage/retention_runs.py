"""When the retention pass last ran (storage/retention.py), so that a process that was down at
``[retention] time`` runs the pass it missed when it starts (leadline/scheduler.py), as the digest
catches up (storage/digests.py).

Kept in the ``meta`` table. A base from before that key, or one that never had a pass, counts from
its first request: nothing older than that can be owed a pass. Light on purpose: the start-up asks
it without loading the pass and the erasure behind it (tests/test_idle.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlite_utils import Database

from storage import meta
from storage.db import iso, parse_iso

#: The time of the last retention pass that finished (ISO, UTC), in the ``meta`` table.
LAST_PASS_KEY = "retention_last_pass"


def last_pass(db: Database) -> datetime | None:
    """The last pass's time; with none recorded, the first request's; None for a base with neither."""
    value = meta.get(db, LAST_PASS_KEY)
    if value is None:
        row = db.execute("SELECT received_at FROM journal ORDER BY id LIMIT 1").fetchone()
        value = None if row is None else str(row[0])
    return parse_iso(value) if value else None


def mark_pass(db: Database, at: datetime) -> None:
    """A pass as of ``at`` finished; an earlier one written after it never moves the mark back."""
    meta.raise_to(db, LAST_PASS_KEY, iso(at))
