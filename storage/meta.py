"""The ``meta`` table: one text value per key, for the little state a process keeps between runs.

How far the outgoing webhooks and an IMAP mailbox have read, the last day a digest covered, the
health check's last write. Each owner names its own keys; this module is the only one that
reads or writes the table, so its shape can change in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlite_utils import Database

from storage.db import chunks


def get(db: Database, key: str) -> str | None:
    row = db.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def get_many(db: Database, keys: Sequence[str]) -> dict[str, str]:
    """The keys that have a value; a key never set is left out."""
    found: dict[str, str] = {}
    for chunk in chunks(keys):
        marks = ",".join("?" * len(chunk))
        rows = db.conn.execute(f"SELECT key, value FROM meta WHERE key IN ({marks})", list(chunk))
        found.update({str(k): str(v) for k, v in rows if v is not None})
    return found


def put(db: Database, key: str, value: str) -> None:
    put_many(db, {key: value})


def put_many(db: Database, values: Mapping[str, str]) -> None:
    db.conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items()))


def raise_to(db: Database, key: str, value: str) -> None:
    """Set ``key`` to ``value`` unless it holds a greater one already (in text order, which is time
    order for ISO dates): two writers that race can only move it forward."""
    db.conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = max(COALESCE(value, ''), excluded.value)",
        (key, value),
    )
