"""Cards on arrival given on after the pass: by a manager to someone else, or off a chat Telegram
refused for good to whoever the rule picks without it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlite_utils import Database

from storage.arrival_cards import (
    ArrivalPass,
    ArrivalRules,
    Render,
    assignee,
    card_view,
    owners_and_managers,
    redraw,
    staff_on_telegram,
    view_of,
)
from storage.db import iso
from storage.outbox import enqueue
from storage.unreachable import refused_for_good


@dataclass(frozen=True, slots=True)
class Given:
    """A card given to someone else: the outbox rows (the old card's edit, the new card)."""

    outbox_ids: tuple[int, ...]
    to_chat: int
    already: bool = False


def give_card(
    db: Database, touch_id: int, staff_id: int, *, at: datetime, rules: ArrivalRules, render: Render
) -> Given:
    """A manager gives the open card drawn for ``touch_id`` to ``staff_id``: the touches are theirs now
    (``assignee_id``), the old message says to whom it went and loses its buttons, and the new owner
    gets the card. A card closed meanwhile (registered, given already) is reported, not given again."""
    people = staff_on_telegram(db)
    to = people.get(staff_id)
    row = db.execute(
        "SELECT a.id, a.contact_id, a.chat_id, a.staff_id, a.first_touch_id, a.outbox_id, o.status, o.message_id"
        " FROM arrival_cards a JOIN outbox o ON o.id = a.outbox_id"
        " WHERE a.last_touch_id = ? AND a.closed_at IS NULL ORDER BY a.id DESC LIMIT 1",
        [touch_id],
    ).fetchone()
    if row is None or to is None:
        return Given((), 0, already=True)
    card_id, contact_id, chat_id, old_staff, first, outbox_id, status, message_id = row
    view = card_view(db, touch_id, rules)
    if view is None:
        return Given((), 0, already=True)
    ids: list[int] = []
    if status != "sending":
        old = replace(view, given_to=to.name)
        ids += redraw(db, at, int(chat_id), int(outbox_id), str(status), message_id, render(old))
    db.execute("UPDATE arrival_cards SET closed_at = ? WHERE id = ?", [iso(at), card_id])
    db.execute(
        "UPDATE touches SET assignee_id = ?, given_at = ? WHERE id BETWEEN ? AND ? AND contact_id = ?"
        " AND arrival = 'card' AND assignee_id IS ?",
        [to.id, iso(at), first, touch_id, contact_id, old_staff],
    )
    new_view = replace(view, chat_id=to.chat_id, language=to.language or rules.language)
    new_outbox = enqueue(db, to.chat_id, render(new_view), at=at)
    assert new_outbox is not None
    db.execute(
        "INSERT INTO arrival_cards (kind, contact_id, staff_id, chat_id, first_touch_id, last_touch_id, touches,"
        " lead_id, outbox_id, opened_at, last_at) SELECT kind, contact_id, ?, ?, first_touch_id, last_touch_id,"
        " touches, lead_id, ?, ?, last_at FROM arrival_cards WHERE id = ?",
        [to.id, to.chat_id, new_outbox, iso(at), card_id],
    )
    return Given((*ids, new_outbox), to.chat_id)


def chat_refused(
    db: Database, row_id: int, chat_id: int, error: str, at: datetime, *, rules: ArrivalRules, render: Render
) -> list[int]:
    """Telegram refused an outbox row for good because its chat is gone (the sender judged so): in
    one write the row is failed, the chat counts as unreachable, and the open cards the row was (a
    card, or a nudge about its contacts' cards) go to whoever the rule picks without that chat, else
    the team chat, else the first owner or manager. Returns the new cards' outbox rows."""
    refused_for_good(db, row_id, chat_id, error, at)
    cards = db.execute(
        "SELECT a.id, a.kind, a.contact_id, a.staff_id, a.first_touch_id, a.last_touch_id, a.touches,"
        " a.lead_id, t.source, t.channel FROM arrival_cards a JOIN touches t ON t.id = a.first_touch_id"
        " WHERE a.closed_at IS NULL AND a.chat_id = ? AND (a.outbox_id = ? OR a.contact_id IN ("
        "  SELECT c.contact_id FROM nudge_messages m JOIN nudge_deliveries d ON d.message_id = m.id"
        "  JOIN nudges n ON n.id = d.nudge_id JOIN touches c ON c.id = n.touch_id WHERE m.outbox_id = ?))"
        " ORDER BY a.id",
        [chat_id, row_id, row_id],
    ).fetchall()
    if not cards:
        return []
    step = ArrivalPass(db, at, rules, render, rules.calendar.is_working_time(at))
    ids: list[int] = []
    for card_id, kind, contact_id, old_staff, first, last, count, lead_id, source, channel in cards:
        db.execute("UPDATE arrival_cards SET closed_at = ? WHERE id = ?", [iso(at), card_id])
        to = assignee(step, str(source))
        chat = to.chat_id if to else step.rules.team_chat
        if not chat:
            managers = owners_and_managers(step.people)
            if not managers:
                continue  # nobody left to reach: the nudges' escalation is all there is
            to, chat = managers[0], managers[0].chat_id
        staff_id = to.id if to else None
        view = view_of(step, int(last), kind, chat, staff_id, int(count), lead_id)
        if view is None:
            continue
        outbox_id = enqueue(db, chat, render(view), at=at)
        assert outbox_id is not None
        db.execute(
            "INSERT INTO arrival_cards (kind, contact_id, staff_id, chat_id, first_touch_id, last_touch_id, touches,"
            " lead_id, outbox_id, opened_at, last_at) SELECT kind, contact_id, ?, ?, first_touch_id, last_touch_id,"
            " touches, lead_id, ?, ?, last_at FROM arrival_cards WHERE id = ?",
            [staff_id, chat, outbox_id, iso(at), card_id],
        )
        db.execute(
            "UPDATE touches SET assignee_id = ?, given_at = ? WHERE id BETWEEN ? AND ? AND contact_id = ?"
            " AND arrival = 'card' AND assignee_id IS ?",
            [staff_id, iso(at) if staff_id is not None else None, first, last, contact_id, old_staff],
        )
        if channel != "call" and staff_id in step.counts:
            step.counts[staff_id] += int(count)  # round robin's count, for the next card it gives
        ids.append(outbox_id)
    step.write_judged()
    return ids
