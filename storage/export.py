"""The base as tables for a spreadsheet: contacts, touches, registrations, leads and refusals.

Times are written in the business's own time zone (what the owner reads on the office clock), which
each time column's header names (``created_at (Europe/Moscow)``), and phones and emails in full: an
export is the owner's copy of their own data, unlike a log line.
The refusals table (not-a-lead and lost, with reasons) is the list for later campaigns; the
responses table is speed to lead contact by contact (docs/report.md, "Response time").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from storage.db import now_utc
from storage.reports.facts import Facts
from storage.reports.loaders import load_answers
from storage.reports.response import first_answer, response_minutes
from storage.reports.scope import Period, Scope


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    rows: Callable[[], Iterator[tuple[Any, ...]]]


def _local(tz: ZoneInfo) -> Callable[[str | None], str | None]:
    def convert(value: str | None) -> str | None:
        if not value:
            return value
        return datetime.fromisoformat(value).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")

    return convert


_IDENTIFIERS = (
    "(SELECT group_concat(value, '; ') FROM identifiers i WHERE i.contact_id = {0} AND i.kind = 'phone') AS phones,"
    " (SELECT group_concat(value, '; ') FROM identifiers i WHERE i.contact_id = {0} AND i.kind = 'email') AS emails"
)


def export_tables(
    db: Database, tz: ZoneInfo, period: Period | None = None, as_of: datetime | None = None
) -> list[Table]:
    """Each table of the export; with a period, only what happened in it (and the contacts touched).

    ``as_of`` (default: now) is when the responses are seen: an answer after it is not one yet."""
    local = _local(tz)
    start, end = period.bounds() if period else ("", "\uffff")

    def query(sql: str, params: list[Any], times: tuple[int, ...]) -> Callable[[], Iterator[tuple[Any, ...]]]:
        def rows() -> Iterator[tuple[Any, ...]]:
            for row in db.execute(sql, params):
                values = list(row)
                for i in times:
                    values[i] = local(values[i])
                yield tuple(values)

        return rows

    contacts = Table(
        "contacts",
        (
            "id",
            "name",
            "phones",
            "emails",
            "created_at",
            "touches",
            "first_touch_at",
            "last_touch_at",
            "registered",
        ),
        query(
            f"SELECT c.id, c.name, {_IDENTIFIERS.format('c.id')}, c.created_at, t.n, t.first_at, t.last_at,"
            " (SELECT r.disposition FROM registrations r WHERE r.contact_id = c.id ORDER BY r.created_at DESC, r.id DESC"
            " LIMIT 1) FROM contacts c JOIN (SELECT contact_id, COUNT(*) AS n, MIN(occurred_at) AS first_at,"
            " MAX(occurred_at) AS last_at FROM touches WHERE contact_id IS NOT NULL AND occurred_at >= ?"
            " AND occurred_at < ? GROUP BY contact_id) t ON t.contact_id = c.id WHERE c.merged_into IS NULL"
            " ORDER BY c.id",
            [start, end],
            (4, 6, 7),
        ),
    )
    touches = Table(
        "touches",
        (
            "id",
            "occurred_at",
            "channel",
            "direction",
            "source",
            "contact_id",
            "campaign",
            "hidden_caller",
            "phone",
            "email",
            "name",
            "message",
            "call_status",
            "duration_s",
            "talk_s",
            "staff",
            "called_back_at",
            "blocked",
            "dropped",
        ),
        query(
            "SELECT t.id, t.occurred_at, t.channel, t.direction, t.source, t.contact_id, t.campaign, t.hidden_caller,"
            " t.phone_raw, t.email_raw, t.name, t.message, t.call_status, t.duration_s, t.talk_s, s.name,"
            " t.called_back_at, t.blocked, t.dropped FROM touches t LEFT JOIN staff s ON s.id = t.staff_id"
            " WHERE t.occurred_at >= ? AND t.occurred_at < ? ORDER BY t.occurred_at, t.id",
            [start, end],
            (1, 16),
        ),
    )
    registrations = Table(
        "registrations",
        (
            "id",
            "created_at",
            "contact_id",
            "name",
            "disposition",
            "reason",
            "campaign",
            "staff",
            "origin",
            "note",
        ),
        query(
            "SELECT r.id, r.created_at, r.contact_id, c.name, r.disposition, r.reason, r.campaign, s.name, r.origin,"
            " r.note FROM registrations r JOIN contacts c ON c.id = r.contact_id"
            " LEFT JOIN staff s ON s.id = r.staff_id WHERE r.created_at >= ? AND r.created_at < ? ORDER BY r.id",
            [start, end],
            (1,),
        ),
    )
    leads = Table(
        "leads",
        (
            "id",
            "created_at",
            "contact_id",
            "name",
            "phones",
            "emails",
            "temperature",
            "stage",
            "campaign",
            "owner",
            "need",
            "amount",
            "won_amount",
            "lost_reason",
            "returned_reason",
            "follow_up_on",
            "qualified_at",
            "accepted_at",
            "closed_at",
        ),
        query(
            f"SELECT l.id, l.created_at, l.contact_id, c.name, {_IDENTIFIERS.format('l.contact_id')}, l.temperature,"
            " l.stage, l.campaign, s.name, l.need, l.amount, l.won_amount, l.lost_reason, l.returned_reason,"
            " l.follow_up_on, l.qualified_at, l.accepted_at, l.closed_at FROM leads l"
            " JOIN contacts c ON c.id = l.contact_id LEFT JOIN staff s ON s.id = l.owner_id"
            " WHERE l.created_at >= ? AND l.created_at < ? ORDER BY l.id",
            [start, end],
            (1, 16, 17, 18),
        ),
    )
    refusals = Table(
        "refusals",
        ("kind", "at", "contact_id", "name", "phones", "emails", "reason", "campaign"),
        query(
            f"SELECT 'not_a_lead', r.created_at, r.contact_id, c.name, {_IDENTIFIERS.format('r.contact_id')},"
            " r.reason, r.campaign FROM registrations r JOIN contacts c ON c.id = r.contact_id"
            " WHERE r.disposition = 'not_a_lead' AND r.created_at >= ? AND r.created_at < ?"
            f" UNION ALL SELECT 'lost', l.closed_at, l.contact_id, c.name, {_IDENTIFIERS.format('l.contact_id')},"
            " l.lost_reason, l.campaign FROM leads l JOIN contacts c ON c.id = l.contact_id"
            " WHERE l.stage = 'lost' AND l.closed_at >= ? AND l.closed_at < ? ORDER BY 2",
            [start, end, start, end],
            (1,),
        ),
    )
    responses = _responses(db, tz, period, as_of or now_utc())
    return [_zoned(t, tz) for t in (contacts, touches, registrations, leads, refusals, responses)]


def _responses(db: Database, tz: ZoneInfo, period: Period | None, as_of: datetime) -> Table:
    """Each inbound contact of the period (of all time without one): its first touch and first answer,
    as the report's response figures count them."""
    local = _local(tz)

    def rows() -> Iterator[tuple[Any, ...]]:
        chosen = period
        if chosen is None:
            first = db.execute("SELECT MIN(occurred_at) FROM touches").fetchone()[0]
            if first is None:
                return
            start = datetime.fromisoformat(first).astimezone(tz).date()
            chosen = Period(start, max(start, as_of.astimezone(tz).date()), tz)
        scope = Scope(chosen, as_of=as_of)
        first_at, answers = Facts(db, scope).total().flow.first_at, load_answers(db, scope)
        names = _names(db, first_at)
        for cid, at in sorted(first_at.items(), key=lambda item: (item[1], item[0])):
            found = answers.get(cid, [])
            answer = first_answer(at, found)
            minutes = response_minutes(at, [when for when, _ in found])
            yield (
                cid,
                names.get(cid),
                local(at),
                local(answer[0]) if answer else None,
                answer[1] if answer else None,
                None if minutes is None else round(minutes, 1),
            )

    return Table(
        "responses",
        ("contact_id", "name", "first_touch_at", "answered_at", "answered_by", "response_min"),
        rows,
    )


def _names(db: Database, contacts: Iterable[int]) -> dict[int, str | None]:
    return {
        int(cid): name
        for cid, name in db.execute(
            "SELECT c.id, c.name FROM contacts c JOIN json_each(?) AS j ON j.value = c.id",
            [json.dumps(sorted(contacts))],
        )
    }


def _zoned(table: Table, tz: ZoneInfo) -> Table:
    """The headers of time columns (``…_at``, as everywhere in the schema) name the zone they are in."""
    columns = tuple(f"{c} ({tz.key})" if c == "at" or c.endswith("_at") else c for c in table.columns)
    return replace(table, columns=columns)
