"""A report's facts: read once (the independent queries beside the longest one), then cut into the
total and the groups of each grouping."""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import cached_property
from typing import Any

from sqlite_utils import Database

from storage.costs import CampaignCost, costs_in_period
from storage.db import connect
from storage.reports.clocks import LagClock, WorkingClock
from storage.reports.figures import Flow, Group
from storage.reports.loaders import (
    BLOCKED,
    HIDDEN,
    Inbound,
    LeadFacts,
    Leads,
    MissedCounts,
    RawKey,
    Registered,
    load_inbound,
    load_leads,
    load_missed_counts,
    load_other_answers,
    load_refusals,
    load_registered,
    staff_names,
)
from storage.reports.response import Responder
from storage.reports.scope import NONE_KEY, TOTAL, GroupBy, Rules, Scope

#: Where each grouping's value sits in a :data:`RawKey` (the total reads none).
_POSITION: dict[GroupBy, int] = {"total": 0, "channel": 0, "campaign": 1, "staff": 2}


class Facts:
    """A report's facts, loaded once on first use and cut into groups."""

    def __init__(self, db: Database, scope: Scope, rules: Rules | None = None) -> None:
        self.db, self.scope, self.rules = db, scope, rules

    def load(self) -> Facts:
        """Read every fact now: all but the inbound touches on a second connection, beside them.

        SQLite searches and sorts without holding Python's lock, and those queries hand back a few
        rows or one text, so they cost this thread next to nothing while it goes through the
        period's inbound touches (a row apiece would pass the lock back and forth once a row). That
        needs a database file, and no transaction open here whose changes a second connection would
        not see; otherwise everything is read here, one after the other.
        """
        other = _second_connection(self.db)
        if other is None:
            self.inbound, self.registered, self.missed, self.leads, self.refusals, self.answers  # noqa: B018
            return self

        def aside() -> tuple[
            Registered,
            dict[RawKey, MissedCounts],
            LeadFacts,
            dict[RawKey, Counter[str]],
            dict[int, str],
        ]:
            return (
                load_registered(other, self.scope),
                load_missed_counts(other, self.scope, self.rules),
                load_leads(other, self.scope),
                load_refusals(other, self.scope),
                load_other_answers(other, self.scope),
            )

        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadline-report") as pool:
                beside = pool.submit(aside)
                self.inbound  # noqa: B018
                self.registered, self.missed, self.leads, self.refusals, self.answers = beside.result()
        finally:
            other.close()
        return self

    @cached_property
    def inbound(self) -> Inbound:
        return load_inbound(self.db, self.scope)

    @cached_property
    def registered(self) -> Registered:
        return load_registered(self.db, self.scope)

    @cached_property
    def new(self) -> set[int]:
        """The period's inbound contacts with no touch of any kind before it."""
        return self.inbound.firsts["total"][TOTAL].keys() - self.registered.seen_before

    @cached_property
    def missed(self) -> dict[RawKey, MissedCounts]:
        return load_missed_counts(self.db, self.scope, self.rules)

    @cached_property
    def leads(self) -> LeadFacts:
        return load_leads(self.db, self.scope)

    @cached_property
    def refusals(self) -> dict[RawKey, Counter[str]]:
        return load_refusals(self.db, self.scope)

    @cached_property
    def answers(self) -> dict[int, str]:
        """The answers the scan of :attr:`inbound` does not see (``Inbound.answered`` has the rest)."""
        return load_other_answers(self.db, self.scope)

    @cached_property
    def responder(self) -> Responder:
        return Responder(self.inbound.firsts["total"][TOTAL], lambda: (self.inbound.answered, self.answers))

    @cached_property
    def costs(self) -> dict[str, CampaignCost]:
        """The period's costs up to the report time's day: a month or a week not over yet carries
        the days gone (today's included), as its leads are those so far. Charging the whole span
        against them made ``/report month`` on the 17th twice the digest's lead cost."""
        period = self.scope.period
        today = self.scope.as_of.astimezone(period.tz).date()
        return costs_in_period(
            self.db, period.start, min(period.end, today), campaign=self.scope.filters.campaign
        )

    @cached_property
    def staff_names(self) -> dict[int, str]:
        return staff_names(self.db)

    @cached_property
    def lag(self) -> LagClock | None:
        """One working clock for the lags of every group."""
        if self.rules is None:
            return None
        # Lags run from a first touch in the period to a registration no later than the report
        # time, so the clock spans the period up to the report time (at most ten years of it;
        # older moments ask the calendar).
        today = self.scope.as_of.astimezone(self.rules.calendar.tz).date()
        last = min(self.scope.period.end, today) + timedelta(days=1)
        first = max(self.scope.period.start, today - timedelta(days=3660)) - timedelta(days=1)
        return LagClock(WorkingClock(self.rules.calendar, first, max(first, last)))

    def total(self) -> Group:
        return self.groups("total")[TOTAL]

    def groups(self, by: GroupBy) -> dict[str, Group]:
        name = self._namer(by)
        at = _POSITION[by]
        inbound = self.inbound
        flows: dict[str, Flow] = defaultdict(Flow)
        for (channel, campaign, staff_id, kind), n in inbound.counts.items():
            flow = flows[name((channel, campaign, staff_id)[at])]
            if kind & BLOCKED:
                flow.blocked += n
            else:
                flow.touches += n
                if kind & HIDDEN:
                    flow.hidden += n
        firsts: dict[str, list[dict[int, str]]] = defaultdict(list)
        for value, found in inbound.firsts[by].items():
            firsts[name(value)].append(found)
        for group, parts in firsts.items():
            flow = flows[group]
            flow.first_at = _earliest(parts)
            members, registered_at, new = flow.first_at.keys(), self.registered.at, self.new
            # Counted, not collected in sets of their own: a year's groups hold 1 200 000 contacts.
            flow.registered_at, flow.new = registered_at, new
            flow.new_count = sum(map(new.__contains__, members))
            flow.registered = registered = list(filter(registered_at.__contains__, members))
            flow.registered_new = sum(map(new.__contains__, registered))
        missed: dict[str, MissedCounts] = defaultdict(MissedCounts)
        for key, counts in self.missed.items():
            missed[name(key[at])].add(counts)
        leads: dict[str, Leads] = defaultdict(Leads)
        for key, kinds in self.leads.kinds.items():
            leads[name(key[at])].kinds.update(kinds)
        for key, won in self.leads.won:
            leads[name(key[at])].won.append(won)
        refusals: dict[str, Counter[str]] = defaultdict(Counter)
        for key, reasons in self.refusals.items():
            refusals[name(key[at])].update(reasons)
        filters = self.scope.filters
        costs: dict[str, list[CampaignCost]] = {}
        if filters.channel is None and filters.staff_id is None:
            if by == "total":
                costs[TOTAL] = list(self.costs.values())
            elif by == "campaign":
                costs = {campaign: [cost] for campaign, cost in self.costs.items()}
        names = flows.keys() | missed.keys() | leads.keys() | refusals.keys() | costs.keys()
        if by == "total":
            names.add(TOTAL)
        groups = {
            group: Group(
                self.rules,
                flow=flows.get(group) or Flow(),
                missed=missed.get(group) or MissedCounts(),
                leads_in=leads.get(group) or Leads(),
                refusals=refusals.get(group) or Counter(),
                costs=costs.get(group),
                lag=self.lag,
                responder=self.responder,
            )
            for group in names
        }
        return dict(sorted(groups.items()))

    def _namer(self, by: GroupBy) -> Callable[[Any], str]:
        """The name of the group that a stored channel, campaign or staff_id falls in."""
        if by == "total":
            return lambda value: TOTAL
        if by in ("channel", "campaign"):
            return lambda value: value or NONE_KEY
        names = self.staff_names
        return lambda value: names.get(value, NONE_KEY) if value is not None else NONE_KEY


def _second_connection(db: Database) -> Database | None:
    """Another read-only connection to ``db``'s file, when it would read what ``db`` reads."""
    if db.conn.in_transaction:
        return None
    path = next((file for _, name, file in db.execute("PRAGMA database_list") if name == "main"), "")
    if not path:  # in memory, or a temporary database
        return None
    try:
        return connect(path, readonly=True)
    except sqlite3.Error:
        return None


def _earliest(parts: list[dict[int, str]]) -> dict[int, str]:
    """Each contact's earliest first touch over several stored values that make one group."""
    if len(parts) == 1:
        return parts[0]
    merged = dict(parts[0])
    for part in parts[1:]:
        for cid, first_at in part.items():
            known = merged.get(cid)
            if known is None or first_at < known:
                merged[cid] = first_at
    return merged
