"""Answers given under an ``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header), kept so a
client's retry is answered the same and does nothing twice.

A key belongs to one API client; it remembers the fingerprint of the request it came with, the
status and the JSON body answered, and the contact the answer is about (an erasure drops it). Keys
expire: :func:`recall` looks only at keys newer than ``since`` and :func:`expire` deletes the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from storage.db import iso


@dataclass(frozen=True, slots=True)
class Answered:
    """What a key was first used for, and the answer it got."""

    request_hash: str
    status: int
    body: dict[str, Any]


def recall(db: Database, client: str, key: str, since: datetime) -> Answered | None:
    row = db.execute(
        "SELECT request_hash, status, response FROM idempotency_keys"
        " WHERE client = ? AND key = ? AND created_at >= ?",
        [client, key, iso(since)],
    ).fetchone()
    return Answered(str(row[0]), int(row[1]), json.loads(row[2])) if row else None


def remember(
    db: Database,
    client: str,
    key: str,
    answered: Answered,
    *,
    contact_id: int | None,
    at: datetime,
) -> None:
    """Keep the answer; an expired key of the same name is replaced."""
    db.execute(
        "INSERT OR REPLACE INTO idempotency_keys (client, key, request_hash, status, response, contact_id,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            client,
            key,
            answered.request_hash,
            answered.status,
            json.dumps(answered.body, ensure_ascii=False),
            contact_id,
            iso(at),
        ],
    )


def expire(db: Database, before: datetime) -> int:
    """Delete the keys used before ``before``; how many went."""
    return max(db.execute("DELETE FROM idempotency_keys WHERE created_at < ?", [iso(before)]).rowcount, 0)
