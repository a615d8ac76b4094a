"""`leadline report`, `export` and `plan` run as a user runs them, on a real SQLite file."""

from __future__ import annotations

import csv
import io
import json
from fractions import Fraction
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlite_utils import Database

from leadline.config import Config
from storage.db import open_database
from storage.errors import AverageDealNotPositive, RateOutOfRange
from storage.plan import FunnelHistory, plan_from_history
from storage.staff import sync_staff
from tests.cli import run_cli_sync
from tests.numbers.month import CAMPAIGNS, Month, build_known_month, month_config, msk, transaction
from tests.numbers.test_seeds import SEED_CAMPAIGNS, seed_month

AS_OF = "2026-12-01T09:00:00+03:00"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    config = month_config(tmp_path, goals={"leads": 10})
    db = open_database(config.database_path)
    build_known_month(db, config)
    db.close()
    return tmp_path / "config.toml"


def report_json(config_path: Path, *args: str) -> dict:
    result = run_cli_sync("report", "--config", str(config_path), "--json", "--as-of", AS_OF, *args)
    assert result.code == 0, result.output
    return json.loads(result.output)


def test_report_json_has_every_figure_under_stable_keys(config_path: Path):
    data = report_json(config_path, "--period", "2026-11")
    expected = {
        "inbound_touches": 12,
        "inbound_contacts": 8,
        "hidden_caller_touches": 2,
        "registered": 6,
        "lrr": 0.75,
        "lrr_new": 0.7143,
        "registration_lag_p50_min": 20.0,
        "registration_lag_p90_min": 51.0,
        "missed_calls": 4,
        "missed_not_called_back": 2,
        "leads": 4,
        "lead_cost": 16250,
    }
    assert {k: data[k] for k in expected} == expected
    assert {k: data["by_campaign"]["brand_msk"][k] for k in ("cost", "leads", "lead_cost")} == {
        "cost": 45000,
        "leads": 2,
        "lead_cost": 22500,
    }
    assert set(data["by_channel"]) == {"call", "email", "form"}
    assert data["by_staff"]["Boris"]["registration_lag_p50_min"] == 5.0
    assert data["goals"]["leads"] == {"target": 10, "actual": 4, "projected": 4.0, "share": 0.4}
    assert data["period"] == {
        "from": "2026-11-01",
        "to": "2026-11-30",
        "label": "2026-11",
        "timezone": "Europe/Moscow",
    }


def test_report_ranges_and_filters(config_path: Path):
    day = report_json(config_path, "--from", "2026-11-11", "--to", "2026-11-11")
    assert (day["inbound_touches"], day["by_channel"]["email"]["inbound_contacts"]) == (1, 1)
    boris = report_json(config_path, "--period", "2026-11", "--staff", "boris")
    assert (boris["inbound_touches"], boris["registered"], boris["leads"], boris["cost"]) == (2, 2, 2, None)
    brand = report_json(config_path, "--period", "2026-11", "--campaign", "brand_msk")
    assert (brand["inbound_contacts"], brand["cost"], brand["lead_cost"]) == (3, 45000, 22500)
    calls = report_json(config_path, "--period", "2026-11", "--channel", "call")
    assert (calls["inbound_touches"], calls["missed_calls"]) == (9, 4)


def test_a_person_on_two_staff_rows_is_one_filter_as_they_are_one_group(tmp_path: Path):
    """Anna moves to a new Telegram account: the owner changes her ``telegram_id`` and the old row
    stays, inactive, under her name. ``by_staff`` groups people by name, so ``--staff`` must count
    both rows' work too, not only the old row's."""
    config = month_config(tmp_path, goals={"leads": 10})
    db = open_database(config.database_path)
    month = build_known_month(db, config)
    moved = [s.model_copy(update={"telegram_id": 444}) if s.name == "Anna" else s for s in config.staff]
    with transaction(db):
        month.staff = sync_staff(db, moved, msk(20, 9))
    assert db.execute("SELECT COUNT(*) FROM staff WHERE name = 'Anna'").fetchone()[0] == 2
    c12 = month.call("+79160000012", msk(23, 10), answered=True, extension="101")
    month.register(c12, "lead", msk(23, 10, 5), "Anna", temperature="warm")
    db.close()
    path = tmp_path / "config.toml"
    anna = report_json(path, "--period", "2026-11")["by_staff"]["Anna"]
    # C1's two calls, the hidden caller she answered, and C12 on her new account; leads 1, 2 and 12.
    assert (anna["inbound_touches"], anna["leads"]) == (4, 3)
    filtered = report_json(path, "--period", "2026-11", "--staff", "anna")
    assert (filtered["inbound_touches"], filtered["leads"]) == (4, 3)
    assert {k: filtered[k] for k in anna} == anna


def test_report_table_and_csv(config_path: Path):
    table = run_cli_sync("report", "--config", str(config_path), "--period", "2026-11", "--as-of", AS_OF)
    assert table.code == 0, table.output
    assert "Leadline report 2026-11" in table.output
    for text in (
        "LRR",
        "75.0 %",
        "16\u00a0250\u00a0₽",
        "22\u00a0500\u00a0₽",
        "20 min",
        "By campaign",
        "brand_msk",
        "Boris",
    ):
        assert text in table.output, text
    result = run_cli_sync(
        "report", "--config", str(config_path), "--period", "2026-11", "--csv", "--as-of", AS_OF
    )
    assert result.code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    total = rows[0]
    assert (total["group_by"], total["inbound_touches"], total["lrr"], total["lead_cost"]) == (
        "total",
        "12",
        "0.75",
        "16250.0",
    )
    brand = next(r for r in rows if r["group_by"] == "campaign" and r["group"] == "brand_msk")
    assert (brand["cost"], brand["lead_cost"], brand["leads_by_stage.won"]) == ("45000.0", "22500.0", "1")


def test_report_says_what_is_wrong_with_a_period(config_path: Path):
    result = run_cli_sync("report", "--config", str(config_path), "--period", "fortnight")
    assert result.code == 2
    assert "unknown period 'fortnight'" in result.output
    result = run_cli_sync("report", "--config", str(config_path), "--period", "month", "--from", "2026-11-01")
    assert result.code == 2 and "either --period or --from/--to" in result.output
    result = run_cli_sync("report", "--config", str(config_path), "--staff", "Nobody")
    assert result.code == 2 and "no staff member named 'Nobody'" in result.output
    # --json --csv printed JSON and said nothing of the CSV asked for.
    result = run_cli_sync("report", "--config", str(config_path), "--period", "2026-11", "--json", "--csv")
    assert result.code == 2, result.output
    assert "Error: give either --json or --csv, not both" in result.output
    assert "{" not in result.output


def test_export_writes_csv_and_xlsx_with_the_refusals_list(config_path: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = run_cli_sync("export", "--config", str(config_path), "--out", str(out))
    assert result.code == 0, result.output
    assert (
        "Exported all time: 11 contacts, 17 touches, 6 registrations, 5 leads, 2 refusals, 1 blocklist, 9 responses"
        in result.output
    )
    with (out / "refusals.csv").open(encoding="utf-8-sig") as fh:
        refusals = list(csv.DictReader(fh))
    assert [(r["kind"], r["reason"], r["phones"]) for r in refusals] == [
        ("not_a_lead", "partner", "+79160000003"),
        ("lost", "no_budget", "+79160000004"),
    ]
    assert refusals[0]["at (Europe/Moscow)"] == "2026-11-05 09:05:00"  # local time, its zone in the header
    with (out / "blocklist.csv").open(encoding="utf-8-sig") as fh:
        assert [(r["identifier_kind"], r["value"], r["reason"]) for r in csv.DictReader(fh)] == [
            ("phone", "+79160000008", "spam")
        ]
    book = load_workbook(out / "leadline-export.xlsx", read_only=True)
    assert book.sheetnames == [
        "Контакты", "Обращения", "Регистрации", "Лиды", "Отказы", "Чёрный список", "Ответы"
    ]  # fmt: skip
    assert next(book["Чёрный список"].iter_rows(values_only=True))[:3] == ("ID", "Тип", "Номер или адрес")
    leads = list(book["Лиды"].iter_rows(values_only=True))
    assert leads[0][:8] == (
        "ID",
        "Создан (Europe/Moscow)",
        "ID контакта",
        "Имя",
        "Телефоны",
        "Эл. почта",
        "Температура",
        "Этап",
    )
    assert sorted(r[7] for r in leads[1:]) == ["accepted", "lost", "new", "returned", "won"]
    book.close()
    month = run_cli_sync(
        "export",
        "--config",
        str(config_path),
        "--out",
        str(out / "nov"),
        "--period",
        "2026-11",
        "--format",
        "csv",
    )
    assert month.code == 0, month.output
    assert (
        "Exported 2026-11: 10 contacts, 15 touches, 5 registrations, 4 leads, 2 refusals, 1 blocklist, 8 responses"
        in month.output
    )
    # Speed to lead contact by contact, as the report counts it (tests/numbers/test_reports.py).
    with (out / "nov" / "responses.csv").open(encoding="utf-8-sig") as fh:
        responses = list(csv.DictReader(fh))
    assert [
        (
            r["first_touch_at (Europe/Moscow)"],
            r["answered_at (Europe/Moscow)"],
            r["answered_by"],
            r["response_min"],
        )
        for r in responses
    ] == [
        ("2026-11-02 10:00:00", "2026-11-02 10:00:00", "call", "0.0"),  # C1 answered at once
        ("2026-11-03 17:55:00", "2026-11-05 09:05:00", "registration", "2350.0"),  # C3
        ("2026-11-06 17:50:00", "2026-11-09 09:05:00", "call", "3795.0"),  # C2, Boris called back
        ("2026-11-07 12:00:00", "2026-11-09 09:30:00", "registration", "2730.0"),  # C4
        ("2026-11-11 23:59:00", "", "", ""),  # C5: nobody answered
        ("2026-11-12 11:00:00", "2026-11-12 11:00:00", "call", "0.0"),  # C6
        ("2026-11-16 10:00:00", "2026-11-16 11:00:00", "call", "60.0"),  # C7
        ("2026-11-30 23:59:00", "", "", ""),  # C9
    ]
    assert not (out / "nov" / "leadline-export.xlsx").exists()


def test_plan_from_the_last_90_days(tmp_path: Path):
    config = month_config(tmp_path, campaigns=SEED_CAMPAIGNS)
    db = open_database(config.database_path)
    seed_month(db, Month(db, config))
    db.close()
    path = str(tmp_path / "config.toml")
    # The seeded leads are in November 2026: the 90 days before 1 December hold them all.
    result = run_cli_sync("plan", "--config", path, "--clients", "2", "--json", "--as-of", "2026-12-01")
    assert result.code == 0, result.output
    plan = json.loads(result.output)
    assert (plan["clients"], plan["qualified"], plan["leads"]) == (2, 20, 100)
    assert plan["max_lead_cost"] == 2000  # 100 000 average deal x 2 %
    text = run_cli_sync("plan", "--config", path, "--clients", "2", "--as-of", "2026-12-01")
    assert "leads                  100" in text.output
    assert "highest LC that pays: 2\u00a0000\u00a0₽ (average deal 100\u00a0000\u00a0₽ ×" in text.output
    given = run_cli_sync(
        "plan",
        "--config",
        path,
        "--revenue",
        "300000",
        "--average-deal",
        "100000",
        "--lead-to-qualified",
        "20%",
        "--qualified-to-won",
        "0.1",
        "--contact-to-lead",
        "0.5",
        "--json",
    )
    assert json.loads(given.output)["inbound_contacts"] == 300


def cold_call_run(db: Database, config: Config) -> None:
    """November: 20 leads from outbound calls (5 qualified, 2 won at 100 000) and 10 inbound
    contacts, 5 of them leads: 25 leads against 10 inbound contacts."""
    m = Month(db, config)
    for i in range(20):  # leads from outbound calls: 5 qualified, 2 of them won at 100 000
        call = m.call(
            f"+791610000{i:02d}", msk(10 + i % 10, 10, i), answered=True, extension="101", direction="out"
        )
        lead = m.register(call, "lead", msk(10 + i % 10, 10, i + 5), "Anna", temperature="warm").lead_id
        if i < 5:
            m.move(lead, msk(21, 10, i), "qualified")
        if i < 2:
            m.move(lead, msk(22, 10, i), "accepted")
            m.move(lead, msk(23, 10, i), "won", won_amount=100000)
    for i in range(10):  # 10 inbound contacts, 5 of them leads
        call = m.call(f"+791620000{i:02d}", msk(12, 12, i), answered=True, extension="102")
        if i < 5:
            m.register(call, "lead", msk(12, 12, i + 1), "Boris", temperature="cold")
        else:
            m.register(call, "not_a_lead", msk(12, 12, i + 1), "Boris", reason="other")


def test_plan_when_leads_outnumber_the_inbound_contacts(tmp_path: Path):
    """A cold-call run brings leads that were never inbound contacts: contact → lead is the share of
    the inbound contacts that became leads, never all leads over inbound contacts (250 % here)."""
    config = month_config(tmp_path)
    db = open_database(config.database_path)
    cold_call_run(db, config)
    db.close()
    path = str(tmp_path / "config.toml")
    result = run_cli_sync("plan", "--config", path, "--clients", "2", "--json", "--as-of", "2026-12-01")
    assert result.code == 0, result.output
    plan = json.loads(result.output)
    # 25 leads, 5 qualified, 2 won; 5 of the 10 inbound contacts became leads: 50 %.
    assert plan["rates"]["contact_to_lead"] == 0.5
    assert (plan["inbound_contacts"], plan["leads"], plan["qualified"], plan["clients"]) == (50, 25, 5, 2)
    given = ("--lead-to-qualified", "20%", "--qualified-to-won", "40%")
    text = run_cli_sync("plan", "--config", path, "--clients", "2", "--as-of", "2026-12-01", *given)
    assert text.code == 0, text.output
    assert "rates: contact→lead 50.0 %, lead→qualified 20.0 %, qualified→won 40.0 %" in text.output
    assert "  inbound contacts        50\n" in text.output


def test_a_rate_or_average_deal_given_as_0_is_refused_not_taken_from_the_history(tmp_path: Path):
    """``--lead-to-qualified 0`` (or ``--qualified-to-won 0%``, ``--average-deal 0``) printed the plan
    of the last 90 days' figures with exit 0, as if nothing had been typed; -5 was refused."""
    config = month_config(tmp_path)
    db = open_database(config.database_path)
    cold_call_run(db, config)
    db.close()
    path = str(tmp_path / "config.toml")
    for given, said in [
        (("--lead-to-qualified", "0"), "lead_to_qualified must be above 0 and at most 1 (100 %), got 0."),
        (("--qualified-to-won", "0%"), "qualified_to_won must be above 0 and at most 1 (100 %), got 0."),
        (("--contact-to-lead", "0"), "contact_to_lead must be above 0 and at most 1 (100 %), got 0."),
    ]:
        result = run_cli_sync("plan", "--config", path, "--clients", "2", "--as-of", "2026-12-01", *given)
        assert (result.code, result.output) == (2, f"Cannot plan: {said}\n"), given
    result = run_cli_sync(
        "plan", "--config", path, "--clients", "2", "--as-of", "2026-12-01", "--average-deal", "0"
    )
    assert result.code == 2, result.output
    assert "Invalid value for '--average-deal': the average deal must be above 0" in result.output

    history = FunnelHistory(
        "2026-09-02..2026-11-30", contacts=10, leads=25, qualified=5, won=2, revenue=200000
    )
    for rate in ("lead_to_qualified", "qualified_to_won", "contact_to_lead"):
        with pytest.raises(RateOutOfRange):  # the bot's /plan takes the same function
            plan_from_history(history, clients=2, **{rate: Fraction(0)})
    with pytest.raises(AverageDealNotPositive):
        plan_from_history(history, clients=2, average_deal=Fraction(0))


def test_plan_refuses_two_targets_and_amounts_not_above_0_and_reads_amounts_as_the_bot_does(tmp_path: Path):
    """``--clients 2 --revenue 300000`` printed "Plan for 2 client(s), revenue 300 000 ₽" with the
    figures of 2 clients; ``--revenue -5`` a plan for 0 clients with exit 0; ``--revenue 300k``,
    which the bot's /plan takes, was "not a number … (write 0.2 or 20%)", the advice for a rate."""
    config = month_config(tmp_path)
    db = open_database(config.database_path)
    cold_call_run(db, config)  # 2 won at 100 000: the average deal is 100 000
    db.close()
    plan = ("plan", "--config", str(tmp_path / "config.toml"), "--as-of", "2026-12-01")

    both = run_cli_sync(*plan, "--clients", "2", "--revenue", "300000")
    assert both.code == 2, both.output
    assert (
        "Error: --clients and --revenue are two targets: keep one (--revenue plans the clients it takes"
        " at the average deal)" in both.output
    )
    assert "Plan for" not in both.output

    for option, typed in [("--revenue", "-5"), ("--revenue", "0")]:
        result = run_cli_sync(*plan, option, typed)
        assert result.code == 2, (typed, result.output)
        assert f"Invalid value for '{option}': {typed!r} is not an amount above 0" in result.output
        assert "Plan for" not in result.output

    for option, typed in [("--revenue", "abc"), ("--average-deal", "1,2,3")]:
        result = run_cli_sync(*plan, option, typed)
        assert result.code == 2, (typed, result.output)
        assert (
            f"Invalid value for '{option}': not an amount: {typed!r} (write 300000, 300 000 or 300k)"
            in result.output
        )

    shorthand = run_cli_sync(*plan, "--revenue", "300k", "--average-deal", "100 000")
    assert shorthand.code == 0, shorthand.output
    assert shorthand.output.splitlines()[0] == "Plan for 3 client(s), revenue 300\u00a0000\u00a0₽"
    # Rates keep their own reading and advice.
    rate = run_cli_sync(*plan, "--clients", "2", "--lead-to-qualified", "20k")
    assert rate.code == 2, rate.output
    assert "Invalid value for '--lead-to-qualified': not a number: '20k' (write 0.2 or 20%)" in rate.output


def test_a_history_whose_leads_were_no_inbound_contact_plans_without_the_contacts():
    """No inbound contact became a lead: the plan gives leads and leaves the contacts unknown."""
    history = FunnelHistory(
        "2026-09-02..2026-11-30", contacts=10, leads=25, qualified=5, won=2, revenue=200000
    )
    result = plan_from_history(history, clients=2)
    assert (result.inbound_contacts, result.leads, result.qualified) == (None, 25, 5)
    assert result.rates.contact_to_lead is None


def test_an_average_deal_not_above_0_is_refused_in_storages_words_before_the_history(tmp_path: Path):
    """The CLI stated "above 0" for ``--average-deal`` a second time, in its own words; it now says
    storage's (:class:`AverageDealNotPositive`, which also refuses a 90 days' average of 0), and
    says it before the history is looked at: here the history is too little to plan on."""
    config = month_config(tmp_path)
    db = open_database(config.database_path)
    build_known_month(db, config)  # 5 leads in the 90 days: too little for rates
    db.close()
    plan = ("plan", "--config", str(tmp_path / "config.toml"), "--as-of", "2026-12-01", "--clients", "2")
    for typed in ("0", "-100000", "−5", "0k"):
        result = run_cli_sync(*plan, "--average-deal", typed)
        assert result.code == 2, (typed, result.output)
        assert "Invalid value for '--average-deal': the average deal must be above 0" in result.output, typed
    # A revenue target has no rule in storage: the CLI's own, with what was typed.
    revenue = run_cli_sync(*plan[:-2], "--revenue", "-5")
    assert "Invalid value for '--revenue': '-5' is not an amount above 0" in revenue.output
    nonsense = run_cli_sync(*plan, "--average-deal", "-abc")
    assert "Invalid value for '--average-deal': not an amount: '-abc' (write 300000" in nonsense.output
    with pytest.raises(AverageDealNotPositive):  # the same rule, the bot's /plan and the 90 days' deal
        plan_from_history(
            FunnelHistory("2026-09-02..2026-11-30", contacts=10, leads=25, qualified=5, won=2, revenue=0),
            clients=2,
        )


def test_an_amount_above_the_maximum_says_the_maximum_not_how_to_write_an_amount(tmp_path: Path):
    """``--revenue 2000000000000`` said "not an amount … (write 300000, 300 000 or 300k)", as for
    ``abc``: the bot's reader refuses both with None. It now says the largest amount it takes."""
    config = month_config(tmp_path)
    db = open_database(config.database_path)
    cold_call_run(db, config)
    db.close()
    plan = ("plan", "--config", str(tmp_path / "config.toml"), "--as-of", "2026-12-01")
    for option, typed in [("--revenue", "2000000000000"), ("--average-deal", "5 000 000 000k")]:
        result = run_cli_sync(*plan, option, typed)
        assert result.code == 2, (typed, result.output)
        assert (
            f"Invalid value for '{option}': {typed!r} is more than the largest amount, 1,000,000,000,000"
            in result.output
        ), result.output
    largest = run_cli_sync(*plan, "--revenue", "1,000,000,000,000", "--average-deal", "100000")
    assert largest.code == 0, largest.output
    assert largest.output.startswith("Plan for 10000000 client(s)")


def test_plan_for_fewer_than_1_client_is_refused_as_the_bot_refuses_it(tmp_path: Path):
    """``--clients 0`` printed "Plan for 0 client(s)" of 0 leads and exit 0, where the bot's
    ``/plan clients=0`` says the clients should be above 0: storage's rule refuses both."""
    config = month_config(tmp_path)
    db = open_database(config.database_path)
    cold_call_run(db, config)
    db.close()
    plan = ("plan", "--config", str(tmp_path / "config.toml"), "--as-of", "2026-12-01")
    for typed in ("0", "-1"):
        result = run_cli_sync(*plan, "--clients", typed)
        assert result.code == 2, (typed, result.output)
        assert "Invalid value for '--clients': the number of clients must be at least 1" in result.output
        assert "Plan for" not in result.output
    assert run_cli_sync(*plan, "--clients", "1").output.startswith("Plan for 1 client(s)")


def test_plan_writes_its_amounts_in_the_configured_currency(tmp_path: Path):
    leadline = {"timezone": "Europe/Moscow", "region": "RU", "language": "en", "currency": "USD"}
    month_config(tmp_path, leadline=leadline)
    rates = ("--lead-to-qualified", "20%", "--qualified-to-won", "0.1", "--margin", "0.5")
    args = (
        "plan",
        "--config",
        str(tmp_path / "config.toml"),
        "--revenue",
        "300000",
        "--average-deal",
        "100000",
    )
    result = run_cli_sync(*args, *rates)
    assert result.code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Plan for 3 client(s), revenue $300,000"
    assert lines[-1] == (
        "  highest LC that pays: $1,000 (average deal $100,000 × lead-to-client 2.0 % × margin 0.5)"
    )


def test_plan_without_history_asks_for_rates(config_path: Path):
    result = run_cli_sync("plan", "--config", str(config_path), "--clients", "2")
    assert result.code == 2
    assert "too little history to plan on" in result.output and "give the rates" in result.output


def test_report_names_campaigns_by_their_titles_and_json_by_their_keys(tmp_path: Path):
    from tests.numbers.test_export import known_month

    config_path = known_month(tmp_path, "en")
    table = run_cli_sync("report", "--config", str(config_path), "--period", "2026-11", "--as-of", AS_OF)
    assert table.code == 0, table.output
    assert "Бренд Москва" in table.output and "brand_msk" not in table.output
    assert "vk_ads" in table.output  # no title: its key
    assert set(report_json(config_path, "--period", "2026-11")["by_campaign"]) >= {"brand_msk", "vk_ads"}


def test_report_writes_money_in_the_configured_currency_as_the_digest_does(tmp_path: Path):
    from tests.numbers.test_export import known_month

    def money_lines(language: str, currency: str) -> dict[str, str]:
        (tmp_path / language).mkdir()
        config_path = known_month(tmp_path / language, language, currency=currency)
        args = ("report", "--config", str(config_path), "--period", "2026-11", "--as-of", AS_OF)
        table = run_cli_sync(*args)
        assert table.code == 0, table.output
        cells = [[cell.strip() for cell in line.split("│")] for line in table.output.splitlines()]
        return {row[1]: row[2] for row in cells if len(row) == 4}

    english = money_lines("en", "USD")
    assert (english["Revenue"], english["Cost"], english["LC (lead cost)"]) == (
        "$100,000",
        "$65,000",
        "$16,250",
    )
    assert english["Inbound contacts"] == "8"  # counts stay counts
    russian = money_lines("ru", "RUB")
    assert (russian["Cost"], russian["LC (lead cost)"]) == ("65\u00a0000\u00a0₽", "16\u00a0250\u00a0₽")


def table_rows(output: str, title: str) -> dict[str, list[str]]:
    """The rows of the rich table under ``title`` in a command's output, by their first cell."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    rows: dict[str, list[str]] = {}
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


def test_report_groups_and_goals_write_money_in_the_configured_currency(tmp_path: Path):
    leadline = {"timezone": "Europe/Moscow", "region": "RU", "language": "ru", "currency": "RUB"}
    campaigns = [{**CAMPAIGNS[0], "title": "Бренд Москва"}, CAMPAIGNS[1]]
    goals = {"leads": 10, "revenue": 300000}
    config = month_config(tmp_path, campaigns=campaigns, leadline=leadline, goals=goals)
    db = open_database(config.database_path)
    build_known_month(db, config)
    db.close()
    args = ("report", "--config", str(tmp_path / "config.toml"), "--period", "2026-11", "--as-of", AS_OF)
    table = run_cli_sync(*args)
    assert table.code == 0, table.output
    by_campaign = table_rows(table.output, "By campaign")
    # cost and LC, the last two columns, whole and whole (not cut short); counts stay counts.
    assert by_campaign["Бренд Москва"][-4:] == ["2", "1", "45\u00a0000\u00a0₽", "22\u00a0500\u00a0₽"]
    assert by_campaign["vk_ads"][-2:] == ["20\u00a0000\u00a0₽", "10\u00a0000\u00a0₽"]
    by_goal = table_rows(table.output, "Goals this month")
    assert by_goal["revenue"] == ["300\u00a0000\u00a0₽", "100\u00a0000\u00a0₽", "100\u00a0000\u00a0₽"]
    assert by_goal["leads"] == ["10", "4", "4"]


def test_the_campaigns_costs_shown_add_up_to_the_cost_shown(tmp_path: Path):
    """Three campaigns at 1 000 for November: a week carries 233.33 of each, 700 in all (not 699)."""
    leadline = {"timezone": "Europe/Moscow", "region": "RU", "language": "ru", "currency": "RUB"}
    costs = [{"period": "2026-11", "item": "ads", "amount": 1000}]
    campaigns = [{"name": name, "costs": costs} for name in ("a", "b", "c")]
    config = month_config(tmp_path, campaigns=campaigns, leadline=leadline)
    db = open_database(config.database_path)
    Month(db, config)  # writes the config's costs, as `leadline serve` does at start
    db.close()
    args = ("--config", str(tmp_path / "config.toml"), "--from", "2026-11-16", "--to", "2026-11-22")
    result = run_cli_sync("report", *args, "--as-of", AS_OF)
    assert result.code == 0, result.output
    shown = {name: row[10] for name, row in table_rows(result.output, "By campaign").items()}
    assert shown == {"a": "234\u00a0₽", "b": "233\u00a0₽", "c": "233\u00a0₽"}
    cells = [[cell.strip() for cell in line.split("│")] for line in result.output.splitlines()]
    assert {row[1]: row[2] for row in cells if len(row) == 4}["Cost"] == "700\u00a0₽"
    # The JSON keeps each group's own figure, as the report filtered to it gives it.
    data = report_json(tmp_path / "config.toml", "--from", "2026-11-16", "--to", "2026-11-22")
    assert [g["cost"] for g in data["by_campaign"].values()] == [233.33, 233.33, 233.33]


def test_a_share_short_of_everyone_is_never_written_as_100_percent():
    from bot.digest import _pct as digest_pct
    from leadline.report_cli import _pct as report_pct

    # 399 of 400 registered: the digest writes whole per cent, `leadline report` tenths.
    assert (digest_pct(399 / 400), report_pct(399 / 400)) == ("99 %", "99.8 %")
    assert (digest_pct(9999 / 10000), report_pct(9999 / 10000)) == ("99 %", "99.9 %")
    assert (digest_pct(1.0), report_pct(1.0), digest_pct(0.994), report_pct(0.5)) == (
        "100 %",
        "100.0 %",
        "99 %",
        "50.0 %",
    )
