"""The buttons under nudges, pressed in Telegram: each acts once, and a second press says so."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bot.catalogues import speaking_locale
from bot.routers.nudges import outcome_text
from leadline import keys
from storage.nudges.actions import Acted
from storage.registrations import record_registration as register
from tests.bot.conftest import ANNA, BORIS, BotEnv
from tests.capture.test_mango import MANGO_SOURCE, post_mango, signed_mango, summary
from tests.conftest import BASE
from tests.fake_telegram import QUERY_TOO_OLD
from tests.nudges.conftest import TUESDAY, Clock, msk


async def test_called_back_and_a_lost_follow_up_from_the_nudge_buttons(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    clock = Clock(msk(TUESDAY, 10, 2))
    srv = await bot_env.start(clock=clock, sources=[*BASE["sources"], MANGO_SOURCE])
    start = int(msk(TUESDAY, 10, 0).timestamp())
    body = signed_mango(summary("missed-1", "79160007788", start=start, answered=False, extension="102"))
    assert (await post_mango(srv, "/events/summary", body)).status == 200

    clock.now = msk(TUESDAY, 10, 31)  # the call-back SLA (30 working minutes) has passed
    await srv.server.app[keys.SWEEPER].run()
    bot_env.wake_outbox()
    nudge_message = await tg.wait_for("sendMessage", chat_id=BORIS)
    [nudge] = srv.rows("SELECT id FROM nudges WHERE kind = 'callback'")
    await bot_env.types(BORIS, "/help", language="en")
    answer = await bot_env.press(BORIS, nudge_message.result["message_id"], f"n:called:{nudge['id']}:")
    assert answer["text"] == "Marked as called back."
    assert srv.rows(
        "SELECT outcome, closed_at IS NOT NULL AS closed FROM nudges WHERE id = ?", [nudge["id"]]
    ) == [{"outcome": "called_back", "closed": 1}]
    again = await bot_env.press(BORIS, nudge_message.result["message_id"], f"n:called:{nudge['id']}:")
    assert again["text"] == "Someone has already taken care of this."

    # a warm lead whose follow-up day has come: "Lost" asks why, the reason closes the lead
    await a_lead_whose_follow_up_comes(bot_env, srv, clock)
    follow_up = await tg.wait_for(lambda r: r.ok and r.method == "sendMessage" and "n:lost:" in str(r.params))
    [lead_nudge] = srv.rows("SELECT id, chat_id FROM nudges WHERE kind = 'follow_up'")
    chat = lead_nudge["chat_id"]
    await bot_env.types(chat, "/help", language="en")
    await bot_env.press(chat, follow_up.result["message_id"], f"n:lost:{lead_nudge['id']}:")
    question = await tg.wait_for(lambda r: r.ok and r.method == "sendMessage" and "n:lostr:" in str(r.params))
    answer = await bot_env.press(chat, question.result["message_id"], f"n:lostr:{lead_nudge['id']}:no_budget")
    assert answer["text"] == "The lead is marked as lost."
    assert srv.rows("SELECT stage, lost_reason FROM leads") == [{"stage": "lost", "lost_reason": "no_budget"}]
    assert "no budget" in bot_env.text(chat, question.result["message_id"])


async def test_a_lost_reason_pressed_too_late_to_answer_still_marks_its_message(bot_env: BotEnv) -> None:
    """The press was handled after Telegram stopped taking an answer to it (a restart, a hang): the
    lead was saved as lost, yet its message kept the reasons and the person was told nothing was saved."""
    tg = bot_env.tg
    clock = Clock(msk(TUESDAY, 10, 0))
    srv = await bot_env.start(clock=clock)
    resp = await srv.session.post(f"{srv.url}/hooks/form?token=form-token", data={"phone": "+79160007788"})
    assert resp.status == 200
    await a_lead_whose_follow_up_comes(bot_env, srv, clock)
    follow_up = await tg.wait_for(lambda r: r.ok and r.method == "sendMessage" and "n:lost:" in str(r.params))
    [nudge] = srv.rows("SELECT id, chat_id FROM nudges WHERE kind = 'follow_up'")
    chat = nudge["chat_id"]
    await bot_env.types(chat, "/help", language="en")
    await bot_env.press(chat, follow_up.result["message_id"], f"n:lost:{nudge['id']}:")
    question = await tg.wait_for(lambda r: r.ok and r.method == "sendMessage" and "n:lostr:" in str(r.params))
    mid = question.result["message_id"]

    tg.fail_next("answerCallbackQuery", status=400, description=QUERY_TOO_OLD)
    answer = await bot_env.press(chat, mid, f"n:lostr:{nudge['id']}:no_budget")
    assert answer == {}
    assert srv.rows("SELECT stage, lost_reason FROM leads") == [{"stage": "lost", "lost_reason": "no_budget"}]
    assert bot_env.text(chat, mid) == "✖️ The lead is marked as lost. no budget"
    assert tg.buttons(chat, mid) == []


async def test_cant_reach_tapped_again_before_its_reminder_is_not_another_try(bot_env: BotEnv) -> None:
    """A try is a call an interval apart, not a tap: a double tap (or the tap delivered twice) used
    to count each time, so three taps in a second said "not reached after 3 tries" and sent the card
    to the managers after one real attempt."""
    tg = bot_env.tg
    clock = Clock(msk(TUESDAY, 10, 2))
    srv = await bot_env.start(clock=clock, sources=[*BASE["sources"], MANGO_SOURCE])
    sweeper = srv.server.app[keys.SWEEPER]
    start = int(msk(TUESDAY, 10, 0).timestamp())
    body = signed_mango(summary("missed-1", "79160007788", start=start, answered=False, extension="102"))
    assert (await post_mango(srv, "/events/summary", body)).status == 200
    clock.now = msk(TUESDAY, 10, 31)
    await sweeper.run()
    bot_env.wake_outbox()
    nudge_message = await tg.wait_for("sendMessage", chat_id=BORIS)
    [nudge] = srv.rows("SELECT id FROM nudges WHERE kind = 'callback'")
    await bot_env.types(BORIS, "/help", language="en")
    cant = f"n:cant:{nudge['id']}:"

    answers = [
        (await bot_env.press(BORIS, nudge_message.result["message_id"], cant))["text"] for _ in range(3)
    ]
    assert answers == ["I will remind you to call again at 14 Apr, 11:31 MSK."] * 3
    assert srv.rows("SELECT tries, outcome FROM nudges WHERE kind = 'callback'") == [
        {"tries": 1, "outcome": "retry"}
    ]
    await sweeper.run()
    await bot_env.delivered()
    assert tg.sent("sendMessage", chat_id=ANNA) == []  # the managers are not told "unreachable"

    # The reminder comes an hour later; Boris calls, cannot reach them again: that is the second try.
    clock.now = msk(TUESDAY, 11, 31)
    await sweeper.run()
    bot_env.wake_outbox()
    reminder = await tg.wait_for("sendMessage", chat_id=BORIS, count=3)  # the card, /help, the reminder
    answer = await bot_env.press(BORIS, reminder.result["message_id"], cant)
    assert answer["text"] == "I will remind you to call again at 14 Apr, 12:31 MSK."
    assert srv.scalar("SELECT tries FROM nudges WHERE kind = 'callback'") == 2


async def test_remind_in_an_hour_tapped_twice_shows_the_card_again_once(bot_env: BotEnv) -> None:
    """A double tap (or the tap delivered twice) used to owe two reminders, and both came."""
    tg = bot_env.tg
    clock = Clock(msk(TUESDAY, 10, 2))
    srv = await bot_env.start(clock=clock, sources=[*BASE["sources"], MANGO_SOURCE])
    sweeper = srv.server.app[keys.SWEEPER]
    start = int(msk(TUESDAY, 10, 0).timestamp())
    body = signed_mango(summary("answered-1", "79160007788", start=start, answered=True, extension="102"))
    assert (await post_mango(srv, "/events/summary", body)).status == 200
    clock.now = msk(TUESDAY, 10, 15)  # the registration SLA (15 working minutes) has passed
    await sweeper.run()
    bot_env.wake_outbox()
    nudge_message = await tg.wait_for("sendMessage", chat_id=BORIS)
    [nudge] = srv.rows("SELECT id FROM nudges WHERE kind = 'register'")
    await bot_env.types(BORIS, "/help", language="en")
    snooze = f"n:snooze:{nudge['id']}:60"

    answers = []
    for second in (0, 40):
        clock.now = msk(TUESDAY, 10, 16, second)
        answers.append((await bot_env.press(BORIS, nudge_message.result["message_id"], snooze))["text"])
    assert answers == ["I will show it again at 14 Apr, 11:16 MSK."] * 2
    await bot_env.delivered(BORIS)
    before = len(tg.sent("sendMessage", chat_id=BORIS))

    clock.now = msk(TUESDAY, 11, 0, 10)
    while clock.now < msk(TUESDAY, 11, 40):  # the sweep runs every minute
        await sweeper.run()
        clock.now += timedelta(minutes=1)
    bot_env.wake_outbox()
    await bot_env.delivered(BORIS)
    reminders = tg.sent("sendMessage", chat_id=BORIS)[before:]
    assert len(reminders) == 1 and reminders[0]["text"].startswith("🔁 Напоминание")


async def test_cant_reach_on_the_last_try_says_how_many_in_the_readers_plural(bot_env: BotEnv) -> None:
    """Russian has three forms for a count ("1 попытку", "3 попытки", "5 попыток"), English two."""
    tg = bot_env.tg
    clock = Clock(msk(TUESDAY, 10, 2))
    srv = await bot_env.start(
        clock=clock, sources=[*BASE["sources"], MANGO_SOURCE], sla={"callback_tries": 1}
    )
    start = int(msk(TUESDAY, 10, 0).timestamp())
    body = signed_mango(summary("missed-1", "79160007788", start=start, answered=False, extension="102"))
    assert (await post_mango(srv, "/events/summary", body)).status == 200
    clock.now = msk(TUESDAY, 10, 31)
    await srv.server.app[keys.SWEEPER].run()
    bot_env.wake_outbox()
    nudge_message = await tg.wait_for("sendMessage", chat_id=BORIS)
    [nudge] = srv.rows("SELECT id FROM nudges WHERE kind = 'callback'")
    await bot_env.types(BORIS, "/help", language="ru")
    answer = await bot_env.press(BORIS, nudge_message.result["message_id"], f"n:cant:{nudge['id']}:")
    assert answer["text"] == "Отмечено: не дозвонились за 1 попытку. Менеджеры это увидят."

    config = bot_env.config()
    said = {}
    for locale, tries in [
        ("ru", 1),
        ("ru", 3),
        ("ru", 5),
        ("ru", 11),
        ("ru", 21),
        ("ru", 22),
        ("en", 1),
        ("en", 3),
    ]:
        with speaking_locale(locale):
            said[locale, tries] = outcome_text(Acted((1,), "unreachable", tries=tries), config).split(".")[0]
    assert said == {
        ("ru", 1): "Отмечено: не дозвонились за 1 попытку",
        ("ru", 3): "Отмечено: не дозвонились за 3 попытки",
        ("ru", 5): "Отмечено: не дозвонились за 5 попыток",
        ("ru", 11): "Отмечено: не дозвонились за 11 попыток",
        ("ru", 21): "Отмечено: не дозвонились за 21 попытку",
        ("ru", 22): "Отмечено: не дозвонились за 22 попытки",
        ("en", 1): "Noted: not reached after 1 try",
        ("en", 3): "Noted: not reached after 3 tries",
    }
    with speaking_locale("ru"):  # given up where nobody is left to tell: no promise
        assert (
            outcome_text(Acted((1,), "unreachable", tries=3), config)
            == "Отмечено: не дозвонились за 3 попытки."
        )


async def test_cant_reach_given_up_where_no_manager_is_left_to_tell_promises_none(bot_env: BotEnv) -> None:
    """Anna, the only manager, gives up three call-backs: Boris's escalated to her, one that came to
    the managers (nobody's extension) and her own. Nobody is told after any of them, so none is
    answered "The managers will see it", which Boris's own card still is."""
    tg = bot_env.tg
    clock = Clock(msk(TUESDAY, 10, 0))
    srv = await bot_env.start(
        clock=clock, sources=[*BASE["sources"], MANGO_SOURCE], sla={"callback_tries": 1}
    )
    sweeper = srv.server.app[keys.SWEEPER]
    start = int(msk(TUESDAY, 10, 0).timestamp())
    for entry, number, extension in (("boris", "79160000001", "102"), ("nobody", "79160000002", "199")):
        body = signed_mango(summary(entry, number, start=start, answered=False, extension=extension))
        assert (await post_mango(srv, "/events/summary", body)).status == 200
    clock.now = msk(TUESDAY, 10, 31)  # Boris gets his card, Anna the one nobody's extension rang
    await sweeper.run()
    clock.now = msk(TUESDAY, 11, 31)  # Boris did nothing: his card goes to Anna
    await sweeper.run()
    body = signed_mango(
        summary(
            "anna", "79160000003", start=int(msk(TUESDAY, 11, 0).timestamp()), answered=False, extension="101"
        )
    )
    assert (await post_mango(srv, "/events/summary", body)).status == 200
    clock.now = msk(TUESDAY, 11, 37)  # her own, after the batch window
    await sweeper.run()
    bot_env.wake_outbox()
    await bot_env.delivered(ANNA)
    nudges = {
        (n["touch_id"], n["level"]): n["id"] for n in srv.rows("SELECT id, touch_id, level FROM nudges")
    }
    touches = {t["external_id"]: t["id"] for t in srv.rows("SELECT id, external_id FROM touches")}
    messages = {
        b["callback_data"]: result["message_id"]
        for params, result in zip(tg.sent(chat_id=ANNA), tg.results(chat_id=ANNA), strict=True)
        for row in params.get("reply_markup", {}).get("inline_keyboard", [])
        for b in row
    }
    await bot_env.types(ANNA, "/help", language="en")
    answers = []
    for touch, level in (("boris", 1), ("nobody", 0), ("anna", 0)):
        cant = f"n:cant:{nudges[touches[touch], level]}:"
        answers.append((await bot_env.press(ANNA, messages[cant], cant))["text"])
    assert answers == ["Noted: not reached after 1 try."] * 3

    clock.now = msk(TUESDAY, 15, 0)
    await sweeper.run()
    bot_env.wake_outbox()
    await bot_env.delivered()
    assert srv.scalar("SELECT COUNT(*) FROM nudges WHERE level = 1") == 1  # no one was told after

    # Boris's own card still goes on to the managers when he gives it up.
    await bot_env.types(BORIS, "/help", language="en")
    [card] = [
        result
        for params, result in zip(tg.sent(chat_id=BORIS), tg.results(chat_id=BORIS), strict=True)
        if "n:cant:" in str(params)
    ]
    cant = f"n:cant:{nudges[touches['boris'], 0]}:"
    assert (await bot_env.press(BORIS, card["message_id"], cant))["text"] == (
        "Noted: not reached after 1 try. The managers will see it."
    )


async def test_a_follow_up_button_forged_by_someone_else_leaves_the_lead_as_it_was(bot_env: BotEnv) -> None:
    """Callback data is the sender's to write: Boris (staff) sends the buttons of Anna's follow-up
    card from his own chat, and Anna a lost reason no button offers."""
    tg = bot_env.tg
    clock = Clock(msk(TUESDAY, 10, 0))
    srv = await bot_env.start(clock=clock)
    resp = await srv.session.post(f"{srv.url}/hooks/form?token=form-token", data={"phone": "+79160007788"})
    assert resp.status == 200
    await a_lead_whose_follow_up_comes(bot_env, srv, clock)
    await tg.wait_for(lambda r: r.ok and r.method == "sendMessage" and "n:lost:" in str(r.params))
    [nudge] = srv.rows("SELECT id FROM nudges WHERE kind = 'follow_up'")
    before = srv.rows("SELECT stage, lost_reason, follow_up_on FROM leads")

    await bot_env.types(BORIS, "/help", language="en")
    own = await tg.wait_for("sendMessage", chat_id=BORIS)
    for data in (f"n:lostr:{nudge['id']}:price", f"n:later:{nudge['id']}:3650", f"n:done:{nudge['id']}:"):
        answer = await bot_env.press(BORIS, own.result["message_id"], data, forged=True)
        assert answer["text"].startswith("This lead belongs to"), answer
    await bot_env.types(ANNA, "/help", language="en")
    hers = await tg.wait_for("sendMessage", chat_id=ANNA, count=2)
    [lead] = srv.rows("SELECT id FROM leads")
    for data in (f"n:lostr:{nudge['id']}:<b>x", f"l:lost:{lead['id']}:<b>x"):  # the nudge's, the lead card's
        answer = await bot_env.press(ANNA, hers.result["message_id"], data, forged=True)
        assert answer["text"].startswith("This button is from an old version"), answer
    assert srv.rows("SELECT stage, lost_reason, follow_up_on FROM leads") == before
    assert srv.rows("SELECT closed_at FROM nudges WHERE id = ?", [nudge["id"]]) == [{"closed_at": None}]


async def a_lead_whose_follow_up_comes(
    bot_env: BotEnv, srv: Any, clock: Clock, owner: int = ANNA, meanwhile: Callable[[Any], Any] | None = None
) -> None:
    """``owner`` (Anna, by Telegram id) registers the only touch's contact as a warm lead to follow up
    tomorrow; ``meanwhile`` runs on the base; tomorrow at 09:30 the sweep sends the follow-up card."""
    [touch] = srv.rows("SELECT contact_id FROM touches")
    staff_id = srv.scalar("SELECT id FROM staff WHERE telegram_id = ?", [owner])
    await bot_env.write(
        lambda db: register(
            db, touch["contact_id"], "lead", at=clock.now, staff_id=staff_id, temperature="warm",
            follow_up_on=(clock.now + timedelta(days=1)).date(),
        )
    )  # fmt: skip
    if meanwhile is not None:
        await bot_env.write(meanwhile)
    clock.now = msk(TUESDAY + timedelta(days=1), 9, 30)
    await srv.server.app[keys.SWEEPER].run()
    bot_env.wake_outbox()


async def test_a_follow_up_sent_to_the_team_chat_for_someone_who_left_is_answered_by_the_team(
    bot_env: BotEnv,
) -> None:
    """Vera's lead, Vera gone: its follow-up card goes to the team chat, and Boris (staff) answers
    it there, as the card asks; the same button from his own chat would not be his to press."""
    tg, team, vera_tg = bot_env.tg, -100777, 333
    clock = Clock(msk(TUESDAY, 10, 0))
    staff = [*BASE["staff"], {"name": "Vera", "telegram_id": vera_tg, "role": "staff"}]
    srv = await bot_env.start(clock=clock, staff=staff, telegram={"team_chat": team})
    tg.add_chat(team, title="Team")
    resp = await srv.session.post(f"{srv.url}/hooks/form?token=form-token", data={"phone": "+79160007788"})
    assert resp.status == 200
    await a_lead_whose_follow_up_comes(
        bot_env, srv, clock, owner=vera_tg,
        meanwhile=lambda db: db.execute("UPDATE staff SET active = 0 WHERE telegram_id = ?", [vera_tg]),
    )  # fmt: skip
    card = await tg.wait_for(lambda r: r.ok and r.method == "sendMessage" and "n:lost:" in str(r.params))
    assert card.params["chat_id"] == team
    [nudge] = srv.rows("SELECT id FROM nudges WHERE kind = 'follow_up'")
    update = tg.user_presses_button(
        BORIS, card.result["message_id"], f"n:lostr:{nudge['id']}:price", chat_id=team, strict=False
    )
    await tg.wait_until_confirmed(update)
    assert srv.rows("SELECT stage, lost_reason FROM leads") == [{"stage": "lost", "lost_reason": "price"}]
