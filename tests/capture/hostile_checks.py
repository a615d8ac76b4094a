"""The invariant every request must keep, however hostile, checked where a user would see it.

Every request gets a 4xx whose body says why, or a 2xx whose events are all stored; never a 5xx;
its journal row exists and is never left ``failed``; nothing in the server logs a warning or an
error while handling it; and a touch it makes holds what a report can use (no NUL, a time between
2000 and a day after it was received, a call shorter than a week).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import aiohttp
from hypothesis import HealthCheck, settings

from capture import journal
from capture.providers.base import CallEvent, Event, ReplyEvent
from leadline import keys
from storage.db import parse_iso
from tests.capture.hostile import Wire
from tests.conftest import Running

#: A refusal quotes at most a cut of what it refuses; longer, the value fills every log line.
REASON_LIMIT = 2_000
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_AFTER_RECEIPT = timedelta(days=1)
LONGEST_CALL_S = 7 * 86_400
TEXT_COLUMNS = (
    "external_id",
    "phone_raw",
    "email_raw",
    "name",
    "message",
    "utm",
    "tracking_number",
    "to_address",
    "extension",
    "recording",
    "campaign",
    "dropped",
    "payload",
)

settings.register_profile(
    "ci",
    # Derandomized and without a database: CI runs the same examples every time, and a failure
    # it reports is reproduced by running the test again.
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=40,
    # One server per provider for all its examples is the point (not a fixture per example); a
    # 900,000-letter value is slow to generate by design.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
settings.register_profile("fuzz", settings.get_profile("ci"), derandomize=False, max_examples=500)
#: ``LEADLINE_HYPOTHESIS=fuzz`` runs many more examples, at random, than CI does.
PROFILE = settings.get_profile(os.environ.get("LEADLINE_HYPOTHESIS", "ci"))


class Broken(AssertionError):
    """An invariant the server broke (one subclass per invariant and cause, see :func:`broken`)."""


_BROKEN: dict[str, type[Broken]] = {}


def broken(invariant: str, cause: str, detail: str) -> NoReturn:
    """Fail with a type of its own per invariant and cause.

    Hypothesis tells bugs apart by the exception's type and where it is raised; with one type per
    cause a run reports every distinct bug it meets, each with its own minimal example, instead of
    shrinking all of them onto the first.
    """
    name = f"Broken[{invariant}: {cause}]"
    kind = _BROKEN.setdefault(name, type(name, (Broken,), {}))
    raise kind(f"{invariant} ({cause}): {detail}")


def short(value: object, limit: int = 300) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def cause_of(reason: str | None) -> str:
    """The kind of a failure, without the values in it: ``OperationalError: Expression tree is too large``."""
    return re.split(r"['\"\d(]", reason or "", maxsplit=1)[0].strip(" :")[:80] or "no reason"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


#: Not a measure of speed: a request still unanswered after this long never will be (the server's
#: handler is stuck), and the suite must say so rather than wait for aiohttp's five minutes.
HANG = aiohttp.ClientTimeout(total=30)


async def send(srv: Running, wire: Wire) -> Answer:
    try:
        # a file-like body: aiohttp warns (an error here) about sending a megabyte of bytes directly
        body = io.BytesIO(wire.body)
        async with srv.session.request(
            wire.method, srv.url + wire.path, data=body, headers=wire.headers, timeout=HANG
        ) as resp:
            return Answer(resp.status, await resp.read())
    except TimeoutError:
        encoding = wire.headers.get("Content-Encoding", "none")
        detail = f"{wire.method} {wire.path}, {len(wire.body)} bytes, Content-Encoding {encoding}"
        broken("every request is answered", "no answer", detail)


def last_journal_id(srv: Running) -> int:
    return int(srv.scalar("SELECT COALESCE(MAX(id), 0) FROM journal"))


def check_logs(records: Sequence[logging.LogRecord]) -> None:
    """Nothing the server logged while answering is a warning, an error or a traceback."""
    for record in records:
        if record.levelno < logging.WARNING and not record.exc_info:
            continue
        error = record.exc_info[1] if record.exc_info else None
        cause = f"{record.name}: {record.msg}" + (f": {type(error).__name__}" if error else "")
        broken("nothing is logged as a warning or an error", cause, f"{short(record.getMessage())} {error!r}")


def check_answer(
    srv: Running, before: int, answer: Answer, records: Sequence[logging.LogRecord], *, cut: bool = False
) -> None:
    """The invariant for the one request made since journal row ``before``, with the log records
    the server wrote while answering it."""
    if answer.status >= 500:
        broken("no 5xx", str(answer.status), short(answer.body))
    rows = srv.rows("SELECT * FROM journal WHERE id > ? ORDER BY id", [before])
    if len(rows) != 1:
        where = ", its body cut off in transit" if cut else ""
        broken("one journal row per request", f"{len(rows)} rows", f"answered {answer.status}{where}")
    row = rows[0]
    if row["status"] == "failed":
        broken("no journal row is left failed", cause_of(row["reason"]), short(row["reason"]))
    check_logs(records)
    if 400 <= answer.status < 500:
        if (row["status"], row["http_status"]) != ("rejected", answer.status):
            broken(
                "a 4xx is journalled as rejected", row["status"], f"{answer.status} vs {row['http_status']}"
            )
        if not answer.body.strip() or not (row["reason"] or "").strip():
            broken("a 4xx says why", str(answer.status), f"body {short(answer.body)}")
        if len(row["reason"]) > REASON_LIMIT:
            broken("a reason is short whatever the input", cause_of(row["reason"]), short(row["reason"]))
        return
    if not 200 <= answer.status < 300:
        broken("the answer is a 2xx or a 4xx", str(answer.status), short(answer.body))
    if cut:
        broken("a body cut off in transit is refused", str(answer.status), f"journal row {row['id']}")
    if (row["status"], row["http_status"]) != ("processed", answer.status):
        broken("a 2xx is journalled as processed", row["status"], f"{answer.status} vs {row['http_status']}")
    check_stored(srv, row)


def check_stored(srv: Running, row: dict[str, Any]) -> None:
    """The events the journalled request carries are in the store, and what it made is usable.

    The request is read back from the journal and judged again (without its signature, which the
    journal does not keep) to learn which touches and call events it promised.
    """
    db = srv.db()
    try:
        stored = journal.get(db, row["id"])
    finally:
        db.close()
    assert stored is not None
    source = srv.config.source(stored.raw.source)
    assert source is not None
    verdict = srv.server.app[keys.CAPTURE].judge(stored.raw, source, verify=False)
    if verdict.result is None:
        broken(
            "a processed request still parses from the journal",
            cause_of(verdict.reason),
            short(verdict.reason),
        )
    if not verdict.result.events and not row["note"]:
        broken("a 2xx without an event says why", "no note", f"journal row {row['id']}")
    for event in verdict.result.events:
        if not _in_store(srv, source.name, event):
            broken("a 2xx made the touches it acknowledges", type(event).__name__, short(event))
    made = srv.rows("SELECT * FROM touches WHERE journal_id = ?", [row["id"]])
    if len(made) != row["touches_created"]:
        broken("touches_created tells the truth", "count", f"{row['touches_created']} vs {len(made)}")
    for touch in made:
        check_touch(touch, parse_iso(row["received_at"]))


def _in_store(srv: Running, source: str, event: Event) -> bool:
    if isinstance(event, ReplyEvent):  # the business's reply: kept as an answer, never a touch
        key = [source, event.external_id]
        return bool(srv.scalar("SELECT COUNT(*) FROM chat_replies WHERE source = ? AND external_id = ?", key))
    if not isinstance(event, CallEvent):
        key = [source, event.external_id]
        # a chat message that went on a conversation is held by the conversation's touch
        return bool(
            srv.scalar("SELECT COUNT(*) FROM touches WHERE source = ? AND external_id = ?", key)
            or srv.scalar("SELECT COUNT(*) FROM chat_messages WHERE source = ? AND external_id = ?", key)
        )
    if event.direction == "internal":
        return True  # not a touch, by design (storage/calls.py)
    key = [source, event.event_key]
    if srv.scalar("SELECT COUNT(*) FROM call_events WHERE source = ? AND event_key = ?", key):
        return True
    # a recording that came before its call waits for it (its key taken), or has joined it
    call = [source, event.call_id]
    return event.status == "recording" and bool(
        srv.scalar("SELECT COUNT(*) FROM pending_recordings WHERE source = ? AND event_key = ?", key)
        or srv.scalar("SELECT COUNT(*) FROM touches WHERE source = ? AND external_id = ?", call)
    )


def check_touch(touch: dict[str, Any], received_at: datetime) -> None:
    for column in TEXT_COLUMNS:
        value = touch[column]
        if column in ("payload", "utm") and value:
            value = json.loads(value)
        if _has_nul(value):
            broken("no NUL is stored", "NUL", f"touch {touch['id']}, {column}: {short(touch[column])}")
    occurred = parse_iso(touch["occurred_at"])
    if occurred < EARLIEST:
        broken("a touch's time is plausible", "before 2000", f"touch {touch['id']}: {occurred.isoformat()}")
    if occurred > received_at + LATEST_AFTER_RECEIPT:
        broken("a touch's time is plausible", "after receipt", f"touch {touch['id']}: {occurred.isoformat()}")
    for column in ("duration_s", "talk_s"):
        value = touch[column]
        if value is not None and not 0 <= value <= LONGEST_CALL_S:
            broken("a call's length is plausible", "out of range", f"touch {touch['id']}, {column}: {value}")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False
