"""The funnel plan: how many contacts, leads and qualified leads a target needs, and the LC that pays.

Pure arithmetic on exact fractions, so that the seeds' example comes out as it is: 100 leads a
month of which 20 qualify and 2 become clients plan 2 clients as 20 qualified and 100 leads, not
101 because 2 / 0.1 is 20.000000000000004 in floating point. Each stage is rounded up to whole
people, since nobody can sign 0.4 of a client.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from storage.errors import (
    AverageDealNotPositive,
    NoTarget,
    RateOutOfRange,
    TooFewClients,
    TooLittleHistory,
    TwoTargets,
)

#: The fewest clients a plan is for (the command line's --clients and the bot's clients=): 0 plans nothing.
MIN_CLIENTS = 1

#: Below this many leads (or without a single client) the last 90 days say too little.
MIN_LEADS_FOR_RATES = 20


def fraction(value: float | str | Fraction) -> Fraction:
    """A rate or amount as an exact fraction; ``"2%"`` and ``"0.02"`` are the same."""
    if isinstance(value, str) and value.strip().endswith("%"):
        return Fraction(value.strip()[:-1]) / 100
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


@dataclass(frozen=True)
class Rates:
    """Conversion from stage to stage: contact → lead → qualified → won."""

    lead_to_qualified: Fraction
    qualified_to_won: Fraction
    contact_to_lead: Fraction | None = None

    def __post_init__(self) -> None:
        for name in ("lead_to_qualified", "qualified_to_won", "contact_to_lead"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise RateOutOfRange(name, float(value))

    @property
    def lead_to_client(self) -> Fraction:
        return self.lead_to_qualified * self.qualified_to_won

    @classmethod
    def from_counts(cls, *, leads: int, qualified: int, won: int, contacts: int | None = None) -> Rates:
        """Rates from what happened: 100 leads, 20 qualified, 2 won give 20 % and 10 %."""
        if leads < 1 or qualified < 1 or won < 1:
            raise TooLittleHistory(leads, qualified, won, needed_leads=1)
        return cls(
            lead_to_qualified=Fraction(qualified, leads),
            qualified_to_won=Fraction(won, qualified),
            contact_to_lead=Fraction(leads, contacts) if contacts else None,
        )

    def as_dict(self) -> dict[str, float | None]:
        return {
            "contact_to_lead": None if self.contact_to_lead is None else float(self.contact_to_lead),
            "lead_to_qualified": float(self.lead_to_qualified),
            "qualified_to_won": float(self.qualified_to_won),
            "lead_to_client": float(self.lead_to_client),
        }


@dataclass(frozen=True)
class FunnelHistory:
    """What a past period did: where the plan takes its defaults from."""

    label: str
    contacts: int
    leads: int
    qualified: int
    won: int
    revenue: float
    #: Of the ``contacts``, those who became a lead in the period; None: not counted.
    contacts_to_leads: int | None = None

    @property
    def enough(self) -> bool:
        return self.leads >= MIN_LEADS_FOR_RATES and self.won > 0

    @property
    def contact_to_lead(self) -> Fraction | None:
        """The share of the inbound contacts that became leads: the same people on both sides, never
        all ``leads`` over ``contacts``, since leads from outbound calls (a cold-call run) or from
        contacts who got in touch before the period outnumber the inbound contacts at times.
        None (the plan's contacts unknown) when none of them became a lead."""
        if not self.contacts or not self.contacts_to_leads:
            return None
        return Fraction(self.contacts_to_leads, self.contacts)

    def rates(self) -> Rates:
        if not self.enough:
            raise TooLittleHistory(
                self.leads, self.qualified, self.won, needed_leads=MIN_LEADS_FOR_RATES, label=self.label
            )
        known = Rates.from_counts(leads=self.leads, qualified=self.qualified, won=self.won)
        return replace(known, contact_to_lead=self.contact_to_lead)

    @property
    def average_deal(self) -> Fraction | None:
        return fraction(self.revenue) / self.won if self.won else None


@dataclass(frozen=True)
class Plan:
    clients: int
    qualified: int
    leads: int
    inbound_contacts: int | None
    revenue: Fraction | None
    average_deal: Fraction | None
    #: The highest lead cost at which the leads still pay for themselves (revenue per lead × margin).
    max_lead_cost: Fraction | None
    rates: Rates

    def as_dict(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "qualified": self.qualified,
            "leads": self.leads,
            "inbound_contacts": self.inbound_contacts,
            "revenue": None if self.revenue is None else round(float(self.revenue), 2),
            "average_deal": None if self.average_deal is None else round(float(self.average_deal), 2),
            "max_lead_cost": None if self.max_lead_cost is None else round(float(self.max_lead_cost), 2),
            "rates": self.rates.as_dict(),
        }


def _up(value: Fraction) -> int:
    return math.ceil(value)


def check_target(*, clients: int | None, revenue: Fraction | None) -> None:
    """One target at a time: with both, the figures were those of ``clients`` under a title claiming
    ``revenue``, which they need not reach. And at least :data:`MIN_CLIENTS`. The command line and
    the bot word the refusals."""
    if clients is not None and revenue is not None:
        raise TwoTargets()
    if clients is not None and clients < MIN_CLIENTS:
        raise TooFewClients(clients)


def check_average_deal(average_deal: Fraction | None) -> None:
    """Above 0, typed or taken from the last 90 days (whose won deals may have no amounts: 0)."""
    if average_deal is not None and average_deal <= 0:
        raise AverageDealNotPositive(float(average_deal))


def funnel_plan(
    rates: Rates,
    *,
    clients: int | None = None,
    revenue: Fraction | None = None,
    average_deal: Fraction | None = None,
    margin: Fraction = Fraction(1),
) -> Plan:
    """What a period needs to reach ``clients`` (or ``revenue`` at ``average_deal``).

    ``margin`` is the share of a deal that may be spent on getting it (1 = break even on revenue).
    """
    check_target(clients=clients, revenue=revenue)
    check_average_deal(average_deal)
    if clients is None:
        if revenue is None or average_deal is None:
            raise NoTarget()
        clients = _up(revenue / average_deal)
    if clients < MIN_CLIENTS:  # a revenue not above 0, or a goal of 0 clients
        raise TooFewClients(clients)
    if revenue is None and average_deal is not None:
        revenue = clients * average_deal
    qualified = _up(clients / rates.qualified_to_won)
    leads = _up(qualified / rates.lead_to_qualified)
    contacts = _up(leads / rates.contact_to_lead) if rates.contact_to_lead else None
    max_lc = average_deal * rates.lead_to_client * margin if average_deal is not None else None
    return Plan(clients, qualified, leads, contacts, revenue, average_deal, max_lc, rates)


def plan_from_history(
    history: FunnelHistory,
    *,
    clients: int | None = None,
    revenue: Fraction | None = None,
    average_deal: Fraction | None = None,
    contact_to_lead: Fraction | None = None,
    lead_to_qualified: Fraction | None = None,
    qualified_to_won: Fraction | None = None,
    margin: Fraction = Fraction(1),
    goal_clients: int | None = None,
    goal_revenue: float | None = None,
) -> Plan:
    """The plan of ``leadline plan`` and the bot's ``/plan``, so both answer the same for the same input.

    What is not given is filled in: the target from the month's goals, the rates and the average
    deal from ``history`` (which raises :class:`TooLittleHistory` when it holds too little to go on).
    """
    check_target(clients=clients, revenue=revenue)  # before the history: its gaps are not the problem
    if clients is None and revenue is None:
        clients = goal_clients
        revenue = fraction(goal_revenue) if goal_revenue and clients is None else None
    # "Not given" is None: a 0 the user typed is a value, which Rates and funnel_plan refuse.
    if lead_to_qualified is None or qualified_to_won is None:
        known = history.rates()
        lead_to_qualified = known.lead_to_qualified if lead_to_qualified is None else lead_to_qualified
        qualified_to_won = known.qualified_to_won if qualified_to_won is None else qualified_to_won
        contact_to_lead = known.contact_to_lead if contact_to_lead is None else contact_to_lead
    elif contact_to_lead is None:
        contact_to_lead = history.contact_to_lead
    rates = Rates(lead_to_qualified, qualified_to_won, contact_to_lead)
    return funnel_plan(
        rates,
        clients=clients,
        revenue=revenue,
        average_deal=history.average_deal if average_deal is None else average_deal,
        margin=margin,
    )
