"""Groups that became supergroups: Telegram gives the group a new chat id and refuses the old one.

The config's ``[telegram] team_chat`` keeps the old id until someone edits it, so whatever picks or
recognises the team chat asks :func:`current_chat` for the id it has now, and what the base says was
sent to the old id (cards, nudges, queued messages) follows to the new one when the move is learnt.
"""

from __future__ import annotations

from datetime import datetime

from sqlite_utils import Database

from storage.db import iso

#: More moves than this in a row is a loop, not an upgrade: a group is upgraded once.
_MAX_HOPS = 8


def current_chat(db: Database, chat_id: int) -> int:
    """The id the chat has now: ``chat_id`` itself unless Telegram moved it."""
    seen = {chat_id}
    for _ in range(_MAX_HOPS):
        row = db.execute("SELECT new_chat FROM chat_moves WHERE old_chat = ?", [chat_id]).fetchone()
        if row is None or int(row[0]) in seen:
            break
        chat_id = int(row[0])
        seen.add(chat_id)
    return chat_id


def follow_move(db: Database, old_chat: int, new_chat: int, at: datetime) -> bool:
    """Record that ``old_chat`` is now ``new_chat`` and move what the base holds for it: the messages
    still to send, and the cards and nudges in it, so their edits and buttons work in the new chat.
    True the first time this move is learnt (for one warning to the operator), False after."""
    new = (
        db.execute(
            "INSERT OR IGNORE INTO chat_moves (old_chat, new_chat, at) VALUES (?, ?, ?)",
            [old_chat, new_chat, iso(at)],
        ).rowcount
        == 1
    )
    db.execute("UPDATE outbox SET chat_id = ? WHERE chat_id = ? AND status = 'pending'", [new_chat, old_chat])
    for table in ("arrival_cards", "nudges", "nudge_messages"):
        db.execute(f"UPDATE {table} SET chat_id = ? WHERE chat_id = ?", [new_chat, old_chat])
    db.execute("UPDATE OR IGNORE nudge_deliveries SET chat_id = ? WHERE chat_id = ?", [new_chat, old_chat])
    return new
