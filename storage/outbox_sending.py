"""The outbox row's life after ``enqueue``: claimed, then sent, retried or failed, each in its own write.

A row is marked ``sending`` in a committed write *before* Telegram is called, and ``sent`` only once
Telegram confirmed it. A row still ``sending`` when its process stopped (a crash, or a send cancelled at
a stop) was never confirmed, so it goes back to ``pending`` and is sent again (at least once across
restarts): it can only already be in the chat if Telegram accepted it and its answer never came back.
While the process runs, a failure Telegram reports (429, 5xx, a proxy's error page) or a network error
puts the row back to ``pending`` with a later ``not_before``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from storage.chat_moves import follow_move
from storage.db import chunks, iso

#: ``last_error`` of a row found ``sending`` at start-up: its process ended mid-send (a crash).
INTERRUPTED = "interrupted while sending (delivery unconfirmed); sent again"
#: ``last_error`` of a row whose send was still unanswered when a stop's wait ran out.
CANCELLED_AT_STOP = "send cancelled at shutdown (delivery unconfirmed); sent again at the next start"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    chat_id: int
    method: str
    payload: dict[str, Any]
    attempts: int


def due_heads(db: Database, now: datetime, limit: int = 500) -> list[OutboxRow]:
    """The oldest pending row of each chat, oldest first, where it is due: one chat's messages go out
    in order. A head held back (a 429's ``retry_after``) holds its chat's later rows back too, so a
    restart, which forgets the sender's own pauses, cannot send a later edit of a card before it."""
    rows = db.execute(
        "SELECT id, chat_id, method, payload, attempts FROM outbox WHERE id IN ("
        " SELECT MIN(id) FROM outbox WHERE status = 'pending' GROUP BY chat_id) AND not_before <= ?"
        " ORDER BY id LIMIT ?",
        [iso(now), limit],
    ).fetchall()
    return [OutboxRow(int(r[0]), int(r[1]), str(r[2]), json.loads(r[3]), int(r[4])) for r in rows]


def next_due(db: Database, after: datetime) -> str | None:
    """When the next pending row not yet due becomes due (stored ISO text), to sleep until then."""
    row = db.execute(
        "SELECT MIN(not_before) FROM outbox WHERE status = 'pending' AND not_before > ?", [iso(after)]
    ).fetchone()
    return str(row[0]) if row and row[0] is not None else None


def claim(db: Database, row_id: int) -> bool:
    """Mark a row as being sent; False if it is no longer pending (someone else has it)."""
    cursor = db.execute(
        "UPDATE outbox SET status = 'sending', attempts = attempts + 1 WHERE id = ? AND status = 'pending'",
        [row_id],
    )
    return cursor.rowcount == 1


def mark_sent(db: Database, row_id: int, at: datetime, message_id: int | None) -> None:
    db.execute(
        "UPDATE outbox SET status = 'sent', sent_at = ?, message_id = ?, last_error = NULL WHERE id = ?",
        [iso(at), message_id, row_id],
    )


def mark_retry(db: Database, row_id: int, not_before: datetime, error: str) -> None:
    db.execute(
        "UPDATE outbox SET status = 'pending', not_before = ?, last_error = ? WHERE id = ?",
        [iso(not_before), error[:500], row_id],
    )


def mark_failed(db: Database, row_id: int, error: str) -> None:
    db.execute("UPDATE outbox SET status = 'failed', last_error = ? WHERE id = ?", [error[:500], row_id])


def move_chat(db: Database, row_id: int, old_chat: int, new_chat: int, at: datetime) -> bool:
    """A group became a supergroup: its queued messages, cards and nudges follow it to the new chat
    id, and the move is kept for what still names the old one (the config's team chat). True the
    first time this move is learnt."""
    db.execute("UPDATE outbox SET status = 'pending' WHERE id = ?", [row_id])
    return follow_move(db, old_chat, new_chat, at)


#: A row left ``sending`` this many times is not tried again: its send may be what kills the process.
MAX_INTERRUPTED_ATTEMPTS = 5
GAVE_UP = f"interrupted mid-send {MAX_INTERRUPTED_ATTEMPTS} times; not sent again"


def requeue_unconfirmed(db: Database, reason: str) -> list[int]:
    """Rows left ``sending`` (Telegram never confirmed them) back to ``pending``, due at once, with the
    reason; their attempt was counted when they were claimed. Returns their ids.

    Each such row counts one more interruption; one interrupted :data:`MAX_INTERRUPTED_ATTEMPTS` times
    is marked ``failed`` instead, so a message whose send crashes the process cannot do so at every
    start. Interruptions are counted apart from ``attempts``: the retries of an outage say nothing
    about the message, and a card retried through one must still go after a crash.
    """
    db.execute("UPDATE outbox SET interrupted = interrupted + 1 WHERE status = 'sending'")
    db.execute(
        "UPDATE outbox SET status = 'failed', last_error = ? WHERE status = 'sending' AND interrupted >= ?",
        [GAVE_UP, MAX_INTERRUPTED_ATTEMPTS],
    )
    ids = [int(r[0]) for r in db.execute("SELECT id FROM outbox WHERE status = 'sending' ORDER BY id")]
    if ids:
        db.execute(
            "UPDATE outbox SET status = 'pending', last_error = ? WHERE status = 'sending'", [reason[:500]]
        )
    return ids


def take_due_for_log(db: Database, now: datetime, limit: int = 500) -> list[OutboxRow]:
    """Without a bot token: take due rows and mark them sent in one go (the log is their destination)."""
    rows = db.execute(
        "SELECT id, chat_id, method, payload, attempts FROM outbox WHERE status = 'pending' AND not_before <= ?"
        " ORDER BY id LIMIT ?",
        [iso(now), limit],
    ).fetchall()
    stamp = iso(now)
    for r in rows:
        db.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1 WHERE id = ?",
            [stamp, r[0]],
        )
    return [OutboxRow(int(r[0]), int(r[1]), str(r[2]), json.loads(r[3]), int(r[4]) + 1) for r in rows]


def described(db: Database, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """What each of the rows ``ids`` is, in words that name nobody: its line in the log when there is
    no bot token, where the text itself cannot go (DESIGN.md: nothing personal is written to a log).

    A card says its kind (``card`` and ``register``, ``callback`` or ``repeat``), how many touches it
    counts and its latest touch's source and campaign; a nudge message how many cards it carries, the
    nudges' kinds and their touches' sources and campaigns; any other row the kind its dedupe key
    starts with (``source-health``, ``digest``...), else none. Cards and nudges also carry the ids of
    the contacts and touches they are about: ids name no one, and with them an operator can act on
    the line (register the contact, look the touch up) as a staff member would on the message.
    """
    about: dict[int, dict[str, Any]] = {}
    for part in chunks(list(ids)):
        marks = ", ".join("?" * len(part))
        for outbox_id, key in db.execute(f"SELECT id, dedupe_key FROM outbox WHERE id IN ({marks})", part):
            if key:
                about[int(outbox_id)] = {"kind": str(key).split(":", 1)[0]}
        cards = db.execute(
            "SELECT a.outbox_id, a.kind, a.touches, t.source, t.campaign, a.contact_id, a.first_touch_id,"
            " a.last_touch_id FROM arrival_cards a"
            f" JOIN touches t ON t.id = a.last_touch_id WHERE a.outbox_id IN ({marks})",
            part,
        )
        for outbox_id, kind, touches, source, campaign, contact_id, first, last in cards:
            about[int(outbox_id)] = {
                "kind": "card",
                "card": kind,
                "touches": int(touches),
                "source": source,
                "campaign": campaign,
                "contact_id": int(contact_id),
                "first_touch_id": int(first),
                "last_touch_id": int(last),
            }
        carried = db.execute(
            "SELECT m.outbox_id, m.cards, n.kind, t.source, t.campaign, n.touch_id,"
            " COALESCE(n.contact_id, t.contact_id) FROM nudge_messages m"
            " JOIN nudge_deliveries d ON d.message_id = m.id JOIN nudges n ON n.id = d.nudge_id"
            f" LEFT JOIN touches t ON t.id = n.touch_id WHERE m.outbox_id IN ({marks}) ORDER BY n.id",
            part,
        )
        for outbox_id, count, kind, source, campaign, touch_id, contact_id in carried:
            line = about.setdefault(int(outbox_id), {})
            if line.get("kind") != "nudge":
                line.clear()
                line.update(
                    kind="nudge",
                    cards=int(count),
                    nudges={},
                    sources=[],
                    campaigns=[],
                    touch_ids=[],
                    contact_ids=[],
                )
            line["nudges"][kind] = line["nudges"].get(kind, 0) + 1
            named = (
                ("sources", source),
                ("campaigns", campaign),
                ("touch_ids", touch_id),
                ("contact_ids", contact_id),
            )
            for key, value in named:
                if value is not None and value not in line[key]:
                    line[key].append(value)
    return about
