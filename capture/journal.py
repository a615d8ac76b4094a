"""The journal: every inbound request, raw, kept before it is answered.

It is the ground truth that replay works from: a request that a parser could not read yesterday
can become a touch today, because its bytes are still here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from capture.providers.base import RawRequest, make_headers
from storage.db import iso, parse_iso

#: Headers that carry secrets; their values are never stored.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-leadline-token",
        "x-api-key",
        "x-telegram-bot-api-secret-token",
    }
)
#: Query parameters that carry secrets.
SECRET_PARAMS = frozenset({"token", "api_key", "apikey", "key", "secret", "password"})
REDACTED = "[redacted]"


def redact_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(k, REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()]


def redact_query(query_string: str) -> str:
    from urllib.parse import parse_qsl, urlencode

    if not query_string:
        return ""
    pairs = parse_qsl(query_string, keep_blank_values=True)
    if not any(k.lower() in SECRET_PARAMS for k, _ in pairs):
        return query_string
    return urlencode([(k, REDACTED if k.lower() in SECRET_PARAMS else v) for k, v in pairs])


@dataclass(frozen=True, slots=True)
class JournalRow:
    id: int
    provider: str | None
    status: str
    http_status: int | None
    reason: str | None
    raw: RawRequest


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request's journal columns, redacted and encoded before the writer thread sees them."""

    query_string: str
    headers: str
    body: bytes
    url: str
    received_at: str


def prepare(raw: RawRequest, *, keep_body: bool = True) -> Prepared:
    return Prepared(
        redact_query(raw.query_string),
        # ASCII escapes keep a stray non-UTF-8 header byte (a lone surrogate) storable and exact.
        json.dumps(redact_headers(raw.headers)),
        raw.body if keep_body else b"",
        raw.url.split("?", 1)[0],
        iso(raw.received_at),
    )


_INSERT = (
    "INSERT INTO journal (source, provider, method, path, query_string, headers, body, body_size, remote,"
    " url, received_at, status, http_status, reason, replay_key, note, processed_at, events, touches_created)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def insert(
    db: Database,
    raw: RawRequest,
    *,
    provider: str | None,
    status: str,
    http_status: int | None = None,
    reason: str | None = None,
    replay_key: str | None = None,
    keep_body: bool = True,
    prepared: Prepared | None = None,
    note: str | None = None,
    processed_at: datetime | None = None,
    events: int = 0,
    touches_created: int = 0,
) -> int:
    """A new row; one already processed is written in its final state, in one statement.

    The writer thread is the bottleneck under load, and an insert followed by an update of the same
    row costs a second write of the row and of its status index entry.
    """
    row = prepared or prepare(raw, keep_body=keep_body)
    cursor = db.conn.execute(
        _INSERT,
        (
            raw.source,
            provider,
            raw.method,
            raw.path,
            row.query_string,
            row.headers,
            row.body,
            len(raw.body),
            raw.remote,
            row.url,
            row.received_at,
            status,
            http_status,
            reason,
            replay_key,
            note,
            None if processed_at is None else iso(processed_at),
            events,
            touches_created,
        ),
    )
    return int(cursor.lastrowid or 0)


def set_touches_created(db: Database, journal_id: int, touches_created: int) -> None:
    """Correct a row written in its final state before its events were stored."""
    db.conn.execute("UPDATE journal SET touches_created = ? WHERE id = ?", (touches_created, journal_id))


def finish(
    db: Database,
    journal_id: int,
    *,
    status: str,
    at: datetime,
    http_status: int | None = None,
    reason: str | None = None,
    note: str | None = None,
    events: int = 0,
    touches_created: int = 0,
) -> None:
    db.conn.execute(
        "UPDATE journal SET status = ?, http_status = COALESCE(?, http_status), reason = ?, note = ?,"
        " processed_at = ?, events = ?, touches_created = ? WHERE id = ?",
        (status, http_status, reason, note, iso(at), events, touches_created, journal_id),
    )


def replay_key_used(db: Database, source: str, key: str) -> bool:
    row = db.conn.execute(
        "SELECT 1 FROM journal WHERE source = ? AND replay_key = ? AND status = 'processed'", (source, key)
    ).fetchone()
    return row is not None


_COLUMNS = "id, provider, status, http_status, reason, source, method, path, query_string, headers, body, received_at, url, remote"


def _row(values: tuple[object, ...]) -> JournalRow:
    (
        jid,
        provider,
        status,
        http_status,
        reason,
        source,
        method,
        path,
        qs,
        headers,
        body,
        received,
        url,
        remote,
    ) = values
    header_pairs: list[tuple[str, str]] = [tuple(p) for p in json.loads(str(headers))]  # type: ignore[misc]
    raw = RawRequest(
        source=str(source),
        method=str(method),
        path=str(path),
        query_string=str(qs),
        headers=make_headers(header_pairs),
        body=body if isinstance(body, bytes) else b"",
        received_at=parse_iso(str(received)),
        url=str(url),
        remote=None if remote is None else str(remote),
    )
    return JournalRow(
        int(jid),  # type: ignore[call-overload]
        None if provider is None else str(provider),
        str(status),
        None if http_status is None else int(http_status),  # type: ignore[call-overload]
        None if reason is None else str(reason),
        raw,
    )


def get(db: Database, journal_id: int) -> JournalRow | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM journal WHERE id = ?", [journal_id]).fetchone()
    return _row(row) if row else None


def replayable_ids(
    db: Database, *, source: str | None = None, since: datetime | None = None, unprocessed_only: bool = False
) -> list[int]:
    """Rows that today's parsers may turn into touches: never-finished ones and parse rejections.

    Rows refused for a bad signature or token stay refused: replaying cannot make a forgery genuine.
    """
    clauses = [
        "(status IN ('received', 'failed')"
        + ("" if unprocessed_only else " OR (status = 'rejected' AND http_status = 400)")
        + ")"
    ]
    params: list[object] = []
    if source:
        clauses.append("source = ?")
        params.append(source)
    if since:
        clauses.append("received_at >= ?")
        params.append(iso(since))
    sql = f"SELECT id FROM journal WHERE {' AND '.join(clauses)} ORDER BY id"
    return [int(r[0]) for r in db.execute(sql, params).fetchall()]
