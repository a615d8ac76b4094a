"""Paged lists with buttons, and the webhook mode that replaces long polling when the config asks."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from bot.callbacks import CardCB, OpenCB, PageCB
from tests.bot.conftest import ANNA, BORIS, BotEnv
from tests.bot.test_registration import post_form
from tests.capture.test_mango import MANGO_SOURCE, post_mango, signed_mango, summary
from tests.conftest import BASE


async def test_lists_are_paged_and_staff_see_their_own(bot_env: BotEnv) -> None:
    srv = await bot_env.start(sources=[*BASE["sources"], MANGO_SOURCE])
    for i in range(6):
        await post_form(srv, name=f"Client {i}", phone=f"+7 916 000-10-{i:02d}")
    start = int(time.time()) + 2  # the newest touches, on the first page
    # Anna (ext 101) missed a call, Boris (ext 102) answered another
    for entry, caller, answered, ext in (
        ("m1", "79160002001", False, "101"),
        ("m2", "79160002002", True, "102"),
    ):
        body = signed_mango(summary(entry, caller, start=start, answered=answered, extension=ext))
        assert (await post_mango(srv, "/events/summary", body)).status == 200

    listing = await bot_env.says(ANNA, "/unregistered", language="en")
    text = listing.result["text"]
    assert "Waiting for registration — 8 in all, page 1 of 2" in text and text.count("\n") == 6
    await bot_env.taps(ANNA, listing.result["message_id"], "»")
    second = bot_env.text(ANNA, listing.result["message_id"])
    assert "page 2 of 2" in second and "6." in second and "8." in second and "Client 0" in second

    # Boris sees what he answered and what nobody handled, not Anna's call
    mine = await bot_env.says(BORIS, "/unregistered", language="en")
    assert "(yours and unassigned)" in mine.result["text"] and "7 in all" in mine.result["text"]
    assert "+7 916 000-20-01" not in mine.result["text"] and "+7 916 000-20-02" in mine.result["text"]

    missed = await bot_env.says(ANNA, "/missed", language="en")
    assert "+7 916 000-20-01" in missed.result["text"] and "+7 916 000-20-02" not in missed.result["text"]
    none = await bot_env.says(ANNA, "/leads", language="en")
    assert "No open leads." in none.result["text"]


def _people(text: str) -> list[str]:
    return re.findall(r"Person(\d+)", text)


async def test_a_page_starts_past_the_last_one_shown_whatever_changed_in_between(bot_env: BotEnv) -> None:
    """Registering someone from page 1, or a form arriving, before » skips nobody and repeats nobody;
    a button no list drew is answered as old and changes nothing."""
    srv = await bot_env.start()
    for i in range(1, 13):
        await post_form(srv, name=f"Person{i:02d}", phone=f"+7 916 000-00-{i:02d}")
    listing = await bot_env.says(ANNA, "/unregistered", language="en")
    list_id = listing.result["message_id"]
    assert _people(bot_env.text(ANNA, list_id)) == ["12", "11", "10", "09", "08"]
    # Anna opens the first person on page 1 and registers them, then taps » on the list.
    [first] = srv.rows(
        "SELECT t.id, t.contact_id FROM touches t JOIN contacts c ON c.id = t.contact_id"
        " WHERE c.name = 'Person12'"
    )
    before = len(bot_env.tg.sent("sendMessage", chat_id=ANNA))
    await bot_env.press(ANNA, list_id, OpenCB(kind="touch", id=first["id"]).pack())
    card = await bot_env.tg.wait_for("sendMessage", chat_id=ANNA, count=before + 1)
    t, c = first["id"], first["contact_id"]
    await bot_env.press(ANNA, card.result["message_id"], CardCB(act="nal", t=t, c=c).pack())
    await bot_env.press(ANNA, card.result["message_id"], CardCB(act="why", t=t, c=c, v="other").pack())
    assert srv.scalar("SELECT COUNT(*) FROM registrations") == 1
    await bot_env.taps(ANNA, list_id, "»")
    second = bot_env.text(ANNA, list_id)
    assert _people(second) == ["07", "06", "05", "04", "03"]
    assert "11 in all, page 2 of 3" in second and "\n5. " in second

    # A form arrives while page 2 is read: page 3 goes on from Person03, and « goes back.
    await post_form(srv, name="Person13", phone="+7 916 000-00-13")
    await bot_env.taps(ANNA, list_id, "»")
    assert _people(bot_env.text(ANNA, list_id)) == ["02", "01"]
    await bot_env.taps(ANNA, list_id, "«")
    assert _people(bot_env.text(ANNA, list_id)) == ["07", "06", "05", "04", "03"]
    await bot_env.taps(ANNA, list_id, "«")  # the first page: the newcomer, then page 1 less Person12
    assert _people(bot_env.text(ANNA, list_id)) == ["13", "11", "10", "09", "08"]
    assert "page 1 of 3" in bot_env.text(ANNA, list_id)

    # Buttons sent by a client of its own: a mark out of range, a turn no list draws, the old layout.
    shown = bot_env.text(ANNA, list_id)
    for forged in (
        PageCB(kind="unreg", everyone=True, go="n", key=2**63, id=1).pack(),
        PageCB(kind="unreg", everyone=True, go="x").pack(),
        PageCB(kind="nope", everyone=True).pack(),
        "p:unreg:1:1",
    ):
        answer = await bot_env.press(ANNA, list_id, forged, forged=True)
        assert (answer["text"], answer["show_alert"]) == (
            "This button is from an old version of the message; open the list again.",
            True,
        ), forged
        assert bot_env.text(ANNA, list_id) == shown


async def test_webhook_mode_takes_updates_with_the_secret_token_only(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    config = bot_env.config(
        telegram={"webhook_url": "http://127.0.0.1:9/telegram/webhook", "webhook_secret": "s3cret-Token_1"}
    )
    srv = await bot_env.start_server(config)
    bot_env.srv = srv
    await tg.wait_for("setWebhook")
    assert tg.webhook["secret_token"] == "s3cret-Token_1"
    assert "getUpdates" not in [r.method for r in tg.records]

    forged = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": ANNA, "type": "private"},
            "from": {"id": ANNA, "is_bot": False, "first_name": "A"},
            "text": "/help",
        },
    }
    resp = await srv.session.post(
        f"{srv.url}/telegram/webhook", json=forged, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
    )
    assert resp.status == 401
    assert srv.scalar("SELECT COUNT(*) FROM outbox WHERE method = 'sendMessage'") == 0  # no answer to it

    tg.webhook["url"] = f"{srv.url}/telegram/webhook"  # Telegram reaches this server
    tg.user_sends_text(ANNA, "/help", language_code="en")
    reply = await tg.wait_for("sendMessage", chat_id=ANNA)
    assert reply.params["text"].startswith("How to use the bot")


async def test_the_server_starts_and_stops_while_telegram_is_unreachable(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    config = bot_env.config(telegram={"api_url": "http://127.0.0.1:9"})  # nothing listens there
    srv = await bot_env.start_server(config)
    resp = await srv.session.get(f"{srv.url}/healthz")
    assert resp.status == 200
    await post_form(srv, phone="+7 916 000-30-01")
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1  # capture goes on without the bot
    await srv.stop()
    assert tg.records == []


@pytest.mark.parametrize(
    "failure",
    [{"status": 502}, {"status": 0}, {"status": 502, "html": False, "delay": 3}],
    ids=["a-proxys-502", "a-dropped-connection", "a-hang-past-the-request-timeout"],
)
async def test_one_failed_get_me_at_start_up_only_delays_the_bot(
    bot_env: BotEnv, failure: dict[str, Any]
) -> None:
    """aiogram's polling asks for getMe once, without a retry: one failure there ended polling for
    good, so every command and press went unanswered until a restart, and the stop then raised that
    old error before it waited for the outbox's sends in flight."""
    tg = bot_env.tg
    tg.fail_next("getMe", **failure)
    srv = await bot_env.start(bot_env.config(telegram={"request_timeout_seconds": 1}))
    reply = await bot_env.says(ANNA, "/start")
    assert reply.ok and reply.params["chat_id"] == ANNA
    await srv.stop()
