"""/forget in the bot: an owner erases a person behind a confirm button; staff cannot."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery

from bot.callbacks import CardCB, ForgetCB
from bot.cards import CardDraft
from bot.routers import registration
from tests.bot.conftest import ANNA, BORIS, BotEnv
from tests.bot.test_registration import post_form, the_touch
from tests.capture.test_mango import MANGO_SOURCE, post_mango, signed_mango, summary
from tests.conftest import BASE
from tests.privacy.people import API_AUTH, API_TOKEN, NAME, PHONE_TYPED, traces_in


async def test_an_owner_erases_a_person_behind_a_confirm_button_and_staff_cannot(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start(sources=[*BASE["sources"], MANGO_SOURCE])
    await post_form(srv, name=NAME, phone=PHONE_TYPED, message=f"A kitchen for {NAME}")
    touch = the_touch(srv)
    missed = summary("entry-missed", "79161234567", start=int(time.time()) - 60, answered=False)
    assert (await post_mango(srv, "/events/summary", signed_mango(missed))).status == 200
    t, c = touch["id"], touch["contact_id"]
    # Anna starts registering the person on their card: the bot keeps her draft in the database.
    card = await bot_env.says(ANNA, PHONE_TYPED, language="en")
    await bot_env.press(ANNA, card.result["message_id"], CardCB(act="lead", t=t, c=c, v="hot").pack())
    [draft] = srv.rows("SELECT contact_id, touch_id, data FROM bot_states WHERE contact_id IS NOT NULL")
    assert (draft["contact_id"], draft["touch_id"]) == (c, t) and NAME in draft["data"]

    refused = await bot_env.says(BORIS, f"/forget {PHONE_TYPED}", language="en")
    assert refused.params["text"] == "Only an owner can erase a person's data."
    forged = tg.user_presses_button(
        BORIS, refused.result["message_id"], ForgetCB(act="do", c=c).pack(), strict=False
    )
    await tg.wait_until_confirmed(forged)
    assert any(
        a.get("text") == "Only an owner can erase a person's data." for a in tg.callback_answers.values()
    )
    assert (
        srv.scalar("SELECT COUNT(*) FROM identifiers") == 1
        and srv.scalar("SELECT COUNT(*) FROM erasures") == 0
    )

    question = await bot_env.says(ANNA, f"/forget {PHONE_TYPED}", language="en")
    text = question.params["text"]
    assert text.startswith("Erase everything Leadline holds about this person?") and NAME in text
    assert [b["text"] for b in tg.buttons(ANNA, question.result["message_id"])] == ["🗑 Erase", "Cancel"]
    answer = await bot_env.press(ANNA, question.result["message_id"], ForgetCB(act="do", c=c).pack())
    assert answer.get("text") == "Erased."
    shown = bot_env.text(ANNA, question.result["message_id"])
    assert shown.startswith(f"🗑 Erased: contact #{c} holds no personal data any more.")
    assert NAME not in shown and "916" not in shown

    [erasure] = srv.rows("SELECT origin, actor, reason, kinds FROM erasures")
    assert erasure == {"origin": "bot", "actor": "bot: Anna", "reason": "request", "kinds": '["phone"]'}
    # The card, its draft, the question and every message that showed the person: gone.
    assert srv.scalar("SELECT COUNT(*) FROM bot_states WHERE contact_id = ? OR touch_id = ?", [c, t]) == 0
    gone = await bot_env.press(ANNA, card.result["message_id"], CardCB(act="save", t=t, c=c).pack())
    assert gone.get("text") == "This contact no longer exists."
    waiting = await bot_env.says(ANNA, "/unregistered", language="en")
    assert "Nothing is waiting" in waiting.params["text"]
    calls = await bot_env.says(ANNA, "/missed", language="en")
    assert "Every missed call has been called back." in calls.params["text"]
    database = srv.config.database_path
    assert await traces_in(database) == {database.name: [], f"{database.name}-wal": []}


async def test_a_save_overtaken_by_the_erasure_registers_nobody_and_says_so(
    bot_env: BotEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anna's Save passed its card check the moment before a CRM erased the person (the test holds
    it there; two requests can meet so by themselves): it registered a lead on the erased contact,
    wrote back the name and need the erasure had blanked, and left Anna's button spinning."""
    tg = bot_env.tg
    srv = await bot_env.start(api_clients=[{"name": "crm", "token": API_TOKEN}])
    await post_form(srv, name=NAME, phone=PHONE_TYPED, message=f"A kitchen for {NAME}")
    touch = the_touch(srv)
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(ANNA, PHONE_TYPED, language="en")
    await bot_env.press(ANNA, card.result["message_id"], CardCB(act="lead", t=t, c=c, v="hot").pack())
    checked, go_on = asyncio.Event(), asyncio.Event()
    load_draft = registration.load_draft

    async def held(state: FSMContext, callback: CallbackQuery) -> CardDraft | None:
        draft = await load_draft(state, callback)  # after the card check, before the registration
        checked.set()
        await go_on.wait()
        return draft

    monkeypatch.setattr(registration, "load_draft", held)
    save = tg.user_presses_button(ANNA, card.result["message_id"], CardCB(act="save", t=t, c=c).pack())
    await checked.wait()
    async with srv.session.delete(f"{srv.url}/api/contacts/{c}", headers=API_AUTH) as resp:
        assert resp.status == 200
    go_on.set()
    await tg.wait_until_confirmed(save)

    query_id = next(u["callback_query"]["id"] for u in tg.updates if u["update_id"] == save)
    assert tg.callback_answers.get(query_id, {}).get("text") == "This contact no longer exists."
    assert srv.rows("SELECT name, erased_at IS NOT NULL AS erased FROM contacts") == [
        {"name": None, "erased": 1}
    ]
    assert srv.scalar("SELECT COUNT(*) FROM registrations") == 0
    assert srv.scalar("SELECT COUNT(*) FROM leads") == 0


async def test_an_erasure_whose_redraw_telegram_does_not_take_still_clears_the_question(
    bot_env: BotEnv,
) -> None:
    """The question shows the person's name and number; Telegram busy as the erasure redraws it must
    neither say nothing was erased nor leave the data on screen."""
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(srv, name=NAME, phone=PHONE_TYPED)
    c = the_touch(srv)["contact_id"]
    question = await bot_env.says(ANNA, f"/forget {PHONE_TYPED}", language="en")
    question_id = question.result["message_id"]
    assert NAME in bot_env.text(ANNA, question_id)

    tg.fail_next("editMessageText", status=429, retry_after=1)
    answer = await bot_env.press(ANNA, question_id, ForgetCB(act="do", c=c).pack())
    assert answer.get("text") == "Erased."
    assert srv.scalar("SELECT COUNT(*) FROM erasures") == 1
    await bot_env.delivered(ANNA)
    shown = bot_env.text(ANNA, question_id)
    assert shown.startswith(f"🗑 Erased: contact #{c} holds no personal data any more.")
    assert NAME not in shown and "916" not in shown
