"""What a provider's own ids say about a person goes with them: WhatsApp's message ids hold their number."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

from storage.db import open_database
from storage.events import ContactEvent
from tests.privacy.stored import AT, forget, store

PHONE = "79031234567"


def wamid(number: str, message: str) -> str:
    """A message id as WhatsApp makes them: base64 of a record that starts with the chat's number."""
    return (
        "wamid."
        + base64.b64encode(
            b"\x1c\x18\x0b" + number.encode() + b"\x15\x02\x00\x12\x18\x14" + message.encode()
        ).decode()
    )


def test_forgetting_a_whatsapp_customer_leaves_no_message_id_that_holds_their_number(tmp_path: Path) -> None:
    db = open_database(tmp_path / "leadline.db")
    events = []
    for n, text in enumerate(["hello", "are you there?"]):
        event = ContactEvent(
            channel="chat",
            external_id=f"whatsapp:{wamid(PHONE, f'3A4A6599AEE0381014{n}F')}",
            occurred_at=AT + timedelta(minutes=n),
            phones=(f"+{PHONE}",),
            name="Wanda",
            message=text,
            conversation="whatsapp:biz:79031234567",
        )
        events.append(event)
        store(db, event, source="wa")
    [contact] = [r[0] for r in db.execute("SELECT id FROM contacts")]
    erased = forget(db, contact, AT + timedelta(days=1))
    [touch] = [r[0] for r in db.execute("SELECT external_id FROM touches")]
    messages = [r[0] for r in db.execute("SELECT external_id FROM chat_messages ORDER BY at")]
    assert len(set(messages)) == 2 and touch == messages[0]  # one id per message, the same in both tables
    assert all(i.startswith("whatsapp:erased:") for i in [touch, *messages])
    assert erased.counts["message_ids"] == 3

    # Meta delivers at least once: a late duplicate of her first message is still no new message.
    store(db, events[0], source="wa")
    assert [
        r[0] for r in db.execute("SELECT COUNT(*) FROM touches UNION ALL SELECT COUNT(*) FROM contacts")
    ] == [1, 1]
    assert db.execute("SELECT COUNT(*) FROM identifiers").fetchone()[0] == 0
