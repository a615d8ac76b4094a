"""A split sticks: after a manager undoes a merge, or says two contacts are not the same person, a
touch naming both goes to the contact its phone belongs to and merges nobody."""

from __future__ import annotations

from datetime import date, timedelta

from bot.callbacks import MergeCB
from storage.reports.report import build_report, missed_contacts
from storage.reports.scope import Period, Rules, Scope
from tests.bot.conftest import ANNA, BotEnv
from tests.bot.test_arrival import mango_call
from tests.bot.test_registration import post_form
from tests.capture.test_mango import MANGO_SOURCE
from tests.conftest import BASE
from tests.nudges.conftest import MSK, Clock, msk


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


async def test_an_undone_merge_leaves_no_missed_call_called_back_by_the_other_persons_call(
    bot_env: BotEnv,
) -> None:
    """Ann's call on Friday evening is missed; Bob is answered on Monday at 09:05, within the 30
    working minutes of it. Merged by mistake, they are one person whose call was returned; undone,
    Ann's call is missed and not called back again, in the report and on the list to call back."""
    monday = date(2026, 4, 13)
    friday = monday - timedelta(days=3)
    srv = await bot_env.start(clock=Clock(msk(monday, 12)), sources=[*BASE["sources"], MANGO_SOURCE])
    await mango_call(srv, "E-ann", "79160000001", msk(friday, 17, 50), answered=False, extension="102")
    await mango_call(srv, "E-bob", "74951111111", msk(monday, 9, 5), answered=True, extension="101")
    ann, bob = (r["id"] for r in srv.rows("SELECT id FROM contacts ORDER BY id"))

    async def friday_owed() -> tuple[int, int]:
        """Friday's missed calls not called back within the SLA, and those still to call back."""
        scope = Scope(Period.day(friday, MSK), as_of=msk(monday, 12))
        report = await bot_env.store.read(lambda db: build_report(db, scope, Rules.from_config(srv.config)))
        owed = await bot_env.store.read(lambda db: missed_contacts(db, scope.period, 5))
        return report["missed_not_called_back"], owed.total

    assert await friday_owed() == (1, 1)
    found = await bot_env.says(ANNA, "/find +79160000001", language="en")
    await bot_env.press(ANNA, found.result["message_id"], MergeCB(act="ask", a=ann).pack())
    question = await bot_env.says(ANNA, "+74951111111", language="en")
    await bot_env.press(ANNA, question.result["message_id"], MergeCB(act="do", a=ann, b=bob).pack())
    assert await friday_owed() == (0, 0)

    # While they are one, Ann calls again and nobody answers.
    await mango_call(srv, "E-ann-2", "79160000001", msk(monday, 11), answered=False, extension="102")
    await bot_env.taps(ANNA, question.result["message_id"], f"Undo merge with #{bob}")
    assert srv.scalar("SELECT merged_into FROM contacts WHERE id = ?", [bob]) is None
    assert await friday_owed() == (1, 1)
    marks = srv.rows("SELECT external_id, contact_id, called_back_by FROM touches ORDER BY id")
    assert [tuple(r.values()) for r in marks] == [
        ("E-ann", ann, None),
        ("E-bob", bob, None),
        ("E-ann-2", ann, None),
    ]
