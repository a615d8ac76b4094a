"""Registrations and leads: the step the product exists for, as plain functions over the database.

Registering someone goes through ``storage.register.register``, which finds whom (and checks a
card is still current with :func:`current_contact`) and writes the rows with
:func:`record_registration`. Every change to a lead goes through :func:`change_lead`, which checks
the move is allowed and records who made it and when.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlite_utils import Database

from storage.contacts import live_contact
from storage.db import iso
from storage.errors import (
    AlreadyRegistered,
    BadDisposition,
    BadTemperature,
    ContactMerged,
    FieldRequired,
    NoContact,
    NoLead,
    NotEditable,
    NoTouch,
    ReasonRequired,
    StageNotAllowed,
    StageReasonRequired,
    WonAmountRequired,
)

Disposition = Literal["lead", "not_a_lead"]
Temperature = Literal["hot", "warm", "cold"]
Stage = Literal["new", "qualified", "accepted", "returned", "won", "lost"]

REASONS = ("partner", "job_seeker", "spam", "wrong_number", "existing_client", "other")
TEMPERATURES: tuple[Temperature, ...] = ("hot", "warm", "cold")
STAGES: tuple[Stage, ...] = ("new", "qualified", "accepted", "returned", "won", "lost")

#: Which stage may follow which: marketing qualifies, sales accepts or returns, then won or lost.
MOVES: Mapping[str, frozenset[str]] = {
    "new": frozenset({"qualified", "lost"}),
    "qualified": frozenset({"accepted", "returned", "lost"}),
    "returned": frozenset({"qualified", "lost"}),
    "accepted": frozenset({"won", "lost"}),
    "won": frozenset(),
    "lost": frozenset({"new"}),
}


@dataclass(frozen=True, slots=True)
class Registered:
    registration_id: int
    contact_id: int
    lead_id: int | None
    #: Whether the registration made the contact (nobody in the base had its phone or email).
    contact_created: bool = False


def _missing_fields(
    db: Database, contact_id: int, need: str | None, fields: Mapping[str, Any] | None, required: Sequence[str]
) -> list[str]:
    """The required fields left empty or blank, read as the bot's form reads them: ``name`` is the
    contact's, ``need`` the lead's own, any other one of ``fields``."""

    def given(name: str) -> Any:
        if name == "name":
            row = db.execute("SELECT name FROM contacts WHERE id = ?", [contact_id]).fetchone()
            return row[0] if row else None
        return need if name == "need" else (fields or {}).get(name)

    return [name for name in dict.fromkeys(required) if not str(given(name) or "").strip()]


def record_registration(
    db: Database,
    contact_id: int,
    disposition: Disposition,
    *,
    at: datetime,
    staff_id: int | None = None,
    reason: str | None = None,
    temperature: Temperature | None = None,
    touch_id: int | None = None,
    campaign: str | None = None,
    origin: str = "bot",
    need: str | None = None,
    fields: Mapping[str, Any] | None = None,
    follow_up_on: date | None = None,
    amount: float | None = None,
    owner_id: int | None = None,
    note: str | None = None,
    required: Sequence[str] = (),
) -> Registered:
    """Record a contact with a disposition; a lead also gets its lead row.

    The campaign defaults to that of the contact's first touch (DESIGN.md's attribution rule).
    A lead must have the ``required`` fields (``[lead_fields] required``), given by whoever checks
    them here rather than on a form of their own.
    """
    contact_id = live_contact(db, contact_id)
    if db.execute("SELECT 1 FROM contacts WHERE id = ?", [contact_id]).fetchone() is None:
        raise NoContact(contact_id)
    if disposition == "lead":
        if temperature not in TEMPERATURES:
            raise BadTemperature(temperature)
        if missing := _missing_fields(db, contact_id, need, fields, required):
            raise FieldRequired(tuple(missing))
        reason = None
    elif disposition == "not_a_lead":
        if reason not in REASONS:
            raise ReasonRequired(REASONS)
    else:
        raise BadDisposition(disposition)
    campaign = campaign or first_touch_campaign(db, contact_id)
    stamp = iso(at)
    registration_id = int(
        db.execute(
            "INSERT INTO registrations (contact_id, touch_id, disposition, reason, campaign, staff_id, origin, note,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [contact_id, touch_id, disposition, reason, campaign, staff_id, origin, note, stamp],
        ).lastrowid
        or 0
    )
    lead_id = None
    if disposition == "lead":
        lead_id = int(
            db.execute(
                "INSERT INTO leads (contact_id, registration_id, temperature, stage, owner_id, campaign, need, fields,"
                " follow_up_on, amount, created_at, updated_at) VALUES (?, ?, ?, 'new', ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    contact_id,
                    registration_id,
                    temperature,
                    owner_id if owner_id is not None else staff_id,
                    campaign,
                    need,
                    json.dumps(dict(fields or {}), ensure_ascii=False),
                    follow_up_on.isoformat() if follow_up_on else None,
                    amount,
                    stamp,
                    stamp,
                ],
            ).lastrowid
            or 0
        )
        _record(db, lead_id, "stage", None, "new", staff_id, stamp)
    return Registered(registration_id, contact_id, lead_id)


@dataclass(frozen=True)
class Registration:
    disposition: str
    reason: str | None
    staff_name: str | None
    created_at: str
    lead_id: int | None
    temperature: str | None
    #: Who registered: ``bot`` (staff, named by ``staff_name``), ``api`` or ``system`` (a source's rule).
    origin: str = "bot"


def registration_of(db: Database, contact_id: int) -> Registration | None:
    row = db.execute(
        "SELECT r.disposition, r.reason, s.name, r.created_at, l.id, l.temperature, r.origin FROM registrations r"
        " LEFT JOIN staff s ON s.id = r.staff_id LEFT JOIN leads l ON l.registration_id = r.id"
        " WHERE r.contact_id = ? ORDER BY r.created_at DESC, r.id DESC LIMIT 1",
        [contact_id],
    ).fetchone()
    return Registration(*row) if row else None


def first_touch_campaign(db: Database, contact_id: int) -> str | None:
    row = db.execute(
        "SELECT campaign FROM touches WHERE contact_id = ? AND campaign IS NOT NULL ORDER BY occurred_at, id LIMIT 1",
        [contact_id],
    ).fetchone()
    return str(row[0]) if row else None


def is_erased(db: Database, contact_id: int) -> bool:
    row = db.execute("SELECT 1 FROM contacts WHERE id = ? AND erased_at IS NOT NULL", [contact_id]).fetchone()
    return row is not None


def is_registered(db: Database, contact_id: int) -> bool:
    row = db.execute("SELECT 1 FROM registrations WHERE contact_id = ? LIMIT 1", [contact_id]).fetchone()
    return row is not None


def _record(
    db: Database, lead_id: int, field: str, old: Any, new: Any, staff_id: int | None, stamp: str
) -> None:
    db.execute(
        "INSERT INTO lead_changes (lead_id, field, old, new, staff_id, at) VALUES (?, ?, ?, ?, ?, ?)",
        [
            lead_id,
            field,
            None if old is None else str(old),
            None if new is None else str(new),
            staff_id,
            stamp,
        ],
    )


_EDITABLE = ("temperature", "owner_id", "follow_up_on", "amount", "need", "campaign")


def change_lead(
    db: Database,
    lead_id: int,
    *,
    at: datetime,
    staff_id: int | None = None,
    stage: Stage | None = None,
    reason: str | None = None,
    won_amount: float | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """Move a lead's stage and/or edit its fields; every change is recorded. Returns the new row."""
    row = db.execute("SELECT * FROM leads WHERE id = ?", [lead_id]).fetchone()
    if row is None:
        raise NoLead(lead_id)
    names = [d[0] for d in db.execute("SELECT * FROM leads LIMIT 0").description]
    lead = dict(zip(names, row, strict=True))
    stamp = iso(at)
    updates: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in _EDITABLE:
            raise NotEditable(key)
        if key == "temperature" and value not in TEMPERATURES:
            raise BadTemperature(value)
        if isinstance(value, date):
            value = value.isoformat()
        if lead[key] != value:
            updates[key] = value
    if won_amount is not None and lead["stage"] == "won" and stage in (None, "won"):
        # A won lead has no moves left, but its amount was typed by a person and may be wrong: the
        # revenue and program cost share of its month would stay wrong with no way to mend them.
        if lead["won_amount"] != won_amount:
            updates["won_amount"] = won_amount
    elif won_amount is not None and stage is None:
        raise NotEditable("won_amount")  # only a won lead has a won amount
    if stage is not None and stage != lead["stage"]:
        if stage not in MOVES.get(lead["stage"], frozenset()):
            raise StageNotAllowed(lead["stage"], stage, tuple(sorted(MOVES[lead["stage"]])))
        if stage in ("lost", "returned") and not reason:
            raise StageReasonRequired(stage)
        if stage == "won" and won_amount is None:
            raise WonAmountRequired()
        updates["stage"] = stage
        # The first time only: a lead sent back and qualified again was qualified in the month it
        # first was, and that month's goal progress must not fall afterwards (lead_changes keeps each).
        if stage == "qualified" and lead["qualified_at"] is None:
            updates["qualified_at"] = stamp
        elif stage == "accepted" and lead["accepted_at"] is None:
            updates["accepted_at"] = stamp
        elif stage == "returned":
            updates["returned_reason"] = reason
        elif stage == "won":
            updates["won_amount"] = won_amount
            updates["closed_at"] = stamp
        elif stage == "lost":
            updates["lost_reason"] = reason
            updates["closed_at"] = stamp
        elif stage == "new":
            updates["closed_at"] = None
            updates["lost_reason"] = None
    if not updates:
        return lead
    for key, value in updates.items():
        if key in ("stage", *_EDITABLE, "won_amount", "lost_reason", "returned_reason"):
            _record(db, lead_id, key, lead[key], value, staff_id, stamp)
    assignments = ", ".join(f"{k} = ?" for k in updates)
    db.execute(
        f"UPDATE leads SET {assignments}, updated_at = ? WHERE id = ?", [*updates.values(), stamp, lead_id]
    )
    lead.update(updates)
    lead["updated_at"] = stamp
    return lead


@dataclass(frozen=True)
class Draft:
    """A registration as its edge collected it: the bot's card, the API's body, the demo's story."""

    disposition: str
    temperature: Temperature | None = None
    reason: str | None = None
    name: str | None = None
    need: str | None = None
    fields: Mapping[str, Any] | None = None
    campaign: str | None = None
    owner_id: int | None = None
    follow_up_on: date | None = None
    amount: float | None = None
    block: bool = False
    note: str | None = None


def current_contact(db: Database, touch_id: int, seen_contact: int) -> int:
    """The touch's contact now; raises if it was erased, merged away or registered since the card
    was drawn. An erased person is nobody to register: the name and need a registration writes would
    bring back what the erasure took (storage/erasure.py)."""
    row = db.execute("SELECT contact_id FROM touches WHERE id = ?", [touch_id]).fetchone()
    if row is None or row[0] is None:
        raise NoTouch(touch_id)
    contact_id = live_contact(db, int(row[0]))
    if is_erased(db, contact_id):
        raise NoContact(contact_id)
    seen_now = live_contact(db, seen_contact)
    if contact_id != seen_contact and seen_now == contact_id:
        raise ContactMerged(seen_contact, contact_id)
    if is_registered(db, contact_id):
        raise AlreadyRegistered(contact_id)
    return contact_id
