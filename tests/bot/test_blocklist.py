"""/blocked in the bot: the block list, paged, with an unblock button per entry; managers and owners."""

from __future__ import annotations

from typing import Any

from bot.callbacks import BlockCB, CardCB
from storage.reports.report import missed_contacts
from storage.reports.scope import Period
from tests.bot.conftest import ANNA, BORIS, BotEnv, button_data
from tests.bot.test_arrival import mango_call
from tests.bot.test_registration import post_form
from tests.capture.test_mango import MANGO_SOURCE
from tests.conftest import BASE
from tests.nudges.conftest import MSK, TUESDAY, Clock, msk

VERA = 333  # a manager


async def test_an_unblocked_number_makes_touches_again(bot_env: BotEnv) -> None:
    srv = await bot_env.start(block=[{"prefix": "+7800"}])
    await post_form(srv, phone="+7 999 000-00-01", message="Cheap SEO services")
    [touch] = srv.rows("SELECT id, contact_id FROM touches")
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(ANNA, "+79990000001", language="en")
    card_id = card.result["message_id"]
    await bot_env.press(ANNA, card_id, CardCB(act="nal", t=t, c=c).pack())
    await bot_env.press(ANNA, card_id, CardCB(act="why", t=t, c=c, v="spam").pack())
    await bot_env.press(ANNA, card_id, CardCB(act="spam", t=t, c=c, v="block").pack())
    await post_form(srv, phone="8 999 000 00 01", message="Blocked one")
    assert srv.scalar("SELECT blocked FROM touches WHERE message = 'Blocked one'") == 1

    listing = await bot_env.says(ANNA, "/blocked", language="en")
    text = listing.result["text"]
    assert "Block list" in text and "+7 999 000-00-01" in text and "Anna" in text
    assert "numbers starting +7800" in text  # the config's rule, shown and not removable
    await bot_env.taps(ANNA, listing.result["message_id"], "Unblock +7 999 000-00-01")
    assert "Nobody is on the block list" in bot_env.text(ANNA, listing.result["message_id"])
    assert srv.scalar("SELECT COUNT(*) FROM blocklist") == 0

    await post_form(srv, phone="+7 999 000-00-01", message="Now a customer")
    assert srv.scalar("SELECT blocked FROM touches WHERE message = 'Now a customer'") == 0
    found = await bot_env.says(ANNA, "/find +79990000001", language="en")
    assert "On the block list" not in found.result["text"]


async def test_a_missed_call_refused_as_spam_and_blocked_is_no_longer_owed_a_call_back(
    bot_env: BotEnv,
) -> None:
    """A robocaller's missed call, refused with "Spam, and block": the number is never on /missed
    (docs/privacy.md), nor on the digest's "still not called back" list, which is /missed's."""
    srv = await bot_env.start(clock=Clock(msk(TUESDAY, 12)), sources=[*BASE["sources"], MANGO_SOURCE])
    await mango_call(srv, "robo-1", "79165550001", msk(TUESDAY, 10), answered=False, extension="101")
    [touch] = srv.rows("SELECT id, contact_id FROM touches")
    t, c = touch["id"], touch["contact_id"]
    before = await bot_env.says(ANNA, "/missed", language="en")
    assert "+7 916 555-00-01" in before.result["text"]

    card = await bot_env.says(ANNA, "+79165550001", language="en")
    card_id = card.result["message_id"]
    await bot_env.press(ANNA, card_id, CardCB(act="nal", t=t, c=c).pack())
    await bot_env.press(ANNA, card_id, CardCB(act="why", t=t, c=c, v="spam").pack())
    await bot_env.press(ANNA, card_id, CardCB(act="spam", t=t, c=c, v="block").pack())
    assert srv.rows("SELECT value FROM blocklist") == [{"value": "+79165550001"}]

    after = await bot_env.says(ANNA, "/missed", language="en")
    assert after.result["text"] == "Missed calls not called back\n\nEvery missed call has been called back."
    owed = await bot_env.store.read(lambda db: missed_contacts(db, Period.day(TUESDAY, MSK), 5))
    assert (owed.items, owed.total) == ([], 0)

    # Unblocked, the number is a person to call back again.
    listing = await bot_env.says(ANNA, "/blocked", language="en")
    await bot_env.taps(ANNA, listing.result["message_id"], "Unblock +7 916 555-00-01")
    again = await bot_env.says(ANNA, "/missed", language="en")
    assert "+7 916 555-00-01" in again.result["text"]


async def test_the_block_list_is_paged_and_only_for_managers(bot_env: BotEnv) -> None:
    srv = await bot_env.start()
    db = srv.db()
    try:
        for n in range(10):
            db.execute(
                "INSERT INTO blocklist (kind, value, reason, at) VALUES ('phone', ?, 'spam', '2026-12-01T09:00:00+00:00')",
                [f"+7999000{n:04d}"],
            )
        db.conn.commit()
    finally:
        db.close()
    refused = await bot_env.says(BORIS, "/blocked", language="en")
    assert "Only a manager or an owner" in refused.result["text"]

    listing = await bot_env.says(ANNA, "/blocked", language="en")
    message_id = listing.result["message_id"]
    assert "10 in all, page 1 of 2" in listing.result["text"]
    await bot_env.press(ANNA, message_id, BlockCB(act="page", page=1).pack())
    second = bot_env.text(ANNA, message_id)
    assert "page 2 of 2" in second and "9. +7 999 000-00-08" in second
    answer = await bot_env.press(ANNA, message_id, BlockCB(act="un", id=10, page=1).pack())
    assert "count again" in answer["text"]
    assert srv.scalar("SELECT COUNT(*) FROM blocklist") == 9


async def test_the_block_lists_buttons_sent_from_the_team_chat_show_it_nothing(bot_env: BotEnv) -> None:
    """The list is for private chats; its page button, forged on a bot message in the team chat,
    must not turn that message into the list for everyone there."""
    tg, team = bot_env.tg, -100777
    srv = await bot_env.start(telegram={"team_chat": team})
    tg.add_chat(team, title="Team")
    db = srv.db()
    try:
        db.execute(
            "INSERT INTO blocklist (kind, value, reason, at) VALUES ('phone', '+79161234567', 'spam', ?)",
            ["2026-12-01T09:00:00+00:00"],
        )
        db.conn.commit()
    finally:
        db.close()
    await tg.wait_until_confirmed(tg.user_sends_text(ANNA, "/help", chat_id=team, language_code="en"))
    shown = await tg.wait_for("sendMessage", chat_id=team)
    before = tg.message(team, shown.result["message_id"])
    for data in (BlockCB(act="page", page=0).pack(), BlockCB(act="un", id=1, page=0).pack()):
        update = tg.user_presses_button(ANNA, shown.result["message_id"], data, chat_id=team, strict=False)
        await tg.wait_until_confirmed(update)
    assert tg.message(team, shown.result["message_id"]) == before  # not redrawn as the list
    assert srv.scalar("SELECT COUNT(*) FROM blocklist") == 1


async def test_help_offers_blocked_to_managers_and_owners_and_not_to_staff_it_would_refuse(
    bot_env: BotEnv,
) -> None:
    vera = {"name": "Vera", "telegram_id": VERA, "role": "manager", "extensions": ["103"]}
    await bot_env.start(staff=[*BASE["staff"], vera])

    manager = (await bot_env.says(VERA, "/help", language="en")).result["text"]
    assert "• /blocked: the block list, with a button to unblock each entry" in manager
    assert "/report" in manager and "/cost" not in manager  # /cost is the owners'
    owner = (await bot_env.says(ANNA, "/help", language="ru")).result["text"]
    assert "• /blocked — список заблокированных, с кнопкой разблокировки у каждого" in owner

    staff = (await bot_env.says(BORIS, "/help", language="en")).result["text"]
    assert staff == (
        "How to use the bot:\n"
        "• Send a phone number in any spelling, an email, a shared contact or a forwarded message to register the person.\n"
        "• /unregistered: contacts waiting for registration\n"
        "• /missed: missed calls nobody has called back\n"
        "• /leads: your open leads\n"
        "• /find: find a contact by phone, email or part of a name\n"
        "• /cancel: stop what you are typing"
    )
    refused = await bot_env.says(BORIS, "/blocked", language="en")
    assert refused.result["text"] == "Only a manager or an owner can see and change the block list."


async def test_an_unblock_whose_redraw_telegram_does_not_take_says_unblocked_and_the_list_follows(
    bot_env: BotEnv,
) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(srv, phone="+7 999 000-00-01", message="Cheap SEO services")
    [touch] = srv.rows("SELECT id, contact_id FROM touches")
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(ANNA, "+79990000001", language="en")
    for act, value in (("nal", ""), ("why", "spam"), ("spam", "block")):
        await bot_env.press(ANNA, card.result["message_id"], CardCB(act=act, t=t, c=c, v=value).pack())
    listing = await bot_env.says(ANNA, "/blocked", language="en")
    listing_id = listing.result["message_id"]
    tg.fail_next("editMessageText", status=0)
    answer = await bot_env.press(ANNA, listing_id, button_data(tg, ANNA, listing_id, "Unblock"))
    assert answer.get("text") == "Unblocked: their touches count again."
    assert srv.scalar("SELECT COUNT(*) FROM blocklist") == 0
    await bot_env.delivered(ANNA)
    assert "Nobody is on the block list" in bot_env.text(ANNA, listing_id)


async def test_a_block_list_id_is_never_given_twice(bot_env: BotEnv) -> None:
    """A CRM listed Alice's entry; she was unblocked and a spammer blocked from his card after her. He
    was given her id again: the CRM's next page (after her id) never showed him, and its DELETE of the
    entry it had listed for her unblocked him with a 200."""
    token = "crm-token-0123456789"
    auth = {"Authorization": f"Bearer {token}"}
    srv = await bot_env.start(api_clients=[{"name": "crm", "token": token}])

    async def spam_and_block(phone: str, message: str) -> None:
        await post_form(srv, phone=phone, message=message)
        [touch] = srv.rows("SELECT id, contact_id FROM touches WHERE message = ?", [message])
        t, c = touch["id"], touch["contact_id"]
        card = await bot_env.says(ANNA, phone, language="en")
        for data in (
            CardCB(act="nal", t=t, c=c).pack(),
            CardCB(act="why", t=t, c=c, v="spam").pack(),
            CardCB(act="spam", t=t, c=c, v="block").pack(),
        ):
            await bot_env.press(ANNA, card.result["message_id"], data)

    async def api(method: str, path: str) -> tuple[int, dict[str, Any]]:
        async with srv.session.request(method, f"{srv.url}{path}", headers=auth) as resp:
            return resp.status, await resp.json()

    await spam_and_block("+79990000001", "Alice")
    _, listed = await api("GET", "/api/blocked")
    [alice] = listed["blocked"]
    assert (alice["value"], listed["next_after_id"]) == ("+79990000001", alice["id"])
    status, _ = await api("DELETE", f"/api/blocked/{alice['id']}")
    assert status == 200
    await spam_and_block("+79990000002", "Bob")

    status, page = await api("GET", f"/api/blocked?after_id={alice['id']}")
    assert [e["value"] for e in page["blocked"]] == ["+79990000002"]
    assert page["blocked"][0]["id"] > alice["id"]
    status, refusal = await api("DELETE", f"/api/blocked/{alice['id']}")
    assert (status, refusal["error"]) == (404, "not_blocked")
    assert srv.rows("SELECT value FROM blocklist") == [{"value": "+79990000002"}]
