"""The outbox: every message to Telegram is a row first, so an outage delays it and loses none.

Writers (nudges, digests, approvals) only enqueue; the sender in ``bot/outbox.py`` delivers rows in
order, respecting Telegram's rate limits, and marks each sent exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
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


def enqueue_changed(
    db: Database,
    calls: Iterable[tuple[int, str, Mapping[str, Any]]],
    *,
    at: datetime,
    kinds: tuple[str, ...],
) -> int:
    """Queue calls (chat id, method, payload) that replace state Telegram keeps per chat (its command
    menu), each unless the latest call of those ``kinds`` queued for its chat was this very one and
    has not failed: a restart then costs no call for what has not changed. A removal (the last of
    ``kinds``) is queued only over something set before. One pass over the outbox for all of them;
    returns how many were queued."""
    marks = ", ".join("?" for _ in kinds)
    latest = {
        int(chat_id): (method, payload, status)
        for chat_id, method, payload, status in db.execute(
            "SELECT chat_id, method, payload, status FROM outbox WHERE id IN"
            f" (SELECT MAX(id) FROM outbox WHERE method IN ({marks}) GROUP BY chat_id)",
            list(kinds),
        )
    }
    queued = 0
    for chat_id, method, payload in calls:
        before = latest.get(chat_id)
        body = json.dumps(dict(payload), ensure_ascii=False)
        if before is None and method == kinds[-1]:
            continue
        if before is not None and before[0] == method and before[1] == body and before[2] != "failed":
            continue
        enqueue(db, chat_id, payload, at=at, method=method)
        queued += 1
    return queued


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
