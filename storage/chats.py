"""Chats: a conversation is a touch, not each message.

People write in bursts of short lines, and LRR counts people who wrote, not lines: messages from one
person on one source (one ``conversation`` key) are one touch while they keep coming. A message
after a silence longer than the source's ``conversation_gap_hours`` starts a new touch. A later
message adds its text to the touch (up to :data:`storage.touches.MAX_TEXT_CHARS`) and whatever it
says about its person (a shared phone joins the contact that number already has, with the merge
recorded as for any touch). Every message taken in is kept in ``chat_messages``, so a provider's
retry of any of them, not only the first, is a no-op.

The business's own messages are no touches: each is kept in ``chat_replies`` against the touch it
answers, as the answer speed to lead measures (storage/reports/response.py). One that comes before
any touch it could answer waits with its conversation's key: a provider may deliver the customer's
message after the reply to it, and the touch that message makes takes the replies sent since.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlite_utils import Database

from storage.db import iso, parse_iso
from storage.dedup import Claim, resolve_contacts
from storage.events import ContactEvent, ReplyEvent
from storage.touches import MAX_TEXT_CHARS, EventContext, event_identifiers, record_contact_event

#: Between two messages in a touch's text.
SEPARATOR = "\n"
#: What an erased person's WhatsApp message ids become, followed by a digest of the id.
ERASED_WAMID = "whatsapp:erased:"


def erased_message_id(external_id: str) -> str:
    """A message id as erasure leaves it. A WhatsApp id is base64 of the chat's ids, the customer's
    number among them, so it becomes a digest of itself: still one per message, and a late
    duplicate of the message still finds it. Other providers' ids hold no number and stay."""
    if not external_id.startswith("whatsapp:wamid."):
        return external_id
    return ERASED_WAMID + hashlib.sha256(external_id.encode()).hexdigest()[:32]


def record_chat_event(db: Database, event: ContactEvent, ctx: EventContext) -> tuple[int, bool]:
    """The touch a chat message belongs to and whether the message made it: ``(touch id, new)``."""
    if event.conversation is None:
        return record_contact_event(db, event, ctx)
    at = event.occurred_at or ctx.received_at
    seen = db.conn.execute(
        "SELECT touch_id FROM chat_messages WHERE source = ? AND external_id IN (?, ?)",
        (ctx.source, event.external_id, erased_message_id(event.external_id)),
    ).fetchone()
    if seen is not None:
        return int(seen[0]), False
    open_touch = _open_conversation(db, ctx, event.conversation, at)
    if open_touch is None or event.dropped is not None:
        touch_id, new = record_contact_event(db, event, ctx)
        if new:
            db.conn.execute(
                "UPDATE touches SET conversation = ? WHERE id = ?", (event.conversation, touch_id)
            )
        begins = new and event.dropped is None
    else:
        (touch_id, begins), new = open_touch, False
        _continue(db, touch_id, event, ctx, at, earlier=begins)
    if begins:  # the touch now begins at ``at``: the replies waiting since then answer it
        db.conn.execute(
            "UPDATE chat_replies SET touch_id = ?, conversation = NULL"
            " WHERE source = ? AND conversation = ? AND touch_id IS NULL AND at >= ?",
            (touch_id, ctx.source, event.conversation, iso(at)),
        )
    db.conn.execute(
        "INSERT OR IGNORE INTO chat_messages (source, external_id, touch_id, journal_id, at)"
        " VALUES (?, ?, ?, ?, ?)",
        (ctx.source, event.external_id, touch_id, ctx.journal_id, iso(at)),
    )
    return touch_id, new


def record_chat_reply(db: Database, event: ReplyEvent, ctx: EventContext) -> bool:
    """Keep the business's reply against the conversation's latest touch at its moment; with none
    yet, it waits with the conversation's key for the customer's message, which may come later
    (else the business wrote first, and that answers nobody). False when it was kept before."""
    at = iso(event.occurred_at or ctx.received_at)
    touch = db.conn.execute(
        "SELECT id FROM touches WHERE source = ? AND conversation = ? AND dropped IS NULL"
        " AND occurred_at <= ? ORDER BY occurred_at DESC, id DESC LIMIT 1",
        (ctx.source, event.conversation, at),
    ).fetchone()
    cursor = db.conn.execute(
        "INSERT OR IGNORE INTO chat_replies (source, external_id, touch_id, conversation, journal_id, at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            ctx.source,
            event.external_id,
            touch[0] if touch else None,
            None if touch else event.conversation,
            ctx.journal_id,
            at,
        ),
    )
    return cursor.rowcount > 0


def _open_conversation(
    db: Database, ctx: EventContext, conversation: str, at: datetime
) -> tuple[int, bool] | None:
    """The conversation's touch that a message at ``at`` belongs to, and whether it comes before the
    touch's first message: the latest touch begun by ``at`` whose last message is no further from it
    than the gap, else the first one begun within the gap after it (a message a provider delivered
    late, after later ones). None when the message is further than the gap from every touch: then it
    starts its own, whatever order the messages came in."""
    stamp = iso(at)
    row = db.conn.execute(
        "SELECT t.id, COALESCE(MAX(m.at), t.occurred_at) FROM touches t"
        " LEFT JOIN chat_messages m ON m.touch_id = t.id"
        " WHERE t.id = (SELECT id FROM touches WHERE source = ? AND conversation = ? AND dropped IS NULL"
        " AND occurred_at <= ? ORDER BY occurred_at DESC, id DESC LIMIT 1)",
        (ctx.source, conversation, stamp),
    ).fetchone()
    if row is not None and row[0] is not None and at - parse_iso(str(row[1])) <= ctx.conversation_gap:
        return int(row[0]), False
    row = db.conn.execute(
        "SELECT id FROM touches WHERE source = ? AND conversation = ? AND dropped IS NULL"
        " AND occurred_at > ? AND occurred_at <= ? ORDER BY occurred_at, id LIMIT 1",
        (ctx.source, conversation, stamp, iso(at + ctx.conversation_gap)),
    ).fetchone()
    return (int(row[0]), True) if row is not None else None


def _continue(
    db: Database, touch_id: int, event: ContactEvent, ctx: EventContext, at: datetime, *, earlier: bool
) -> None:
    """Add a message to its conversation's touch: its text, and what it says about its person. One
    delivered late that came before the touch's first message becomes its start: the touch then
    begins when the person began writing, as it would have had the messages come in order."""
    if earlier:
        db.conn.execute(
            "UPDATE touches SET occurred_at = ?, updated_at = ? WHERE id = ?",
            (iso(at), iso(ctx.received_at), touch_id),
        )
    if event.message:
        db.conn.execute(
            "UPDATE touches SET message = substr(CASE WHEN message IS NULL OR message = '' THEN ?"
            " WHEN ? THEN ? || ? || message ELSE message || ? || ? END, 1, ?), updated_at = ? WHERE id = ?",
            (
                event.message,
                earlier,
                event.message,
                SEPARATOR,
                SEPARATOR,
                event.message,
                MAX_TEXT_CHARS,
                iso(ctx.received_at),
                touch_id,
            ),
        )
    idents = event_identifiers(event, ctx)
    if not idents:
        return
    [resolution] = resolve_contacts(db, [Claim(idents, event.name, at)], deadline=ctx.callback_deadline)
    if resolution is not None:  # a first message whose ids were all invalid made no contact
        db.conn.execute(
            "UPDATE touches SET contact_id = ? WHERE id = ? AND contact_id IS NULL",
            (resolution.contact_id, touch_id),
        )
