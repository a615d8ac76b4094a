"""The call-back marks of missed calls, judged from a contact's calls.

Apart from :mod:`storage.calls`, which folds a PBX's events into calls, because a merge and its
undo move calls between contacts too (:mod:`storage.merges`, which capture's calls reach when
:mod:`storage.dedup` resolves their callers) and must judge the marks again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlite_utils import Database

from storage.db import iso, parse_iso

#: By when a call missed at a moment must be called back: the call-back SLA of the config.
Deadline = Callable[[datetime], datetime]

#: Used when no working-time calendar is given.
DEFAULT_CALLBACK_WINDOW = timedelta(minutes=30)

#: No call-back SLA reaches further than this, even over the longest run of holidays.
CALLBACK_HORIZON = timedelta(days=21)


def default_deadline(missed_at: datetime) -> datetime:
    """The deadline without a calendar: 30 real minutes."""
    return missed_at + DEFAULT_CALLBACK_WINDOW


def recompute_callbacks(
    db: Database,
    contact_id: int,
    deadline: Deadline,
    at: datetime,
    around: datetime | None = None,
) -> None:
    """Mark each missed inbound call of the contact with the first answered call by its ``deadline``
    (``at``: when, for the rows' ``updated_at``).

    With ``around`` (the changed call's start), calls long before it are left alone: a busy number's
    whole history must not be re-read by the single writer on every event.
    """
    since = iso(around - CALLBACK_HORIZON) if around else ""
    rows = db.conn.execute(
        "SELECT id, direction, occurred_at, answered, call_final, called_back_at, called_back_by"
        " FROM touches WHERE contact_id = ? AND channel = 'call' AND occurred_at >= ? ORDER BY occurred_at, id",
        (contact_id, since),
    ).fetchall()
    answers = [(parse_iso(r[2]), int(r[0])) for r in rows if r[3] == 1]
    for touch_id, direction, occurred_at, answered, final, back_at, back_by in rows:
        by = None
        if direction == "in" and final and not answered:
            missed_at = parse_iso(occurred_at)
            due = deadline(missed_at)
            by = next(
                ((when, tid) for when, tid in answers if tid != touch_id and missed_at <= when <= due), None
            )
        mark = (iso(by[0]), by[1]) if by else (None, None)
        if mark != (back_at, back_by):
            db.execute(
                "UPDATE touches SET called_back_at = ?, called_back_by = ?, updated_at = ? WHERE id = ?",
                [mark[0], mark[1], iso(at), touch_id],
            )
