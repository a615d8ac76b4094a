"""The buttons of a nudge card: each acts on the whole card (every open nudge of the same kind about
the same contact or lead), and a card someone else closed first is reported, not acted on again."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from storage.db import chunks, iso
from storage.errors import ReminderGone, SnoozeTooShort
from storage.nudges.due import ESCALATES_SQL
from storage.nudges.people import Directory
from storage.nudges.rules import KINDS, LEAD_KINDS, NudgeRules
from storage.registrations import change_lead


@dataclass(frozen=True, slots=True)
class Nudge:
    """A nudge as a button handler needs it."""

    id: int
    kind: str
    level: int
    contact_id: int | None
    touch_id: int | None
    lead_id: int | None
    staff_id: int | None
    round: int
    tries: int
    outcome: str | None
    closed_at: str | None
    #: The chat it was sent to: its owner's, or the team chat when the owner cannot be reached.
    chat_id: int | None = None
    #: When it is shown again after "Can't reach" or "Remind me later", if it is to be.
    snoozed_until: str | None = None


@dataclass(frozen=True, slots=True)
class Acted:
    """What a button did: ``outcome`` is called_back, retry, unreachable, snoozed, done, later or lost.

    ``already`` is True when the card had been closed before (someone else acted, or the question
    was answered): nothing changed, and the bot can say so.
    """

    nudge_ids: tuple[int, ...]
    outcome: str
    already: bool = False
    remind_at: datetime | None = None
    tries: int = 0
    #: For a card given up: whether that sends it on to a manager (a level-0 card asked of a person
    #: or the team chat, with a manager besides the person asked), so the bot promises no more.
    escalates: bool = False


def get_nudge(db: Database, nudge_id: int) -> Nudge | None:
    row = db.execute(
        "SELECT id, kind, level, contact_id, touch_id, lead_id, staff_id, round, tries, outcome, closed_at,"
        " chat_id, snoozed_until FROM nudges WHERE id = ?",
        [nudge_id],
    ).fetchone()
    return Nudge(*row) if row else None


def _nudge(db: Database, nudge_id: int, kinds: Iterable[str]) -> Nudge:
    nudge = get_nudge(db, nudge_id)
    allowed = tuple(kinds)
    if nudge is None or nudge.kind not in allowed:
        raise ReminderGone(nudge_id)
    return nudge


def _card_ids(db: Database, nudge: Nudge, *, same_level: bool) -> list[int]:
    """Open nudges of the same kind about the same contact (or lead): what one card stands for.

    A card's own buttons ("Can't reach", "Remind me later") pass over the calls of a card given up
    before it (``unreachable``, still open for "Called back"): a new missed call is asked on its own.
    """
    level_sql = " AND level = ?" if same_level else ""
    level = [nudge.level] if same_level else []
    if same_level and nudge.outcome != "unreachable":
        level_sql += " AND IFNULL(outcome, '') != 'unreachable'"
    if nudge.kind in LEAD_KINDS:
        rows = db.execute(
            f"SELECT id FROM nudges WHERE lead_id = ? AND kind = ? AND closed_at IS NULL{level_sql}",
            [nudge.lead_id, nudge.kind, *level],
        )
    else:
        rows = db.execute(
            f"SELECT id FROM nudges WHERE contact_id = ? AND kind = ? AND closed_at IS NULL{level_sql}",
            [nudge.contact_id, nudge.kind, *level],
        )
    ids = {int(r[0]) for r in rows}
    if nudge.closed_at is None:
        ids.add(nudge.id)
    return sorted(ids)


def _mark(
    db: Database, ids: Sequence[int], *, outcome: str, staff_id: int | None, at: datetime, close: bool
) -> None:
    stamp = iso(at)
    for chunk in chunks(ids):
        marks = ",".join("?" * len(chunk))
        db.execute(
            "UPDATE nudges SET outcome = ?, acted_at = COALESCE(acted_at, ?), acted_by = COALESCE(acted_by, ?)"
            + (", closed_at = ?" if close else "")
            + f" WHERE id IN ({marks})",
            [outcome, stamp, staff_id, *([stamp] if close else []), *chunk],
        )
        if close:
            db.execute(
                f"DELETE FROM nudge_deliveries WHERE message_id IS NULL AND nudge_id IN ({marks})",
                list(chunk),
            )


def _already(nudge: Nudge) -> Acted | None:
    if nudge.closed_at is not None:
        return Acted((nudge.id,), nudge.outcome or "closed", already=True, tries=nudge.tries)
    return None


def _remind(
    db: Database, ids: Sequence[int], *, chat_id: int, staff_id: int | None, at: datetime, until: datetime
) -> None:
    """Owe each nudge one more delivery (the next round) to the chat the button was pressed in."""
    for nid in ids:
        db.execute("UPDATE nudges SET round = round + 1, snoozed_until = ? WHERE id = ?", [iso(until), nid])
        db.execute(
            "INSERT OR IGNORE INTO nudge_deliveries (nudge_id, chat_id, round, staff_id, not_before)"
            " SELECT id, ?, round, ?, ? FROM nudges WHERE id = ?",
            [chat_id, staff_id, iso(until), nid],
        )


def mark_called_back(db: Database, nudge_id: int, *, staff_id: int | None, at: datetime) -> Acted:
    """ "Called back": closes every open call-back nudge about the contact, at every level."""
    nudge = _nudge(db, nudge_id, ("callback",))
    if (done := _already(nudge)) is not None:
        return done
    ids = _card_ids(db, nudge, same_level=False)
    _mark(db, ids, outcome="called_back", staff_id=staff_id, at=at, close=True)
    return Acted(tuple(ids), "called_back", tries=nudge.tries)


def cant_reach(
    db: Database, nudge_id: int, *, staff_id: int | None, chat_id: int, at: datetime, rules: NudgeRules
) -> Acted:
    """ "Can't reach": ask again after ``callback_retry_minutes``, until ``callback_tries`` are used up;
    then the card stays open as ``unreachable`` and (at level 0) goes to the managers at once.

    A try is a call an interval apart, not a tap: while the reminder it set is still to come, another
    tap (a double tap, Telegram delivering it twice, a second person on a team-chat card) changes
    nothing and says when the reminder comes, so taps alone never use up the tries.
    """
    nudge = _nudge(db, nudge_id, ("callback",))
    if (done := _already(nudge)) is not None:
        return done
    ids = _card_ids(db, nudge, same_level=True)
    if nudge.outcome == "retry" and nudge.snoozed_until is not None:
        pending = datetime.fromisoformat(nudge.snoozed_until)
        if pending > at:
            return Acted(tuple(ids), "retry", remind_at=pending, tries=nudge.tries)
    tries = nudge.tries + 1
    for chunk in chunks(ids):
        marks = ",".join("?" * len(chunk))
        db.execute(f"UPDATE nudges SET tries = ? WHERE id IN ({marks})", [tries, *chunk])
    if tries >= rules.callback_tries:
        _mark(db, ids, outcome="unreachable", staff_id=staff_id, at=at, close=False)
        return Acted(tuple(ids), "unreachable", tries=tries, escalates=_escalates(db, nudge))
    until = rules.retry_at(at)
    _mark(db, ids, outcome="retry", staff_id=staff_id, at=at, close=False)
    _remind(db, ids, chat_id=chat_id, staff_id=staff_id, at=at, until=until)
    return Acted(tuple(ids), "retry", remind_at=until, tries=tries)


def _escalates(db: Database, nudge: Nudge) -> bool:
    """Whether the next sweep tells someone of ``nudge`` given up, as storage/nudges/due.py decides:
    a level-1 card, or one that went to every manager, has nobody further to go, nor has a card
    asked of the only manager."""
    row = db.execute(f"SELECT 1 FROM nudges n WHERE n.id = ? AND {ESCALATES_SQL}", [nudge.id]).fetchone()
    return row is not None and bool(Directory.load(db).recipients(None, None, nudge.staff_id))


def snooze(
    db: Database, nudge_id: int, *, staff_id: int | None, chat_id: int, at: datetime, until: datetime
) -> Acted:
    """Show the card again at ``until`` in this chat. Escalation still counts from the first ask.

    The newest snooze replaces a reminder still to come in the chat, so a double tap (or a tap
    Telegram delivers twice) brings the card back once, at the time the last answer named.
    """
    nudge = _nudge(db, nudge_id, KINDS)
    if (done := _already(nudge)) is not None:
        return done
    ids = _card_ids(db, nudge, same_level=True)
    _mark(db, ids, outcome="snoozed", staff_id=staff_id, at=at, close=False)
    for chunk in chunks(ids):
        marks = ",".join("?" * len(chunk))
        db.execute(
            "DELETE FROM nudge_deliveries WHERE chat_id = ? AND round > 0 AND message_id IS NULL"
            f" AND nudge_id IN ({marks})",
            [chat_id, *chunk],
        )
    _remind(db, ids, chat_id=chat_id, staff_id=staff_id, at=at, until=until)
    return Acted(tuple(ids), "snoozed", remind_at=until, tries=nudge.tries)


def follow_up_done(db: Database, nudge_id: int, *, staff_id: int | None, at: datetime) -> Acted:
    """ "Done": the follow-up happened; the date is cleared on the lead (recorded as a lead change)."""
    nudge = _nudge(db, nudge_id, LEAD_KINDS)
    if (done := _already(nudge)) is not None:
        return done
    ids = _card_ids(db, nudge, same_level=False)
    _mark(db, ids, outcome="done", staff_id=staff_id, at=at, close=True)
    if nudge.lead_id is not None:
        change_lead(db, nudge.lead_id, at=at, staff_id=staff_id, follow_up_on=None)
    return Acted(tuple(ids), "done")


def follow_up_later(
    db: Database, nudge_id: int, *, staff_id: int | None, at: datetime, days: int, tz: ZoneInfo
) -> Acted:
    """ "Snooze 1 day / 1 week": the lead's follow-up date moves to that day, which nudges again then."""
    if days <= 0:
        raise SnoozeTooShort(days)
    nudge = _nudge(db, nudge_id, LEAD_KINDS)
    if (done := _already(nudge)) is not None:
        return done
    ids = _card_ids(db, nudge, same_level=False)
    day = at.astimezone(tz).date() + timedelta(days=days)
    _mark(db, ids, outcome="later", staff_id=staff_id, at=at, close=True)
    if nudge.lead_id is not None:
        change_lead(db, nudge.lead_id, at=at, staff_id=staff_id, follow_up_on=day)
    return Acted(tuple(ids), "later", remind_at=datetime.combine(day, time(0), tzinfo=tz))


def follow_up_lost(db: Database, nudge_id: int, *, staff_id: int | None, at: datetime, reason: str) -> Acted:
    """ "Lost", with the reason the bot asked for (it is the lead's ``lost_reason``)."""
    nudge = _nudge(db, nudge_id, LEAD_KINDS)
    if (done := _already(nudge)) is not None:
        return done
    ids = _card_ids(db, nudge, same_level=False)
    if nudge.lead_id is not None:
        change_lead(db, nudge.lead_id, at=at, staff_id=staff_id, stage="lost", reason=reason)
    _mark(db, ids, outcome="lost", staff_id=staff_id, at=at, close=True)
    return Acted(tuple(ids), "lost")


def callback_nudge(db: Database, touch_id: int, *, staff_id: int | None, chat_id: int, at: datetime) -> int:
    """The call-back nudge of a missed call, made now if its card on arrival is answered before the
    SLA made one, so "Called back" and "Can't reach" on that card act exactly as on the nudge."""
    row = db.execute(
        "SELECT id FROM nudges WHERE kind = 'callback' AND subject = ? AND level = 0", [f"touch:{touch_id}"]
    ).fetchone()
    if row is not None:
        return int(row[0])
    touch = db.execute(
        "SELECT contact_id FROM touches WHERE id = ? AND channel = 'call' AND answered = 0", [touch_id]
    ).fetchone()
    if touch is None or touch[0] is None:
        raise ReminderGone(touch_id)
    stamp = iso(at)
    cursor = db.execute(
        "INSERT INTO nudges (kind, subject, level, staff_id, chat_id, due_at, created_at, contact_id, touch_id)"
        " VALUES ('callback', ?, 0, ?, ?, ?, ?, ?, ?)",
        [f"touch:{touch_id}", staff_id, chat_id, stamp, stamp, int(touch[0]), touch_id],
    )
    return int(cursor.lastrowid or 0)
