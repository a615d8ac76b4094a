"""The journal as a person reads it: what arrived, when, from which source, and what it became.

``leadline journal`` lists rows (401s, provider test pings and failed rows included: each is a
request someone sent) and shows one with its headers and body. The rows are read as stored: the
journal redacted secret headers and query parameters when it wrote them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from storage.db import iso, parse_iso

#: Every status a journal row can have (the schema's CHECK).
STATUSES = ("received", "processed", "rejected", "failed")


@dataclass(frozen=True, slots=True)
class Entry:
    """One request in a listing."""

    id: int
    received_at: datetime
    source: str
    method: str
    path: str
    status: str
    http_status: int | None
    reason: str | None
    note: str | None
    events: int
    touches_created: int
    body_size: int


@dataclass(frozen=True, slots=True)
class Request:
    """One request in full, as ``leadline journal show`` prints it."""

    entry: Entry
    provider: str | None
    query_string: str
    headers: list[tuple[str, str]]
    body: bytes
    remote: str | None
    url: str
    processed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Filters:
    source: str | None = None
    #: One of :data:`STATUSES`.
    status: str | None = None
    #: The HTTP status answered (``401``).
    http_status: int | None = None
    since: datetime | None = None


_ENTRY = (
    "id, received_at, source, method, path, status, http_status, reason, note, events, touches_created,"
    " body_size"
)


def _entry(row: tuple[object, ...]) -> Entry:
    jid, received, source, method, path, status, http, reason, note, events, touches, size = row
    return Entry(
        int(str(jid)),
        parse_iso(str(received)),
        str(source),
        str(method),
        str(path),
        str(status),
        None if http is None else int(str(http)),
        None if reason is None else str(reason),
        None if note is None else str(note),
        int(str(events)),
        int(str(touches)),
        int(str(size)),
    )


def _where(filters: Filters) -> tuple[list[str], list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if filters.source is not None:
        clauses.append("source = ?")
        params.append(filters.source)
    if filters.status is not None:
        clauses.append("status = ?")
        params.append(filters.status)
    if filters.http_status is not None:
        clauses.append("http_status = ?")
        params.append(filters.http_status)
    if filters.since is not None:
        clauses.append("received_at >= ?")
        params.append(iso(filters.since))
    return clauses, params


def latest(db: Database, filters: Filters, limit: int) -> tuple[list[Entry], bool]:
    """The newest ``limit`` rows that match, oldest first, and whether older ones matched too.

    Walks the primary key backwards, so the newest rows of a journal of millions come at once.
    """
    clauses, params = _where(filters)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = db.execute(
        f"SELECT {_ENTRY} FROM journal{where} ORDER BY id DESC LIMIT ?", [*params, limit + 1]
    ).fetchall()
    return [_entry(row) for row in reversed(rows[:limit])], len(rows) > limit


def after(db: Database, filters: Filters, after_id: int, limit: int = 500) -> list[Entry]:
    """Rows that match with an id above ``after_id``, oldest first: what ``--follow`` prints next."""
    clauses, params = _where(filters)
    clauses.insert(0, "id > ?")
    params.insert(0, after_id)
    rows = db.execute(
        f"SELECT {_ENTRY} FROM journal WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?", [*params, limit]
    ).fetchall()
    return [_entry(row) for row in rows]


def last_id(db: Database) -> int:
    """The newest row's id (0 for an empty journal): where ``--follow`` starts when nothing is listed."""
    return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM journal").fetchone()[0])


def request(db: Database, journal_id: int) -> Request | None:
    row = db.execute(
        f"SELECT {_ENTRY}, provider, query_string, headers, body, remote, url, processed_at"
        " FROM journal WHERE id = ?",
        [journal_id],
    ).fetchone()
    if row is None:
        return None
    provider, query_string, headers, body, remote, url, processed_at = row[12:]
    stored = json.loads(str(headers) or "[]")
    pairs = stored.items() if isinstance(stored, dict) else stored  # the column's default is {}
    return Request(
        _entry(row[:12]),
        None if provider is None else str(provider),
        str(query_string),
        [(str(k), str(v)) for k, v in pairs],
        body if isinstance(body, bytes) else b"",
        None if remote is None else str(remote),
        str(url),
        None if processed_at is None else parse_iso(str(processed_at)),
    )
