"""Touches and leads in id order, a page at a time past a given id: how a CRM keeps in step.

Paging by id rather than by offset means rows that arrive while a client reads never shift the
pages it has yet to read, and each page costs one range scan of the primary key.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from storage.reports.scope import Period

_TOUCHES = (
    "SELECT id, source, channel, direction, contact_id, occurred_at, campaign, hidden_caller, call_status,"
    " answered, duration_s, staff_id, called_back_at, blocked, dropped FROM touches"
)
_LEADS = (
    "SELECT id, contact_id, temperature, stage, owner_id, campaign, need, amount, won_amount, lost_reason,"
    " returned_reason, follow_up_on, created_at, updated_at FROM leads"
)


def touches_after(
    db: Database, after_id: int, limit: int, period: Period | None, channel: str | None
) -> list[dict[str, Any]]:
    """Touches with an id above ``after_id`` that occurred in ``period``, of ``channel`` if given."""
    return _page(db, _TOUCHES, "occurred_at", "channel", after_id, limit, period, channel)


def leads_after(
    db: Database, after_id: int, limit: int, period: Period | None, stage: str | None
) -> list[dict[str, Any]]:
    """Leads with an id above ``after_id`` created in ``period``, at ``stage`` if given."""
    return _page(db, _LEADS, "created_at", "stage", after_id, limit, period, stage)


def _page(
    db: Database,
    select: str,
    dated_by: str,
    column: str,
    after_id: int,
    limit: int,
    period: Period | None,
    wanted: str | None,
) -> list[dict[str, Any]]:
    sql = f"{select} WHERE id > ?"
    params: list[Any] = [after_id]
    if period:
        sql += f" AND {dated_by} >= ? AND {dated_by} < ?"
        params += period.bounds()
    if wanted:
        sql += f" AND {column} = ?"
        params.append(wanted)
    return list(db.query(sql + " ORDER BY id LIMIT ?", [*params, limit]))
