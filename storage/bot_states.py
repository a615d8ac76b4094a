"""The bot's conversation states and drafts, kept in the database so a restart loses none.

The aiogram side (bot/fsm.py) names each row by aiogram's storage key and says which contact and
touch its data is about; here is only the SQL. A row with neither a state nor data is deleted
rather than kept empty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from storage.db import iso


def state_of(db: Database, key: str) -> str | None:
    row = db.execute("SELECT state FROM bot_states WHERE key = ?", [key]).fetchone()
    return str(row[0]) if row and row[0] is not None else None


def data_of(db: Database, key: str) -> dict[str, Any]:
    row = db.execute("SELECT data FROM bot_states WHERE key = ?", [key]).fetchone()
    data = json.loads(row[0]) if row else {}
    return data if isinstance(data, dict) else {}


def put_state(db: Database, key: str, state: str | None, *, at: datetime) -> None:
    db.execute(
        "INSERT INTO bot_states (key, state, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        [key, state, iso(at)],
    )
    _drop_if_empty(db, key)


def put_data(
    db: Database,
    key: str,
    data: Mapping[str, Any],
    *,
    contact_id: int | None,
    touch_id: int | None,
    at: datetime,
) -> None:
    """Replace the row's data, and the contact and touch it is about."""
    db.execute(
        "INSERT INTO bot_states (key, data, contact_id, touch_id, updated_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET data = excluded.data, contact_id = excluded.contact_id,"
        " touch_id = excluded.touch_id, updated_at = excluded.updated_at",
        [key, json.dumps(dict(data), ensure_ascii=False), contact_id, touch_id, iso(at)],
    )
    _drop_if_empty(db, key)


def expire(db: Database, before: datetime) -> int:
    """Delete what nobody touched since ``before``: a draft abandoned that long is a copy of someone's
    words kept for nothing. How many rows went."""
    return max(db.execute("DELETE FROM bot_states WHERE updated_at < ?", [iso(before)]).rowcount, 0)


def _drop_if_empty(db: Database, key: str) -> None:
    db.execute("DELETE FROM bot_states WHERE key = ? AND state IS NULL AND data = '{}'", [key])
