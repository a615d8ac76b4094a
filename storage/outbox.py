"""The outbox: every message to Telegram is a row first, so an outage delays it and loses none.

Writers (nudges, digests, approvals) only enqueue; the sender in ``bot/outbox.py`` delivers rows in
order, respecting Telegram's rate limits, and marks each sent exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from storage.db import iso


def enqueue(
    db: Database,
    chat_id: int,
    payload: Mapping[str, Any],
    *,
    at: datetime,
    method: str = "sendMessage",
    dedupe_key: str | None = None,
    not_before: datetime | None = None,
) -> int | None:
    """Queue one Bot API call; with a ``dedupe_key`` already queued, nothing is added (returns None)."""
    if dedupe_key is not None:
        row = db.execute("SELECT id FROM outbox WHERE dedupe_key = ?", [dedupe_key]).fetchone()
        if row:
            return None
    cursor = db.execute(
        "INSERT INTO outbox (chat_id, method, payload, dedupe_key, created_at, not_before)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            chat_id,
            method,
            json.dumps(dict(payload), ensure_ascii=False),
            dedupe_key,
            iso(at),
            iso(not_before or at),
        ],
    )
    return int(cursor.lastrowid or 0)


def files_to_send(db: Database) -> set[str]:
    """The local files (``file://`` payload values, a digest's chart) of rows not yet sent: a
    clean-up of old charts must leave these, or a Telegram outage would lose the photo."""
    files: set[str] = set()
    for (payload,) in db.execute(
        "SELECT payload FROM outbox WHERE status IN ('pending', 'sending') AND payload LIKE '%\"file://%'"
    ):
        for value in json.loads(payload).values():
            if isinstance(value, str) and value.startswith("file://"):
                files.add(value.removeprefix("file://"))
    return files
