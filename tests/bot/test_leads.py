"""Lead moves from chat, each recorded with who and when; stale buttons get a clear answer."""

from __future__ import annotations

from sqlite_utils import Database

from bot.callbacks import LeadCB, OpenCB
from storage.db import now_utc
from storage.registrations import record_registration as register
from tests.bot.conftest import ANNA, BORIS, BotEnv
from tests.bot.test_registration import post_form, the_touch


async def a_lead(env: BotEnv, owner_telegram_id: int = ANNA) -> int:
    assert env.srv is not None
    await post_form(env.srv, name="Maria", phone="+7 916 765-43-21", message="Office furniture")
    touch = the_touch(env.srv)
    owner = env.srv.scalar("SELECT id FROM staff WHERE telegram_id = ?", [owner_telegram_id])

    def write(db: Database) -> int:
        done = register(
            db,
            touch["contact_id"],
            "lead",
            at=now_utc(),
            staff_id=owner,
            temperature="warm",
            touch_id=touch["id"],
        )
        assert done.lead_id is not None
        return done.lead_id

    return int(await env.write(write))


async def test_a_lead_moves_through_every_stage(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    lead_id = await a_lead(bot_env)

    listing = await bot_env.says(ANNA, "/leads", language="en")
    assert "Maria" in listing.result["text"]
    await bot_env.press(ANNA, listing.result["message_id"], OpenCB(kind="lead", id=lead_id).pack())
    card = await tg.wait_for("sendMessage", chat_id=ANNA, count=2)
    card_id = card.result["message_id"]

    async def tap(act: str, value: str = "") -> None:
        await bot_env.press(ANNA, card_id, LeadCB(act=act, lead=lead_id, v=value).pack())

    async def type_answer(text: str) -> None:
        edits = len(tg.sent("editMessageText", chat_id=ANNA))
        await bot_env.types(ANNA, text, language="en")
        await tg.wait_for("editMessageText", chat_id=ANNA, count=edits + 1)

    await tap("stage", "qualified")
    await tap("stage", "returned")
    assert "Type why the lead goes back" in bot_env.text(ANNA, card_id)
    await type_answer("No budget this quarter")
    await tap("stage", "qualified")
    await tap("stage", "accepted")
    await tap("stage", "lost")
    await tap("lost", "competitor")
    assert "chose a competitor" in bot_env.text(ANNA, card_id)
    await tap("stage", "new")
    await tap("stage", "qualified")
    await tap("stage", "accepted")
    await tap("temp", "hot")
    await tap("fu")
    await tap("fu", "3")
    await tap("stage", "won")
    await type_answer("250 000")

    stages = [r["new"] for r in srv.rows("SELECT new FROM lead_changes WHERE field = 'stage' ORDER BY id")]
    assert stages == [
        "new",
        "qualified",
        "returned",
        "qualified",
        "accepted",
        "lost",
        "new",
        "qualified",
        "accepted",
        "won",
    ]
    anna = srv.scalar("SELECT id FROM staff WHERE telegram_id = ?", [ANNA])
    assert {r["staff_id"] for r in srv.rows("SELECT staff_id FROM lead_changes")} == {anna}
    [lead] = srv.rows(
        "SELECT stage, temperature, won_amount, returned_reason, lost_reason, follow_up_on FROM leads"
    )
    assert lead["stage"] == "won" and lead["temperature"] == "hot" and lead["won_amount"] == 250000
    assert lead["returned_reason"] == "No budget this quarter" and lead["follow_up_on"] is not None
    shown = bot_env.text(ANNA, card_id)
    assert "🏆 Won: RUB\u00a0250,000" in shown  # in the config's currency, as the English reader writes it
    # A won lead has no more moves, but an amount typed wrong can be mended: it is the revenue.
    assert [b["text"] for b in tg.buttons(ANNA, card_id)] == ["✏️ Won amount"]
    await tap("wamt")
    assert "Type the deal amount" in bot_env.text(ANNA, card_id)
    sent = len(tg.sent("sendMessage", chat_id=ANNA))
    await bot_env.types(ANNA, "25 ooo", language="en")  # not a number: said so, nothing saved
    refused = await tg.wait_for("sendMessage", chat_id=ANNA, count=sent + 1)
    assert "25 ooo" in refused.params["text"]
    assert srv.scalar("SELECT won_amount FROM leads") == 250000
    await type_answer("25 000")
    assert srv.scalar("SELECT won_amount FROM leads") == 25000
    assert srv.scalar("SELECT stage FROM leads") == "won"
    [change] = srv.rows(
        "SELECT old, new, staff_id FROM lead_changes WHERE field = 'won_amount' ORDER BY id DESC LIMIT 1"
    )
    assert (change["old"], change["new"], change["staff_id"]) == ("250000.0", "25000.0", anna)
    assert "🏆 Won: RUB\u00a025,000" in bot_env.text(ANNA, card_id)


async def test_staff_cannot_change_someone_elses_lead_and_a_stale_button_says_why(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    lead_id = await a_lead(bot_env, owner_telegram_id=ANNA)

    # Boris (staff) opens Anna's lead through /find and tries to move it
    found = await bot_env.says(BORIS, "/find Maria", language="en")
    await bot_env.press(BORIS, found.result["message_id"], OpenCB(kind="lead", id=lead_id).pack())
    card = await tg.wait_for("sendMessage", chat_id=BORIS, count=2)
    answer = await bot_env.press(
        BORIS, card.result["message_id"], LeadCB(act="stage", lead=lead_id, v="qualified").pack()
    )
    assert "belongs to Anna" in answer["text"] and answer["show_alert"]
    assert srv.scalar("SELECT stage FROM leads") == "new"

    # Anna has two copies of the card; she moves the lead on one, then taps an old button on the other
    await bot_env.types(ANNA, "/help", language="en")
    first = await bot_env.says(ANNA, "/leads", language="en")
    await bot_env.press(ANNA, first.result["message_id"], OpenCB(kind="lead", id=lead_id).pack())
    old = await tg.wait_for(
        lambda r: (
            r.method == "sendMessage" and r.ok and r.params["chat_id"] == ANNA and "📇" in r.params["text"]
        )
    )
    await bot_env.press(ANNA, first.result["message_id"], OpenCB(kind="lead", id=lead_id).pack())
    new = await tg.wait_for(
        lambda r: (
            r.method == "sendMessage" and r.ok and r.params["chat_id"] == ANNA and "📇" in r.params["text"]
        ),
        count=2,
    )
    await bot_env.press(ANNA, new.result["message_id"], LeadCB(act="stage", lead=lead_id, v="lost").pack())
    await bot_env.press(ANNA, new.result["message_id"], LeadCB(act="lost", lead=lead_id, v="price").pack())
    answer = await bot_env.press(
        ANNA, old.result["message_id"], LeadCB(act="stage", lead=lead_id, v="qualified").pack()
    )
    assert "cannot become “qualified”" in answer["text"] and answer["show_alert"]
    assert srv.scalar("SELECT stage FROM leads") == "lost"


async def test_a_move_whose_redraw_telegram_does_not_take_says_saved_and_the_card_follows(
    bot_env: BotEnv,
) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    lead_id = await a_lead(bot_env)
    listing = await bot_env.says(ANNA, "/leads", language="en")
    await bot_env.press(ANNA, listing.result["message_id"], OpenCB(kind="lead", id=lead_id).pack())
    card = await tg.wait_for("sendMessage", chat_id=ANNA, count=2)
    card_id = card.result["message_id"]

    tg.fail_next("editMessageText", status=429, retry_after=1)
    answer = await bot_env.press(ANNA, card_id, LeadCB(act="stage", lead=lead_id, v="qualified").pack())
    assert answer.get("text") == "Saved."
    assert srv.scalar("SELECT stage FROM leads WHERE id = ?", [lead_id]) == "qualified"
    await bot_env.delivered(ANNA)
    assert "stage: qualified" in bot_env.text(ANNA, card_id)
    assert "🤝 Accepted by sales" in [b["text"] for b in tg.buttons(ANNA, card_id)]
