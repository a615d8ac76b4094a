"""The digest and ``/report`` in each owner's language, through the fake Telegram.

The hand-counted November of tests/numbers (see ``test_digest.py`` for its English figures), read by
three owners: Anna and Dmitry in Russian, Carol in English; the office's ``[leadline] language`` is
the config's default, Russian.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from bot.digest import send_digest
from storage.db import open_database
from tests.bot.conftest import ANNA, BotEnv
from tests.conftest import BASE, Running
from tests.nudges.conftest import Clock
from tests.numbers.month import AS_OF, CAMPAIGNS, build_known_month, msk

CAROL, DMITRY = 333, 444
PNG = b"\x89PNG\r\n\x1a\n"


def owners() -> list[dict[str, Any]]:
    anna, boris = (dict(person) for person in BASE["staff"])
    return [
        {**anna, "language": "ru"},
        boris,
        {"name": "Carol", "telegram_id": CAROL, "role": "owner", "language": "en"},
        {"name": "Dmitry", "telegram_id": DMITRY, "role": "owner", "language": "ru"},
    ]


async def start(bot_env: BotEnv) -> Running:
    config = bot_env.config(
        campaigns=CAMPAIGNS, staff=owners(), goals={"leads": 10}, nudges={"sweep_seconds": 3600}
    )
    db = open_database(config.database_path)
    try:
        build_known_month(db, config)
    finally:
        db.close()
    return await bot_env.start(config, clock=Clock(AS_OF))


def last(bot_env: BotEnv, method: str, chat_id: int) -> dict[str, Any]:
    """The parameters of the last ``method`` call to the chat: what the bot sent, markup included."""
    return dict(bot_env.tg.sent(method, chat_id=chat_id)[-1])


async def test_each_owner_reads_the_digest_in_their_language(bot_env: BotEnv) -> None:
    srv = await start(bot_env)
    sent = await send_digest(srv.config, bot_env.store, date(2026, 11, 16), now=msk(17, 9))
    bot_env.wake_outbox()
    await bot_env.delivered()

    # The day of tests/numbers/test_digest.py: C7 missed at 10:00 and answered at 11:00, a hot lead
    # 65 working minutes later; brand_msk's 2 November leads cost 24 000 by the 16th.
    russian = str(last(bot_env, "sendMessage", ANNA)["text"])
    assert russian == (
        "<b>Leadline · пн, 16 ноября 2026</b>\n"
        "Входящие контакты: <b>1</b> (+1) · обращений 2\n"
        "По каналам: Звонок 1 (LRR 100 %)\n"
        "Зарегистрировано: <b>1 · LRR 100 %</b> · среди новых 100 %\n"
        "Время до регистрации: медиана 65 мин, у 90 % — до 65 мин (норматив 15 мин: в срок 0 из 1)\n"
        "Медиана ответа 60 мин, в первые 5 мин — 0 %; ответа никто не ждёт\n"
        "Пропущенных звонков: <b>1</b> · без перезвона в срок <b>1</b>\n"
        "Лидов: <b>1</b> (−1) · горячих 1, тёплых 0, холодных 0\n"
        "<i>(в сравнении с пн, 9 ноября)</i>\n"
        "\n"
        "Самая высокая стоимость лида в этом месяце: <b>brand_msk</b> 12\u00a0000\u00a0₽ (2 лида за 24\u00a0000\u00a0₽)\n"
        "Цели месяца (сейчас/цель → прогноз на месяц): лиды 4/10 → 7"
    )
    # C7 was answered at 11:00: nobody to call back, no button.
    assert "reply_markup" not in last(bot_env, "sendMessage", ANNA)
    assert str(last(bot_env, "sendPhoto", ANNA)["caption"]).startswith(
        "<b>Leadline · пн, 16 ноября 2026</b>\nВходящие контакты: <b>1</b> (+1)"
    )

    # The same day in English for Carol: word for word what an English office got before.
    english = str(last(bot_env, "sendMessage", CAROL)["text"])
    assert english.startswith(
        "<b>Leadline · Mon 16 Nov 2026</b>\nInbound contacts: <b>1</b> (+1) · touches 2\n"
    )
    assert "Registration lag: p50 65 min, p90 65 min (SLA 15: 0 of 1 in time)" in english
    assert "Missed calls: <b>1</b> · not called back in time <b>1</b>" in english
    assert "still not called back" not in english
    assert (
        "Worst lead cost this month: <b>brand_msk</b> RUB\u00a012,000 (2 leads for RUB\u00a024,000)"
        in english
    )
    assert "reply_markup" not in last(bot_env, "sendMessage", CAROL)
    assert str(last(bot_env, "sendPhoto", CAROL)["caption"]).startswith("<b>Leadline · Mon 16 Nov 2026</b>")

    # Dmitry reads Anna's digest: one per language, each with its own chart.
    assert last(bot_env, "sendMessage", DMITRY)["text"] == russian
    assert set(sent.languages) == {"ru", "en"} and sent.digest.text == russian
    photos = {
        row["chat_id"]: json.loads(row["payload"])["photo"]
        for row in srv.rows("SELECT chat_id, payload FROM outbox WHERE method = 'sendPhoto'")
    }
    ru_chart, en_chart = sent.languages["ru"][1], sent.languages["en"][1]
    assert photos == {
        ANNA: f"file://{ru_chart.resolve()}",
        DMITRY: f"file://{ru_chart.resolve()}",
        CAROL: f"file://{en_chart.resolve()}",
    }
    assert (
        ru_chart.name == "leadline-digest-2026-11-16.png"
        and en_chart.name == "leadline-digest-2026-11-16-en.png"
    )
    assert ru_chart.read_bytes().startswith(PNG) and en_chart.read_bytes().startswith(PNG)
    assert ru_chart.read_bytes() != en_chart.read_bytes()  # its words are translated too


async def test_report_follows_the_owners_own_language_over_their_telegram_app(bot_env: BotEnv) -> None:
    await start(bot_env)
    # Anna's staff record says Russian; her Telegram app says English.
    russian = await bot_env.says(ANNA, "/report 2026-11", language="en")
    text = str(russian.params["text"])
    assert text.startswith(
        "<b>Leadline · 2026-11</b>\nВходящие контакты: <b>8</b> · обращений 12, из них со скрытого номера 2\n"
    )
    assert "Зарегистрировано: <b>6 · LRR 75 %</b> · среди новых 71 %" in text
    assert "Пропущенных звонков: <b>4</b> · без перезвона в срок <b>2</b>" in text
    assert (
        "Самая высокая стоимость лида в этом месяце: <b>brand_msk</b> 22\u00a0500\u00a0₽ (2 лида за 45\u00a0000\u00a0₽)"
        in text
    )
    assert str(last(bot_env, "sendPhoto", ANNA)["caption"]).startswith(
        "<b>Leadline · 2026-11</b>\nВходящие контакты"
    )

    english = await bot_env.says(CAROL, "/report 2026-11", language="ru")
    assert "Inbound contacts: <b>8</b> · touches 12, hidden numbers 2" in str(english.params["text"])
