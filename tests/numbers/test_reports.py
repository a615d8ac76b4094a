"""Every figure of a known month, against values worked out by hand (see tests/numbers/month.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from storage.contacts import block_contact
from storage.db import open_database
from storage.errors import NotEditable
from storage.export import export_tables
from storage.merges import merge_by_staff, undo_merge
from storage.registrations import change_lead
from storage.reports.goals import goal_progress
from storage.reports.report import build_report, missed_contacts
from storage.reports.scope import Filters, Period, Scope
from tests.numbers.month import AS_OF, MSK, NOVEMBER, Month, month_config, msk, open_month, transaction


@pytest.fixture
def month(tmp_path: Path) -> Month:
    config = month_config(tmp_path, goals={"leads": 10, "qualified": 5, "clients": 2, "revenue": 300000})
    return open_month(config.database_path, config)


def november(**filters: Any) -> Scope:
    return Scope(Period.month(NOVEMBER, MSK), Filters(**filters), as_of=AS_OF)


def test_inbound_flow_of_the_month(month: Month):
    report = build_report(month.db, november(), month.rules)
    # C1 x2, C2, C3, C4, C5, C6, two hidden callers, C7 x2, C9 (C8 is blocked, C10 is in December,
    # the outbound calls are not inbound).
    assert report["inbound_touches"] == 12
    assert report["blocked_touches"] == 1
    assert report["hidden_caller_touches"] == 2
    assert report["inbound_contacts"] == 8  # C1-C7 and C9, hidden callers apart
    assert report["new_contacts"] == 7  # all but C6, first seen in October
    assert report["registered"] == 6  # C1, C2, C3 (not a lead), C4, C6 (in October), C7
    assert report["unregistered"] == 2  # C5 and C9
    assert report["registered_new"] == 5
    assert report["lrr"] == 0.75  # 6 / 8
    assert report["lrr_new"] == 0.7143  # 5 / 7


def test_registration_lag_in_working_minutes(month: Month):
    report = build_report(month.db, november(), month.rules)
    # Lags: C3 10 (over the Unity Day holiday), C1 12, C2 20 (over the weekend), C4 30 (a Saturday
    # form), C7 65. C6 was registered before the period and has no lag.
    assert report["registration_lag_count"] == 5
    assert report["registration_lag_p50_min"] == 20.0
    assert report["registration_lag_p90_min"] == 51.0  # 30 + 0.6 * (65 - 30)
    assert report["registered_within_sla"] == 2  # 10 and 12 are within 15


def test_response_time_in_real_minutes(month: Month):
    report = build_report(month.db, november(), month.rules)
    # First answers: C1 and C6 answered calls (0); C7 missed 10:00, called again 11:00 and answered
    # (60); C3 missed Tue 17:55, registered by Boris Thu 09:05 (2350); C4's Saturday 12:00 form,
    # registered Mon 09:30 (2730); C2 missed Fri 17:50, Boris's outbound call Mon 09:05 (3795).
    # C5's mail and C9's form: nobody answered. Real minutes: weekends and nights count.
    keys = (
        "response_p50_min",
        "response_p90_min",
        "responded_within_5_min",
        "responded_within_60_min",
        "not_responded",
    )

    def response(figures: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(figures[k] for k in keys)

    # Nearest rank over 0, 0, 60, 2350, 2730, 3795: the 3rd and the 6th; 2 and 3 of 8 contacts.
    assert response(report) == (60.0, 3795.0, 0.25, 0.375, 2)
    assert response(report["by_channel"]["call"]) == (60.0, 3795.0, 0.4, 0.6, 0)
    assert response(report["by_channel"]["form"]) == (2730.0, 2730.0, 0.0, 0.0, 1)
    assert response(report["by_channel"]["email"]) == (None, None, 0.0, 0.0, 1)
    # Seen on Thu 5 Nov at 09:00, before C3 was registered: C1 alone was answered.
    early = build_report(month.db, Scope(Period.month(NOVEMBER, MSK), as_of=msk(5, 9)), month.rules)
    assert response(early)[2:] == (0.125, 0.125, 7)


def test_a_groups_later_first_touch_is_answered_from_there(tmp_path: Path):
    """In a group whose first touch of a contact came after its first touch of the period, the
    response runs from the later one to the next answer after it, not to the contact's first answer."""
    config = month_config(tmp_path)
    m = Month(open_database(config.database_path), config)
    m.contact_event("form", "tilda:21", msk(2, 10), phones=("+79160000021",))
    m.call("+79160000021", msk(2, 10, 2), answered=True, extension="101")  # answers the form in 2 min
    m.contact_event("email", "email:21", msk(2, 11), phones=("+79160000021",))
    m.call("+79160000021", msk(2, 11, 30), answered=True, extension="101")  # answers the mail in 30
    report = build_report(m.db, november(), m.rules)
    medians = {name: group["response_p50_min"] for name, group in report["by_channel"].items()}
    assert (report["response_p50_min"], medians) == (2.0, {"call": 0.0, "email": 30.0, "form": 2.0})


def test_a_blocked_callers_answered_call_answers_their_form_in_the_report_as_in_the_export(tmp_path: Path):
    """Blocked after a form, then called and answered: DESIGN.md's "first answered call with that
    number" is an answer, in the report (whole and narrowed to forms) and in the export alike."""
    config = month_config(tmp_path)
    m = Month(open_database(config.database_path), config)
    form = m.contact_event("form", "tilda:31", msk(2, 10), phones=("+79160000031",))
    with transaction(m.db):
        block_contact(m.db, m.contact_of(form), staff_id=m.staff["Anna"], at=msk(2, 10, 5))
    call = m.call("+79160000031", msk(2, 10, 12), answered=True, extension="101")
    assert m.db.execute("SELECT blocked FROM touches WHERE id = ?", [call]).fetchone()[0] == 1
    whole, forms = (
        build_report(m.db, november(), m.rules),
        build_report(m.db, november(channel="form"), m.rules),
    )
    [responses] = [
        t for t in export_tables(m.db, MSK, Period.month(NOVEMBER, MSK), as_of=AS_OF) if t.name == "responses"
    ]
    [(_, _, _, answered_at, answered_by, minutes)] = list(responses.rows())
    assert (whole["response_p50_min"], whole["not_responded"], whole["blocked_touches"]) == (12.0, 0, 1)
    assert (forms["response_p50_min"], forms["not_responded"]) == (12.0, 0)
    assert (answered_at, answered_by, minutes) == (msk(2, 10, 12), "call", 12.0)


def test_missed_calls_and_call_backs(month: Month):
    report = build_report(month.db, november(), month.rules)
    # C2 (called back in time Monday 09:05), C3 (never), a hidden caller, C7 (called again 11:00,
    # after its 10:30 deadline).
    missed = (report["missed_calls"], report["missed_not_called_back"], report["missed_hidden_caller"])
    assert missed == (4, 2, 1)
    # The digest lists those still to call back, as /missed does: C3 alone (C7 was answered at 11:00).
    owed = missed_contacts(month.db, november().period, limit=5)
    assert [item["first_at"] for item in owed.items] == ["2026-11-03T14:55:00.000000+00:00"]
    assert (owed.total, owed.erased) == (1, 0)


def test_leads_funnel_and_reasons(month: Month):
    report = build_report(month.db, november(), month.rules)
    assert report["leads"] == 4  # C1, C2, C4, C7; C6's lead is October's
    assert report["leads_by_temperature"] == {"hot": 2, "warm": 1, "cold": 1}
    assert report["leads_by_stage"] == {
        "new": 0,
        "qualified": 0,
        "accepted": 1,
        "returned": 1,
        "won": 1,
        "lost": 1,
    }
    assert (report["qualified"], report["accepted"], report["won"], report["lost"]) == (3, 2, 1, 1)
    assert report["sales_acceptance_rate"] == 0.6667  # 2 accepted / 3 qualified
    assert report["lead_to_client_ratio"] == 0.25
    assert report["revenue"] == 100000
    assert report["sales_cycle_days"] == 18.1  # 2 Nov 10:00 to 20 Nov 12:00
    assert report["not_a_lead"] == 1
    assert report["refusal_reasons"] == {"not_a_lead": {"partner": 1}, "lost": {"no_budget": 1}}


def test_a_won_amount_typed_wrong_is_corrected_and_counted(month: Month):
    won = month.db.execute("SELECT id, closed_at FROM leads WHERE stage = 'won'").fetchone()
    with transaction(month.db):
        change_lead(month.db, won[0], at=msk(25, 10), won_amount=120000)
    report = build_report(month.db, november(), month.rules)
    assert report["revenue"] == 120000
    assert report["won"] == 1 and report["sales_cycle_days"] == 18.1  # still won on 20 Nov
    assert month.db.execute("SELECT closed_at FROM leads WHERE id = ?", [won[0]]).fetchone()[0] == won[1]
    # Only a won lead has a won amount.
    other = month.db.execute("SELECT id FROM leads WHERE stage = 'accepted'").fetchone()[0]
    with pytest.raises(NotEditable), transaction(month.db):
        change_lead(month.db, other, at=msk(25, 10), won_amount=5)
    assert month.db.execute("SELECT won_amount FROM leads WHERE id = ?", [other]).fetchone()[0] is None


def test_costs_pro_rata_and_lead_cost(month: Month):
    report = build_report(month.db, november(), month.rules)
    # brand_msk 45 000; vk_ads 30 500 over Nov-Dec (61 days) -> 15 000, plus 5 000 from the bot.
    assert report["cost"] == 65000
    assert report["cost_items"] == {"ads": 60000, "design": 5000}
    assert report["lead_cost"] == 16250  # 65 000 / 4
    assert report["cost_per_inbound_contact"] == 8125  # 65 000 / 8
    assert report["cost_per_client"] == 65000
    assert report["program_cost_share"] == 0.65
    brand, vk = report["by_campaign"]["brand_msk"], report["by_campaign"]["vk_ads"]
    assert (brand["cost"], brand["leads"], brand["lead_cost"]) == (45000, 2, 22500)
    assert (vk["cost"], vk["leads"], vk["lead_cost"]) == (20000, 2, 10000)
    assert report["by_campaign"]["(none)"]["cost"] is None
    # The week of Mon 9 Nov carries 7/30 of brand_msk's month (10 500) over its one lead that week
    # (C2), and 7/61 of vk_ads's two months (3 500) + 7/30 of the bot's 5 000 over C4's lead.
    week = Scope(Period.week(date(2026, 11, 9), MSK), as_of=AS_OF)
    by_campaign = build_report(month.db, week, month.rules)["by_campaign"]
    assert (by_campaign["brand_msk"]["cost"], by_campaign["brand_msk"]["leads"]) == (10500, 1)
    assert (by_campaign["vk_ads"]["cost"], by_campaign["vk_ads"]["leads"]) == (4666.67, 1)
    assert {name: g["lead_cost"] for name, g in by_campaign.items()} == {
        "brand_msk": 10500,
        "vk_ads": 4666.67,
        "(none)": None,  # no campaign, no cost
    }


def test_a_person_registered_on_two_contacts_that_were_merged_is_one_lead(tmp_path: Path):
    """Ann is a lead from her call and again from her mail form, and Ivan is a partner twice the
    same way; a manager merges each pair. Each is one person now: one lead (brand_msk's 45 000 over
    one lead, the month's goal at one lead) and one refusal. Undone, they are two of each again."""
    config = month_config(tmp_path, goals={"leads": 10})
    m = Month(open_database(config.database_path), config)
    brand = "+7 495 000-00-55"
    call = m.call("8 (916) 000-00-01", msk(2, 10), answered=True, extension="101", tracking=brand)
    m.register(call, "lead", msk(2, 10, 5), "Anna", temperature="hot")
    form = m.contact_event(
        "form", "f1", msk(2, 12), emails=("ann@example.com",), utm={"utm_campaign": "brand_msk"}
    )
    m.register(form, "lead", msk(2, 12, 5), "Boris", temperature="warm")
    partner_call = m.call("+79160000002", msk(3, 10), answered=True, extension="101")
    m.register(partner_call, "not_a_lead", msk(3, 10, 5), "Anna", reason="partner")
    partner_form = m.contact_event("form", "f2", msk(3, 12), emails=("ivan@example.com",))
    m.register(partner_form, "not_a_lead", msk(3, 12, 5), "Boris", reason="partner")

    def counted() -> tuple[Any, ...]:
        report = build_report(m.db, november(), m.rules)
        brand_msk = report["by_campaign"]["brand_msk"]
        return (
            report["leads"],
            (brand_msk["leads"], brand_msk["lead_cost"]),
            report["goals"]["leads"]["actual"],
            report["not_a_lead"],
            report["refusal_reasons"]["not_a_lead"],
        )

    def in_export() -> tuple[int, int, int]:
        """The export's lead rows, those it flags as the ones the report counts, and of them brand_msk's:
        the owner recounts the report (and LC) from the sheet by that flag."""
        [table] = [t for t in export_tables(m.db, MSK, Period.month(NOVEMBER, MSK)) if t.name == "leads"]
        rows = [dict(zip(table.headers, row, strict=True)) for row in table.rows()]
        flagged = [r for r in rows if r.get("counted") is True]
        return len(rows), len(flagged), sum(1 for r in flagged if r["campaign"] == "brand_msk")

    assert counted() == (2, (2, 22500), 2, 2, {"partner": 2})
    assert in_export() == (2, 2, 2)
    merges = []
    with transaction(m.db):
        for a, b in ((call, form), (partner_call, partner_form)):
            merge = merge_by_staff(
                m.db, m.contact_of(a), m.contact_of(b), staff_id=m.staff["Anna"], at=msk(4, 9)
            )
            merges.append(merge[0])
    assert counted() == (1, (1, 45000), 1, 1, {"partner": 1})  # before: (2, (2, 22500), 2, 2, {"partner": 2})
    assert in_export() == (2, 1, 1)  # both of Ann's rows stay (her data), one counted, as the report's 1
    with transaction(m.db):
        for merge_id in merges:
            undo_merge(m.db, merge_id, at=msk(5, 9))
    assert counted() == (2, (2, 22500), 2, 2, {"partner": 2})
    assert in_export() == (2, 2, 2)


def test_groups_by_campaign_channel_and_staff(month: Month):
    report = build_report(month.db, november(), month.rules)
    brand = report["by_campaign"]["brand_msk"]
    assert (brand["inbound_touches"], brand["inbound_contacts"], brand["registered"]) == (4, 3, 2)
    assert (brand["missed_calls"], brand["missed_not_called_back"]) == (1, 0)
    assert (brand["registration_lag_p50_min"], brand["registration_lag_p90_min"]) == (16.0, 19.2)
    none = report["by_campaign"]["(none)"]
    assert (none["inbound_touches"], none["inbound_contacts"], none["hidden_caller_touches"]) == (7, 4, 2)
    assert (none["missed_calls"], none["missed_not_called_back"], none["not_a_lead"]) == (3, 2, 1)
    assert report["by_campaign"]["vk_ads"]["refusal_reasons"]["lost"] == {"no_budget": 1}

    channels = report["by_channel"]
    assert set(channels) == {"call", "form", "email"}
    assert (
        channels["call"]["inbound_touches"],
        channels["call"]["inbound_contacts"],
        channels["call"]["leads"],
    ) == (9, 5, 3)
    assert (
        channels["form"]["inbound_touches"],
        channels["form"]["registered"],
        channels["form"]["leads"],
    ) == (2, 1, 1)
    assert (channels["email"]["inbound_contacts"], channels["email"]["lrr"]) == (1, 0.0)
    assert channels["call"]["cost"] is None  # costs belong to campaigns

    staff = report["by_staff"]
    assert (
        staff["Anna"]["inbound_touches"],
        staff["Anna"]["hidden_caller_touches"],
        staff["Anna"]["leads"],
    ) == (3, 1, 2)
    assert staff["Anna"]["blocked_touches"] == 1
    boris = staff["Boris"]
    assert (boris["inbound_touches"], boris["inbound_contacts"], boris["registered"]) == (2, 2, 2)
    assert boris["registration_lag_p50_min"] == 5.0  # C7: Boris's 11:00 call to his 11:05 registration
    assert (boris["leads"], boris["not_a_lead"]) == (2, 1)
    assert staff["(none)"]["inbound_touches"] == 7


def test_a_group_is_the_report_filtered_to_it(month: Month):
    report = build_report(month.db, november(), month.rules)
    boris = month.staff["Boris"]
    for filters, group in (
        ({"staff_id": (boris,)}, report["by_staff"]["Boris"]),
        ({"channel": "form"}, report["by_channel"]["form"]),
        ({"campaign": "brand_msk"}, report["by_campaign"]["brand_msk"]),
    ):
        filtered = build_report(month.db, november(**filters), month.rules)
        assert {k: filtered[k] for k in group} == group, filters


def test_period_edges(month: Month):
    def day(d: date) -> dict[str, Any]:
        return build_report(month.db, Scope(Period.day(d, MSK), as_of=AS_OF), month.rules)

    # C5 mailed at 23:59 on 11 November: that day, not the next.
    assert day(date(2026, 11, 11))["inbound_touches"] == 1
    assert day(date(2026, 11, 12))["inbound_touches"] == 1  # C6's call only
    assert day(date(2026, 11, 30))["inbound_contacts"] == 1  # C9 at 23:59
    assert day(date(2026, 12, 1))["inbound_contacts"] == 1  # C10 at 00:00
    # C6 called on 12 Nov and was registered in October: registered, and not new.
    c6 = day(date(2026, 11, 12))
    assert (c6["registered"], c6["new_contacts"], c6["lrr"]) == (1, 0, 1.0)
    # Registrations after the report time are not seen: on 2 Nov at 10:05 C1 is not yet registered.
    early = build_report(
        month.db, Scope(Period.day(date(2026, 11, 2), MSK), as_of=msk(2, 10, 5)), month.rules
    )
    assert (early["registered"], early["lrr_new"]) == (0, 0.0)
    # Nothing in a quiet period: no ratios rather than zeros.
    quiet = day(date(2026, 11, 1))
    assert quiet["lrr"] is None
    assert quiet["lead_cost"] is None  # 1 500 of costs, no leads


def test_goal_progress(month: Month):
    report = build_report(month.db, november(), month.rules)
    assert report["goals"] == {
        "leads": {"target": 10, "actual": 4, "projected": 4.0, "share": 0.4},
        "qualified": {"target": 5, "actual": 3, "projected": 3.0, "share": 0.6},
        "clients": {"target": 2, "actual": 1, "projected": 1.0, "share": 0.5},
        "revenue": {"target": 300000, "actual": 100000, "projected": 100000.0, "share": 0.3333},
    }
    # On Mon 9 Nov at 23:00, 5 of November's 20 working days have passed (2, 3, 5, 6, 9: the 4th
    # is a holiday): 3 leads so far head for 12; 1 qualified for 4.
    progress = goal_progress(month.db, NOVEMBER, month.rules, msk(9, 23))
    assert (progress["leads"].actual, progress["leads"].projected) == (3, 12.0)
    assert (progress["qualified"].actual, progress["qualified"].projected) == (1, 4.0)
    assert (progress["clients"].actual, progress["clients"].projected) == (0, 0.0)


def test_a_lead_qualified_again_later_stays_in_the_month_it_was_first_qualified(tmp_path: Path):
    """November's goal line read "qualified 1/5"; once the lead was lost, reopened and qualified
    again in December, November's report said 0/5 while its own qualified figure still said 1."""
    config = month_config(tmp_path, goals={"qualified": 5})
    month = Month(open_database(config.database_path), config)
    touch = month.contact_event("form", "f1", msk(2, 10), phones=["+79160000001"], message="hi")
    lead = month.register(touch, "lead", msk(2, 10, 5), "Anna", temperature="hot").lead_id
    month.move(lead, msk(10, 12), "qualified")
    month.move(lead, msk(11, 12), "accepted")
    month.move(lead, msk(3, 12, month=12), "lost", reason="price")
    month.move(lead, msk(4, 12, month=12), "new")
    month.move(lead, msk(5, 12, month=12), "qualified")
    month.move(lead, msk(6, 12, month=12), "accepted")

    november_goal = goal_progress(month.db, NOVEMBER, month.rules, msk(31, 23, month=12))["qualified"]
    december_goal = goal_progress(month.db, date(2026, 12, 1), month.rules, msk(31, 23, month=12))[
        "qualified"
    ]
    assert (november_goal.actual, december_goal.actual) == (1, 0)
    qualified_at, accepted_at = month.db.execute("SELECT qualified_at, accepted_at FROM leads").fetchone()
    assert qualified_at.startswith("2026-11-10") and accepted_at.startswith("2026-11-11")
    changes = month.db.execute("SELECT new FROM lead_changes WHERE field = 'stage' ORDER BY id").fetchall()
    assert [c[0] for c in changes].count("qualified") == 2  # the history keeps both


def test_periods_parse_as_local_days():
    today = date(2026, 11, 18)
    assert Period.parse("2026-11", MSK, today) == Period(date(2026, 11, 1), date(2026, 11, 30), MSK)
    assert Period.parse("week", MSK, today) == Period(date(2026, 11, 16), date(2026, 11, 22), MSK)
    assert Period.parse("yesterday", MSK, today) == Period.day(date(2026, 11, 17), MSK)
    assert Period.parse("last-month", MSK, today).label == "2026-10"
    assert Period.day(today, MSK).bounds() == (
        "2026-11-17T21:00:00.000000+00:00",
        "2026-11-18T21:00:00.000000+00:00",
    )
    with pytest.raises(ValueError, match="unknown period 'fortnight'"):
        Period.parse("fortnight", MSK, today)


def test_the_working_clock_agrees_with_the_calendar_across_dst_and_holidays():
    import random
    from datetime import datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from storage.reports.clocks import WorkingClock
    from storage.worktime import WorkingCalendar

    berlin = ZoneInfo("Europe/Berlin")
    calendar = WorkingCalendar(berlin, frozenset(range(5)), time(8), time(17, 30), holidays_country="DE")
    clock = WorkingClock(calendar, date(2026, 3, 1), date(2026, 11, 30))
    rnd = random.Random(3)
    base = datetime(2026, 3, 1, tzinfo=berlin)
    for _ in range(2000):
        a = base + timedelta(minutes=rnd.uniform(0, 60 * 24 * 280))
        b = a + timedelta(minutes=rnd.choice((rnd.uniform(0, 90), rnd.uniform(0, 60 * 24 * 12))))
        assert clock.between(a, b) == pytest.approx(calendar.working_minutes_between(a, b), abs=1e-6), (a, b)
    # Outside its span it asks the calendar: 2027 is not in it.
    late = datetime(2027, 1, 4, 9, tzinfo=berlin)
    assert clock.between(late, late + timedelta(hours=2)) == 120
