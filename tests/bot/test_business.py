"""Telegram Business through the bot, against the fake Bot API: a customer's chat with the owner's account."""

from __future__ import annotations

import csv
import json
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram.utils.backoff import BackoffConfig

from bot.callbacks import OpenCB
from bot.keys import AccountOf, BusinessAccount
from bot.routers.business import until_stored
from capture import keys
from capture.pipeline import UNAUTHENTICATED_BODY_KEPT, replay
from capture.providers import telegram_business
from tests.bot.conftest import ANNA, BORIS, BotEnv, eventually
from tests.capture.chat_payloads import chat_config, chat_touches, kinds, post_wa
from tests.capture.form_checks import journal
from tests.capture.test_core_http import write_config
from tests.capture.test_mango import post_mango, signed_mango, summary
from tests.cli import run_cli
from tests.conftest import Running
from tests.nudges.conftest import TUESDAY, Clock, msk
from tests.numbers.month import month_config
from tests.samples import flip_byte, sample

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


#: The salon owner whose account the samples' connection is: not on the staff, so listed on the source.
OWNER_ACCOUNT: int = json.loads(CONNECTION.body)["business_connection"]["user"]["id"]


def business_sources(tmp_path: Any, **source_extra: Any) -> list[dict[str, Any]]:
    """The chat config's sources, the ``telegram_business`` one taking the owner's connection."""
    sources = [s.model_dump() for s in chat_config(tmp_path, **source_extra).sources]
    for source in sources:
        if source["provider"] == "telegram_business":
            source["accounts"] = [OWNER_ACCOUNT]
    return sources


@pytest.fixture(autouse=True)
def telegram_knows_the_connection(tg: Any) -> None:
    """The owner connected the bot before these tests: Telegram knows the connection, whether or not
    the bot was listening then."""
    connection = update_of(CONNECTION)["business_connection"]
    tg.business_connections[connection["id"]] = connection


async def start(bot_env: BotEnv, **source_extra: Any) -> Any:
    config = bot_env.config(sources=business_sources(bot_env.tmp_path, **source_extra), campaigns=[])
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


STRANGER = 5555555


def on_connection(update: dict[str, Any], connection: str) -> dict[str, Any]:
    update["business_message"]["business_connection_id"] = connection
    return update


def connection_of(user: int, connection: str) -> dict[str, Any]:
    """Someone with Telegram Premium connects the bot to their own account, as the owner did."""
    update = update_of(CONNECTION)
    update["business_connection"] |= {"id": connection, "user_chat_id": user}
    update["business_connection"]["user"] |= {"id": user, "username": f"shop_{user}"}
    return update


async def test_a_connection_of_an_account_neither_staff_nor_listed_makes_no_touch_and_is_logged_once(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="leadline")
    srv = await start(bot_env)
    await deliver(bot_env, connection_of(STRANGER, "STRANGERconn"))
    for n in range(2):
        update = customer_says(800 + n, BASE_TIME, "a customer of someone else's shop")
        await deliver(bot_env, on_connection(update, "STRANGERconn"))
    await deliver(bot_env, customer_says(802, BASE_TIME, "Здравствуйте"))  # the owner's own: taken

    [touch] = chat_touches(srv, "telegram_business")
    assert touch["message"] == "Здравствуйте"
    refused = f"the business connection of Telegram account {STRANGER}, which is neither on the staff nor in the source's accounts"
    assert [(r["status"], r["http_status"], r["reason"], r["touches_created"]) for r in journal(srv)] == [
        *[("rejected", 403, refused, 0)] * 3,
        ("processed", 200, None, 1),
    ]
    [line] = [r for r in caplog.records if "neither on the staff" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert line.fields["account"] == STRANGER  # type: ignore[attr-defined]
    assert "someone else" not in line.getMessage() + str(line.fields)  # type: ignore[attr-defined]
    assert bot_env.tg.sent("sendMessage", chat_id=100000003) == []


async def test_a_connection_of_a_staff_members_account_is_taken_without_listing_it(bot_env: BotEnv) -> None:
    srv = await start(bot_env)
    await deliver(bot_env, connection_of(BORIS, "BORISconn"))
    await deliver(bot_env, on_connection(customer_says(810, BASE_TIME, "Добрый день"), "BORISconn"))
    [touch] = chat_touches(srv, "telegram_business")
    assert touch["message"] == "Добрый день"


async def test_a_connection_made_before_the_bot_listened_is_asked_of_telegram(bot_env: BotEnv) -> None:
    srv = await start(bot_env)
    bot_env.tg.business_connections["BORISconn"] = connection_of(BORIS, "BORISconn")["business_connection"]
    await deliver(bot_env, on_connection(customer_says(820, BASE_TIME, "Добрый день"), "BORISconn"))
    await deliver(bot_env, on_connection(customer_says(821, BASE_TIME, "Вы тут?"), "UNKNOWNconn"))
    [touch] = chat_touches(srv, "telegram_business")
    assert touch["message"] == "Добрый день"
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("processed", 200), ("rejected", 403)]
    assert journal(srv)[1]["reason"] == "a business connection Telegram does not know"


def without_sender(update: dict[str, Any]) -> dict[str, Any]:
    """A message the parser refuses (400): it has no ``from``."""
    del update["business_message"]["from"]
    return update


async def test_a_foreign_accounts_update_the_parser_refuses_is_refused_and_no_replay_makes_it_a_touch(
    bot_env: BotEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The account was judged only for an update that parsed: a foreign one the parser refused was a
    replayable 400, and once a parser took it ``leadline replay`` made it a touch."""
    srv = await start(bot_env)
    await deliver(bot_env, connection_of(STRANGER, "STRANGERconn"))
    foreign = on_connection(
        customer_says(830, BASE_TIME, "a customer of someone else's shop"), "STRANGERconn"
    )
    await deliver(bot_env, without_sender(foreign))
    await deliver(bot_env, without_sender(customer_says(831, BASE_TIME, "Здравствуйте")))  # the owner's own
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [
        ("rejected", 403),
        ("rejected", 403),
        ("rejected", 400),
    ]

    # A later parser takes a message without ``from`` (its sender is the private chat's user) ...
    parse_message = telegram_business._message
    monkeypatch.setattr(telegram_business, "_message", lambda m: parse_message({**m, "from": m["chat"]}))
    # ... and an earlier release left the foreign update as a replayable 400.
    db = srv.db()
    with db.conn:
        db.execute("UPDATE journal SET http_status = 400, anonymous = 0 WHERE id = 2")
    db.close()
    await replay(srv.server.app[keys.CAPTURE])

    [touch] = chat_touches(srv, "telegram_business")
    assert touch["message"] == "Здравствуйте"
    assert [(r["status"], r["http_status"], r["touches_created"]) for r in journal(srv)] == [
        ("rejected", 403, 0),
        ("rejected", 403, 0),
        ("processed", 200, 1),
    ]
    assert journal(srv)[1]["reason"] == (
        f"the business connection of Telegram account {STRANGER}, which is neither on the staff nor in the source's accounts"
    )


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


async def test_someone_elses_contact_is_the_touchs_text_and_joins_nobody(bot_env: BotEnv) -> None:
    srv = await start(bot_env)
    wife = {"phone_number": "79161234567", "first_name": "Ольга", "user_id": 100000777}
    address_book = {"phone_number": "+74950000031", "first_name": "Павел", "last_name": "Сидоров"}
    for n, card in enumerate((wife, address_book)):
        update = customer_says(400 + n, BASE_TIME + timedelta(minutes=n), "")
        del update["business_message"]["text"]
        update["business_message"]["contact"] = card
        await deliver(bot_env, update)
    [touch] = chat_touches(srv, "telegram_business")
    assert touch["message"] == "[contact: Ольга +79161234567]\n[contact: Павел Сидоров +74950000031]"
    assert touch["phone_raw"] is None
    assert kinds(srv, touch["contact_id"]) == {"telegram_id": "100000003", "telegram_username": "test_alex_k"}


async def test_two_people_who_held_one_username_are_two_contacts_both_found_by_it(bot_env: BotEnv) -> None:
    await start(bot_env)
    srv = bot_env.srv
    assert srv is not None
    # Ivan wrote as @ivan_shop and later gave the name up; Pyotr took it and writes an hour later.
    ivan = someone_else_says(900, BASE_TIME, "Я Иван", user=100000050)
    pyotr = someone_else_says(901, BASE_TIME + timedelta(hours=1), "Я Пётр", user=100000060)
    for update, name in ((ivan, "Иван"), (pyotr, "Пётр")):
        message = update["business_message"]
        message["from"] |= {"username": "ivan_shop", "first_name": name}
        message["chat"] |= {"username": "ivan_shop", "first_name": name}
        await deliver(bot_env, update)
    ivans, pyotrs = chat_touches(srv, "telegram_business")
    assert ivans["contact_id"] != pyotrs["contact_id"]
    assert srv.rows("SELECT id, name FROM contacts WHERE merged_into IS NULL ORDER BY id") == [
        {"id": ivans["contact_id"], "name": "Иван"},
        {"id": pyotrs["contact_id"], "name": "Пётр"},
    ]
    assert kinds(srv, pyotrs["contact_id"]) == {"telegram_id": "100000060", "telegram_username": "ivan_shop"}
    found = await bot_env.says(ANNA, "/find @ivan_shop", language="en")
    assert "Found 2 contacts" in found.result["text"]
    assert "Иван" in found.result["text"] and "Пётр" in found.result["text"]


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


SECRET = "s3cret-Token_1"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
REFUSAL = "SELECT source, provider, method, path, status, http_status, reason, touches_created, headers, body"


async def on_webhook(bot_env: BotEnv, sources: list[dict[str, Any]]) -> Running:
    """The server with the bot on its webhook, registered with Telegram under ``SECRET``."""
    config = bot_env.config(
        sources=sources,
        campaigns=[],
        telegram={"webhook_url": "https://bot.example.com/telegram/webhook", "webhook_secret": SECRET},
    )
    srv: Running = await bot_env.start_server(config)
    bot_env.srv = srv
    await bot_env.tg.wait_for("setWebhook")
    return srv


async def forge(srv: Running, update: dict[str, Any] | bytes, secret: str | None = "guessed") -> Any:
    """Someone who knows the webhook's URL posts an update, with a secret token they made up."""
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    headers = {"Content-Type": "application/json"} | ({SECRET_HEADER: secret} if secret is not None else {})
    return await srv.session.post(f"{srv.url}/telegram/webhook", data=body, headers=headers)


async def test_a_secret_token_with_a_letter_outside_ascii_is_refused_like_any_wrong_one(
    bot_env: BotEnv,
) -> None:
    srv = await on_webhook(bot_env, business_sources(bot_env.tmp_path))
    forged = await forge(srv, update_of(CONTACT), secret="s3cret-Tokén")
    assert (forged.status, await forged.text()) == (
        401,
        f"wrong {SECRET_HEADER}: not an update from Telegram\n",
    )
    assert [(r["status"], r["http_status"]) for r in srv.rows(f"{REFUSAL} FROM journal")] == [
        ("rejected", 401)
    ]


async def test_a_forged_update_on_the_webhook_is_refused_journalled_and_makes_no_touch(
    bot_env: BotEnv,
) -> None:
    srv = await on_webhook(bot_env, business_sources(bot_env.tmp_path))
    # A customer sharing their phone, as the sample has it: the richest thing to forge.
    forged = await forge(srv, update_of(CONTACT))
    assert forged.status == 401
    assert await forged.text() == f"wrong {SECRET_HEADER}: not an update from Telegram\n"
    assert (await forge(srv, update_of(USERNAME_ONLY), secret=None)).status == 401
    # A forged WhatsApp message, for what every other source's 401 looks like in the journal.
    assert (await post_wa(srv, flip_byte(CONTACT.body), {"X-Hub-Signature-256": "sha256=00"})).status == 401
    wrong, missing, whatsapp = srv.rows(f"{REFUSAL} FROM journal ORDER BY id")
    assert (wrong["source"], wrong["provider"]) == ("telegram_business", "telegram_business")
    assert (wrong["method"], wrong["path"]) == ("POST", "/telegram/webhook")
    assert wrong["reason"] == f"wrong {SECRET_HEADER}: not an update from Telegram"
    assert missing["reason"] == f"missing {SECRET_HEADER}: not an update from Telegram"
    for row in (wrong, missing):
        assert (
            (row["status"], row["http_status"], row["touches_created"])
            == (
                whatsapp["status"],
                whatsapp["http_status"],
                whatsapp["touches_created"],
            )
            == ("rejected", 401, 0)
        )
    assert json.loads(wrong["body"]) == update_of(CONTACT)
    assert [SECRET_HEADER, "[redacted]"] in json.loads(wrong["headers"])  # the guess is not kept
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert srv.scalar("SELECT COUNT(*) FROM contacts") == 0

    # Telegram itself, with the secret token, is taken as before.
    bot_env.tg.webhook["url"] = f"{srv.url}/telegram/webhook"
    bot_env.tg.inject_update(update_of(CONTACT))
    await eventually(lambda: not bot_env.tg.pending_updates)
    [touch] = chat_touches(srv, "telegram_business")
    assert kinds(srv, touch["contact_id"]) == {"phone": "+74950000031", "telegram_id": "100000002"}


async def test_without_a_business_source_a_forged_update_is_journalled_under_telegram_webhook(
    bot_env: BotEnv,
) -> None:
    srv = await on_webhook(bot_env, [s.model_dump() for s in bot_env.config().sources])
    long = customer_says(800, BASE_TIME, "Перезвоните " * 1000)  # a forger's body is kept only in part
    assert (await forge(srv, long)).status == 401
    [row] = srv.rows(f"{REFUSAL} FROM journal")
    assert (row["source"], row["provider"], row["status"], row["http_status"]) == (
        "telegram:webhook",
        None,
        "rejected",
        401,
    )
    assert row["body"] == json.dumps(long).encode()[:UNAUTHENTICATED_BODY_KEPT]
    listed = await run_cli(
        "journal", "--config", str(write_config(bot_env.tmp_path, srv.config)), "--source", "telegram:webhook"
    )
    [line] = listed.output.splitlines()
    assert "POST /telegram/webhook" in line and "rejected 401" in line and f"wrong {SECRET_HEADER}" in line


def journal_fails(srv: Any, failing: bool = True) -> None:
    """The database refuses every journal row (as a full disk would), or takes them again."""
    db = srv.db()
    try:
        db.execute(
            "CREATE TRIGGER no_journal BEFORE INSERT ON journal"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            if failing
            else "DROP TRIGGER no_journal"
        )
    finally:
        db.close()


def cannot_journal(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "cannot be journalled" in r.getMessage()]


async def failing_and_unconfirmed(bot_env: BotEnv, caplog: pytest.LogCaptureFixture) -> int:
    """A customer writes while the journal fails; returns the update's id once the bot has tried."""
    update_id = bot_env.tg.inject_update(customer_says(700, BASE_TIME, "Вы работаете в воскресенье?"))
    await eventually(lambda: bool(cannot_journal(caplog)) or not bot_env.tg.pending_updates)
    # The write failed and Telegram still holds the update: aiogram asked for no later offset.
    assert bot_env.tg.pending_updates == 1
    return update_id


async def test_an_update_the_journal_cannot_take_is_confirmed_only_once_it_is_stored(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="leadline.bot")
    srv = await start(bot_env)
    journal_fails(srv)
    update_id = await failing_and_unconfirmed(bot_env, caplog)
    assert srv.rows("SELECT id FROM journal") == []
    [warning] = cannot_journal(caplog)
    assert warning.levelno == logging.WARNING
    assert warning.fields == {"error": "IntegrityError", "code": "SQLITE_CONSTRAINT_TRIGGER"}  # type: ignore[attr-defined]

    journal_fails(srv, failing=False)  # the disk has room again
    await bot_env.tg.wait_until_confirmed(update_id)
    [touch] = chat_touches(srv, "telegram_business")
    assert touch["message"] == "Вы работаете в воскресенье?"
    assert [r["touches_created"] for r in journal(srv)] == [1]
    [recovered] = [r for r in caplog.records if "journalled after" in r.getMessage()]
    assert recovered.fields["retries"] >= 1  # type: ignore[attr-defined]
    assert len(cannot_journal(caplog)) == 1  # one line for the whole spell
    # Neither line names who wrote or what they wrote.
    for line in (warning, recovered):
        text = f"{line.getMessage()} {line.fields}"  # type: ignore[attr-defined]
        assert "test_alex_k" not in text and "100000003" not in text and "воскресенье" not in text


async def test_a_stop_while_the_journal_fails_leaves_the_update_with_telegram(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="leadline.bot")
    config = bot_env.config(sources=business_sources(bot_env.tmp_path), campaigns=[])
    srv = await bot_env.start(config)
    journal_fails(srv)
    update_id = await failing_and_unconfirmed(bot_env, caplog)

    await srv.stop()  # while the bot is still trying: the stop ends the tries, not the other way round
    assert bot_env.tg.pending_updates == 1
    assert srv.rows("SELECT id FROM journal") == []

    journal_fails(srv, failing=False)
    bot_env.srv = None
    srv = await bot_env.start(config)  # Telegram sends the update again to the restarted bot
    await bot_env.tg.wait_until_confirmed(update_id)
    [touch] = chat_touches(srv, "telegram_business")
    assert touch["message"] == "Вы работаете в воскресенье?"
    assert [r["touches_created"] for r in journal(srv)] == [1]


async def test_on_a_webhook_a_failed_write_is_an_error_answer_and_telegram_sends_the_update_again(
    bot_env: BotEnv,
) -> None:
    tg = bot_env.tg
    config = bot_env.config(
        sources=business_sources(bot_env.tmp_path),
        campaigns=[],
        telegram={"webhook_url": "https://bot.example.com/telegram/webhook"},
    )
    srv = await bot_env.start_server(config)
    bot_env.srv = srv
    await tg.wait_for("setWebhook")
    tg.webhook["url"] = f"{srv.url}/telegram/webhook"  # Telegram reaches this server
    journal_fails(srv)
    tg.inject_update(customer_says(700, BASE_TIME, "Вы работаете в воскресенье?"))
    await eventually(lambda: bool(tg.webhook_errors) or not tg.pending_updates)
    assert tg.pending_updates == 1
    assert tg.webhook_errors[0] == "Wrong response from the webhook: 500 Internal Server Error"
    assert srv.rows("SELECT id FROM journal") == []

    journal_fails(srv, failing=False)
    await eventually(lambda: not tg.pending_updates)  # Telegram's next try is answered 200
    [touch] = chat_touches(srv, "telegram_business")
    assert touch["message"] == "Вы работаете в воскресенье?"
    assert [r["touches_created"] for r in journal(srv)] == [1]


async def test_a_long_failing_spell_is_one_warning_and_ends_when_the_write_goes_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="leadline.bot")
    written: list[bytes] = []
    failures = 5

    async def disk_full_five_times(update: bytes, account_of: AccountOf) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise sqlite3.OperationalError("database or disk is full")
        written.append(update)

    quick = BackoffConfig(min_delay=0.001, max_delay=0.004, factor=2.0, jitter=0.0)

    async def owners() -> BusinessAccount:
        return BusinessAccount("TESTbizconn00000000001", OWNER_ACCOUNT)

    await until_stored(disk_full_five_times, quick)(b'{"update_id": 1}', owners)
    assert written == [b'{"update_id": 1}']
    [warning] = cannot_journal(caplog)
    assert warning.fields == {"error": "OperationalError", "code": None}  # type: ignore[attr-defined]
    [recovered] = [r for r in caplog.records if "journalled after" in r.getMessage()]
    assert recovered.fields == {"retries": 5}  # type: ignore[attr-defined]


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
    config = bot_env.config(
        sources=business_sources(bot_env.tmp_path),
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


async def test_an_away_or_greeting_message_is_no_answer_and_the_owners_reply_two_hours_later_is(
    bot_env: BotEnv,
) -> None:
    srv, clock = await start_on_tuesday(bot_env)
    clock.now = msk(TUESDAY, 10, 0)
    await deliver(bot_env, customer_says(510, msk(TUESDAY, 10, 0), "Сколько стоит маникюр?"))
    # Telegram sends the account's away message by itself a second later: nobody has answered yet.
    away = owner_replies(511, msk(TUESDAY, 10, 0) + timedelta(seconds=1))
    away["business_message"] |= {"is_from_offline": True, "text": "Мы не в сети, ответим утром"}
    await deliver(bot_env, away)
    clock.now = msk(TUESDAY, 12, 0)
    await deliver(bot_env, owner_replies(512, msk(TUESDAY, 12, 0)))

    report = await day_report(bot_env, clock)
    assert tuple(report[k] for k in RESPONSE) == (1, 120.0, 0.0, 0)
    assert [r["note"] for r in journal(srv)][1] == (
        "an away, greeting or scheduled message: not a touch, nor a person's answer"
    )
    assert len(chat_touches(srv, "telegram_business")) == 1


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
