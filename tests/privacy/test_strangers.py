"""Finding a person by their identifiers finds them, not a stranger whose identifiers contain theirs."""

from __future__ import annotations

import html
import json
from datetime import timedelta
from pathlib import Path

from multidict import CIMultiDict, CIMultiDictProxy
from sqlite_utils import Database

from capture.providers.base import RawRequest
from storage import journal
from storage.db import open_database
from storage.events import ContactEvent
from storage.outbox import enqueue
from storage.subject_export import export_subject
from tests.privacy.stored import AT, forget, store


def request(db: Database, fields: dict[str, str], status: str = "processed") -> int:
    """A site form's raw request as the journal keeps it."""
    raw = RawRequest(
        "site", "POST", "", "", CIMultiDictProxy(CIMultiDict()), json.dumps(fields).encode(), AT, "u", None
    )
    return journal.insert(db, raw, provider="generic_form", status=status)


def form(db: Database, key: str, **fields: str) -> int:
    """A form that became a touch; returns its contact."""
    jid = request(db, fields)
    event = ContactEvent(
        channel="form",
        external_id=key,
        occurred_at=AT,
        name=fields.get("name"),
        emails=(fields["email"],) if "email" in fields else (),
        handles=(("telegram_username", fields["telegram"]),) if "telegram" in fields else (),
    )
    store(db, event, journal_id=jid)
    row = db.execute("SELECT contact_id FROM touches WHERE external_id = ?", [key]).fetchone()
    return int(row[0])


def body(db: Database, journal_id: int) -> bytes:
    return bytes(db.execute("SELECT body FROM journal WHERE id = ?", [journal_id]).fetchone()[0])


def test_forgetting_ann_leaves_joann_and_alex_kowalski_whole_and_her_export_holds_neither(
    tmp_path: Path,
) -> None:
    db = open_database(tmp_path / "leadline.db")
    ann = form(db, "ann", email="ann@example.org", name="Ann", telegram="alex_k")
    joann = request(db, {"email": "joann@example.org", "name": "Joann"})
    joann_refused = request(db, {"e_mail": "joann@example.org", "name": "Joann"}, status="rejected")
    kowalski = request(db, {"email": "alex_kowalski@example.org", "name": "Kowalski"}, status="rejected")
    anns_refused = request(db, {"e_mail": "ann@example.org", "note": "tried again"}, status="rejected")
    # JSON writes the line break as \n, right before her address: still her, whole.
    about_ann = request(db, {"text": "Please write to my wife:\nann@example.org"})

    # A list sent to staff that named her among others: erased for her, not shown to her.
    listing = enqueue(
        db, 111, {"text": "Still not registered: ann@example.org, Joann joann@example.org"}, at=AT
    )

    exported = json.dumps(export_subject(db, ann), default=str)
    assert "Joann" not in exported and "Kowalski" not in exported and "tried again" in exported

    forget(db, ann, AT + timedelta(days=1))
    assert b"Joann" in body(db, joann) and b"Joann" in body(db, joann_refused)
    assert b"Kowalski" in body(db, kowalski)
    assert body(db, anns_refused) == body(db, about_ann) == b""
    assert db.execute("SELECT payload FROM outbox WHERE id = ?", [listing]).fetchone()[0] == "{}"


def test_an_address_with_an_apostrophe_is_found_whole_in_a_refused_form_and_a_list_sent_to_staff(
    tmp_path: Path,
) -> None:
    db = open_database(tmp_path / "leadline.db")
    sean = form(db, "sean", email="Sean.O'Brien@example.org", name="Sean")
    # A form refused for a field the parser did not know yet: a replay once it is fixed would bring
    # him back.
    refused = request(db, {"contact_mail": "Sean.O'Brien@example.org", "text": "call me"}, status="rejected")
    obrien = request(db, {"contact_mail": "o'brien@example.org", "name": "Obrien"}, status="rejected")
    # A list sent to staff: Telegram's HTML writes his address as sean.o&#x27;brien@example.org.
    escaped = html.escape("sean.o'brien@example.org")
    listing = enqueue(db, 111, {"text": f"Still not registered: {escaped}, Joann"}, at=AT)

    shown = export_subject(db, sean)
    assert shown is not None and refused in [r["id"] for r in shown["requests"]]
    assert obrien not in [r["id"] for r in shown["requests"]]

    forget(db, sean, AT + timedelta(days=1))
    assert body(db, refused) == b""
    [row] = db.execute("SELECT status, http_status, redacted FROM journal WHERE id = ?", [refused]).fetchall()
    assert row == ("rejected", 410, "erased")
    assert b"Obrien" in body(db, obrien)
    assert db.execute("SELECT payload FROM outbox WHERE id = ?", [listing]).fetchone()[0] == "{}"


def test_a_retry_stored_before_its_link_is_found_by_the_address_as_typed(tmp_path: Path) -> None:
    """A provider's retry journalled before retries were tied to their touch names the person only
    in its text, and a processed request is searched by its bytes: the address as typed is one."""
    db = open_database(tmp_path / "leadline.db")
    ann = form(db, "ann", email="Ann.B@Example.org", name="Ann")
    retry = request(db, {"email": "Ann.B@Example.org", "name": "Ann"})

    shown = export_subject(db, ann)
    assert shown is not None and retry in [r["id"] for r in shown["requests"]]
    forget(db, ann, AT + timedelta(days=1))
    assert body(db, retry) == b""
