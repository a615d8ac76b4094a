"""The lists people work through, a page at a time: contacts waiting for registration, missed calls
nobody called back, open leads.

"Unregistered" follows DESIGN.md: a registration belongs to the contact, so an inbound touch is
waiting for registration while its contact has none. Inbound means what the reports count:
direction ``in``, not dropped, not blocked, with a contact (a hidden caller cannot be registered).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from storage.calls import CALLED_BACK_SQL, pressed_called_back
from storage.contacts import chat_ids, phones_and_emails

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
class Page:
    items: list[dict[str, Any]]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


#: Whose a touch is: whoever took the call, else whom it was given to (``storage/arrivals.py``).
HANDLER = "COALESCE(t.staff_id, t.assignee_id)"


def _mine(staff_id: int | None) -> tuple[str, list[Any]]:
    """A staff member's own work: touches they handled or were given, and touches nobody has."""
    if staff_id is None:
        return "", []
    return f" AND ({HANDLER} = ? OR {HANDLER} IS NULL)", [staff_id]


def unregistered(db: Database, staff_id: int | None, page: int, size: int) -> Page:
    """One row per contact waiting for registration (its newest touch), newest first."""
    mine, params = _mine(staff_id)
    base = (
        f"SELECT t.contact_id, MAX(t.id) AS touch_id, COUNT(*) AS touches, MAX(t.occurred_at) AS last_at"
        f" FROM touches t WHERE {UNREGISTERED}{mine} GROUP BY t.contact_id"
    )
    total = db.execute(f"SELECT COUNT(*) FROM ({base})", params).fetchone()[0]
    items = list(
        db.query(
            f"SELECT x.*, t.channel, t.phone_raw, t.email_raw, c.name, s.name AS handler FROM ({base}) x"
            " JOIN touches t ON t.id = x.touch_id JOIN contacts c ON c.id = x.contact_id"
            f" LEFT JOIN staff s ON s.id = {HANDLER}"
            " ORDER BY x.last_at DESC, x.touch_id DESC LIMIT ? OFFSET ?",
            [*params, size, page * size],
        )
    )
    _add_identifiers(db, items)
    return Page(items, int(total), page, size)


def missed(db: Database, staff_id: int | None, page: int, size: int) -> Page:
    """Missed inbound calls nobody has called back yet, newest first."""
    mine, params = _mine(staff_id)
    where = f"FROM touches t JOIN contacts c ON c.id = t.contact_id WHERE {MISSED}{mine}"
    total = db.execute(f"SELECT COUNT(*) {where}", params).fetchone()[0]
    where = where.replace(" WHERE ", f" LEFT JOIN staff s ON s.id = {HANDLER} WHERE ", 1)
    items = list(
        db.query(
            "SELECT t.id AS touch_id, t.contact_id, t.occurred_at AS last_at, t.channel, t.phone_raw, c.name,"
            f" s.name AS handler {where}"
            " ORDER BY t.occurred_at DESC, t.id DESC LIMIT ? OFFSET ?",
            [*params, size, page * size],
        )
    )
    _add_identifiers(db, items)
    return Page(items, int(total), page, size)


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


def open_leads(db: Database, owner_id: int | None, page: int, size: int) -> Page:
    """Open leads, hot first, then by follow-up date (undated last)."""
    where = f"FROM leads l JOIN contacts c ON c.id = l.contact_id WHERE l.stage IN {OPEN_STAGES!r}"
    params: list[Any] = []
    if owner_id is not None:
        where += " AND l.owner_id = ?"
        params.append(owner_id)
    total = db.execute(f"SELECT COUNT(*) {where}", params).fetchone()[0]
    items = list(
        db.query(
            f"SELECT l.id AS lead_id, l.contact_id, l.temperature, l.stage, l.follow_up_on, c.name {where}"
            " ORDER BY CASE l.temperature WHEN 'hot' THEN 0 WHEN 'warm' THEN 1 ELSE 2 END,"
            " l.follow_up_on IS NULL, l.follow_up_on, l.id DESC LIMIT ? OFFSET ?",
            [*params, size, page * size],
        )
    )
    _add_identifiers(db, items)
    return Page(items, int(total), page, size)


def _add_identifiers(db: Database, items: list[dict[str, Any]]) -> None:
    for item in items:
        item["phones"], item["emails"] = phones_and_emails(db, int(item["contact_id"]))
        item["chat_ids"] = chat_ids(db, int(item["contact_id"]))
