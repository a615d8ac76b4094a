"""Every figure of DESIGN.md as a property of one group's facts, so the total and each group are
measured by the same code."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Collection, Container, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

from storage.costs import CampaignCost
from storage.db import parse_iso
from storage.registrations import STAGES, TEMPERATURES
from storage.reports.clocks import LagClock
from storage.reports.loaders import Leads, MissedCounts
from storage.reports.response import Responder, response_figures
from storage.reports.scope import Rules


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default; the median for q = 0.5)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


@dataclass
class Flow:
    """The inbound flow of one group."""

    touches: int = 0
    hidden: int = 0
    blocked: int = 0
    #: Each inbound contact of the group -> its first inbound touch in the period within the group.
    first_at: dict[int, str] = field(default_factory=dict)
    #: First registration by the report time of (at least) the group's registered contacts.
    registered_at: Mapping[int, str] = field(default_factory=dict)
    #: Contacts with no touch before the period: (at least) the group's new ones. Being new is the
    #: contact's, the same in every group, so the groups share the report's set.
    new: Container[int] = field(default_factory=set)
    #: How many of the group's contacts are new.
    new_count: int = 0
    #: The group's contacts registered by the report time.
    registered: Collection[int] = field(default_factory=list)
    registered_new: int = 0


@dataclass(frozen=True, slots=True)
class ContactFacts:
    first_at: str
    registered_at: str | None
    new: bool


@dataclass
class Group:
    """The facts of one group (or of the total); every figure is a property of them."""

    #: The working calendar and SLAs; only the lag and missed-call figures need them.
    rules: Rules | None = None
    flow: Flow = field(default_factory=Flow)
    missed: MissedCounts = field(default_factory=MissedCounts)
    leads_in: Leads = field(default_factory=Leads)
    #: Not-a-lead registrations by reason.
    refusals: Counter[str] = field(default_factory=Counter)
    #: None: costs cannot be attributed to this group (a channel, a staff member).
    costs: list[CampaignCost] | None = None
    #: The working clock the lags are measured on, shared by a report's groups
    #: (see :class:`storage.reports.facts.Facts`).
    lag: LagClock | None = None
    #: Each contact's answers, shared by a report's groups; None: nobody was answered.
    responder: Responder | None = None

    def _rules(self) -> Rules:
        return require_rules(self.rules)

    # inbound flow

    @property
    def inbound_touches(self) -> int:
        return self.flow.touches

    @property
    def hidden_caller_touches(self) -> int:
        return self.flow.hidden

    @property
    def blocked_touches(self) -> int:
        return self.flow.blocked

    @property
    def contacts(self) -> dict[int, ContactFacts]:
        """Each inbound contact: its first touch in the period, first registration, and newness."""
        flow = self.flow
        return {
            cid: ContactFacts(at, flow.registered_at.get(cid), cid in flow.new)
            for cid, at in flow.first_at.items()
        }

    @property
    def inbound_contacts(self) -> int:
        return len(self.flow.first_at)

    @property
    def new_contacts(self) -> int:
        return self.flow.new_count

    @property
    def registered(self) -> int:
        return len(self.flow.registered)

    @property
    def registered_new(self) -> int:
        return self.flow.registered_new

    @property
    def lrr(self) -> float | None:
        return ratio(self.registered, self.inbound_contacts)

    @property
    def lrr_new(self) -> float | None:
        return ratio(self.registered_new, self.new_contacts)

    @cached_property
    def registration_lags(self) -> list[float]:
        """Working minutes from each contact's first touch in the period to its first registration."""
        flow = self.flow
        if self.lag is not None:
            return self.lag.lags(flow.first_at, flow.registered_at, flow.registered)
        calendar = self._rules().calendar
        return [
            calendar.working_minutes_between(parse_iso(first), parse_iso(at))
            for cid in flow.registered
            if (at := flow.registered_at[cid]) >= (first := flow.first_at[cid])
        ]

    @cached_property
    def _ordered_lags(self) -> list[float]:
        return sorted(self.registration_lags)

    @property
    def registration_lag_p50(self) -> float | None:
        return percentile(self._ordered_lags, 0.5)

    @property
    def registration_lag_p90(self) -> float | None:
        return percentile(self._ordered_lags, 0.9)

    @property
    def registered_within_sla(self) -> int:
        return bisect_right(self._ordered_lags, self._rules().registration_minutes)

    # speed to lead

    @cached_property
    def responses(self) -> list[float | None]:
        """Real minutes from each contact's first touch in the group to its first answer (None: none)."""
        if self.responder is None:
            return [None] * self.inbound_contacts
        return self.responder.minutes(self.flow.first_at)

    @cached_property
    def response(self) -> dict[str, Any]:
        """``response_p50_min``, ``response_p90_min``, the shares within 5 and 60 min, ``not_responded``."""
        return response_figures(self.responses)

    # missed calls

    @property
    def missed_calls(self) -> int:
        return self.missed.total

    @property
    def missed_hidden_caller(self) -> int:
        return self.missed.hidden

    @property
    def missed_not_called_back(self) -> int:
        owed = self.missed.owed
        if owed is None:  # some call-backs need the working calendar to judge
            raise ValueError(_NO_RULES)
        return owed

    # leads

    @cached_property
    def _tally(self) -> Counter[str]:
        """Leads by temperature, by stage, and qualified and accepted ones, from their kinds."""
        tally: Counter[str] = Counter()
        for kind, n in self.leads_in.kinds.items():
            tally[f"temperature:{kind.temperature}"] += n
            tally[f"stage:{kind.stage}"] += n
            tally["qualified"] += n * kind.qualified
            tally["accepted"] += n * kind.accepted
        return tally

    @property
    def leads(self) -> int:
        return self.leads_in.kinds.total()

    @property
    def leads_by_temperature(self) -> dict[str, int]:
        return {t: self._tally[f"temperature:{t}"] for t in TEMPERATURES}

    @property
    def leads_by_stage(self) -> dict[str, int]:
        return {s: self._tally[f"stage:{s}"] for s in STAGES}

    @property
    def qualified(self) -> int:
        """Leads that marketing qualified at some point, wherever they are now."""
        return self._tally["qualified"]

    @property
    def accepted(self) -> int:
        return self._tally["accepted"]

    @property
    def won(self) -> int:
        return self._tally["stage:won"]

    @property
    def lost(self) -> int:
        return self._tally["stage:lost"]

    @property
    def revenue(self) -> float:
        return sum(w.won_amount or 0.0 for w in self.leads_in.won)

    @property
    def sales_acceptance_rate(self) -> float | None:
        return ratio(self.accepted, self.qualified)

    @property
    def lead_to_client_ratio(self) -> float | None:
        return ratio(self.won, self.leads)

    @property
    def sales_cycle_days(self) -> float | None:
        """Median days from the contact's first touch to the won deal."""
        days = [
            (parse_iso(w.closed_at) - parse_iso(w.first_touch_at)) / timedelta(days=1)
            for w in self.leads_in.won
            if w.closed_at and w.first_touch_at
        ]
        return percentile(days, 0.5)

    @property
    def not_a_lead(self) -> int:
        return self.refusals.total()

    @property
    def refusal_reasons(self) -> dict[str, dict[str, int]]:
        lost: Counter[str] = Counter()
        for kind, n in self.leads_in.kinds.items():
            if kind.stage == "lost":
                lost[kind.lost_reason or "other"] += n
        return {
            "not_a_lead": dict(sorted(self.refusals.items())),
            "lost": dict(sorted(lost.items())),
        }

    # money

    @property
    def cost(self) -> float | None:
        if not self.costs:
            return None
        return sum(c.total for c in self.costs)

    @property
    def cost_items(self) -> dict[str, float]:
        items: dict[str, float] = defaultdict(float)
        for c in self.costs or ():
            for item, amount in c.items.items():
                items[item] += amount
        return dict(sorted(items.items()))

    def _per(self, count: float) -> float | None:
        cost = self.cost
        return None if cost is None else ratio(cost, count)

    @property
    def lead_cost(self) -> float | None:
        return self._per(self.leads)

    @property
    def cost_per_inbound_contact(self) -> float | None:
        return self._per(self.inbound_contacts)

    @property
    def cost_per_client(self) -> float | None:
        return self._per(self.won)

    @property
    def program_cost_share(self) -> float | None:
        return self._per(self.revenue)

    def figures(self) -> dict[str, Any]:
        """Every figure under its stable JSON key, rounded for reading."""
        return {
            "inbound_touches": self.inbound_touches,
            "inbound_contacts": self.inbound_contacts,
            "hidden_caller_touches": self.hidden_caller_touches,
            "blocked_touches": self.blocked_touches,
            "new_contacts": self.new_contacts,
            "registered": self.registered,
            "registered_new": self.registered_new,
            "unregistered": self.inbound_contacts - self.registered,
            "lrr": rounded(self.lrr, 4),
            "lrr_new": rounded(self.lrr_new, 4),
            "registration_lag_p50_min": rounded(self.registration_lag_p50, 1),
            "registration_lag_p90_min": rounded(self.registration_lag_p90, 1),
            "registration_lag_count": len(self.registration_lags),
            "registered_within_sla": self.registered_within_sla,
            **self.response,
            "missed_calls": self.missed_calls,
            "missed_not_called_back": self.missed_not_called_back,
            "missed_hidden_caller": self.missed_hidden_caller,
            "leads": self.leads,
            "leads_by_temperature": self.leads_by_temperature,
            "leads_by_stage": self.leads_by_stage,
            "qualified": self.qualified,
            "accepted": self.accepted,
            "won": self.won,
            "lost": self.lost,
            "sales_acceptance_rate": rounded(self.sales_acceptance_rate, 4),
            "lead_to_client_ratio": rounded(self.lead_to_client_ratio, 4),
            "revenue": rounded(self.revenue, 2),
            "sales_cycle_days": rounded(self.sales_cycle_days, 1),
            "not_a_lead": self.not_a_lead,
            "refusal_reasons": self.refusal_reasons,
            "cost": rounded(self.cost, 2),
            "cost_items": {k: round(v, 2) for k, v in self.cost_items.items()},
            "lead_cost": rounded(self.lead_cost, 2),
            "cost_per_inbound_contact": rounded(self.cost_per_inbound_contact, 2),
            "cost_per_client": rounded(self.cost_per_client, 2),
            "program_cost_share": rounded(self.program_cost_share, 4),
        }


def rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


_NO_RULES = "this figure is measured in working time: pass the Rules from the config"


def require_rules(rules: Rules | None) -> Rules:
    if rules is None:
        raise ValueError(_NO_RULES)
    return rules
