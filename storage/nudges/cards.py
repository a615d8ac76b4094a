"""What a nudge message shows: its cards, read from the database in the write that queues it.

A renderer (``bot/nudge_texts.py``) turns a :class:`MessageView` into a Telegram payload
without touching the database, with as many of its cards as one message holds; this module gathers
the view: the contact's name, numbers and addresses, the touches behind the card, the lead, and for
an escalation who was asked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from storage.contacts import phones_and_emails
from storage.db import parse_iso
from storage.nudges.rules import Kind


@dataclass(frozen=True, slots=True)
class TouchLine:
    channel: str
    at: datetime
    source: str
    answered: bool | None
    #: The touch's id: what a ``📞 Call back`` button under the card carries.
    id: int = 0


@dataclass(frozen=True, slots=True)
class LeadLine:
    id: int
    temperature: str
    stage: str
    need: str | None
    follow_up_on: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Card:
    """What one card shows: the contact or lead, the touches behind it, and for level 1 who was asked."""

    kind: Kind
    level: int
    nudge_id: int
    round: int
    contact_id: int | None
    touch_id: int | None
    name: str | None
    phones: tuple[str, ...]
    emails: tuple[str, ...]
    touches: tuple[TouchLine, ...] = ()
    lead: LeadLine | None = None
    #: Level 1: the name of the person asked at level 0; "" for the team chat; None for the managers.
    asked: str | None = None
    tries: int = 0
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class MessageView:
    """One batched message: everything a renderer needs, no database access."""

    chat_id: int
    staff_id: int | None
    language: str
    tz: ZoneInfo
    cards: tuple[Card, ...]
    #: Cards due for this chat that wait for the next batch.
    more: int
    max_tries: int
    stale_days: int
    #: The config's language: what ``language`` falls back to when Leadline has no catalogue for it.
    office_language: str = "en"


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message as the renderer laid it out. What fits in one message is the renderer's call (it
    knows Telegram's limits); the cards it had no room for wait for the next message."""

    payload: dict[str, Any]
    #: How many of the view's cards the message shows: the first ones, at least one.
    cards: int


Render = Callable[[MessageView], Rendered]


def load_card(db: Database, group: Sequence[tuple[int, int]]) -> Card:
    """The card for nudges of one kind about one contact or lead, as the message will show it."""
    ids = [nid for nid, _ in group]
    marks = ",".join("?" * len(ids))
    rows = db.execute(
        "SELECT id, kind, level, subject, staff_id, contact_id, touch_id, lead_id, tries, outcome"
        f" FROM nudges WHERE id IN ({marks}) ORDER BY id",
        ids,
    ).fetchall()
    nid, kind, level, subject, _, contact_id, _, lead_id, tries, outcome = rows[0]
    touch_ids = [int(r[6]) for r in rows if r[6] is not None]
    touches: list[TouchLine] = []
    if touch_ids:
        tmarks = ",".join("?" * len(touch_ids))
        for channel, occurred, source, answered, current, tid in db.execute(
            f"SELECT channel, occurred_at, source, answered, contact_id, id FROM touches WHERE id IN ({tmarks})"
            " ORDER BY occurred_at, id",
            touch_ids,
        ):
            touches.append(
                TouchLine(
                    channel,
                    parse_iso(occurred),
                    source,
                    None if answered is None else bool(answered),
                    int(tid),
                )
            )
            contact_id = current or contact_id
    lead = None
    if lead_id is not None:
        row = db.execute(
            "SELECT id, temperature, stage, need, follow_up_on, updated_at, contact_id FROM leads WHERE id = ?",
            [lead_id],
        ).fetchone()
        if row is not None:
            lead = LeadLine(int(row[0]), row[1], row[2], row[3], row[4], parse_iso(row[5]))
            contact_id = row[6]
    name, phones, emails = _contact(db, contact_id)
    asked = None
    if level == 1:
        # An escalation tells what happened to the question asked: who, how many tries, given up or not.
        base = db.execute(
            "SELECT s.name, n.chat_id, n.tries, n.outcome FROM nudges n LEFT JOIN staff s ON s.id = n.staff_id"
            " WHERE n.kind = ? AND n.subject = ? AND n.level = 0",
            [kind, subject],
        ).fetchone()
        if base is not None:
            asked = base[0] if base[0] is not None else ("" if base[1] is not None else None)
            tries, outcome = base[2], base[3]
    return Card(
        kind=kind,
        level=int(level),
        nudge_id=int(nid),
        round=max(r for _, r in group),
        contact_id=contact_id,
        touch_id=touch_ids[-1] if touch_ids else None,
        name=name,
        phones=phones,
        emails=emails,
        touches=tuple(touches),
        lead=lead,
        asked=asked,
        tries=int(tries or 0),
        outcome=outcome,
    )


def _contact(db: Database, contact_id: int | None) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    if contact_id is None:
        return None, (), ()
    row = db.execute("SELECT name FROM contacts WHERE id = ?", [contact_id]).fetchone()
    phones, emails = phones_and_emails(db, contact_id)
    return (row[0] if row else None), tuple(phones), tuple(emails)
