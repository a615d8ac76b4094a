"""The owner's digest: its text, its chart, the outbox rows with a bot token, the log without one."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from pathlib import Path

import pytest

from bot.digest import compose, period_due, report_text, send_digest, write
from bot.digest_figures import dearest_campaigns, gather, leadless
from bot.replies import fits_telegram
from leadline.config import Config
from storage.db import Store, connect, open_database
from storage.lists import missed
from storage.nudges.actions import callback_nudge, mark_called_back
from storage.reports.report import build_report
from storage.reports.scope import Period, Scope
from storage.worktime import WorkingCalendar
from tests.cli import run_cli_sync
from tests.conftest import BASE
from tests.numbers.month import CAMPAIGNS, MSK, Month, month_config, msk, open_month, transaction
from tests.privacy.stored import forget

PNG = b"\x89PNG\r\n\x1a\n"


def build(tmp_path: Path, **overrides: object) -> Config:
    """The hand-counted month, in an office whose ``[leadline] language`` is English (owners without a
    language of their own, and the log, read that)."""
    overrides.setdefault("leadline", {**BASE["leadline"], "language": "en"})
    config = month_config(tmp_path, goals={"leads": 10}, **overrides)
    open_month(config.database_path, config).db.close()
    return config


def test_the_day_against_the_same_day_a_week_earlier(tmp_path: Path):
    config = build(tmp_path)
    db = connect(config.database_path)
    digest = compose(db, config, Period.day(date(2026, 11, 16), MSK), msk(17, 9))
    db.close()
    text = digest.text
    assert "<b>Leadline · Mon 16 Nov 2026</b>" in text
    # C7 called twice (missed at 10:00, answered at 11:00); Mon 9 Nov had no inbound contact.
    assert "Inbound contacts: <b>1</b> (+1) · touches 2" in text
    assert "By channel: Call 1 (LRR 100 %)\n" in text
    assert "Registered: <b>1 · LRR 100 %</b>" in text
    assert "Registration lag: p50 65 min, p90 65 min (SLA 15: 0 of 1 in time)" in text
    # C7 was not called back in time (the SLA's figure), but it was answered at 11:00: nothing to
    # call back, so no list and no button (as /missed has it).
    assert "Missed calls: <b>1</b> · not called back in time <b>1</b>" in text
    assert "still not called back" not in text and "+79160000007" not in text
    assert "Leads: <b>1</b> (−1) · hot 1, warm 0, cold 0" in text  # C2 and C4 became leads on Mon 9 Nov
    # Month to date (1-16 Nov): brand_msk 45 000 * 16/30 over 2 leads is the worst LC.
    assert (
        "Worst lead cost this month: <b>brand_msk</b> RUB\u00a012,000 (2 leads for RUB\u00a024,000)" in text
    )
    # 4 leads in 11 of November's 20 working days (to Tue 17 Nov, the report time) head for 7.
    assert "Goals this month (so far/target → heading for): leads 4/10 → 7" in text
    assert digest.buttons == []
    assert digest.chart_png.startswith(PNG)
    # The log copy has no markup (its lists: test_without_a_token_the_digest_goes_to_the_log_with_its_figures_and_no_one_on_its_lists).
    assert "<b>" not in digest.log_text


def test_a_month_not_over_charges_its_cost_only_up_to_the_report_day(tmp_path: Path):
    """Tue 17 Nov 09:00: the digest, ``/report month`` and ``leadline report`` all charge brand_msk's
    November (45 000) by the days gone, not the whole month against the leads so far."""
    config = build(tmp_path)
    db = connect(config.database_path)
    now = msk(17, 9)
    digest = compose(db, config, Period.day(date(2026, 11, 16), MSK), now, digest=True).text
    month = report_text(db, config, Period.month(date(2026, 11, 17), MSK), now)
    to_yesterday = report_text(db, config, Period(date(2026, 11, 1), date(2026, 11, 16), MSK), now)
    db.close()
    # The digest's month runs to its last day, 16 Nov: 45 000 * 16/30 over 2 leads.
    sixteen_days = (
        "Worst lead cost this month: <b>brand_msk</b> RUB\u00a012,000 (2 leads for RUB\u00a024,000)"
    )
    assert sixteen_days in digest and sixteen_days in to_yesterday
    # /report month at 09:00 on the 17th: 17 of the 30 days are under way, 45 000 * 17/30.
    assert (
        "Worst lead cost this month: <b>brand_msk</b> RUB\u00a012,750 (2 leads for RUB\u00a025,500)" in month
    )

    def brand(*period: str) -> tuple[float, int, float]:
        args = ("report", "--config", str(tmp_path / "config.toml"), "--json", "--as-of", "2026-11-17T09:00")
        result = run_cli_sync(*args, *period)
        assert result.code == 0, result.output
        figures = json.loads(result.output)["by_campaign"]["brand_msk"]
        return figures["cost"], figures["leads"], figures["lead_cost"]

    assert brand("--period", "month") == (25500, 2, 12750)
    assert brand("--from", "2026-11-01", "--to", "2026-11-16") == (24000, 2, 12000)
    # A week not over is cut the same way: Mon 16 and Tue 17 of brand_msk's 30 days.
    assert brand("--period", "week")[0] == 3000


def test_the_day_is_compared_with_the_week_earlier_day_as_it_stood_as_long_after_it(tmp_path: Path):
    """Two Mondays alike: 10 forms each, 8 registered the same day and 2 on the Wednesday after.
    Each Tuesday's digest says 80 %, and so no change: the Monday a week earlier is measured as of
    its own Tuesday 09:00, not with the week more it has had to be registered."""
    config = month_config(tmp_path, leadline={**BASE["leadline"], "language": "en"})
    m = Month(open_database(config.database_path), config)
    for monday, wednesday in ((9, 11), (16, 18)):
        for i in range(10):
            phone = f"+7916{monday:03d}{i:04d}"
            form = m.contact_event("form", f"f{monday}-{i}", msk(monday, 10, i), phones=(phone,))
            m.register(form, "lead", msk(monday if i < 8 else wednesday, 12, i), "Anna", temperature="warm")
    m.db.close()
    db = connect(config.database_path)
    before = compose(db, config, Period.day(date(2026, 11, 9), MSK), msk(10, 9), digest=True).text
    after = compose(db, config, Period.day(date(2026, 11, 16), MSK), msk(17, 9), digest=True).text
    db.close()
    assert "Registered: <b>8 · LRR 80 %</b> · new 80 %" in before
    assert "Registered: <b>8 · LRR 80 %</b> (=) · new 80 %" in after
    assert "<i>(changes vs Mon 09 Nov)</i>" in after


def test_the_digest_says_how_fast_people_were_answered_and_who_waits_longest(tmp_path: Path):
    config = build(tmp_path)
    db = connect(config.database_path)
    day = compose(db, config, Period.day(date(2026, 11, 16), MSK), msk(17, 9))
    month = compose(db, config, Period(date(2026, 11, 1), date(2026, 11, 30), MSK), msk(30, 9), "ru")
    db.close()
    # C7 missed at 10:00 and was answered when it called again at 11:00: 60 real minutes.
    assert "Median response 60 min, 0 % within 5 min; nobody is still waiting\n" in day.text
    # The month: of 8 contacts 2 were answered within 5 minutes (C1's and C6's answered calls); C5
    # mailed on 11 Nov at 23:59 and C9 later, and nobody answered either.
    line = "Медиана ответа 60 мин, в первые 5 мин — 25 %; дольше всех ждёт ответа: {} с 11 нояб., 23:59 MSK"
    assert line.format("petr@example.net") in month.text
    # The log's copy says since when, not who (nothing personal in a log, DESIGN.md).
    assert "дольше всех ждёт ответа: с 11 нояб., 23:59 MSK" in month.log_text
    assert "p***@e***" not in month.log_text and "petr" not in month.log_text


def test_report_text_for_any_period_lists_who_is_still_unregistered(tmp_path: Path):
    config = build(tmp_path)
    db = connect(config.database_path)
    text = report_text(db, config, Period(date(2026, 11, 11), date(2026, 11, 16), MSK), msk(17, 9))
    db.close()
    assert "<b>Leadline · 2026-11-11..2026-11-16</b>" in text
    assert "Still not registered: 1</b>\n• 11 Nov, 23:59 MSK petr@example.net" in text
    assert "(changes vs" not in text  # only a single day is compared with a week earlier


async def test_with_a_bot_token_each_owner_gets_the_chart_and_the_text_once(tmp_path: Path):
    config = build(tmp_path, telegram={"token": "123:abc"})
    store = Store.open(config.database_path)
    try:
        sent = await send_digest(config, store, date(2026, 11, 16), now=msk(17, 9))
        again = await send_digest(config, store, date(2026, 11, 16), now=msk(17, 9, 5))
    finally:
        await store.close()
    assert len(sent.queued) == 2 and again.queued == []
    assert sent.chart == tmp_path / "leadline-digest-2026-11-16.png"
    assert sent.chart.read_bytes().startswith(PNG)
    db = connect(config.database_path)
    rows = db.execute("SELECT chat_id, method, payload, dedupe_key FROM outbox ORDER BY id").fetchall()
    db.close()
    assert [(r[0], r[1], r[3]) for r in rows] == [
        (111, "sendPhoto", "digest:2026-11-16:111:photo"),
        (111, "sendMessage", "digest:2026-11-16:111:text"),
    ]
    photo, message = json.loads(rows[0][2]), json.loads(rows[1][2])
    assert photo["photo"] == f"file://{sent.chart.resolve()}" and photo["parse_mode"] == "HTML"
    assert photo["caption"].startswith("<b>Leadline · Mon 16 Nov 2026</b>")
    assert message["text"] == sent.digest.text
    assert "reply_markup" not in message  # C7 was answered at 11:00: nobody to call back


async def test_a_link_in_a_listed_name_is_never_a_preview_under_the_digest(tmp_path: Path):
    """A spam form's name holding a URL is on the list to register: Telegram would draw a preview of
    the spammer's page under the owner's digest, which every other bot text turns off."""
    config = month_config(
        tmp_path, telegram={"token": "123:abc"}, leadline={**BASE["leadline"], "language": "en"}
    )
    db = open_database(config.database_path)
    m = Month(db, config)
    spam = "Cheap SEO https://spam.example/offer"
    m.contact_event("form", "spam", msk(17, 10), phones=("+79160000001",), name=spam)
    db.close()
    store = Store.open(config.database_path)
    try:
        await send_digest(config, store, date(2026, 11, 17), now=msk(18, 9))
    finally:
        await store.close()
    db = connect(config.database_path)
    [payload] = db.execute("SELECT payload FROM outbox WHERE method = 'sendMessage'").fetchone()
    db.close()
    message = json.loads(payload)
    assert f"• 17 Nov, 10:00 MSK {spam} +79160000001" in message["text"]
    assert message["link_preview_options"] == {"is_disabled": True}
    assert message["parse_mode"] == "HTML" and message["reply_markup"]["inline_keyboard"]


async def test_without_a_token_the_digest_goes_to_the_log_with_its_figures_and_no_one_on_its_lists(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    config = build(tmp_path)
    store = Store.open(config.database_path)
    try:
        with caplog.at_level(logging.INFO, logger="leadline.digest"):
            sent = await send_digest(config, store, date(2026, 11, 3), now=msk(17, 9))
    finally:
        await store.close()
    assert sent.queued == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    # C3, missed on Tue 3 Nov, was never called back: counted, not named, not even masked.
    assert "\nMissed, still not called back: 1\n" in logged
    assert "•" not in logged and "+79" not in logged and "17:55" not in logged
    assert f"chart: {tmp_path / 'leadline-digest-2026-11-03.png'}" in logged
    assert (tmp_path / "leadline-digest-2026-11-03.png").read_bytes().startswith(PNG)


async def test_without_a_token_the_log_reads_the_offices_language(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """The log has no reader of its own: it is written in ``[leadline] language``, whatever the
    owners speak."""
    staff = [{**BASE["staff"][0], "language": "en"}, BASE["staff"][1]]
    config = build(tmp_path, leadline={**BASE["leadline"], "language": "ru"}, staff=staff)
    store = Store.open(config.database_path)
    try:
        with caplog.at_level(logging.INFO, logger="leadline.digest"):
            sent = await send_digest(config, store, date(2026, 11, 16), now=msk(17, 9))
    finally:
        await store.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Leadline · пн, 16 ноября 2026\nВходящие контакты: 1 (+1) · обращений 2\n" in logged
    assert "Пропущенных звонков: 1 · без перезвона в срок 1" in logged
    assert "до сих пор без перезвона" not in logged  # C7 was answered at 11:00
    assert (
        "Самая высокая стоимость лида в этом месяце: brand_msk 12\u00a0000\u00a0₽ (2 лида за 24\u00a0000\u00a0₽)"
        in logged
    )
    assert "Цели месяца (сейчас/цель → прогноз на месяц): лиды 4/10 → 7" in logged
    assert "Inbound contacts" not in logged and "+79160000007" not in logged
    assert set(sent.languages) == {"ru"} and sent.queued == []
    assert f"chart: {tmp_path / 'leadline-digest-2026-11-16.png'}" in logged


def test_a_count_before_a_noun_agrees_with_it_in_both_languages(tmp_path: Path):
    """Monday 2 November: brand_msk's one lead so far cost 3 000. (Not the known month: there vk_ads
    has spent 1 333 by then with no lead, and is the worst.)"""
    config = month_config(tmp_path, leadline={**BASE["leadline"], "language": "en"}, campaigns=CAMPAIGNS[:1])
    db = open_database(config.database_path)
    try:
        m = Month(db, config)
        call = m.call("+79160000001", msk(2, 10), answered=True, extension="101", tracking="+74950000055")
        m.register(call, "lead", msk(2, 10, 12), "Anna", temperature="hot")
        day = Period.day(date(2026, 11, 2), MSK)
        english = compose(db, config, day, msk(17, 9)).text
        russian = compose(db, config, day, msk(17, 9), locale="ru").text
    finally:
        db.close()
    assert (
        "Worst lead cost this month: <b>brand_msk</b> RUB\u00a03,000 (1 lead for RUB\u00a03,000)" in english
    )
    assert (
        "Самая высокая стоимость лида в этом месяце: <b>brand_msk</b> 3\u00a0000\u00a0₽ (1 лид за 3\u00a0000\u00a0₽)"
        in russian
    )
    assert russian.startswith("<b>Leadline · пн, 2 ноября 2026</b>\n")
    assert "<i>(в сравнении с пн, 26 октября)</i>" in russian


def test_each_digest_covers_the_days_since_the_last_one_up_to_yesterday(tmp_path: Path):
    """The rule alone, on the Russian calendar: the periods tile the days, one digest per morning."""
    config = build(tmp_path)
    calendar = WorkingCalendar.from_config(config.working_time, MSK)

    def due(last: date | None, today: date) -> tuple[date, date] | None:
        period = period_due(last, today, calendar)
        return (period.start, period.end) if period else None

    # Tuesday: Monday. Monday: Friday to Sunday. Thursday after Unity Day (Wed 4 Nov): Tue and Wed.
    assert due(date(2026, 11, 15), date(2026, 11, 17)) == (date(2026, 11, 16), date(2026, 11, 16))
    assert due(date(2026, 11, 19), date(2026, 11, 23)) == (date(2026, 11, 20), date(2026, 11, 22))
    assert due(date(2026, 11, 2), date(2026, 11, 5)) == (date(2026, 11, 3), date(2026, 11, 4))
    # Already sent today (a restart, a second run): nothing.
    assert due(date(2026, 11, 22), date(2026, 11, 23)) is None
    # Down Thursday to Monday: Tuesday's one digest covers all since the last (Wednesday's) up to Monday.
    assert due(date(2026, 11, 17), date(2026, 11, 24)) == (date(2026, 11, 18), date(2026, 11, 23))
    # A base's first digest starts at the previous working day: on the first working day of 2026,
    # the whole New Year break from Tuesday 30 December.
    assert due(None, date(2026, 1, 12)) == (date(2025, 12, 30), date(2026, 1, 11))
    assert due(None, date(2026, 11, 17)) == (date(2026, 11, 16), date(2026, 11, 16))


def test_a_span_is_named_in_the_readers_words_and_compared_with_the_same_weekdays_before(tmp_path: Path):
    """The New Year break (13 days) is set against the 13 days two weeks earlier, not overlapping it."""
    config = build(tmp_path)
    db = connect(config.database_path)
    try:
        span = Period(date(2025, 12, 30), date(2026, 1, 11), MSK)
        english = compose(db, config, span, msk(17, 9), digest=True).text
        russian = compose(db, config, span, msk(17, 9), locale="ru", digest=True).text
        # /report for the same days keeps its own words: the period as written, no comparison.
        report = report_text(db, config, span, msk(17, 9))
    finally:
        db.close()
    assert english.startswith("<b>Leadline · Tue 30 Dec 2025 – Sun 11 Jan 2026</b>\n")
    assert "<i>(changes vs Tue 16 – Sun 28 Dec)</i>" in english
    assert russian.startswith("<b>Leadline · вт, 30 декабря 2025 – вс, 11 января 2026</b>\n")
    assert "<i>(в сравнении с вт, 16 – вс, 28 декабря)</i>" in russian
    assert report.startswith("<b>Leadline · 2025-12-30..2026-01-11</b>\n") and "(changes vs" not in report


def test_an_erased_person_is_counted_but_not_listed_to_register_or_call_back(tmp_path: Path):
    """After /forget nobody can register or call the person back: the counts keep them, the lists,
    the buttons and "slowest still waiting" do not (as /unregistered and /missed leave them out)."""
    config = month_config(tmp_path, leadline={**BASE["leadline"], "language": "en"})
    db = open_database(config.database_path)
    m = Month(db, config)
    erased = m.contact_of(m.call("+79160000061", msk(17, 10), answered=False))
    kept = m.contact_of(m.call("+79160000062", msk(17, 11), answered=False))
    forget(db, erased, msk(17, 15))
    digest = compose(db, config, Period.day(date(2026, 11, 17), MSK), msk(18, 9), digest=True)
    db.close()
    text = digest.text
    assert "Missed calls: <b>2</b>" in text and "Registered: <b>0 · LRR 0 %</b>" in text
    assert "slowest still waiting: +79160000062 since 17 Nov, 11:00 MSK" in text
    erased_line = "(of them erased at their request: 1)"
    assert f"Still not registered: 2</b>\n• 17 Nov, 11:00 MSK +79160000062\n{erased_line}\n" in text
    assert (
        f"• 17 Nov, 11:00 MSK +79160000062\n{erased_line}" in text.split("Missed, still not called back")[1]
    )
    assert "#" not in text and "more" not in text
    assert digest.buttons == [("Register: +79160000062", f"contact:{kept}")]


def test_a_campaign_that_spent_and_brought_no_lead_is_named_the_worst_lead_cost(tmp_path: Path):
    """Money spent with no lead has no finite lead cost: the worst case, not one to leave out."""
    config = month_config(tmp_path, leadline={**BASE["leadline"], "language": "en"})
    db = open_database(config.database_path)
    m = Month(db, config)
    for i in range(3):  # brand_msk's calls: job seekers, no lead
        call = m.call(
            f"+7916000003{i}", msk(17, 10 + i), answered=True, extension="101", tracking="+74950000055"
        )
        m.register(call, "not_a_lead", msk(17, 10 + i, 5), "Anna", reason="job_seeker")
    form = m.contact_event(
        "form", "tilda:40", msk(17, 12), phones=("+79160000040",), utm={"utm_source": "vk"}
    )
    m.register(form, "lead", msk(17, 12, 5), "Anna", temperature="warm")
    day = Period.day(date(2026, 11, 17), MSK)
    figures = gather(db, config, day, msk(18, 9), digest=True)
    db.close()
    # 1-17 Nov: brand_msk 45 000 * 17/30 and no lead; vk_ads 30 500 * 17/61 for its one lead.
    assert "Worst lead cost this month: <b>brand_msk</b> RUB\u00a025,500 spent, no leads yet" in (
        write(figures, config, "en").text
    )
    assert (
        "Самая высокая стоимость лида в этом месяце: <b>brand_msk</b> — потрачено 25\u00a0500\u00a0₽,"
        " лидов пока нет" in write(figures, config, "ru").text
    )
    # The chart's lead-cost panel, dearest first: brand_msk's spend above vk_ads' lead cost.
    ranked = dearest_campaigns(figures.month_report["by_campaign"])
    assert [(name, leadless(g)) for name, g in ranked] == [("brand_msk", True), ("vk_ads", False)]


def test_the_list_to_call_back_is_missed_s_and_the_count_is_the_sla_s(tmp_path: Path):
    """A call returned an hour late, or by "Called back", is off the list (as /missed has it), and
    still counts as not called back in time: each is labelled for what it is."""
    config = month_config(tmp_path, leadline={**BASE["leadline"], "language": "en"})
    db = open_database(config.database_path)
    m = Month(db, config)
    late = m.call("+79160003001", msk(17, 10), answered=False)
    m.call("+79160003001", msk(17, 11), answered=True, extension="101", direction="out")  # past the SLA
    pressed = m.call("+79160003002", msk(17, 12), answered=False)
    waiting = m.call("+79160003003", msk(17, 14), answered=False)
    with transaction(db):
        nudge = callback_nudge(db, pressed, staff_id=m.staff["Anna"], chat_id=1, at=msk(17, 12, 5))
        mark_called_back(db, nudge, staff_id=m.staff["Anna"], at=msk(17, 12, 40))  # past the SLA
    for touch in (late, pressed, waiting):  # registered, so the only buttons are the call-backs
        m.register(touch, "not_a_lead", msk(17, 15), "Anna", reason="partner")
    figures = gather(db, config, Period.day(date(2026, 11, 17), MSK), msk(18, 9), digest=True)
    assert missed(db, None, 10).total == 1
    contact = f"contact:{m.contact_of(waiting)}"
    db.close()
    english, russian = write(figures, config, "en"), write(figures, config, "ru")
    assert "Missed calls: <b>3</b> · not called back in time <b>3</b>" in english.text
    assert "<b>Missed, still not called back: 1</b>\n• 17 Nov, 14:00 MSK +79160003003\n" in english.text
    assert "Пропущенных звонков: <b>3</b> · без перезвона в срок <b>3</b>" in russian.text
    assert (
        "<b>Пропущенные, до сих пор без перезвона: 1</b>\n• 17 нояб., 14:00 MSK +79160003003\n"
        in russian.text
    )
    assert english.buttons == [("Call back: +79160003003", contact)]
    assert russian.buttons == [("Перезвонить: +79160003003", contact)]


def test_a_missed_call_still_within_its_call_back_time_is_not_counted_late(tmp_path: Path):
    """Two calls missed on Saturday 14 Nov are due by Monday 09:30 (30 working minutes). Monday's
    09:00 digest lists both to call back and counts neither as late; Boris returns one at 09:10, and
    from 09:30 the other is late, in the report as of any moment, whatever was recorded after it."""
    config = month_config(tmp_path, leadline={**BASE["leadline"], "language": "en"})
    m = Month(open_database(config.database_path), config)
    m.call("+79161110001", msk(14, 12), answered=False)
    m.call("+79161110002", msk(14, 13), answered=False)
    weekend = Period(date(2026, 11, 13), date(2026, 11, 15), MSK)
    digest = compose(m.db, config, weekend, msk(16, 9), digest=True).text
    assert "Missed calls: <b>2</b> · not called back in time <b>0</b>" in digest
    assert "<b>Missed, still not called back: 2</b>" in digest
    m.call("+79161110001", msk(16, 9, 10), answered=True, extension="102", direction="out")

    def late(at: datetime) -> tuple[int, int]:
        report = build_report(m.db, Scope(weekend, as_of=at), m.rules)
        return report["missed_calls"], report["missed_not_called_back"]

    assert late(msk(16, 9)) == (2, 0)  # the call-back at 09:10 is after it, the deadline too
    assert late(msk(16, 9, 29)) == (2, 0)
    assert late(msk(16, 9, 30)) == (2, 1)  # +79161110002's deadline
    assert late(msk(16, 12)) == (2, 1)
    m.db.close()


def test_long_names_are_cut_on_the_lists_so_the_digest_still_reaches_telegram(tmp_path: Path):
    """A form keeps a name of up to 1,024 characters: five of them on the lists made a digest that
    Telegram refused for good, and the owner got the chart without its text."""
    config = build(tmp_path)
    db = connect(config.database_path)
    with db.conn:
        db.conn.execute("UPDATE contacts SET name = 'Иван ' || printf('%.1019c', 'Ж')")
    period, now = Period(date(2026, 11, 1), date(2026, 11, 16), MSK), msk(17, 9)
    text = report_text(db, config, period, now)
    db.close()
    names = [line for line in text.split("\n") if "Иван Ж" in line]
    assert len(names) == 3  # the slowest waiting, one still unregistered, one missed call
    assert all(len(line) < 250 and "Ж…" in line for line in names)
    assert fits_telegram({"text": text})


def test_people_who_do_not_fit_are_counted_so_the_digest_always_reaches_telegram(tmp_path: Path):
    """Capture keeps names of 1,024 characters and addresses of 254, and Telegram counts an emoji as
    two: ten such people on the lists made a text Telegram refused for good, and the owner got the
    chart alone. Each person is cut, and those who still do not fit are in "… and N more"."""
    config = month_config(tmp_path, leadline={**BASE["leadline"], "language": "en"})
    db = open_database(config.database_path)
    m = Month(db, config)
    for i in range(20):  # forms nobody registered, from 254-character addresses
        address = f"{i:02d}" + "🌸" * 247 + "@x.ru"
        m.contact_event("form", f"spam{i}", msk(17, 9, i), emails=(address,), name="🌸" * 1024)
    for i in range(10):  # people who left a form, then called and were missed
        phone = f"+7916555{i:04d}"
        m.contact_event("form", f"call-me{i}", msk(17, 10, i), phones=(phone,), name="<Мария> & Co " * 78)
        m.call(phone, msk(17, 12, i), answered=False)
    figures = gather(db, config, Period.day(date(2026, 11, 17), MSK), msk(18, 9), digest=True)
    db.close()
    for locale, more in (("en", "… and {} more"), ("ru", "… и ещё {}")):
        digest = write(figures, config, locale)
        assert fits_telegram({"text": digest.text}), locale
        blocks = digest.text.split("\n\n<b>")[1:3]
        assert [block.split("</b>")[0].rsplit(" ", 1)[1] for block in blocks] == ["30", "10"]
        for block, count in zip(blocks, (30, 10), strict=True):
            named = [line for line in block.split("\n") if line.startswith("• 17 ")]
            assert named and all("…" in line for line in named)  # names and addresses cut
            assert more.format(count - len(named)) in block.split("\n")
        assert len(digest.buttons) == 10  # every listed person can still be opened
    # English fits fewer than all ten people: the last one named is the fourth missed call.
    english = write(figures, config, "en").text
    assert "• 17 Nov, 12:03 MSK &lt;Мария&gt;" in english and "• 17 Nov, 12:04" not in english
    assert "\n… and 6 more\n" in english
