"""Recording a sweep: close what was answered, then write what is due as nudges, deliveries and one
outbox message per chat, all in the writer's transaction, each item checked again first."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from storage.arrival_cards import open_card_message
from storage.calls import CALLED_BACK_SQL
from storage.db import chunks, iso, savepoint
from storage.nudges.cards import MessageView, Render, load_card
from storage.nudges.due import ASKED_LEFT_SQL, REMINDED_SQL, Due, due_nudges
from storage.nudges.people import Directory
from storage.nudges.rules import OPEN_STAGES_SQL, NudgeRules, working_cutoff
from storage.outbox import enqueue

log = logging.getLogger("leadline.nudges")


@dataclass
class Recorded:
    """What one planning step wrote."""

    #: Outbox row ids of the messages queued.
    outbox_ids: list[int] = field(default_factory=list)
    nudges: int = 0
    deliveries: int = 0
    closed: int = 0
    #: Due items held back: the chat had a message within the batch window, or the card limit.
    held: int = 0


def plan_and_record(
    db: Database, now: datetime, rules: NudgeRules, *, render: Render, due: Sequence[Due] | None = None
) -> Recorded:
    """Close what has been resolved, then record and queue what is due, one message per chat.

    Run it inside one write transaction (``Store.write``). ``due`` may come from an earlier read
    (:func:`due_nudges`): each item is checked again here, and uniqueness of nudges and deliveries
    makes a second run, a stale plan or a second process a no-op.
    """
    result = Recorded(closed=close_resolved(db, now, rules))
    sync_sent(db, now, rules)
    if due is None:
        due = due_nudges(db, now, rules)
    people = Directory.load(db)
    by_chat: dict[int, list[Due]] = {}
    for item in due:
        by_chat.setdefault(item.to.chat_id, []).append(item)
    for chat_id, items in by_chat.items():
        if _recently_messaged(db, chat_id, now, rules):
            result.held += len(items)
            continue
        try:
            with savepoint(db, "nudge_message"):
                _record_message(db, now, rules, render, people, chat_id, items, result)
        except Exception:
            # One chat's bad data must not stop everyone else's nudges; the next sweep retries it.
            log.exception("nudges for one chat could not be recorded", extra={"fields": {"chat_id": chat_id}})
    return result


def _recently_messaged(db: Database, chat_id: int, now: datetime, rules: NudgeRules) -> bool:
    if rules.batch_minutes <= 0:
        return False
    since = iso(now - timedelta(minutes=rules.batch_minutes))
    row = db.execute(
        "SELECT 1 FROM nudge_messages WHERE chat_id = ? AND created_at > ? AND created_at <= ? LIMIT 1",
        [chat_id, since, iso(now)],
    ).fetchone()
    return row is not None


def _record_message(
    db: Database,
    now: datetime,
    rules: NudgeRules,
    render: Render,
    people: Directory,
    chat_id: int,
    items: list[Due],
    result: Recorded,
) -> None:
    cards: dict[tuple[str, int, int | None], list[Due]] = {}
    for item in items:
        cards.setdefault(item.card, []).append(item)
    staff_id = items[0].to.staff_id
    stamp = iso(now)
    message_id = int(
        db.execute(
            "INSERT INTO nudge_messages (chat_id, staff_id, created_at) VALUES (?, ?, ?)",
            [chat_id, staff_id, stamp],
        ).lastrowid
        or 0
    )
    listed: list[list[tuple[int, int]]] = []
    more = 0
    for group in cards.values():
        if len(listed) >= rules.max_items:
            result.held += len(group)
            more += 1
            continue
        attached = _record_card(db, now, rules, group, message_id, result)
        if attached:
            listed.append(attached)
    if not listed:
        db.execute("DELETE FROM nudge_messages WHERE id = ?", [message_id])
        return
    person = people.people.get(staff_id) if staff_id is not None else None
    view = MessageView(
        chat_id=chat_id,
        staff_id=staff_id,
        language=(person.language if person and person.language else rules.language),
        tz=rules.tz,
        cards=tuple(load_card(db, group) for group in listed),
        more=more,
        max_tries=rules.callback_tries,
        stale_days=rules.stale_days,
        office_language=rules.language,
    )
    rendered = render(view)
    # The cards the message had no room for wait for the next one.
    for dropped in listed[rendered.cards :]:
        for nid, round_ in dropped:
            db.execute(
                "UPDATE nudge_deliveries SET message_id = NULL WHERE message_id = ? AND nudge_id = ? AND round = ?",
                [message_id, nid, round_],
            )
        result.held += len(dropped)
    del listed[rendered.cards :]
    payload = rendered.payload
    if len(view.cards) == 1 and rendered.cards == 1 and view.cards[0].contact_id is not None:
        # A nudge about one contact answers the card that came on arrival, rather than repeat it.
        card_message = open_card_message(db, int(view.cards[0].contact_id), chat_id)
        if card_message is not None:
            reply = {"message_id": card_message, "allow_sending_without_reply": True}
            payload = {**payload, "reply_parameters": reply}
    outbox_id = enqueue(db, chat_id, payload, at=now, dedupe_key=f"nudge-message:{message_id}")
    db.execute(
        "UPDATE nudge_messages SET outbox_id = ?, cards = ? WHERE id = ?",
        [outbox_id, len(listed), message_id],
    )
    ids = [nid for group in listed for nid, _ in group]
    for chunk in chunks(ids):
        marks = ",".join("?" * len(chunk))
        db.execute(
            f"UPDATE nudges SET outbox_id = COALESCE(outbox_id, ?) WHERE id IN ({marks})", [outbox_id, *chunk]
        )
    if outbox_id is not None:
        result.outbox_ids.append(outbox_id)
    result.deliveries += len(ids)


def _record_card(
    db: Database, now: datetime, rules: NudgeRules, group: list[Due], message_id: int, result: Recorded
) -> list[tuple[int, int]]:
    """Record one card's nudges (re-checked) and attach their deliveries to the message: [(nudge, round)]."""
    first = group[0]
    horizon = iso(now - timedelta(days=rules.horizon_days))
    if first.nudge_id is None and first.level == 0 and first.kind in ("register", "callback"):
        subjects = sorted({i.subject for i in group})
        marks = ",".join("?" * len(subjects))
        folded = db.execute(
            "SELECT 1 FROM nudges WHERE contact_id = ? AND kind = ? AND level = 0 AND closed_at IS NULL"
            " AND IFNULL(outcome, '') != 'unreachable'"  # a card given up takes no new calls (due.py)
            f" AND created_at >= ? AND subject NOT IN ({marks}) LIMIT 1",
            [first.contact_id, first.kind, horizon, *subjects],
        ).fetchone()
        if folded:
            return []
    attached: list[tuple[int, int]] = []
    stamp = iso(now)
    for item in group:
        if item.nudge_id is None:
            if not _still_due(db, item, now, rules):
                continue
            nudge_id = _insert_nudge(db, now, rules, item, result)
            round_ = 0
        else:
            open_row = db.execute(
                "SELECT 1 FROM nudges WHERE id = ? AND closed_at IS NULL", [item.nudge_id]
            ).fetchone()
            if open_row is None:
                continue
            nudge_id, round_ = item.nudge_id, item.round
        cursor = db.execute(
            "UPDATE nudge_deliveries SET message_id = ? WHERE nudge_id = ? AND chat_id = ? AND round = ?"
            " AND message_id IS NULL AND not_before <= ?",
            [message_id, nudge_id, item.to.chat_id, round_, stamp],
        )
        if cursor.rowcount == 1:
            attached.append((nudge_id, round_))
    return attached


def _insert_nudge(db: Database, now: datetime, rules: NudgeRules, item: Due, result: Recorded) -> int:
    """The nudge's id; a new row also gets a round-0 delivery owed to each of its recipients."""
    stamp = iso(now)
    cursor = db.execute(
        "INSERT INTO nudges (kind, subject, level, staff_id, chat_id, due_at, created_at, contact_id, touch_id,"
        " lead_id, ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, subject, level) DO NOTHING",
        [
            item.kind,
            item.subject,
            item.level,
            item.staff_id,
            item.chat_id,
            iso(item.due_at(rules)),
            stamp,
            item.contact_id,
            item.touch_id,
            item.lead_id,
            item.ref,
        ],
    )
    if cursor.rowcount == 1:
        nudge_id = int(cursor.lastrowid or 0)
        result.nudges += 1
        db.conn.executemany(
            "INSERT OR IGNORE INTO nudge_deliveries (nudge_id, chat_id, round, staff_id, not_before)"
            " VALUES (?, ?, 0, ?, ?)",
            [(nudge_id, r.chat_id, r.staff_id, stamp) for r in item.recipients or (item.to,)],
        )
        return nudge_id
    row = db.execute(
        "SELECT id FROM nudges WHERE kind = ? AND subject = ? AND level = ?",
        [item.kind, item.subject, item.level],
    ).fetchone()
    return int(row[0])


def _still_due(db: Database, item: Due, now: datetime, rules: NudgeRules) -> bool:
    """The read that planned ``item`` may be a moment old: is the question still open?"""
    if item.kind == "register":
        row = db.execute(
            "SELECT 1 FROM touches t JOIN registrations r ON r.contact_id = t.contact_id WHERE t.id = ? LIMIT 1",
            [item.touch_id],
        ).fetchone()
        if row is not None:
            return False
    elif item.kind == "callback":
        row = db.execute(
            f"SELECT 1 FROM touches t WHERE t.id = ? AND {CALLED_BACK_SQL}", [item.touch_id]
        ).fetchone()
        if row is not None:
            return False
    else:
        column = "follow_up_on" if item.kind == "follow_up" else "updated_at"
        row = db.execute(
            f"SELECT 1 FROM leads WHERE id = ? AND {column} = ? AND {OPEN_STAGES_SQL}",
            [item.lead_id, item.ref],
        ).fetchone()
        if row is None:
            return False
    if item.level == 0:
        return True
    base = db.execute(
        f"SELECT z.acted_at, z.outcome, z.closed_at, {REMINDED_SQL.format(z='z')}, {ASKED_LEFT_SQL.format(z='z')}"
        " FROM nudges z WHERE z.kind = ? AND z.subject = ? AND z.level = 0",
        [item.kind, item.subject],
    ).fetchone()
    if base is None or base[2] is not None:
        return False
    if item.kind == "register" or base[0] is None or base[1] == "unreachable" or base[4]:
        return True
    # Acted on: escalates only once the reminder asked for went unanswered (as the escalation query
    # in storage/nudges/due.py has it).
    return base[3] is not None and base[3] <= iso(
        working_cutoff(rules.calendar, now, rules.escalation_minutes)
    )


def close_resolved(db: Database, now: datetime, rules: NudgeRules) -> int:
    """Close open nudges whose question was answered outside the bot; returns how many.

    Registered (any registration of the touch's contact), called back (the call-back mark, or any
    answered call with the contact since), or the lead changed (a new follow-up date or owner, a
    change, won or lost). The moment and the person who answered become ``acted_at`` / ``acted_by`` when
    nobody had pressed a button before, so reports can show how fast nudges are acted on.
    """
    horizon = iso(now - timedelta(days=rules.horizon_days))
    closes: list[tuple[str, Any, str, int]] = []
    for nid, at, by in db.execute(
        "SELECT n.id, r.created_at, r.staff_id FROM nudges n JOIN touches t ON t.id = n.touch_id"
        " JOIN registrations r ON r.id = (SELECT r2.id FROM registrations r2 WHERE r2.contact_id = t.contact_id"
        " ORDER BY r2.created_at, r2.id LIMIT 1)"
        " WHERE n.closed_at IS NULL AND n.created_at >= ? AND n.kind = 'register'",
        [horizon],
    ).fetchall():
        closes.append((str(at), by, "registered", int(nid)))
    for nid, back_at, back_by, answer_at, answer_by in db.execute(
        "SELECT n.id, t.called_back_at, b.staff_id, a.occurred_at, a.staff_id FROM nudges n"
        " JOIN touches t ON t.id = n.touch_id"
        " LEFT JOIN touches b ON b.id = t.called_back_by"
        " LEFT JOIN touches a ON a.id = (SELECT x.id FROM touches x WHERE x.contact_id = t.contact_id"
        " AND x.occurred_at >= t.occurred_at AND x.channel = 'call' AND x.answered = 1"
        " ORDER BY x.occurred_at, x.id LIMIT 1)"
        " WHERE n.closed_at IS NULL AND n.created_at >= ? AND n.kind = 'callback'"
        " AND (t.called_back_at IS NOT NULL OR a.id IS NOT NULL)",
        [horizon],
    ).fetchall():
        if back_at is not None:
            closes.append((str(back_at), back_by, "called_back", int(nid)))
        else:
            closes.append((str(answer_at), answer_by, "called_back", int(nid)))
    for (nid,) in db.execute(
        "SELECT n.id FROM nudges n JOIN contacts c ON c.id = n.contact_id"
        " WHERE n.closed_at IS NULL AND n.created_at >= ? AND n.kind = 'callback' AND c.blocked = 1",
        [horizon],
    ).fetchall():
        closes.append((iso(now), None, "blocked", int(nid)))
    for nid, updated in db.execute(
        "SELECT n.id, l.updated_at FROM nudges n JOIN leads l ON l.id = n.lead_id"
        " WHERE n.closed_at IS NULL AND n.created_at >= ? AND n.kind IN ('follow_up', 'stale')"
        " AND (l.stage IN ('won', 'lost')"
        " OR (n.kind = 'follow_up' AND l.follow_up_on IS NOT n.ref)"
        # asked of someone who no longer owns the lead: the next sweep asks the new owner
        " OR (n.kind = 'follow_up' AND n.subject != 'lead:' || l.id || ':' || n.ref || ':' || IFNULL(l.owner_id, '')"
        " AND (n.subject != 'lead:' || l.id || ':' || n.ref OR n.staff_id IS NOT l.owner_id AND n.staff_id IS NOT NULL))"
        " OR (n.kind = 'stale' AND l.updated_at != n.ref))",
        [horizon],
    ).fetchall():
        closes.append((str(updated), None, "changed", int(nid)))
    seen: set[int] = set()
    for at, by, outcome, nid in closes:
        if nid in seen:
            continue
        seen.add(nid)
        db.execute(
            "UPDATE nudges SET closed_at = ?, outcome = ?, acted_at = COALESCE(acted_at, ?),"
            " acted_by = COALESCE(acted_by, ?) WHERE id = ?",
            [at, outcome, at, by, nid],
        )
        db.execute("DELETE FROM nudge_deliveries WHERE nudge_id = ? AND message_id IS NULL", [nid])
    return len(seen)


def sync_sent(db: Database, now: datetime, rules: NudgeRules) -> None:
    """Copy when the first message carrying each nudge reached Telegram (or the log) onto the nudge."""
    db.execute(
        "UPDATE nudges SET sent_at = (SELECT MIN(o.sent_at) FROM nudge_deliveries d"
        " JOIN nudge_messages m ON m.id = d.message_id JOIN outbox o ON o.id = m.outbox_id"
        " WHERE d.nudge_id = nudges.id)"
        " WHERE sent_at IS NULL AND outbox_id IS NOT NULL AND created_at >= ?"
        " AND EXISTS (SELECT 1 FROM nudge_deliveries d JOIN nudge_messages m ON m.id = d.message_id"
        " JOIN outbox o ON o.id = m.outbox_id WHERE d.nudge_id = nudges.id AND o.sent_at IS NOT NULL)",
        [iso(now - timedelta(days=rules.horizon_days))],
    )
