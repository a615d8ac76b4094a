"""Who may use the bot: strangers are refused, owners approve, the approval survives a restart."""

from __future__ import annotations

from bot.callbacks import AccessCB
from tests.bot.conftest import ANNA, BORIS, BotEnv
from tests.conftest import BASE

STRANGER = 999


async def test_a_stranger_is_refused_and_approved_by_the_owner(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    config = bot_env.config()
    srv = await bot_env.start(config)

    refusal = await bot_env.says(STRANGER, "hello", language="en")
    assert "only for the company's staff" in refusal.params["text"]
    ask = await tg.wait_for("sendMessage", chat_id=ANNA)
    assert "id 999" in ask.result["text"]
    assert tg.sent("sendMessage", chat_id=BORIS) == []  # staff are not asked, only owners
    [request] = srv.rows("SELECT id, telegram_id, decision FROM access_requests")
    assert request["decision"] is None

    await bot_env.types(STRANGER, "anyone there?", language="en")
    assert len(srv.rows("SELECT * FROM access_requests")) == 1  # the owner is asked once

    approve = AccessCB(decision="staff", req=request["id"]).pack()
    await bot_env.press(ANNA, ask.result["message_id"], approve)
    welcome = await tg.wait_for("sendMessage", chat_id=STRANGER, count=2)
    assert "gave you access to the bot as staff" in welcome.params["text"]
    assert "approved" in bot_env.text(ANNA, ask.result["message_id"]) or "одобрен" in bot_env.text(
        ANNA, ask.result["message_id"]
    )
    assert tg.buttons(ANNA, ask.result["message_id"]) == []
    [member] = srv.rows(
        "SELECT name, role, active, approved_by, from_config FROM staff WHERE telegram_id = 999"
    )
    anna_id = srv.scalar("SELECT id FROM staff WHERE telegram_id = ?", [ANNA])
    assert member == {
        "name": "User 999",
        "role": "staff",
        "active": 1,
        "approved_by": anna_id,
        "from_config": 0,
    }
    [decided] = srv.rows("SELECT decision, decided_by FROM access_requests")
    assert decided == {"decision": "staff", "decided_by": anna_id}

    await srv.stop()
    bot_env.srv = None
    await bot_env.start(config)
    hello = await bot_env.says(STRANGER, "/start", language="en")
    assert "You are registered as staff" in hello.params["text"]
    assert len(srv.rows("SELECT * FROM access_requests")) == 1


async def test_a_refused_stranger_stays_refused_and_owners_are_not_asked_again(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    await bot_env.says(STRANGER, "hello", language="en")
    ask = await tg.wait_for("sendMessage", chat_id=ANNA)
    [request] = srv.rows("SELECT id FROM access_requests")

    refuse = AccessCB(decision="refused", req=request["id"]).pack()
    await bot_env.press(ANNA, ask.result["message_id"], refuse)
    news = await tg.wait_for("sendMessage", chat_id=STRANGER, count=2)
    assert "has not given you access" in news.params["text"]
    assert srv.rows("SELECT * FROM staff WHERE telegram_id = 999") == []

    await bot_env.types(STRANGER, "please", language="en")
    await bot_env.types(STRANGER, "please!", language="en")
    assert len(tg.sent("sendMessage", chat_id=ANNA)) == 1  # no second request to the owner
    assert (
        srv.scalar("SELECT COUNT(*) FROM outbox WHERE chat_id = 999") == 2
    )  # at most once an hour, no flood


async def test_the_bot_stays_silent_in_group_chats_other_than_the_team_chat(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    await bot_env.start(telegram={"team_chat": -100777})
    tg.add_chat(-100555, title="Some other group")
    tg.add_chat(-100777, title="Team")
    await bot_env.types(ANNA, "/help", language="en")
    update = tg.user_sends_text(ANNA, "/help", chat_id=-100555, language_code="en")
    await tg.wait_until_confirmed(update)
    update = tg.user_sends_text(ANNA, "/help", chat_id=-100777, language_code="en")
    await tg.wait_until_confirmed(update)
    await tg.wait_for("sendMessage", chat_id=-100777)
    assert tg.sent("sendMessage", chat_id=-100555) == []


async def test_with_two_owners_the_second_answer_is_told_who_decided_first(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    staff = [{**person, "role": "owner"} for person in BASE["staff"]]
    srv = await bot_env.start(staff=staff)
    await bot_env.says(STRANGER, "hello", language="en")
    ask_anna = await tg.wait_for("sendMessage", chat_id=ANNA)
    ask_boris = await tg.wait_for("sendMessage", chat_id=BORIS)
    [request] = srv.rows("SELECT id FROM access_requests")
    await bot_env.types(BORIS, "/help", language="en")  # Boris's app speaks English
    await bot_env.press(
        ANNA, ask_anna.result["message_id"], AccessCB(decision="manager", req=request["id"]).pack()
    )
    answer = await bot_env.press(
        BORIS, ask_boris.result["message_id"], AccessCB(decision="refused", req=request["id"]).pack()
    )
    assert answer["show_alert"] and answer["text"] == "Already answered: manager (Anna)."
    assert srv.scalar("SELECT role FROM staff WHERE telegram_id = 999") == "manager"


async def test_someone_taken_out_of_the_config_is_let_in_no_more(bot_env: BotEnv) -> None:
    srv = await bot_env.start(bot_env.config())
    hello = await bot_env.says(BORIS, "/start", language="en")
    assert "You are registered as staff" in hello.params["text"]

    await srv.stop()
    bot_env.srv = None
    without_boris = [person for person in BASE["staff"] if person["telegram_id"] != BORIS]
    srv = await bot_env.start(bot_env.config(staff=without_boris))
    refusal = await bot_env.says(BORIS, "hello", language="en")
    assert "only for the company's staff" in refusal.params["text"]
    assert srv.scalar("SELECT active FROM staff WHERE telegram_id = ?", [BORIS]) == 0
    assert srv.scalar("SELECT active FROM staff WHERE telegram_id = ?", [ANNA]) == 1


async def test_an_approval_whose_redraw_telegram_does_not_take_still_closes_the_request(
    bot_env: BotEnv,
) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    await bot_env.says(STRANGER, "hello", language="en")
    ask = await tg.wait_for("sendMessage", chat_id=ANNA)
    [request] = srv.rows("SELECT id FROM access_requests")
    tg.fail_next("editMessageText", status=429, retry_after=1)
    await bot_env.press(ANNA, ask.result["message_id"], AccessCB(decision="staff", req=request["id"]).pack())
    assert srv.scalar("SELECT role FROM staff WHERE telegram_id = ?", [STRANGER]) == "staff"
    await bot_env.delivered(ANNA)
    assert "одобрен(а) как сотрудник, решение: Anna" in bot_env.text(ANNA, ask.result["message_id"])
    assert tg.buttons(ANNA, ask.result["message_id"]) == []
