"""A split sticks: after a manager undoes a merge, or says two contacts are not the same person, a
touch naming both goes to the contact its phone belongs to and merges nobody."""

from __future__ import annotations

from bot.callbacks import MergeCB
from tests.bot.conftest import ANNA, BotEnv
from tests.bot.test_registration import post_form


async def test_after_undo_a_touch_with_both_identifiers_does_not_merge(bot_env: BotEnv) -> None:
    srv = await bot_env.start()
    await post_form(srv, name="Petr", email="petr@example.com")
    await post_form(srv, name="Olga", phone="+7 916 555-00-01")
    await post_form(srv, phone="+7 916 555-00-01", email="petr@example.com", message="Both of us")
    [merge] = srv.rows("SELECT id, survivor_id, merged_id FROM merges")
    by_email, by_phone = merge["survivor_id"], merge["merged_id"]

    found = await bot_env.says(ANNA, "/find petr@example.com", language="en")
    await bot_env.taps(ANNA, found.result["message_id"], f"Undo merge with #{by_phone}")
    assert srv.scalar("SELECT merged_into FROM contacts WHERE id = ?", [by_phone]) is None

    await post_form(srv, phone="8 916 555 00 01", email="Petr@Example.com", message="Again, both")
    assert srv.scalar("SELECT COUNT(*) FROM merges WHERE undone_at IS NULL") == 0
    assert srv.scalar("SELECT contact_id FROM touches WHERE message = 'Again, both'") == by_phone
    emails = srv.rows("SELECT contact_id FROM identifiers WHERE kind = 'email'")
    assert emails == [{"contact_id": by_email}]


async def test_not_the_same_person_keeps_two_contacts_apart_until_a_manager_merges_them(
    bot_env: BotEnv,
) -> None:
    srv = await bot_env.start()
    await post_form(srv, name="Petr", phone="+7 916 555-00-01")
    await post_form(srv, name="Petr S.", email="petr@example.com")
    first, second = (r["id"] for r in srv.rows("SELECT id FROM contacts ORDER BY id"))
    found = await bot_env.says(ANNA, "/find +79165550001", language="en")
    await bot_env.press(ANNA, found.result["message_id"], MergeCB(act="ask", a=first).pack())
    question = await bot_env.says(ANNA, "petr@example.com", language="en")
    await bot_env.taps(ANNA, question.result["message_id"], "Not the same person")
    assert "are two people" in bot_env.text(ANNA, question.result["message_id"])

    await post_form(srv, phone="+7 916 555-00-01", email="petr@example.com", message="Both")
    assert srv.scalar("SELECT COUNT(*) FROM merges") == 0
    assert srv.scalar("SELECT contact_id FROM touches WHERE message = 'Both'") == first

    # a manager's merge by hand overrides the exception
    again = await bot_env.says(ANNA, "/find +79165550001", language="en")
    await bot_env.press(ANNA, again.result["message_id"], MergeCB(act="ask", a=first).pack())
    question = await bot_env.says(ANNA, "petr@example.com", language="en")
    await bot_env.press(ANNA, question.result["message_id"], MergeCB(act="do", a=first, b=second).pack())
    assert srv.scalar("SELECT merged_into FROM contacts WHERE id = ?", [second]) == first
    assert srv.scalar("SELECT COUNT(*) FROM merge_exceptions") == 0
