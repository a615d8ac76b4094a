"""The base as tables for a spreadsheet: contacts, touches, registrations, leads, refusals and the
block list (whole, whatever the period: it is a state, not an event).

The rows carry values, not text: times as aware datetimes in the business's own time zone (what the
owner reads on the office clock), days as dates, flags as booleans, phones in E.164, so that the
writers (``leadline/export_files.py``) can make real cells of them and say which zone the times are
in. Phones and emails are whole: an export is the owner's copy of their own data, unlike a log line.
Column codes are English and stable (a CSV's headers, the keys a script reads); the words a person
reads in a workbook are the bot's (``bot/labels.py``).
The refusals table (not-a-lead and lost, with reasons) is the list for later campaigns: a person
marked "do not contact" is left out of it (the contacts table says who is marked). The responses
table is speed to lead contact by contact (docs/report.md, "Response time").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from storage.db import now_utc
from storage.identifiers import phone
from storage.reports.facts import Facts
from storage.reports.loaders import FIRST_LEAD, load_answers
from storage.reports.response import first_answer, response_minutes
from storage.reports.scope import Period, Scope

#: How a column's values are kept and shown: ``time`` an aware datetime in the table's zone,
#: ``date`` a day, ``flag`` a bool, ``money`` an amount in the config's currency, ``campaign`` a
#: campaign's key (a person reads its title), ``count`` a whole number, ``text`` as it is.
Kind = Literal["id", "text", "count", "time", "date", "flag", "money", "campaign"]


@dataclass(frozen=True)
class Column:
    code: str
    kind: Kind = "text"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    rows: Callable[[], Iterator[tuple[Any, ...]]]
    #: The zone of every ``time`` column.
    tz: ZoneInfo

    @property
    def headers(self) -> tuple[str, ...]:
        """The column codes, a time column's with its zone (``created_at (Europe/Moscow)``)."""
        return tuple(f"{c.code} ({self.tz.key})" if c.kind == "time" else c.code for c in self.columns)


def _cols(*spec: str | tuple[str, Kind]) -> tuple[Column, ...]:
    return tuple(Column(s) if isinstance(s, str) else Column(*s) for s in spec)


def _converter(kind: Kind, tz: ZoneInfo) -> Callable[[Any], Any] | None:
    if kind == "time":
        return lambda v: datetime.fromisoformat(v).astimezone(tz) if v else None
    if kind == "date":
        return lambda v: date.fromisoformat(v[:10]) if v else None
    if kind == "flag":
        return lambda v: None if v is None else bool(v)
    return None


_IDENTIFIERS = (
    "(SELECT group_concat(value, '; ') FROM identifiers i WHERE i.contact_id = {0} AND i.kind = 'phone') AS phones,"
    " (SELECT group_concat(value, '; ') FROM identifiers i WHERE i.contact_id = {0} AND i.kind = 'email') AS emails"
)


def export_tables(
    db: Database,
    tz: ZoneInfo,
    period: Period | None = None,
    *,
    region: str = "RU",
    source_regions: Mapping[str, str] | None = None,
    as_of: datetime | None = None,
) -> list[Table]:
    """Each table of the export; with a period, only what happened in it (and the contacts touched).

    ``as_of`` (default: now) is when the responses are seen: an answer after it is not one yet.

    ``region`` (and a source's own, in ``source_regions``) reads a touch's number as written by its
    provider into E.164, as capture read it; a number that is no valid one stays as written."""
    start, end = period.bounds() if period else ("", "\uffff")
    regions = source_regions or {}

    def query(
        sql: str, params: list[Any], columns: tuple[Column, ...]
    ) -> Callable[[], Iterator[tuple[Any, ...]]]:
        converters = [(i, f) for i, c in enumerate(columns) if (f := _converter(c.kind, tz)) is not None]

        def rows() -> Iterator[tuple[Any, ...]]:
            for row in db.execute(sql, params):
                values = list(row)
                for i, convert in converters:
                    values[i] = convert(values[i])
                yield tuple(values)

        return rows

    def table(name: str, columns: tuple[Column, ...], sql: str, params: list[Any]) -> Table:
        return Table(name, columns, query(sql, params, columns), tz)

    contacts = table(
        "contacts",
        _cols(
            ("id", "id"),
            "name",
            "phones",
            "emails",
            ("created_at", "time"),
            ("touches", "count"),
            ("first_touch_at", "time"),
            ("last_touch_at", "time"),
            "registered",
            ("do_not_contact", "flag"),
            "chat_ids",
        ),
        f"SELECT c.id, c.name, {_IDENTIFIERS.format('c.id')}, c.created_at, t.n, t.first_at, t.last_at,"
        " (SELECT r.disposition FROM registrations r WHERE r.contact_id = c.id ORDER BY r.created_at DESC, r.id DESC"
        " LIMIT 1), c.do_not_contact, (SELECT group_concat(i.kind || ' ' || i.value, '; ') FROM identifiers i"
        " WHERE i.contact_id = c.id AND i.kind NOT IN ('phone', 'email')) FROM contacts c JOIN (SELECT contact_id, COUNT(*) AS n, MIN(occurred_at) AS first_at,"
        " MAX(occurred_at) AS last_at FROM touches WHERE contact_id IS NOT NULL AND occurred_at >= ?"
        " AND occurred_at < ? GROUP BY contact_id) t ON t.contact_id = c.id WHERE c.merged_into IS NULL"
        " ORDER BY c.id",
        [start, end],
    )
    touch_columns = _cols(
        ("id", "id"),
        ("occurred_at", "time"),
        "channel",
        "direction",
        "source",
        ("contact_id", "id"),
        ("campaign", "campaign"),
        ("hidden_caller", "flag"),
        "phone",
        "email",
        "name",
        "message",
        "call_status",
        ("duration_s", "count"),
        ("talk_s", "count"),
        "staff",
        "assignee",
        ("called_back_at", "time"),
        ("blocked", "flag"),
        "dropped",
    )
    # ``staff`` took the call; ``assignee`` was given the touch (a form's or a letter's card). The
    # report credits the first, else the second (``loaders.TOUCH_STAFF``), so both are here to recount it.
    touch_rows = query(
        "SELECT t.id, t.occurred_at, t.channel, t.direction, t.source, t.contact_id, t.campaign, t.hidden_caller,"
        " t.phone_raw, t.email_raw, t.name, t.message, t.call_status, t.duration_s, t.talk_s, s.name, a.name,"
        " t.called_back_at, t.blocked, t.dropped FROM touches t LEFT JOIN staff s ON s.id = t.staff_id"
        " LEFT JOIN staff a ON a.id = t.assignee_id WHERE t.occurred_at >= ? AND t.occurred_at < ? ORDER BY t.occurred_at, t.id",
        [start, end],
        touch_columns,
    )

    def touches_e164() -> Iterator[tuple[Any, ...]]:
        for row in touch_rows():
            raw = row[8]
            if not raw or row[7]:  # no number, or a withheld one (kept as the provider sent it)
                yield row
                continue
            found = phone(raw, regions.get(row[4], region))
            yield (*row[:8], found.value if found else raw, *row[9:])

    touches = Table("touches", touch_columns, touches_e164, tz)
    registrations = table(
        "registrations",
        _cols(
            ("id", "id"),
            ("created_at", "time"),
            ("contact_id", "id"),
            "name",
            "disposition",
            "reason",
            ("campaign", "campaign"),
            "staff",
            "origin",
            "note",
        ),
        "SELECT r.id, r.created_at, r.contact_id, c.name, r.disposition, r.reason, r.campaign, s.name, r.origin,"
        " r.note FROM registrations r JOIN contacts c ON c.id = r.contact_id"
        " LEFT JOIN staff s ON s.id = r.staff_id WHERE r.created_at >= ? AND r.created_at < ? ORDER BY r.id",
        [start, end],
    )
    leads = table(
        "leads",
        _cols(
            ("id", "id"),
            ("created_at", "time"),
            ("contact_id", "id"),
            "name",
            "phones",
            "emails",
            "temperature",
            "stage",
            ("campaign", "campaign"),
            "owner",
            "need",
            ("amount", "money"),
            ("won_amount", "money"),
            "lost_reason",
            "returned_reason",
            ("follow_up_on", "date"),
            ("qualified_at", "time"),
            ("accepted_at", "time"),
            ("closed_at", "time"),
            ("counted", "flag"),
        ),
        # A person is one lead: of a merged person's leads the report counts the first (``FIRST_LEAD``);
        # the others stay here, being the owner's data, and ``counted`` says which row the report has.
        f"SELECT l.id, l.created_at, l.contact_id, c.name, {_IDENTIFIERS.format('l.contact_id')}, l.temperature,"
        " l.stage, l.campaign, s.name, l.need, l.amount, l.won_amount, l.lost_reason, l.returned_reason,"
        f" l.follow_up_on, l.qualified_at, l.accepted_at, l.closed_at, {FIRST_LEAD.format('l')} FROM leads l"
        " JOIN contacts c ON c.id = l.contact_id LEFT JOIN staff s ON s.id = l.owner_id"
        " WHERE l.created_at >= ? AND l.created_at < ? ORDER BY l.id",
        [start, end],
    )
    refusals = table(
        "refusals",
        _cols(
            "kind",
            ("at", "time"),
            ("contact_id", "id"),
            "name",
            "phones",
            "emails",
            "reason",
            ("campaign", "campaign"),
        ),
        f"SELECT 'not_a_lead', r.created_at, r.contact_id, c.name, {_IDENTIFIERS.format('r.contact_id')},"
        " r.reason, r.campaign FROM registrations r JOIN contacts c ON c.id = r.contact_id"
        " WHERE r.disposition = 'not_a_lead' AND c.do_not_contact = 0 AND r.created_at >= ? AND r.created_at < ?"
        f" UNION ALL SELECT 'lost', l.closed_at, l.contact_id, c.name, {_IDENTIFIERS.format('l.contact_id')},"
        " l.lost_reason, l.campaign FROM leads l JOIN contacts c ON c.id = l.contact_id"
        " WHERE l.stage = 'lost' AND c.do_not_contact = 0 AND l.closed_at >= ? AND l.closed_at < ? ORDER BY 2",
        [start, end, start, end],
    )
    blocklist = table(
        "blocklist",
        _cols(("id", "id"), "identifier_kind", "value", "reason", "staff", ("at", "time")),
        "SELECT b.id, b.kind, b.value, b.reason, s.name, b.at FROM blocklist b"
        " LEFT JOIN staff s ON s.id = b.staff_id ORDER BY b.id",
        [],
    )
    responses = _responses(db, tz, period, as_of or now_utc())
    return [contacts, touches, registrations, leads, refusals, blocklist, responses]


def _responses(db: Database, tz: ZoneInfo, period: Period | None, as_of: datetime) -> Table:
    """Each inbound contact of the period (of all time without one): its first touch and first answer,
    as the report's response figures count them."""

    def local(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value).astimezone(tz) if value else None

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

    columns = _cols(
        ("contact_id", "id"),
        "name",
        ("first_touch_at", "time"),
        ("answered_at", "time"),
        "answered_by",
        "response_min",
    )
    return Table("responses", columns, rows, tz)


def _names(db: Database, contacts: Iterable[int]) -> dict[int, str | None]:
    return {
        int(cid): name
        for cid, name in db.execute(
            "SELECT c.id, c.name FROM contacts c JOIN json_each(?) AS j ON j.value = c.id",
            [json.dumps(sorted(contacts))],
        )
    }
