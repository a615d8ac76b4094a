"""The lists people work through, a page at a time: contacts waiting for registration, missed calls
nobody called back, open leads.

Pages are turned by keyset, not by offset, as ``storage/id_pages.py`` pages the API: a page starts
just past the item the last one ended at (its sort key and id, a :class:`Mark`), so registering
someone from page 1 or a touch arriving meanwhile neither skips nor repeats anyone on page 2. Those
lists sort by time and by a lead's temperature and follow-up, not by id alone, so the mark carries
the sort key beside the id.

"Unregistered" follows DESIGN.md: a registration belongs to the contact, so an inbound touch is
waiting for registration while its contact has none. Inbound means what the reports count:
direction ``in``, not dropped, not blocked, with a contact (a hidden caller cannot be registered).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from storage.calls import CALLED_BACK_SQL, pressed_called_back
from storage.contacts import chat_ids, phones_and_emails
from storage.db import iso, parse_iso

#: An inbound touch that counts, written against the ``touches`` table aliased ``t``.
INBOUND = "t.direction = 'in' AND t.dropped IS NULL AND t.blocked = 0 AND t.contact_id IS NOT NULL"
#: Nobody can register or call back a person whose data was erased (storage/erasure.py).
NOT_ERASED = "NOT EXISTS (SELECT 1 FROM contacts e WHERE e.id = t.contact_id AND e.erased_at IS NOT NULL)"
UNREGISTERED = f"{INBOUND} AND NOT EXISTS (SELECT 1 FROM registrations r WHERE r.contact_id = t.contact_id) AND {NOT_ERASED}"
#: A person staff blocked as spam is nobody to call back, whatever their calls before the block
#: (those stay counted): the call-back nudges skip them too (storage/nudges/due.py).
NOT_BLOCKED = "NOT EXISTS (SELECT 1 FROM contacts b WHERE b.id = t.contact_id AND b.blocked = 1)"
#: A missed call nobody has called back: no answered call with the person since (whenever it came:
#: ``called_back_at`` is set only within the call-back SLA, which is the reports' figure, not this
#: to-do list's), no "Called back" pressed on any call-back card of the person since, and the person
#: not blocked.
NOT_CALLED_BACK = (
    f"{INBOUND} AND t.channel = 'call' AND t.answered = 0 AND t.hidden_caller = 0 AND NOT {CALLED_BACK_SQL}"
    f" AND NOT {pressed_called_back('t.contact_id', 't.occurred_at')} AND {NOT_BLOCKED}"
)
MISSED = f"{NOT_CALLED_BACK} AND {NOT_ERASED}"
OPEN_STAGES = ("new", "qualified", "accepted", "returned")


@dataclass(frozen=True)
class Mark:
    """Where a page ends (or begins) in its list: that item's sort key and id, whole numbers so that
    a Telegram button's 64 bytes carry them; the item itself may have left the list since."""

    key: int
    id: int


@dataclass(frozen=True)
class Turn:
    """A page to turn to: the items just past ``mark`` (``forward``), or those just before it."""

    mark: Mark
    forward: bool


@dataclass(frozen=True)
class Page:
    """``start`` items of the list come before this page's first; ``reset`` says a mark that could
    not be read (not one this module made) gave the first page instead."""

    items: list[dict[str, Any]]
    total: int
    start: int
    size: int
    first: Mark | None = None
    last: Mark | None = None
    reset: bool = False

    @property
    def page(self) -> int:
        return -(-self.start // self.size)

    @property
    def pages(self) -> int:
        return max(1, self.page + -(-(self.total - self.start) // self.size))

    @property
    def has_next(self) -> bool:
        return self.start + len(self.items) < self.total


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: What SQLite can bind: a mark outside it was not made here.
_INT64 = range(-(2**63), 2**63)


@dataclass(frozen=True)
class _Order:
    """A list's order: ``sort_key DESC, sort_id DESC`` over its rows; ``timed`` when the key is a
    stored time (text), carried in a mark as microseconds since 1970."""

    timed: bool

    def mark(self, row: dict[str, Any]) -> Mark:
        key = row["sort_key"]
        return Mark(
            (parse_iso(key) - _EPOCH) // _MICROSECOND if self.timed else int(key), int(row["sort_id"])
        )

    def key(self, mark: Mark) -> Any:
        """The mark's key as the rows hold it; ValueError or OverflowError for one not made here."""
        if mark.key not in _INT64 or mark.id not in _INT64:
            raise ValueError("mark out of range")
        return iso(_EPOCH + mark.key * _MICROSECOND) if self.timed else mark.key


_BY_TIME = _Order(timed=True)
_BY_RANK = _Order(timed=False)
_DOWN = " ORDER BY sort_key DESC, sort_id DESC LIMIT ?"
_UP = " ORDER BY sort_key, sort_id LIMIT ?"


def _window(db: Database, rows: str, params: list[Any], order: _Order, size: int, turn: Turn | None) -> Page:
    """One page of ``rows`` (a SELECT with ``sort_key`` and ``sort_id``), in the list's order."""
    listed = f"SELECT * FROM ({rows})"
    total = int(db.execute(f"SELECT COUNT(*) FROM ({rows})", params).fetchone()[0])

    def count(where: str, at: list[Any]) -> int:
        return int(db.execute(f"SELECT COUNT(*) FROM ({rows}) WHERE {where}", [*params, *at]).fetchone()[0])

    def first_page(reset: bool = False) -> Page:
        return _page(db, list(db.query(listed + _DOWN, [*params, size])), total, 0, size, order, reset)

    if turn is None:
        return first_page()
    try:
        at = [order.key(turn.mark), turn.mark.id]
    except (ValueError, OverflowError):
        return first_page(reset=True)
    if turn.forward:
        items = list(db.query(f"{listed} WHERE (sort_key, sort_id) < (?, ?){_DOWN}", [*params, *at, size]))
        if items:
            return _page(db, items, total, count("(sort_key, sort_id) >= (?, ?)", at), size, order)
        # Everything past the mark has gone since: the list's last page.
        items = list(reversed(list(db.query(listed + _UP, [*params, size]))))
        return _page(db, items, total, max(0, total - len(items)), size, order)
    before = count("(sort_key, sort_id) > (?, ?)", at)
    if before <= size:
        return first_page()
    items = list(
        reversed(list(db.query(f"{listed} WHERE (sort_key, sort_id) > (?, ?){_UP}", [*params, *at, size])))
    )
    return _page(db, items, total, before - size, size, order)


def _page(
    db: Database,
    items: list[dict[str, Any]],
    total: int,
    start: int,
    size: int,
    order: _Order,
    reset: bool = False,
) -> Page:
    _add_identifiers(db, items)
    marks = [order.mark(item) for item in items]
    return Page(items, total, start, size, marks[0] if marks else None, marks[-1] if marks else None, reset)


#: Whose a touch is: whoever took the call, else whom it was given to (``storage/arrivals.py``).
HANDLER = "COALESCE(t.staff_id, t.assignee_id)"


def _mine(staff_id: int | None) -> tuple[str, list[Any]]:
    """A staff member's own work: touches they handled or were given, and touches nobody has."""
    if staff_id is None:
        return "", []
    return f" AND ({HANDLER} = ? OR {HANDLER} IS NULL)", [staff_id]


def unregistered(db: Database, staff_id: int | None, size: int, turn: Turn | None = None) -> Page:
    """One row per contact waiting for registration (its newest touch), newest first."""
    mine, params = _mine(staff_id)
    base = (
        f"SELECT t.contact_id, MAX(t.id) AS touch_id, COUNT(*) AS touches, MAX(t.occurred_at) AS last_at"
        f" FROM touches t WHERE {UNREGISTERED}{mine} GROUP BY t.contact_id"
    )
    rows = (
        f"SELECT x.*, t.channel, t.phone_raw, t.email_raw, c.name, s.name AS handler,"
        f" x.last_at AS sort_key, x.touch_id AS sort_id FROM ({base}) x"
        " JOIN touches t ON t.id = x.touch_id JOIN contacts c ON c.id = x.contact_id"
        f" LEFT JOIN staff s ON s.id = {HANDLER}"
    )
    return _window(db, rows, params, _BY_TIME, size, turn)


def missed(db: Database, staff_id: int | None, size: int, turn: Turn | None = None) -> Page:
    """Missed inbound calls nobody has called back yet, newest first."""
    mine, params = _mine(staff_id)
    rows = (
        "SELECT t.id AS touch_id, t.contact_id, t.occurred_at AS last_at, t.channel, t.phone_raw, c.name,"
        " s.name AS handler, t.occurred_at AS sort_key, t.id AS sort_id"
        f" FROM touches t JOIN contacts c ON c.id = t.contact_id LEFT JOIN staff s ON s.id = {HANDLER}"
        f" WHERE {MISSED}{mine}"
    )
    return _window(db, rows, params, _BY_TIME, size, turn)


def missed_between(db: Database, start: str, end: str) -> list[tuple[int, str, bool]]:
    """The missed calls made in [``start``, ``end``) that nobody has called back by the rule of
    :func:`missed`, oldest first, as (contact id, time, erased): the digest lists them as
    ``/missed`` would, and counts the erased people's calls too, as every count does."""
    return [
        (int(cid), str(at), bool(erased))
        for cid, at, erased in db.execute(
            f"SELECT t.contact_id, t.occurred_at, NOT {NOT_ERASED} FROM touches t"
            f" WHERE t.occurred_at >= ? AND t.occurred_at < ? AND {NOT_CALLED_BACK}"
            " ORDER BY t.occurred_at, t.id",
            [start, end],
        )
    ]


#: Open leads' order as one number, least first: hot, warm, cold; then by follow-up date, undated last.
LEAD_RANK = (
    "(CASE l.temperature WHEN 'hot' THEN 0 WHEN 'warm' THEN 1 ELSE 2 END * 1000000000"
    " + CASE WHEN l.follow_up_on IS NULL THEN 100000000"
    " ELSE CAST(REPLACE(l.follow_up_on, '-', '') AS INTEGER) END)"
)


def open_leads(db: Database, owner_id: int | None, size: int, turn: Turn | None = None) -> Page:
    """Open leads, hot first, then by follow-up date (undated last), the newest first among equals."""
    rows = (
        "SELECT l.id AS lead_id, l.contact_id, l.temperature, l.stage, l.follow_up_on, c.name,"
        f" -{LEAD_RANK} AS sort_key, l.id AS sort_id"
        f" FROM leads l JOIN contacts c ON c.id = l.contact_id WHERE l.stage IN {OPEN_STAGES!r}"
    )
    params: list[Any] = []
    if owner_id is not None:
        rows += " AND l.owner_id = ?"
        params.append(owner_id)
    return _window(db, rows, params, _BY_RANK, size, turn)


def _add_identifiers(db: Database, items: list[dict[str, Any]]) -> None:
    for item in items:
        item["phones"], item["emails"] = phones_and_emails(db, int(item["contact_id"]))
        item["chat_ids"] = chat_ids(db, int(item["contact_id"]))
