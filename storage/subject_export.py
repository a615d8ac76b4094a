"""What a person is shown of everything held about them (``leadline subject-export``): each row
whole, found by :func:`storage.subjects.subject_of` and the text scans of :mod:`storage.subject_scans`."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from sqlite_utils import Database

from storage.db import chunks
from storage.subject_scans import cards_of, scan
from storage.subjects import Subject, TouchColumn, subject_of, their_fields


def _rows(db: Database, sql: str, ids: Sequence[int]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for chunk in chunks(sorted(set(ids))):
        found += list(db.query(sql.replace("{marks}", ",".join("?" * len(chunk))), list(chunk)))
    return found


def _json_columns(row: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        if isinstance(row.get(name), str):
            row[name] = json.loads(row[name])
    return row


def raw_request(row: dict[str, Any]) -> dict[str, Any]:
    """A journal row as a person reads it: the body as text when it is text, else base64."""
    body = bytes(row.pop("body") or b"")
    try:
        row["body"], row["body_encoding"] = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        row["body"], row["body_encoding"] = base64.b64encode(body).decode("ascii"), "base64"
    row["headers"] = json.loads(row["headers"] or "[]")
    return row


def export_subject(db: Database, contact_id: int) -> dict[str, Any] | None:
    """Everything held about the person: contacts, identifiers, touches, registrations, leads with
    their changes, block-list entries, the raw requests, and what was said about them (Telegram
    messages, webhooks to a CRM, nudges, the bot's drafts), each row whole."""
    subject = subject_of(db, contact_id)
    if subject is None:
        return None
    found = scan(db, subject)
    people = subject.contact_ids
    leads = _rows(db, "SELECT * FROM leads WHERE id IN ({marks}) ORDER BY id", subject.lead_ids)
    changes = _rows(db, "SELECT * FROM lead_changes WHERE lead_id IN ({marks}) ORDER BY id", subject.lead_ids)
    for lead in leads:
        _json_columns(lead, "fields")
        lead["changes"] = [c for c in changes if c["lead_id"] == lead["id"]]
    blocked = [
        dict(zip(("kind", "value", "reason", "at"), r, strict=True))
        for kind, value, *_ in subject.identifiers
        for r in db.execute(
            "SELECT kind, value, reason, at FROM blocklist WHERE kind = ? AND value = ?", [kind, value]
        )
    ]
    requests = _rows(
        db,
        "SELECT id, source, provider, method, path, query_string, headers, body, body_size, remote, url, received_at,"
        " status, http_status, reason, note, processed_at, redacted, redacted_at FROM journal WHERE id IN ({marks})"
        " ORDER BY id",
        [*subject.journal_ids, *found.journal_ids],
    )
    return {
        "contact_id": subject.contact_id,
        "contacts": _rows(
            db,
            "SELECT id, name, created_at, updated_at, merged_into, blocked, do_not_contact, erased_at FROM contacts"
            " WHERE id IN ({marks}) ORDER BY id",
            people,
        ),
        "identifiers": [
            dict(zip(("kind", "value", "raw", "valid"), i, strict=True)) for i in subject.identifiers
        ],
        "touches": [
            _json_columns(t, "utm", "payload")
            for t in _rows(
                db, "SELECT * FROM touches WHERE id IN ({marks}) ORDER BY occurred_at, id", subject.touch_ids
            )
        ],
        # Another contact's touches that carry their number or address: only what names them,
        # since the rest of the touch is the other person's.
        "named_in_touches": _named_in_rows(db, subject),
        "registrations": _rows(
            db, "SELECT * FROM registrations WHERE id IN ({marks}) ORDER BY id", subject.registration_ids
        ),
        "leads": leads,
        "blocklist": blocked,
        "erasures": _rows(
            db,
            "SELECT id, at, origin, actor, reason, contact_id, kinds FROM erasures WHERE contact_id IN ({marks})",
            people,
        ),
        "requests": [raw_request(r) for r in requests],
        # What Leadline said about them, to staff and to a CRM, and what it keeps to say it.
        "messages": [
            _json_columns(m, "payload")
            for m in _rows(
                db,
                "SELECT id, chat_id, method, payload, status, created_at, sent_at FROM outbox"
                " WHERE id IN ({marks}) ORDER BY id",
                # Their cards only: a digest, a list or a search result that named them names
                # others too, and is erased for them (forget) but not shown to them.
                sorted(cards_of(db, subject)),
            )
        ],
        "webhooks": [_json_columns(w, "payload") for w in _deliveries(db, subject)],
        "nudges": _rows(
            db,
            "SELECT id, kind, level, staff_id, due_at, created_at, sent_at, acted_at FROM nudges"
            " WHERE id IN ({marks}) ORDER BY id",
            subject.nudge_ids,
        ),
        "drafts": [_json_columns(d, "data") for d in _drafts(db, people, subject.touch_ids)],
    }


def _deliveries(db: Database, subject: Subject) -> list[dict[str, Any]]:
    """The webhooks to a CRM about their registrations and leads, by the ids in the payload, as
    erasure finds them: the contact id there is the holder when it was queued, another person's if
    a merge has been undone since."""
    columns = (
        "SELECT id, endpoint, event_type, payload, status, created_at, delivered_at FROM webhook_deliveries"
        " WHERE json_valid(payload) AND"
    )
    found = {
        w["id"]: w
        for w in [
            *_rows(db, f"{columns} json_extract(payload, '$.data.lead_id') IN ({{marks}})", subject.lead_ids),
            *_rows(
                db,
                f"{columns} event_type = 'registration.created' AND json_extract(payload, '$.data.id') IN ({{marks}})",
                subject.registration_ids,
            ),
        ]
    }
    return [found[key] for key in sorted(found)]


def _named_in_rows(db: Database, subject: Subject) -> list[dict[str, Any]]:
    """Each touch of :attr:`Subject.named_in` with its id, time and channel, and what of it is the
    person's: the columns that name them, and the provider's fields that do."""
    columns: dict[int, list[TouchColumn]] = {}
    for touch_id, column in subject.named_in:
        columns.setdefault(touch_id, []).append(column)
    rows = _rows(db, "SELECT * FROM touches WHERE id IN ({marks}) ORDER BY occurred_at, id", list(columns))
    return [
        {"id": t["id"], "occurred_at": t["occurred_at"], "channel": t["channel"]}
        | {
            column: their_fields(t[column], subject.matcher) if column == "payload" else t[column]
            for column in columns[t["id"]]
        }
        for t in rows
    ]


def _drafts(db: Database, people: Sequence[int], touches: Sequence[int]) -> list[dict[str, Any]]:
    """The bot's unsaved cards about them, by contact or by touch, as erasure finds them."""
    columns = "SELECT key, state, data, contact_id, touch_id, updated_at FROM bot_states"
    found = {
        d["key"]: d
        for d in [
            *_rows(db, f"{columns} WHERE contact_id IN ({{marks}})", people),
            *_rows(db, f"{columns} WHERE touch_id IN ({{marks}})", touches),
        ]
    }
    return sorted(found.values(), key=lambda d: (d["updated_at"], d["key"]))
