"""Times in the bot are the office's, and say so: staff in another zone must not misread a card."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.callbacks import OpenCB
from tests.bot.conftest import ANNA, BotEnv
from tests.bot.test_registration import post_form, the_touch
from tests.nudges.conftest import Clock

#: 22:59 on the office clock in Moscow.
AT = datetime(2026, 11, 23, 19, 59, 30, tzinfo=UTC)


async def test_lists_and_cards_show_the_office_time_with_its_zone(bot_env: BotEnv) -> None:
    srv = await bot_env.start(clock=Clock(AT))
    await post_form(srv, name="Ivan Petrov", phone="+7 916 123-45-67")
    listing = await bot_env.says(ANNA, "/unregistered", language="en")
    assert "Ivan Petrov" in listing.result["text"] and "23 Nov, 22:59 MSK" in listing.result["text"]
    touch = the_touch(srv)
    await bot_env.press(ANNA, listing.result["message_id"], OpenCB(kind="touch", id=touch["id"]).pack())
    card = await bot_env.tg.wait_for("sendMessage", chat_id=ANNA, count=2)
    assert "Form · 23 Nov, 22:59 MSK" in card.result["text"]
