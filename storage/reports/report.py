"""The whole report under stable JSON keys, and what the digest and the plan read from the same facts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from storage import plan
from storage.db import iso
from storage.lists import missed_between
from storage.reports.facts import Facts
from storage.reports.figures import Group
from storage.reports.goals import goal_progress
from storage.reports.loaders import lead_contacts
from storage.reports.scope import GROUPINGS, Period, Rules, Scope


@dataclass(frozen=True)
class Owed:
    """The first few people of a to-do list, and how many more the list's count holds. Nobody can
    register or call back a person whose data was erased (storage/lists.py), so they are never
    listed; the count keeps them, as every count does, and ``erased`` says how many they are."""

    items: list[dict[str, Any]]
    #: How many the list holds, the erased people included.
    total: int
    #: Counted, but erased at their request: nothing to do about them.
    erased: int = 0


def unregistered_contacts(db: Database, scope: Scope, limit: int) -> Owed:
    """Inbound contacts of the period nobody registered yet, oldest first (for the digest's buttons)."""
    group = Facts(db, scope).total()
    waiting = sorted((c.first_at, cid) for cid, c in group.contacts.items() if c.registered_at is None)
    gone = _erased(db, (cid for _first_at, cid in waiting))
    listed = [(first_at, cid) for first_at, cid in waiting if cid not in gone][:limit]
    return Owed([_named(db, cid, first_at) for first_at, cid in listed], len(waiting), len(gone))


def unanswered_contacts(db: Database, group: Group, limit: int) -> list[dict[str, Any]]:
    """The group's inbound contacts nobody answered yet, longest waiting first (the digest names
    them), leaving out the erased: nobody can answer them any more."""
    waiting = sorted(
        (first_at, cid)
        for (cid, first_at), minutes in zip(group.flow.first_at.items(), group.responses, strict=True)
        if minutes is None
    )
    gone = _erased(db, (cid for _first_at, cid in waiting))
    listed = [(first_at, cid) for first_at, cid in waiting if cid not in gone][:limit]
    return [_named(db, cid, first_at) for first_at, cid in listed]


def _erased(db: Database, contact_ids: Iterable[int | None]) -> set[int]:
    """Which of these contacts were erased: one query of look-ups by id, whatever the period."""
    ids = sorted({cid for cid in contact_ids if cid is not None})
    if not ids:
        return set()
    return {
        int(cid)
        for (cid,) in db.execute(
            "SELECT c.id FROM json_each(?) AS j JOIN contacts c ON c.id = j.value WHERE c.erased_at IS NOT NULL",
            [json.dumps(ids)],
        )
    }


def _named(db: Database, contact_id: int, first_at: str) -> dict[str, Any]:
    """A contact as the digest lists it: its name and its first identifier, a phone before an email."""
    row = db.execute(
        "SELECT c.name, (SELECT value FROM identifiers i WHERE i.contact_id = c.id ORDER BY i.kind DESC, i.id"
        " LIMIT 1) FROM contacts c WHERE c.id = ?",
        [contact_id],
    ).fetchone()
    return {
        "contact_id": contact_id,
        "first_at": first_at,
        "name": row[0] if row else None,
        "identifier": row[1] if row else None,
    }


def missed_contacts(db: Database, period: Period, limit: int) -> Owed:
    """The period's missed calls nobody has called back yet, by ``/missed``'s rule (an answered call
    with the person since, however late, or a "Called back" press), the first ``limit`` oldest first,
    each with the contact's name and first phone (for the digest's list and its buttons).

    This is the to-do as of now, not the report's ``missed_not_called_back``, which counts the calls
    not called back within the call-back SLA (DESIGN.md): a call returned an hour late is in that
    figure and off this list."""
    owed = missed_between(db, *period.bounds())
    out = []
    for contact_id, occurred_at, _erased in [row for row in owed if not row[2]][:limit]:
        found = db.execute(
            "SELECT c.name, (SELECT value FROM identifiers i WHERE i.contact_id = c.id AND i.kind = 'phone'"
            " ORDER BY i.id LIMIT 1) FROM contacts c WHERE c.id = ?",
            [contact_id],
        ).fetchone()
        out.append(
            {
                "contact_id": contact_id,
                "first_at": occurred_at,
                "name": found[0] if found else None,
                "identifier": found[1] if found else None,
            }
        )
    return Owed(out, len(owed), sum(erased for _cid, _at, erased in owed))


def build_report(db: Database, scope: Scope, rules: Rules) -> dict[str, Any]:
    """Every figure of the period under stable JSON keys, in total and per channel, campaign and staff."""
    facts = Facts(db, scope, rules).load()
    report: dict[str, Any] = {
        "period": {
            "from": scope.period.start.isoformat(),
            "to": scope.period.end.isoformat(),
            "label": scope.period.label,
            "timezone": str(scope.period.tz),
        },
        "as_of": iso(scope.as_of),
        "filters": scope.filters.as_dict(),
        "sla": {
            "registration_minutes": rules.registration_minutes,
            "callback_minutes": rules.callback_minutes,
        },
    }
    report.update(facts.total().figures())
    goals = goal_progress(db, scope.period.end, rules, scope.as_of)
    report["goals"] = {name: g.as_dict() for name, g in goals.items()}
    for by in GROUPINGS:
        report[f"by_{by}"] = {name: group.figures() for name, group in facts.groups(by).items()}
    return report


def funnel_history(db: Database, today: date, tz: ZoneInfo, days: int = 90) -> plan.FunnelHistory:
    """What the last ``days`` days (before today) did, for the plan's default rates and deal."""
    period = Period(today - timedelta(days=days), today - timedelta(days=1), tz)
    scope = Scope(period, as_of=period.ends_at())
    group = Facts(db, scope).total()
    return plan.FunnelHistory(
        label=period.label,
        contacts=group.inbound_contacts,
        leads=group.leads,
        qualified=group.qualified,
        won=group.won,
        revenue=group.revenue,
        contacts_to_leads=len(lead_contacts(db, scope) & group.flow.first_at.keys()),
    )
