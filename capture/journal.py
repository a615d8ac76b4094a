"""The journal in capture's terms: a row read back is the :class:`RawRequest` its parsers take.

The table and every statement on it are ``storage/journal.py``; storage knows a request only by
the fields it keeps, so turning a row back into a request is the one thing capture adds. The rest
is named here too, so the pipeline reads and writes the journal through one name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from capture.providers.base import RawRequest, make_headers
from storage import journal
from storage.journal import (
    Prepared,
    bind,
    finish,
    insert,
    insert_many,
    next_id,
    prepare,
    replay_key_used,
    replayable_ids,
    set_touches_created,
    values,
)

__all__ = [
    "JournalRow",
    "Prepared",
    "bind",
    "finish",
    "get",
    "get_replayable",
    "insert",
    "insert_many",
    "next_id",
    "prepare",
    "replay_key_used",
    "replayable_ids",
    "set_touches_created",
    "values",
]


@dataclass(frozen=True, slots=True)
class JournalRow:
    id: int
    provider: str | None
    status: str
    http_status: int | None
    reason: str | None
    raw: RawRequest


def get(db: Database, journal_id: int) -> JournalRow | None:
    entry = journal.get(db, journal_id)
    return None if entry is None else _row(entry)


def get_replayable(db: Database, journal_id: int, *, unprocessed_only: bool = False) -> JournalRow | None:
    """The row, if a replay may still run it (storage/journal.py says which may)."""
    entry = journal.get_replayable(db, journal_id, unprocessed_only=unprocessed_only)
    return None if entry is None else _row(entry)


def _row(entry: journal.Entry) -> JournalRow:
    raw = RawRequest(
        source=entry.source,
        method=entry.method,
        path=entry.path,
        query_string=entry.query_string,
        headers=make_headers(entry.headers),
        body=entry.body,
        received_at=entry.received_at,
        url=entry.url,
        remote=entry.remote,
    )
    return JournalRow(entry.id, entry.provider, entry.status, entry.http_status, entry.reason, raw)
