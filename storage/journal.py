"""The journal: every inbound request, raw, kept before it is answered.

It is the ground truth that replay works from: a request that a parser could not read yesterday
can become a touch today, because its bytes are still here. Storage knows a request only by the
fields it keeps (:class:`Request`); ``capture/journal.py`` turns a row back into the request its
parsers take.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote_plus, unquote_plus

from sqlite_utils import Database

from storage.db import iso, parse_iso
from storage.json_text import dumps
from storage.records import record


class Request(Protocol):
    """What the journal keeps of an inbound request (capture's ``RawRequest`` is one)."""

    @property
    def source(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query_string(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def body(self) -> bytes: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def url(self) -> str: ...
    @property
    def remote(self) -> str | None: ...


class Binding(Protocol):
    """A value an earlier request of the source tied to a key (capture's ``Binding`` is one)."""

    @property
    def key(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def refusal(self) -> str: ...


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
#: Query parameters, and a body's form or top-level JSON fields, that carry secrets: Mango's
#: ``vpbx_api_key`` is its product key (FORMATS.md §1.1), VK's ``secret`` the community's (§8.3).
SECRET_PARAMS = frozenset({"token", "api_key", "apikey", "key", "secret", "password", "vpbx_api_key"})
REDACTED = "[redacted]"
_REDACTED_IN_URL = quote_plus(REDACTED)


def redact_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(k, REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()]


def redact_query(query_string: str) -> str:
    """The query string with the values of its secret-named parameters hidden, every other byte as sent."""
    return _redact_urlencoded(query_string, _REDACTED_IN_URL)


def _redact_urlencoded(text: str, shown: str) -> str:
    pairs = [piece.partition("=") for piece in text.split("&")]
    return "&".join(
        f"{name}={shown}" if equals and unquote_plus(name).lower() in SECRET_PARAMS else name + equals + value
        for name, equals, value in pairs
    )


def redact_fields(text: str, content_type: str) -> str:
    """``text`` with the values of its secret-named fields (:data:`SECRET_PARAMS`) shown as
    :data:`REDACTED`, in an urlencoded form or a JSON object's top level, every other byte as sent.

    For display only: the journal keeps the body whole, because replay and signature checks need
    it. Nested JSON is left alone: there ``key`` and ``token`` name answers (a VK lead form's
    ``"key": "phone_number"``, a Typeform response token), not credentials.
    """
    if "x-www-form-urlencoded" in content_type.lower():
        return _redact_urlencoded(text, REDACTED)
    if not text.lstrip().startswith("{"):
        return text
    try:
        fields = json.loads(text)
    except ValueError:
        return text
    if not isinstance(fields, dict):
        return text
    for name, value in fields.items():
        if name.lower() in SECRET_PARAMS and isinstance(value, str) and value:
            for spelled in {json.dumps(value), json.dumps(value, ensure_ascii=False)}:
                text = text.replace(spelled, json.dumps(REDACTED))
    return text


@dataclass(frozen=True, slots=True)
class Entry:
    """A journal row as read back: what became of the request, and the request as it was kept."""

    id: int
    provider: str | None
    status: str
    http_status: int | None
    reason: str | None
    source: str
    method: str
    path: str
    query_string: str
    headers: list[tuple[str, str]]
    body: bytes
    received_at: datetime
    url: str
    remote: str | None


@record
class Prepared:
    """A request's journal columns, redacted and encoded before the database lock is taken."""

    query_string: str
    headers: str
    body: bytes
    url: str
    received_at: str


def prepare(raw: Request, *, keep_body: bool = True) -> Prepared:
    return Prepared(
        redact_query(raw.query_string),
        # A stray non-UTF-8 header byte (a lone surrogate) is written as an ASCII escape: storable, exact.
        dumps(redact_headers(raw.headers)),
        raw.body if keep_body else b"",
        raw.url.split("?", 1)[0],
        iso(raw.received_at),
    )


_INSERT = (
    "INSERT INTO journal (source, provider, method, path, query_string, headers, body, body_size, remote,"
    " url, received_at, status, http_status, reason, replay_key, note, processed_at, events, touches_created,"
    " anonymous) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_WITH_ID = _INSERT.replace("(source,", "(id, source,", 1).replace("VALUES (?,", "VALUES (?, ?,", 1)


def values(
    raw: Request,
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
    anonymous: bool = False,
) -> tuple[object, ...]:
    """A row's columns in ``_INSERT``'s order; one already processed is written in its final state.

    The write lock is the bottleneck under load, and an insert followed by an update of the same
    row costs a second write of the row and of its status index entry.
    """
    row = prepared or prepare(raw, keep_body=keep_body)
    return (
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
        int(anonymous),
    )


def insert(db: Database, raw: Request, **columns: Any) -> int:
    """A new row (``columns`` as :func:`values` takes them); returns its id."""
    cursor = db.conn.execute(_INSERT, values(raw, **columns))
    return int(cursor.lastrowid or 0)


def next_id(db: Database) -> int:
    """The id SQLite would give the next row (no AUTOINCREMENT), for :func:`insert_many`."""
    return int(db.conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM journal").fetchone()[0])


def insert_many(db: Database, rows: list[tuple[object, ...]], first_id: int) -> None:
    """New rows from :func:`values` with ids from ``first_id`` on, in one prepared statement."""
    db.conn.executemany(_INSERT_WITH_ID, [(first_id + n, *row) for n, row in enumerate(rows)])


def set_touches_created(db: Database, corrections: list[tuple[int, int]]) -> None:
    """Correct rows written in their final state before their events were stored:
    ``(touches_created, journal_id)`` pairs."""
    db.conn.executemany("UPDATE journal SET touches_created = ? WHERE id = ?", corrections)


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


def bind(db: Database, source: str, bindings: Sequence[Binding], at: datetime) -> str | None:
    """The refusal of the first binding an earlier request of ``source`` gave another value; else
    records the new ones and returns None. Runs in the writer, so two requests cannot both bind."""
    if not bindings:
        return None
    for binding in bindings:
        row = db.conn.execute(
            "SELECT value FROM request_bindings WHERE source = ? AND key = ?", (source, binding.key)
        ).fetchone()
        if row is not None and row[0] != binding.value:
            return binding.refusal
    db.conn.executemany(
        "INSERT OR IGNORE INTO request_bindings (source, key, value, bound_at) VALUES (?, ?, ?, ?)",
        [(source, b.key, b.value, iso(at)) for b in bindings],
    )
    return None


_COLUMNS = "id, provider, status, http_status, reason, source, method, path, query_string, headers, body, received_at, url, remote"


def _entry(values: tuple[object, ...]) -> Entry:
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
    return Entry(
        int(jid),  # type: ignore[call-overload]
        None if provider is None else str(provider),
        str(status),
        None if http_status is None else int(http_status),  # type: ignore[call-overload]
        None if reason is None else str(reason),
        source=str(source),
        method=str(method),
        path=str(path),
        query_string=str(qs),
        headers=[tuple(p) for p in json.loads(str(headers))],  # type: ignore[misc]
        body=body if isinstance(body, bytes) else b"",
        received_at=parse_iso(str(received)),
        url=str(url),
        remote=None if remote is None else str(remote),
    )


def get(db: Database, journal_id: int) -> Entry | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM journal WHERE id = ?", [journal_id]).fetchone()
    return _entry(row) if row else None


def _replayable(unprocessed_only: bool) -> str:
    """The condition on a row that today's parsers may turn into touches: never-finished ones and
    parse rejections (only the first with ``unprocessed_only``).

    Rows refused for a bad signature or token stay refused: replaying cannot make a forgery genuine.
    Neither is an ``anonymous`` 400 (a body that could not be inflated, refused before its token or
    signature was checked) replayed: a replay checks none, and anyone could have sent it.
    """
    return (
        "(status IN ('received', 'failed')"
        + ("" if unprocessed_only else " OR (status = 'rejected' AND http_status = 400 AND anonymous = 0)")
        + ")"
    )


def get_replayable(db: Database, journal_id: int, *, unprocessed_only: bool = False) -> Entry | None:
    """The row, if a replay may still run it; None once another has finished it.

    A replay lists its rows before it writes, and two may run at once (serve's at start-up and
    ``leadline replay``, or two commands): the second to reach a row must leave it as the first made
    it, or it rewrites its touches as 0 (the first one's are already there) and its time.
    """
    row = db.execute(
        f"SELECT {_COLUMNS} FROM journal WHERE id = ? AND {_replayable(unprocessed_only)}", [journal_id]
    ).fetchone()
    return _entry(row) if row else None


def replayable_ids(
    db: Database, *, source: str | None = None, since: datetime | None = None, unprocessed_only: bool = False
) -> list[int]:
    """Rows that today's parsers may turn into touches (see :func:`_replayable`)."""
    clauses = [_replayable(unprocessed_only)]
    params: list[object] = []
    if source:
        clauses.append("source = ?")
        params.append(source)
    if since:
        clauses.append("received_at >= ?")
        params.append(iso(since))
    sql = f"SELECT id FROM journal WHERE {' AND '.join(clauses)} ORDER BY id"
    return [int(r[0]) for r in db.execute(sql, params).fetchall()]
