"""Telegram's command menu (the "/" button) offers each person what their /help offers: the default
menu what everybody on the staff may use, each person's own menu their role's, in their language."""

from __future__ import annotations

from typing import Any

from bot.callbacks import AccessCB
from leadline.config import Config
from tests.bot.conftest import ANNA, BORIS, BotEnv, staff_with_languages
from tests.conftest import BASE
from tests.fake_telegram import CallRecord, FakeTelegram

VERA = 333  # manager
STRANGER = 999
VERA_CONFIG = {"name": "Vera", "telegram_id": VERA, "role": "manager", "extensions": ["103"]}
NOT_FOR_EVERYONE = {"report", "plan", "cost", "blocked", "forget"}


def names(commands: list[dict[str, Any]]) -> list[str]:
    return [c["command"] for c in commands]


def chat_menu(tg: FakeTelegram, chat_id: int) -> dict[str, str]:
    """Command → description of the menu Telegram shows in this person's chat with the bot."""
    return {c["command"]: c["description"] for c in tg.my_commands({"type": "chat", "chat_id": chat_id})}


def menu_calls_to(tg: FakeTelegram, chat_id: int) -> list[str]:
    return [
        r.method
        for r in tg.records
        if r.method in ("setMyCommands", "deleteMyCommands")
        and r.params.get("scope") == {"type": "chat", "chat_id": chat_id}
    ]


def default_menu_set(record: CallRecord) -> bool:
    return (
        record.ok and record.method == "setMyCommands" and record.params.get("scope") == {"type": "default"}
    )


async def restart(bot_env: BotEnv, config: Config) -> None:
    """Stop the server and start it again; returns once it has set its menus (the default one last)."""
    assert bot_env.srv is not None
    await bot_env.srv.stop()
    bot_env.srv = None
    before = sum(default_menu_set(r) for r in bot_env.tg.records)
    await bot_env.start(config)
    # The old long poll may still be held open by the fake: wait for this start's own calls.
    await bot_env.tg.wait_for(default_menu_set, count=before + 3)  # no language, ru, en
    await bot_env.delivered()


async def test_the_default_menu_offers_only_what_every_staff_member_may_use(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    await bot_env.start()

    for language in ("", "ru", "en"):
        offered = names(tg.my_commands(None, language))
        assert {"unregistered", "missed", "leads", "find", "help", "cancel"} <= set(offered), language
        assert NOT_FOR_EVERYONE.isdisjoint(offered), language
    english = {c["command"]: c["description"] for c in tg.my_commands(None, "en")}
    assert english["missed"] == "missed calls nobody has called back"


async def test_each_person_gets_the_menu_of_their_role(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    await bot_env.start(staff=[*BASE["staff"], VERA_CONFIG])
    await bot_env.delivered()

    owner, manager, staff = chat_menu(tg, ANNA), chat_menu(tg, VERA), chat_menu(tg, BORIS)
    assert {"forget", "blocked", "cost", "report", "plan"} <= owner.keys()
    assert {"blocked", "report", "plan"} <= manager.keys() and not {"forget", "cost"} & manager.keys()
    assert {"unregistered", "leads", "find"} <= staff.keys() and not NOT_FOR_EVERYONE & staff.keys()


async def test_a_russian_speaking_owner_s_menu_is_in_russian(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    leadline = {**BASE["leadline"], "language": "en"}
    await bot_env.start(leadline=leadline, staff=staff_with_languages(ru=ANNA, en=BORIS))
    await bot_env.delivered()

    assert chat_menu(tg, ANNA)["forget"] == (
        "стереть данные человека, который попросил его забыть, например /forget +7 916 123-45-67"
    )
    assert chat_menu(tg, BORIS)["leads"] == "your open leads"


async def test_approving_a_new_staff_member_sets_their_menu_and_their_help_matches(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    await bot_env.says(STRANGER, "hello", language="en")
    ask = await tg.wait_for("sendMessage", chat_id=ANNA)
    await bot_env.delivered()
    assert chat_menu(tg, STRANGER) == {}  # a stranger sees only the default menu

    request_id = srv.scalar("SELECT id FROM access_requests")
    await bot_env.press(ANNA, ask.result["message_id"], AccessCB(decision="manager", req=request_id).pack())
    await bot_env.delivered(STRANGER)

    menu = chat_menu(tg, STRANGER)
    assert "blocked" in menu and "forget" not in menu
    assert menu["blocked"] == "the block list, with a button to unblock each entry"  # in English, as asked
    help_text = (await bot_env.says(STRANGER, "/help", language="en")).result["text"]
    assert f"• /blocked: {menu['blocked']}" in help_text and "/forget" not in help_text


async def test_a_restart_sets_only_the_menus_that_changed(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    await bot_env.start()
    await bot_env.delivered()
    assert menu_calls_to(tg, ANNA) == menu_calls_to(tg, BORIS) == ["setMyCommands"]

    promoted = [{**p, "role": "manager"} if p["telegram_id"] == BORIS else p for p in BASE["staff"]]
    await restart(bot_env, bot_env.config(staff=promoted))

    assert menu_calls_to(tg, ANNA) == ["setMyCommands"]  # unchanged: not set again
    assert menu_calls_to(tg, BORIS) == ["setMyCommands", "setMyCommands"]
    assert "blocked" in chat_menu(tg, BORIS)


async def test_someone_no_longer_let_in_loses_their_menu_at_the_next_start(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    config = bot_env.config()
    srv = await bot_env.start(config)
    await bot_env.says(STRANGER, "hello", language="en")
    ask = await tg.wait_for("sendMessage", chat_id=ANNA)
    request_id = srv.scalar("SELECT id FROM access_requests")
    await bot_env.press(ANNA, ask.result["message_id"], AccessCB(decision="staff", req=request_id).pack())
    await bot_env.delivered(STRANGER)
    assert "leads" in chat_menu(tg, STRANGER)

    db = srv.db()
    with db.conn:  # as an owner would take someone out, in the database
        db.execute("UPDATE staff SET active = 0 WHERE telegram_id = ?", [STRANGER])
    db.close()
    await restart(bot_env, config)

    assert chat_menu(tg, STRANGER) == {}
    assert menu_calls_to(tg, STRANGER) == ["setMyCommands", "deleteMyCommands"]
    assert menu_calls_to(tg, BORIS) == ["setMyCommands"]  # never had one to lose: no call


async def test_help_for_an_owner_lists_forget_in_both_languages(bot_env: BotEnv) -> None:
    english_owner = {**VERA_CONFIG, "role": "owner", "language": "en"}
    await bot_env.start(staff=[*staff_with_languages(ru=ANNA, en=BORIS), english_owner])

    russian = (await bot_env.says(ANNA, "/help")).result["text"]
    assert (
        "• /forget — стереть данные человека, который попросил его забыть, например /forget +7 916 123-45-67"
        in russian
    )
    english = (await bot_env.says(VERA, "/help", language="en")).result["text"]
    assert "• /forget: erase a person who asked to be forgotten, e.g. /forget +7 916 123-45-67" in english
    staff = (await bot_env.says(BORIS, "/help", language="en")).result["text"]
    assert "/forget" not in staff
