"""/report, /plan and /cost in Telegram, on the hand-counted November of tests/numbers.

The figures expected here are worked out from the stories in ``tests/numbers/month.py`` (the
month) and ``tests/numbers/test_seeds.py`` (100 leads, 20 qualified, 2 won); the bot's clock
stands at 09:00 on Tuesday 1 December 2026.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlite_utils import Database

from leadline.config import Config
from storage.db import open_database
from tests.bot.conftest import ANNA, BORIS, BotEnv
from tests.conftest import Running
from tests.fake_telegram import CallRecord
from tests.nudges.conftest import Clock
from tests.numbers.month import AS_OF, CAMPAIGNS, Month, build_known_month
from tests.numbers.test_cli_numbers import cold_call_run
from tests.numbers.test_seeds import SEED_CAMPAIGNS, seed_month

PNG = b"\x89PNG\r\n\x1a\n"


def known_month(db: Database, config: Config) -> None:
    build_known_month(db, config)


def seeded_month(db: Database, config: Config) -> None:
    seed_month(db, Month(db, config))


async def start_on(
    bot_env: BotEnv,
    fill: Callable[[Database, Config], None],
    campaigns: list[dict[str, Any]],
    **overrides: Any,
) -> Running:
    """The month written into the database file first, then the server started on it at 1 December."""
    config = bot_env.config(campaigns=campaigns, nudges={"sweep_seconds": 3600}, **overrides)
    db = open_database(config.database_path)
    try:
        fill(db, config)
    finally:
        db.close()
    return await bot_env.start(config, clock=Clock(AS_OF))


def text_of(record: CallRecord) -> str:
    """What the person reads: the message as Telegram shows it, markup rendered away."""
    return str(record.result["text"])


def last_photo(bot_env: BotEnv, chat_id: int) -> tuple[str, bytes]:
    message = bot_env.tg.results("sendPhoto", chat_id=chat_id)[-1]
    stored = bot_env.tg.files[message["photo"][-1]["file_id"]]
    return str(message["caption"]), stored.data


async def test_report_sends_the_digest_with_its_chart_for_any_period(bot_env: BotEnv) -> None:
    srv = await start_on(bot_env, known_month, CAMPAIGNS)

    # No period: yesterday, as in the morning digest. C9's form at 23:59 on Monday 30 November is
    # still unregistered; the same Monday a week earlier had nobody.
    yesterday = await bot_env.says(ANNA, "/report", language="en")
    text = text_of(yesterday)
    assert text.startswith("Leadline · Mon 30 Nov 2026\nInbound contacts: 1 (+1) · touches 1\n")
    assert "Registered: 0 · LRR 0 % · new 0 %" in text
    assert "Still not registered: 1\n• 30 Nov, 23:59 MSK +79160000009" in text
    c9 = srv.scalar("SELECT contact_id FROM identifiers WHERE value = '+79160000009'")
    assert bot_env.tg.buttons(ANNA, yesterday.result["message_id"]) == [
        {"text": "Register: +79160000009", "callback_data": f"contact:{c9}"}
    ]
    caption, png = last_photo(bot_env, ANNA)
    assert caption.startswith("Leadline · Mon 30 Nov 2026\nInbound contacts: 1")
    assert png.startswith(PNG)

    # One day: C7 missed at 10:00, answered at 11:00 (after the 10:30 call-back deadline), a hot
    # lead at 11:05 (65 working minutes). Monday 9 November had no inbound contact and 2 leads.
    day = text_of(await bot_env.says(ANNA, "/report 2026-11-16", language="en"))
    assert day.startswith("Leadline · Mon 16 Nov 2026\nInbound contacts: 1 (+1) · touches 2\n")
    assert "Registered: 1 · LRR 100 % · new 100 %" in day
    assert "Registration lag: p50 65 min, p90 65 min (SLA 15: 0 of 1 in time)" in day
    assert "Missed calls: 1 · not called back in time 1" in day
    assert "Leads: 1 (−1) · hot 1, warm 0, cold 0" in day
    assert "(changes vs Mon 09 Nov)" in day

    # A range: C1..C6 and the two hidden callers; all but C5's mail registered (C6 in October).
    first_half = text_of(await bot_env.says(ANNA, "/report 2026-11-01..2026-11-15", language="en"))
    assert first_half.startswith("Leadline · 2026-11-01..2026-11-15\n")
    assert "Inbound contacts: 6 · touches 9, hidden numbers 2" in first_half
    assert "Registered: 5 · LRR 83 % · new 80 %" in first_half
    assert "(changes vs" not in first_half

    # The month: the figures `leadline report --period 2026-11` gives, and the dearest lead.
    month = text_of(await bot_env.says(ANNA, "/report 2026-11", language="en"))
    assert "Inbound contacts: 8 · touches 12, hidden numbers 2" in month
    assert "Registered: 6 · LRR 75 % · new 71 %" in month
    assert "Registration lag: p50 20 min, p90 51 min" in month
    assert "Missed calls: 4 · not called back in time 2" in month
    assert "Worst lead cost this month: brand_msk RUB\u00a022,500 (2 leads for RUB\u00a045,000)" in month
    caption, png = last_photo(bot_env, ANNA)
    assert caption.startswith("Leadline · 2026-11\n") and png.startswith(PNG)
    assert len(bot_env.tg.sent("sendPhoto", chat_id=ANNA)) == 4

    # What cannot be read is answered with what to write, in the reader's language.
    unknown = text_of(await bot_env.says(ANNA, "/report fortnight", language="en"))
    assert unknown.startswith("I cannot read the period “fortnight”. Write one of: today, yesterday, week,")
    assert "2026-11-01..2026-11-15" in unknown
    backwards = text_of(await bot_env.says(ANNA, "/report 2026-11-15..2026-11-01", language="ru"))
    assert backwards.startswith("Период «2026-11-15..2026-11-01» кончается раньше, чем начинается")
    russian = text_of(await bot_env.says(ANNA, "/report вчера", language="ru"))
    assert russian.startswith("Leadline · пн, 30 ноября 2026\nВходящие контакты: 1 (+1) · обращений 1\n")

    # Staff see their own work, not the company's figures.
    refused = text_of(await bot_env.says(BORIS, "/report", language="en"))
    assert refused == "Reports and plans are for managers and owners. Ask one of them for the figures."
    assert bot_env.tg.sent("sendPhoto", chat_id=BORIS) == []
    assert len(bot_env.tg.sent("sendPhoto", chat_id=ANNA)) == 5

    # Today is not over: no whole day to set it against.
    assert "(changes vs" not in text_of(await bot_env.says(ANNA, "/report today", language="en"))

    # The owner's command menu offers them (in her language); staff's does not.
    await bot_env.delivered()
    owner_menu = {
        c["command"]: c["description"] for c in bot_env.tg.my_commands({"type": "chat", "chat_id": ANNA})
    }
    assert {"report", "plan", "cost"} <= owner_menu.keys()
    assert owner_menu["cost"] == "записать расход кампании, например /cost brand_msk 2026-11 45000 ads"
    staff_menu = [c["command"] for c in bot_env.tg.my_commands({"type": "chat", "chat_id": BORIS})]
    assert staff_menu and not {"report", "plan", "cost"} & set(staff_menu)


async def test_report_charts_a_campaign_whose_title_has_dollars(bot_env: BotEnv) -> None:
    # matplotlib read "$$" as mathtext and raised: "something went wrong", and no chart, every time.
    await start_on(bot_env, known_month, [{**CAMPAIGNS[0], "title": "Easy $$ cash back"}, CAMPAIGNS[1]])
    month = text_of(await bot_env.says(ANNA, "/report 2026-11", language="en"))
    assert (
        "Worst lead cost this month: Easy $$ cash back RUB\u00a022,500 (2 leads for RUB\u00a045,000)" in month
    )
    assert len(bot_env.tg.sent("sendPhoto", chat_id=ANNA)) == 1
    caption, png = last_photo(bot_env, ANNA)
    assert caption.startswith("Leadline · 2026-11\n") and png.startswith(PNG)


async def test_cost_from_the_owner_is_recorded_and_moves_the_lead_cost(bot_env: BotEnv) -> None:
    srv = await start_on(bot_env, known_month, CAMPAIGNS)
    bot_costs = (
        "SELECT campaign, period_start, period_end, item, amount, staff_id FROM campaign_costs"
        " WHERE origin = 'bot' ORDER BY id"
    )
    before = srv.rows(bot_costs)  # the month's own: 5 000 of design for vk_ads
    assert len(before) == 1

    refused = text_of(await bot_env.says(BORIS, "/cost brand_msk 2026-11 45000 ads", language="en"))
    assert refused == "Only owners can record costs. Ask an owner, or add the cost to the config."
    assert text_of(await bot_env.says(BORIS, "/cost brand_msk 2026-11 45000 ads", language="ru")).startswith(
        "Записывать расходы могут только владельцы."
    )

    usage = text_of(await bot_env.says(ANNA, "/cost", language="en"))
    assert usage.startswith(
        "Write the campaign, the month, the amount and, if you like, the item: /cost brand_msk"
    )
    unknown = text_of(await bot_env.says(ANNA, "/cost brand 2026-11 45000 ads", language="en"))
    assert unknown == "There is no campaign “brand”. The campaigns are: brand_msk, vk_ads."
    month = text_of(await bot_env.says(ANNA, "/cost brand_msk November 45000 ads", language="en"))
    assert month.startswith("I cannot read the month “November”: write it as 2026-11")
    amount = text_of(await bot_env.says(ANNA, "/cost brand_msk 2026-11 lots ads", language="ru"))
    assert amount.startswith("Не понимаю сумму «lots»: напишите число больше 0")
    assert srv.rows(bot_costs) == before

    anna = srv.scalar("SELECT id FROM staff WHERE telegram_id = ?", [ANNA])
    recorded = text_of(await bot_env.says(ANNA, "/cost BRAND_MSK 2026-11 45 000 ads", language="ru"))
    # The config's 45 000 of ads and this 45 000: 90 000 for November, in the config's RUB.
    assert recorded == (
        "✅ Записано: brand_msk, 2026-11, ads 45\u00a0000\u00a0₽.\n"
        "Расходы brand_msk за 2026-11 теперь всего 90\u00a0000\u00a0₽: ads 90\u00a0000\u00a0₽."
    )
    assert srv.rows(bot_costs)[1:] == [
        {
            "campaign": "brand_msk",
            "period_start": "2026-11-01",
            "period_end": "2026-11-30",
            "item": "ads",
            "amount": 45000.0,
            "staff_id": anna,
        }
    ]
    again = text_of(await bot_env.says(ANNA, "/cost vk_ads 2026-11-20 1500", language="en"))
    assert again == (
        "✅ Recorded: vk_ads, 2026-11-20, other RUB\u00a01,500.\nvk_ads for 2026-11-20 now costs RUB\u00a02,166.67"
        " in all: ads RUB\u00a0500, design RUB\u00a0166.67, other RUB\u00a01,500."
    )  # a day carries 1/61 of the ads' 30 500 and 1/30 of the design's 5 000, to the kopeck

    # The report's lead cost follows: brand_msk's 2 November leads now cost 45 000 each.
    report = text_of(await bot_env.says(ANNA, "/report 2026-11", language="en"))
    assert "Worst lead cost this month: brand_msk RUB\u00a045,000 (2 leads for RUB\u00a090,000)" in report


async def test_a_campaign_taken_out_of_the_config_is_costed_no_more_and_keeps_its_month(
    bot_env: BotEnv,
) -> None:
    """The owner ended vk_ads and took it out of ``[[campaigns]]``; after the restart ``/cost vk_ads``
    still answered "Recorded" and named vk_ads among the campaigns, so costs went on to a campaign
    that no longer exists (and, after a rename, to the old name)."""
    token = "crm-token-0123456789"
    auth = {"Authorization": f"Bearer {token}"}
    clients = [{"name": "crm", "token": token}]

    async def vk_ads(srv: Running) -> dict[str, Any]:
        async with srv.session.get(f"{srv.url}/api/report?period=2026-11", headers=auth) as resp:
            assert resp.status == 200
            return dict((await resp.json())["by_campaign"]["vk_ads"])

    srv = await start_on(bot_env, known_month, CAMPAIGNS, api_clients=clients)
    before = await vk_ads(srv)
    await srv.stop()
    config = bot_env.config(campaigns=CAMPAIGNS[:1], nudges={"sweep_seconds": 3600}, api_clients=clients)
    srv = await bot_env.start(config, clock=Clock(AS_OF))

    refused = text_of(await bot_env.says(ANNA, "/cost vk_ads 2026-12 5000 ads", language="en"))
    assert refused == "There is no campaign “vk_ads”. The campaigns are: brand_msk."
    assert srv.scalar("SELECT COUNT(*) FROM campaign_costs WHERE period_start = '2026-12-01'") == 0
    # Its November stays in the report: its leads, and the cost recorded from the bot (its config
    # costs went with its [[campaigns.costs]], as the config is their home).
    after = await vk_ads(srv)
    assert after["leads"] == before["leads"] > 0
    assert after["cost"] == 5000.0


async def test_a_cost_telegram_delivers_twice_is_recorded_once(bot_env: BotEnv) -> None:
    """Telegram posts an update again when the bot's answer timed out, or when polling restarts
    before the offset was confirmed: the second /cost was a second row, and every lead cost of the
    campaign's month doubled."""
    srv = await start_on(bot_env, known_month, CAMPAIGNS)
    first = text_of(await bot_env.says(ANNA, "/cost brand_msk 2026-11 45000 ads", language="en"))
    assert "brand_msk for 2026-11 now costs RUB\u00a090,000 in all" in first  # the config's 45 000 too
    [sent] = [
        u["message"] for u in bot_env.tg.updates if u.get("message", {}).get("text", "").startswith("/cost")
    ]

    replies = len(bot_env.tg.results("sendMessage", chat_id=ANNA))
    await bot_env.tg.wait_until_confirmed(bot_env.tg.inject_update({"message": sent}))
    await bot_env.delivered(ANNA)
    [again] = bot_env.tg.results("sendMessage", chat_id=ANNA)[replies:]
    assert again["text"] == first  # answered as the first time, and nothing added
    assert (
        srv.scalar("SELECT COUNT(*) FROM campaign_costs WHERE origin = 'bot' AND campaign = 'brand_msk'") == 1
    )
    report = text_of(await bot_env.says(ANNA, "/report 2026-11", language="en"))
    assert "Worst lead cost this month: brand_msk RUB\u00a045,000 (2 leads for RUB\u00a090,000)" in report


async def test_plan_when_a_cold_call_run_brought_more_leads_than_inbound_contacts(bot_env: BotEnv) -> None:
    await start_on(bot_env, cold_call_run, CAMPAIGNS)
    # 25 leads (20 from outbound calls) and 10 inbound contacts, 5 of whom became leads: 50 %.
    plan = text_of(await bot_env.says(ANNA, "/plan clients=2", language="en"))
    assert plan.startswith(
        "Plan for 2 clients, revenue RUB\u00a0200,000\n"
        "Rates: contact → lead 50 %, lead → qualified 20 %, qualified → won 40 %.\n"
    )
    assert "Inbound contacts: 50\nLeads: 25\nQualified: 5\nClients: 2\n" in plan


async def test_plan_for_2_clients_asks_for_100_leads(bot_env: BotEnv) -> None:
    await start_on(bot_env, seeded_month, SEED_CAMPAIGNS)

    # 100 leads in November, 20 qualified, 2 won at 100 000: 2 % of leads become clients.
    plan = text_of(await bot_env.says(ANNA, "/plan clients=2", language="en"))
    assert plan == (
        "Plan for 2 clients, revenue RUB\u00a0200,000\n"
        "Rates: contact → lead 100 %, lead → qualified 20 %, qualified → won 10 %.\n"
        "From 2026-09-02..2026-11-30: 100 leads, 20 qualified, 2 won.\n"
        "\n"
        "Inbound contacts: 100\n"
        "Leads: 100\n"
        "Qualified: 20\n"
        "Clients: 2\n"
        "Highest LC that pays: RUB\u00a02,000 (average deal RUB\u00a0100,000 × lead-to-client 2 %)"
    )
    russian = text_of(await bot_env.says(ANNA, "/plan --clients 2", language="ru"))
    assert russian.startswith("План на 2 клиентов, выручка 200\u00a0000\u00a0₽\n")
    assert "Лиды: 100\nКвалифицированы: 20\nКлиенты: 2" in russian
    assert (
        "Наибольшая цена лида, которая окупается: 2\u00a0000\u00a0₽ (средний чек 100\u00a0000\u00a0₽"
        in russian
    )

    # The command line's example with every rate given: 300 000 at 100 000 a deal is 3 clients.
    given = text_of(
        await bot_env.says(
            ANNA,
            "/plan 300000 100000 lead-to-qualified=20% qualified-to-won=0.1 contact-to-lead=50% margin=50%",
            language="en",
        )
    )
    assert given.startswith("Plan for 3 clients, revenue RUB\u00a0300,000\n")
    assert "From " not in given  # nothing was taken from the history
    assert "Inbound contacts: 300\nLeads: 150\nQualified: 30\nClients: 3" in given
    assert (
        "Highest LC that pays: RUB\u00a01,000 (average deal RUB\u00a0100,000 × lead-to-client 2 % × margin 50 %)"
        in given
    )

    nonsense = text_of(await bot_env.says(ANNA, "/plan lots", language="en"))
    assert nonsense.startswith(
        "I do not know “lots”.\nWrite the revenue target and, if you like, the average deal"
    )
    clients = text_of(await bot_env.says(ANNA, "/plan clients=two", language="ru"))
    assert clients.startswith("Число клиентов «two» должно быть целым и больше 0.\nНапишите цель по выручке")
    rate = text_of(await bot_env.says(ANNA, "/plan clients=2 lead-to-qualified=120%", language="en"))
    assert rate.startswith("The rate “120%” should be above 0 and at most 100 %")
    refused = text_of(await bot_env.says(BORIS, "/plan clients=2", language="en"))
    assert refused == "Reports and plans are for managers and owners. Ask one of them for the figures."


async def test_plan_without_enough_history_asks_for_the_rates(bot_env: BotEnv) -> None:
    await start_on(bot_env, known_month, CAMPAIGNS)
    # The 90 days before 1 December hold 5 leads (C6's from October too) and 1 won.
    answer = text_of(await bot_env.says(ANNA, "/plan clients=2", language="en"))
    assert answer == (
        "There is too little history to take the rates from: 2026-09-02..2026-11-30 has 5 leads and 1 won"
        " (at least 20 leads and 1 client are needed). Give the rates: /plan clients=2"
        " lead-to-qualified=20% qualified-to-won=10%."
    )
    nothing = text_of(
        await bot_env.says(ANNA, "/plan lead-to-qualified=20% qualified-to-won=10%", language="en")
    )
    assert nothing.startswith("Say what to plan for.\nWrite the revenue target")
    given = text_of(
        await bot_env.says(ANNA, "/plan clients=2 lead-to-qualified=20% qualified-to-won=10%", language="en")
    )
    assert "Leads: 100\nQualified: 20\nClients: 2" in given


async def test_plan_with_both_targets_is_refused_not_titled_with_a_revenue_it_does_not_reach(
    bot_env: BotEnv,
) -> None:
    """``/plan clients=2 300000`` answered "Plan for 2 clients, revenue 300 000" with the figures of
    2 clients at 100 000 a deal (200 000): the two targets are refused, as ``leadline plan`` refuses them."""
    await start_on(bot_env, seeded_month, SEED_CAMPAIGNS)
    for typed in ("/plan clients=2 300000", "/plan 300000 clients=2", "/plan revenue=300k --clients 2"):
        both = text_of(await bot_env.says(ANNA, typed, language="en"))
        assert both.startswith(
            "Clients and revenue are two targets: keep one (a revenue target plans the clients it takes"
            " at the average deal).\nWrite the revenue target"
        ), (typed, both)
    russian = text_of(await bot_env.says(ANNA, "/plan clients=2 300000", language="ru"))
    assert russian.startswith(
        "Клиенты и выручка — две разные цели: оставьте одну (по выручке план сам считает клиентов"
        " по среднему чеку).\nНапишите цель по выручке"
    ), russian
