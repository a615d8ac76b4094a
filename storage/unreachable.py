"""Chats Telegram refused for good: no new card goes to them until an update comes from them again.

The outbox sender decides which refusals say that the chat itself is gone (the person blocked the bot
or never started it, the bot is not in the group); storage only keeps the list, so round robin and
the nudges pass those people over instead of giving them every other new contact.
"""

from __future__ import annotations

from datetime import datetime

from sqlite_utils import Database

from storage.db import iso
from storage.outbox_sending import mark_failed

#: The staff's chats that are unreachable, for a ``telegram_id NOT IN (...)``.
UNREACHABLE_SQL = "SELECT chat_id FROM unreachable_chats"


def mark_unreachable(db: Database, chat_id: int, at: datetime) -> None:
    db.execute("INSERT OR IGNORE INTO unreachable_chats (chat_id, since) VALUES (?, ?)", [chat_id, iso(at)])


def is_unreachable(db: Database, chat_id: int) -> bool:
    """A read, so an ordinary update never takes the writer."""
    return db.execute("SELECT 1 FROM unreachable_chats WHERE chat_id = ?", [chat_id]).fetchone() is not None


def reachable_again(db: Database, chat_id: int) -> None:
    """An update came from the chat: it takes new cards again."""
    db.execute("DELETE FROM unreachable_chats WHERE chat_id = ?", [chat_id])


def refused_for_good(db: Database, row_id: int, chat_id: int, error: str, at: datetime) -> None:
    """The row failed because its chat is gone: failed, and the chat unreachable, in one write. A
    question about a lead (its follow-up date, or no change for ``stale_days``) the row asked of that
    chat can no longer be answered there: it stands as ``unreachable``, which the next sweep
    escalates at once (as a call-back given up does)."""
    mark_failed(db, row_id, error)
    mark_unreachable(db, chat_id, at)
    db.execute(
        "UPDATE nudges SET outcome = 'unreachable' WHERE kind IN ('follow_up', 'stale') AND level = 0 AND closed_at IS NULL"
        " AND outcome IS NULL AND id IN (SELECT d.nudge_id FROM nudge_deliveries d"
        " JOIN nudge_messages m ON m.id = d.message_id WHERE m.outbox_id = ? AND d.chat_id = ?)",
        [row_id, chat_id],
    )
