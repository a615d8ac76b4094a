"""The digest as an owner reads it on a phone: a portrait chart, money in the office's currency,
campaigns by their titles, and no pile of old charts beside the database."""

from __future__ import annotations

import io
import math
import os
import struct
from datetime import date
from pathlib import Path

from matplotlib.image import imread

from bot.digest import KEEP_CHARTS, compose, send_digest
from bot.digest_chart import lrr_point
from bot.digest_figures import MIN_CONTACTS_FOR_LRR, gather
from storage.db import Store, connect, open_database
from storage.outbox import enqueue
from storage.reports.scope import Period
from tests.conftest import BASE
from tests.numbers.month import CAMPAIGNS, MSK, Month, month_config, msk
from tests.numbers.test_digest import build

TITLED = [{**CAMPAIGNS[0], "title": "Brand search, Moscow"}, CAMPAIGNS[1]]


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk, which always comes first."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_the_chart_is_a_portrait_for_a_phone(tmp_path: Path) -> None:
    config = build(tmp_path)
    db = connect(config.database_path)
    try:
        digest = compose(db, config, Period.day(date(2026, 11, 16), MSK), msk(17, 9), digest=True)
    finally:
        db.close()
    assert png_size(digest.chart_png) == (1080, 1350)


def test_money_is_in_the_configured_currency_and_campaigns_go_by_their_titles(tmp_path: Path) -> None:
    config = build(
        tmp_path, leadline={**BASE["leadline"], "language": "en", "currency": "USD"}, campaigns=TITLED
    )
    db = connect(config.database_path)
    try:
        day = Period.day(date(2026, 11, 16), MSK)
        english = compose(db, config, day, msk(17, 9)).text
        russian = compose(db, config, day, msk(17, 9), locale="ru").text
    finally:
        db.close()
    # Month to date (1-16 Nov): brand_msk's 45 000 * 16/30 over its 2 leads.
    assert "Worst lead cost this month: <b>Brand search, Moscow</b> $12,000 (2 leads for $24,000)" in english
    assert (
        "Самая высокая стоимость лида в этом месяце: <b>Brand search, Moscow</b>"
        " 12\u00a0000\u00a0$ (2 лида за 24\u00a0000\u00a0$)" in russian
    )
    assert "brand_msk" not in english and "₽" not in russian


def test_a_dollar_in_a_campaign_title_is_a_dollar_not_mathtext(tmp_path: Path) -> None:
    # "$$" made matplotlib's mathtext raise: no chart, so no /report and no digest at all.
    campaigns = [
        {**CAMPAIGNS[0], "title": "Easy $$ cash back"},
        {**CAMPAIGNS[1], "title": "Save $50 on $200+"},
    ]
    config = build(tmp_path, campaigns=campaigns)
    db = connect(config.database_path)
    try:
        digest = compose(db, config, Period.day(date(2026, 11, 16), MSK), msk(17, 9), digest=True)
    finally:
        db.close()
    assert png_size(digest.chart_png) == (1080, 1350)
    assert "Worst lead cost this month: <b>Easy $$ cash back</b>" in digest.text


def test_spent_no_leads_yet_stays_inside_the_picture_in_every_language(tmp_path: Path) -> None:
    """The Russian for "spent, no leads yet" is half as long again: under a title of 29 characters
    it ran off the picture's right edge and lost its "нет" (none), saying the opposite."""
    campaigns = [
        {**CAMPAIGNS[0], "title": "Яндекс Директ — поиск, Москва"},
        {**CAMPAIGNS[1], "title": "Google Ads search — Moscow region"},
    ]
    config = month_config(tmp_path, campaigns=campaigns, leadline={**BASE["leadline"], "language": "en"})
    db = open_database(config.database_path)
    try:
        Month(db, config)  # both have spent this month, and nobody has got in touch yet
        day = Period.day(date(2026, 11, 17), MSK)
        charts = [
            compose(db, config, day, msk(18, 9), locale, digest=True).chart_png for locale in ("en", "ru")
        ]
    finally:
        db.close()
    for png in charts:
        pixels = imread(io.BytesIO(png))
        assert pixels.shape[:2] == (1350, 1080)
        # The last 10 pixel columns are white from top to bottom: no word runs into the edge.
        assert pixels[:, -10:, :3].min() == 1.0


def test_a_campaign_without_a_title_goes_by_its_key(tmp_path: Path) -> None:
    config = build(tmp_path, leadline={**BASE["leadline"], "language": "en", "currency": "eur"})
    db = connect(config.database_path)
    try:
        text = compose(db, config, Period.day(date(2026, 11, 16), MSK), msk(17, 9)).text
    finally:
        db.close()
    assert "Worst lead cost this month: <b>brand_msk</b> €12,000 (2 leads for €24,000)" in text


def test_a_day_with_too_few_contacts_has_no_lrr_point(tmp_path: Path) -> None:
    config = build(tmp_path)
    db = connect(config.database_path)
    try:
        figures = gather(db, config, Period.day(date(2026, 11, 16), MSK), msk(17, 9), digest=True)
    finally:
        db.close()
    # The known month has one or two contacts a day: Monday 16 Nov's LRR is 100 %, and no point.
    monday = dict(figures.series)[date(2026, 11, 16)]
    assert (monday.inbound_contacts, monday.lrr) == (1, 1.0)
    assert all(math.isnan(lrr_point(g.inbound_contacts, g.lrr)) for _day, g in figures.series)
    assert lrr_point(MIN_CONTACTS_FOR_LRR, 0.6) == 60.0
    assert math.isnan(lrr_point(MIN_CONTACTS_FOR_LRR - 1, 0.5))
    # The 14 days from Tue 3 Nov: two weekends and Wednesday 4 November, Unity Day, are shaded.
    weekends = {date(2026, 11, 7), date(2026, 11, 8), date(2026, 11, 14), date(2026, 11, 15)}
    assert figures.days_off == {date(2026, 11, 4), *weekends}


def charts_left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("leadline-digest-*.png"))


async def test_old_charts_are_removed_but_the_newest_and_those_still_to_send_stay(tmp_path: Path) -> None:
    config = build(tmp_path)
    old = []
    for i in range(KEEP_CHARTS + 5):
        path = tmp_path / f"leadline-digest-2026-10-{i + 1:02d}.png"
        path.write_bytes(b"\x89PNG old")
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))
        old.append(path)
    report = tmp_path / "leadline-report-111-2026-10.png"
    report.write_bytes(b"\x89PNG old")
    other_base = tmp_path / "other-digest-2026-10-01.png"
    other_base.write_bytes(b"\x89PNG old")
    store = Store.open(config.database_path)
    try:
        # The oldest is still waiting for Telegram (an outage): it must survive the clean-up.
        await store.write(
            lambda db: enqueue(
                db, 111, {"photo": f"file://{old[0].resolve()}"}, at=msk(2, 9), method="sendPhoto"
            )
        )
        sent = await send_digest(config, store, date(2026, 11, 16), now=msk(17, 9))
    finally:
        await store.close()
    left = charts_left(tmp_path)
    newest_old = [p.name for p in old[-(KEEP_CHARTS - 1) :]]
    assert left == sorted([sent.chart.name, old[0].name, *newest_old])
    assert report.exists() and other_base.exists()  # one /report chart; another database's charts
