"""Telegram Business through the bot, against the fake Bot API: a customer's chat with the owner's account."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.callbacks import OpenCB
from tests.bot.conftest import ANNA, BotEnv
from tests.capture.chat_payloads import chat_config, chat_touches, kinds
from tests.capture.form_checks import journal
from tests.capture.test_mango import post_mango, signed_mango, summary
from tests.cli import run_cli
from tests.nudges.conftest import TUESDAY, Clock, msk
from tests.numbers.month import month_config
from tests.samples import sample

CONNECTION = sample("telegram_business_connection.json")
CONTACT = sample("telegram_business_message_contact.json")
USERNAME_ONLY = sample("telegram_business_message_username_only.json")
EDITED = sample("telegram_business_edited_message.json")
OUTGOING = sample("telegram_business_message_outgoing.json")
BASE_TIME = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=20)


def update_of(s: Any) -> dict[str, Any]:
    """The sample's update without its update_id, which the fake Bot API assigns."""
    update: dict[str, Any] = json.loads(s.body)
    del update["update_id"]
    for message in (update.get("business_message"), update.get("edited_business_message")):
        if message is not None:  # Telegram sends no message older than 24 h
            message["date"] = int(BASE_TIME.timestamp())
    return update


def customer_says(message_id: int, at: datetime, text: str) -> dict[str, Any]:
    update = update_of(USERNAME_ONLY)
    update["business_message"].update({"message_id": message_id, "date": int(at.timestamp()), "text": text})
    return update


def owner_replies(message_id: int, at: datetime, chat_id: int = 100000003) -> dict[str, Any]:
    """The owner's message to the customer of ``chat_id``, typed in their own Telegram app."""
    update = update_of(OUTGOING)
    message = update["business_message"]
    message.update({"message_id": message_id, "date": int(at.timestamp())})
    message["chat"]["id"] = chat_id
    return update


def someone_else_says(message_id: int, at: datetime, text: str, user: int = 100000009) -> dict[str, Any]:
    update = customer_says(message_id, at, text)
    message = update["business_message"]
    message["from"].update({"id": user, "username": f"test_user_{user}"})
    message["chat"].update({"id": user, "username": f"test_user_{user}"})
    return update


async def start(bot_env: BotEnv, **source_extra: Any) -> Any:
    base = chat_config(bot_env.tmp_path, **source_extra)
    config = bot_env.config(sources=[s.model_dump() for s in base.sources], campaigns=[])
    return await bot_env.start(config)


async def deliver(bot_env: BotEnv, update: dict[str, Any]) -> None:
    await bot_env.tg.wait_until_confirmed(bot_env.tg.inject_update(update))


async def test_a_customers_message_is_a_chat_touch_and_the_owners_reply_is_not(bot_env: BotEnv) -> None:
    srv = await start(bot_env)
    await deliver(bot_env, update_of(CONNECTION))
    await deliver(bot_env, update_of(USERNAME_ONLY))
    await deliver(bot_env, update_of(OUTGOING))
    [touch] = chat_touches(srv, "telegram_business")
    expected = USERNAME_ONLY.expected
    assert touch["channel"] == "chat"
    assert touch["name"] == expected["name"]
    assert touch["message"] == expected["message"]
    assert json.loads(touch["payload"])["conversation_url"] == "https://t.me/test_alex_k"
    assert kinds(srv, touch["contact_id"]) == {"telegram_id": "100000003", "telegram_username": "test_alex_k"}
    assert [r["note"] for r in journal(srv)] == [
        "business connection",
        None,
        "the business owner's reply: not a touch",
    ]
    # the bot never speaks to the customer, nor turns them away as a stranger
    assert bot_env.tg.sent("sendMessage", chat_id=100000003) == []


async def test_a_redelivered_update_and_an_edit_are_no_ops(bot_env: BotEnv) -> None:
    srv = await start(bot_env)
    await deliver(bot_env, update_of(USERNAME_ONLY))
    await deliver(bot_env, update_of(USERNAME_ONLY))
    await deliver(bot_env, update_of(EDITED))
    assert len(chat_touches(srv, "telegram_business")) == 1
    assert [r["touches_created"] for r in journal(srv)] == [1, 0, 0]


async def test_three_messages_are_one_touch_and_one_after_the_gap_is_a_new_one(bot_env: BotEnv) -> None:
    srv = await start(bot_env, conversation_gap_hours=2)
    for n, text in enumerate(["Здравствуйте", "Есть окно в субботу?", "После обеда"]):
        await deliver(bot_env, customer_says(100 + n, BASE_TIME + timedelta(minutes=20 * n), text))
    [touch] = chat_touches(srv, "telegram_business")
    assert touch["message"] == "Здравствуйте\nЕсть окно в субботу?\nПосле обеда"
    await deliver(bot_env, customer_says(200, BASE_TIME + timedelta(hours=5), "А в воскресенье?"))
    assert [t["message"] for t in chat_touches(srv, "telegram_business")][1] == "А в воскресенье?"


async def test_a_shared_contact_joins_the_contact_a_call_made(bot_env: BotEnv) -> None:
    srv = await start(bot_env)
    call = summary("tg-call-1", "74950000031", start=int(BASE_TIME.timestamp()) - 3600, answered=False)
    assert (await post_mango(srv, "/events/summary", signed_mango(call))).status == 200
    [called] = srv.rows("SELECT contact_id FROM touches WHERE channel = 'call'")
    await deliver(bot_env, update_of(CONTACT))
    [touch] = chat_touches(srv, "telegram_business")
    assert touch["contact_id"] == called["contact_id"]
    assert kinds(srv, touch["contact_id"]) == {"phone": "+74950000031", "telegram_id": "100000002"}


async def test_the_card_shows_the_first_message_who_wrote_and_a_link_to_the_conversation(
    bot_env: BotEnv,
) -> None:
    srv = await start(bot_env)
    await deliver(bot_env, customer_says(300, BASE_TIME, "Сколько стоит маникюр?"))
    await deliver(bot_env, customer_says(301, BASE_TIME + timedelta(minutes=5), "И педикюр"))
    [touch] = chat_touches(srv, "telegram_business")
    listing = await bot_env.says(ANNA, "/unregistered", language="en")
    assert "Алекс · @test_alex_k" in listing.result["text"]
    await bot_env.press(ANNA, listing.result["message_id"], OpenCB(kind="touch", id=touch["id"]).pack())
    card = await bot_env.tg.wait_for("sendMessage", chat_id=ANNA, count=2)
    text = card.result["text"]
    assert "Chat" in text and "@test_alex_k" in text and "Алекс" in text
    assert "💬 Сколько стоит маникюр?\nИ педикюр" in text
    links = [e["url"] for e in card.result["entities"] if e["type"] == "text_link"]
    assert links == ["https://t.me/test_alex_k"]
    assert "Open the conversation" in text


TOKEN = "crm-token-0123456789"
DAY = TUESDAY.isoformat()
RESPONSE = ("inbound_contacts", "response_p50_min", "responded_within_5_min", "not_responded")


async def day_report(bot_env: BotEnv, clock: Clock) -> dict[str, Any]:
    """What ``GET /api/report`` says of Tuesday, read at 18:00 on the office clock."""
    srv = bot_env.srv
    assert srv is not None
    clock.now = msk(TUESDAY, 18, 0)
    async with srv.session.get(
        f"{srv.url}/api/report?from={DAY}&to={DAY}", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as resp:
        assert resp.status == 200, await resp.text()
        report: dict[str, Any] = await resp.json()
    return report


async def start_on_tuesday(bot_env: BotEnv) -> tuple[Any, Clock]:
    clock = Clock(msk(TUESDAY, 9, 0))
    base = chat_config(bot_env.tmp_path)
    config = bot_env.config(
        sources=[s.model_dump() for s in base.sources],
        campaigns=[],
        api_clients=[{"name": "crm", "token": TOKEN}],
    )
    return await bot_env.start(config, clock=clock), clock


async def test_the_owners_reply_three_minutes_later_is_a_response_of_3_min(bot_env: BotEnv) -> None:
    srv, clock = await start_on_tuesday(bot_env)
    clock.now = msk(TUESDAY, 10, 0)
    await deliver(bot_env, customer_says(500, msk(TUESDAY, 10, 0), "Есть окно сегодня?"))
    clock.now = msk(TUESDAY, 10, 1)
    greeting = owner_replies(499, msk(TUESDAY, 10, 1))  # a bot answering for the owner: no person yet
    greeting["business_message"]["sender_business_bot"] = {
        "id": 700000001,
        "is_bot": True,
        "first_name": "Bot",
    }
    await deliver(bot_env, greeting)
    clock.now = msk(TUESDAY, 10, 3)
    reply = owner_replies(501, msk(TUESDAY, 10, 3))
    await deliver(bot_env, reply)
    await deliver(bot_env, reply)  # Telegram delivers it again: a no-op
    clock.now = msk(TUESDAY, 10, 20)
    await deliver(bot_env, owner_replies(502, msk(TUESDAY, 10, 20)))  # a later reply changes nothing

    report = await day_report(bot_env, clock)
    assert tuple(report[k] for k in RESPONSE) == (1, 3.0, 1.0, 0)
    assert tuple(report["by_channel"]["chat"][k] for k in RESPONSE) == (1, 3.0, 1.0, 0)
    # the owner's replies are no touches
    assert len(chat_touches(srv, "telegram_business")) == 1
    assert report["inbound_touches"] == 1

    month_config(bot_env.tmp_path, sources=[{"name": "form", "provider": "generic_form", "token": "t"}])
    out = bot_env.tmp_path / "out"
    exported = await run_cli("export", "--config", str(bot_env.tmp_path / "config.toml"), "--out", str(out))
    assert exported.code == 0, exported.output
    with (out / "responses.csv").open(encoding="utf-8-sig") as fh:
        [row] = list(csv.DictReader(fh))
    assert (row["answered_by"], row["response_min"]) == ("reply", "3.0")


async def test_a_reply_before_the_customers_message_counts_for_nothing(bot_env: BotEnv) -> None:
    srv, clock = await start_on_tuesday(bot_env)
    # Alex wrote on Monday and was answered then; the owner writes again on Tuesday at 09:58, before
    # Alex's new message at 10:00 (a new conversation: over 24 h since Monday's), answered at 10:07.
    monday = TUESDAY - timedelta(days=1)
    clock.now = msk(monday, 9, 0)
    await deliver(bot_env, customer_says(600, msk(monday, 9, 0), "Добрый день"))
    await deliver(bot_env, owner_replies(601, msk(monday, 9, 1)))
    clock.now = msk(TUESDAY, 9, 58)
    await deliver(bot_env, owner_replies(602, msk(TUESDAY, 9, 58)))
    # The owner writes first to someone who never wrote: that answers nobody.
    await deliver(bot_env, owner_replies(603, msk(TUESDAY, 9, 58), chat_id=100000009))
    clock.now = msk(TUESDAY, 10, 0)
    await deliver(bot_env, customer_says(604, msk(TUESDAY, 10, 0), "А сегодня можно?"))
    await deliver(bot_env, someone_else_says(605, msk(TUESDAY, 10, 0), "Здравствуйте"))
    clock.now = msk(TUESDAY, 10, 7)
    await deliver(bot_env, owner_replies(606, msk(TUESDAY, 10, 7)))

    assert len(chat_touches(srv, "telegram_business")) == 3
    report = await day_report(bot_env, clock)
    # Alex waited 7 minutes, not 0 (the 09:58 message came before); the other person still waits.
    assert tuple(report[k] for k in RESPONSE) == (2, 7.0, 0.0, 1)
