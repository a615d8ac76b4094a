"""The seeds' examples, as they are: LC 1 950 and 2 000, a 2 % lead-to-client ratio, 100 leads for 2 clients."""

from __future__ import annotations

from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from storage.db import open_database
from storage.errors import PlanError
from storage.events import ContactEvent
from storage.plan import Rates, fraction, funnel_plan
from storage.registrations import change_lead
from storage.registrations import record_registration as register
from storage.reports.report import build_report, funnel_history
from storage.reports.scope import Period, Scope
from storage.touches import record_contact_event
from tests.conftest import BASE
from tests.numbers.month import MSK, Month, month_config, msk, transaction

SEED_CAMPAIGNS: list[dict[str, Any]] = [
    BASE["campaigns"][0],
    {
        "name": "cold_calls",
        "costs": [
            {"period": "2026-11", "item": "wages", "amount": 30000},
            {"period": "2026-11", "item": "desk", "amount": 6000},
            {"period": "2026-11", "item": "phone_internet", "amount": 3000},
        ],
    },
    {"name": "owner_calls", "costs": [{"period": "2026-11", "item": "owner_income", "amount": 40000}]},
]


def seed_month(db: Database, month: Month) -> None:
    """100 leads in November: 20 from cold calls, 20 from the owner's calls, 60 from the brand;
    20 of them qualified (the first 20 brand leads), 2 of those won."""
    campaigns = ["cold_calls"] * 20 + ["owner_calls"] * 20 + ["brand_msk"] * 60
    with transaction(db):
        for i, campaign in enumerate(campaigns):
            at = msk(2 + i % 25, 10, i % 50)
            event = ContactEvent(
                channel="form", external_id=f"seed:{i}", occurred_at=at, phones=(f"+7916100{i:04d}",)
            )
            touch_id, _ = record_contact_event(db, event, month.ctx("form", at))
            contact = db.execute("SELECT contact_id FROM touches WHERE id = ?", [touch_id]).fetchone()[0]
            lead = register(db, contact, "lead", at=at, temperature="warm", campaign=campaign).lead_id
            assert lead is not None
            if 40 <= i < 60:
                change_lead(db, lead, at=msk(27, 10), stage="qualified")
            if 40 <= i < 42:
                change_lead(db, lead, at=msk(27, 11), stage="accepted")
                change_lead(db, lead, at=msk(27, 12), stage="won", won_amount=100000)


@pytest.fixture
def seeded(tmp_path: Path) -> Month:
    config = month_config(tmp_path, campaigns=SEED_CAMPAIGNS)
    db = open_database(config.database_path)
    month = Month(db, config)
    seed_month(db, month)
    return month


def test_lead_cost_of_cold_calling_and_of_the_owner(seeded: Month):
    scope = Scope(Period.month(date(2026, 11, 1), MSK), as_of=msk(1, 9, month=12))
    report = build_report(seeded.db, scope, seeded.rules)
    cold, owner = report["by_campaign"]["cold_calls"], report["by_campaign"]["owner_calls"]
    # 30 000 wages + 6 000 desk + 3 000 phone and internet = 39 000 over 20 leads.
    assert (cold["cost"], cold["leads"], cold["lead_cost"]) == (39000, 20, 1950)
    assert cold["cost_items"] == {"desk": 6000, "phone_internet": 3000, "wages": 30000}
    # The owner at 40 000 a month with 20 leads.
    assert (owner["cost"], owner["leads"], owner["lead_cost"]) == (40000, 20, 2000)


def test_lead_to_client_ratio_and_the_plan_that_asks_for_100_leads(seeded: Month):
    scope = Scope(Period.month(date(2026, 11, 1), MSK), as_of=msk(1, 9, month=12))
    report = build_report(seeded.db, scope, seeded.rules)
    assert (report["leads"], report["qualified"], report["won"]) == (100, 20, 2)
    assert report["lead_to_client_ratio"] == 0.02
    rates = Rates.from_counts(leads=report["leads"], qualified=report["qualified"], won=report["won"])
    plan = funnel_plan(rates, clients=2)
    assert (plan.clients, plan.qualified, plan.leads) == (2, 20, 100)
    # The same from the last 90 days of history, as `leadline plan` takes its defaults.
    history = funnel_history(seeded.db, date(2026, 12, 1), MSK)
    assert (history.leads, history.qualified, history.won, history.average_deal) == (100, 20, 2, 100000)
    rates = history.rates()
    assert (rates.lead_to_qualified, rates.qualified_to_won, rates.contact_to_lead) == (
        Fraction(1, 5),
        Fraction(1, 10),
        Fraction(1),
    )
    assert funnel_plan(rates, clients=2).leads == 100


def test_plan_from_revenue_and_the_highest_lead_cost_that_pays():
    rates = Rates(
        lead_to_qualified=fraction("20%"), qualified_to_won=fraction(0.1), contact_to_lead=fraction("0.5")
    )
    plan = funnel_plan(rates, revenue=Fraction(300000), average_deal=Fraction(100000))
    assert (plan.clients, plan.qualified, plan.leads, plan.inbound_contacts) == (3, 30, 150, 300)
    # 2 % of leads become 100 000 deals: a lead is worth 2 000, the owner's own LC.
    assert plan.max_lead_cost == 2000
    assert (
        funnel_plan(rates, clients=2, average_deal=Fraction(100000), margin=Fraction(1, 2)).max_lead_cost
        == 1000
    )
    # Each stage is whole people: 1 client at 3 % lead-to-client needs 34 leads, not 33.3.
    assert funnel_plan(Rates(Fraction(3, 10), Fraction(1, 10)), clients=1).leads == 34


def test_plan_says_what_is_missing():
    with pytest.raises(PlanError, match="give a number of clients, or a revenue target"):
        funnel_plan(Rates(Fraction(1, 5), Fraction(1, 10)), revenue=Fraction(10))
    with pytest.raises(PlanError, match="lead_to_qualified must be above 0 and at most 1"):
        Rates(Fraction(0), Fraction(1, 10))
    with pytest.raises(PlanError, match="too little history"):
        Rates.from_counts(leads=10, qualified=2, won=0)
