"""Call-backs under way: one ``📞 Call back`` per contact at a time, whoever presses and wherever.

Two presses (an impatient double tap, two managers, two processes) must not ring twice. A press
claims the contact with one INSERT that conflicts with a live claim, so of two simultaneous presses
exactly one gets the row, whichever process runs it. A claim lives until ``expires_at``, until the
PBX refuses the command (the pressing code gives it back), or until the outbound call's final event
arrives (:func:`storage.calls.apply_call_event` ends it): the call-back is over, a new press may dial.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from storage.db import iso, parse_iso


@dataclass(frozen=True, slots=True)
class DialUnderWay:
    """The call-back that holds a contact: when it started, who pressed, and on which touch's card
    (whose number it dials, which may not be the number of the card pressed second)."""

    started_at: datetime
    staff_name: str
    touch_id: int


def claim_dial(
    db: Database, *, contact_id: int, touch_id: int, staff_id: int, at: datetime, until: datetime
) -> DialUnderWay | None:
    """Take the contact for a call-back from ``at`` to ``until``; None when taken (dial), else the
    call-back under way (do not dial). An expired claim is replaced in the same statement."""
    taken = db.execute(
        "INSERT INTO dial_claims (contact_id, touch_id, staff_id, started_at, expires_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (contact_id) DO UPDATE SET touch_id = excluded.touch_id, staff_id = excluded.staff_id,"
        " started_at = excluded.started_at, expires_at = excluded.expires_at"
        " WHERE dial_claims.expires_at <= excluded.started_at"
        " RETURNING contact_id",
        [contact_id, touch_id, staff_id, iso(at), iso(until)],
    ).fetchall()
    if taken:
        return None
    row = db.execute(
        "SELECT c.started_at, s.name, c.touch_id FROM dial_claims c JOIN staff s ON s.id = c.staff_id"
        " WHERE c.contact_id = ?",
        [contact_id],
    ).fetchone()
    return DialUnderWay(parse_iso(str(row[0])), str(row[1]), int(row[2]))


def give_back_dial(db: Database, *, contact_id: int, staff_id: int, at: datetime) -> None:
    """The PBX did not take the press's command: its claim goes, so the next press dials at once."""
    db.execute(
        "DELETE FROM dial_claims WHERE contact_id = ? AND staff_id = ? AND started_at = ?",
        [contact_id, staff_id, iso(at)],
    )


def end_dials(db: Database, *, contact_id: int, at: datetime) -> None:
    """An outbound call to the contact has ended: the call-backs pressed before it are over."""
    db.execute("DELETE FROM dial_claims WHERE contact_id = ? AND started_at <= ?", [contact_id, iso(at)])
