"""Registration from chat: a card's buttons, typed numbers that find telephony's contact, manual touches."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlite_utils import Database

from bot.callbacks import CardCB, LeadCB, OpenCB
from leadline import keys
from storage.retention import run_pass
from tests.bot.conftest import ANNA, BORIS, BotEnv, button_data
from tests.capture.chat_payloads import AVITO_TEXT, chat_config, post_avito
from tests.capture.test_mango import MANGO_SOURCE, post_mango, signed_mango, summary
from tests.conftest import BASE, Running
from tests.fake_telegram import CallRecord


async def post_form(srv: Running, **fields: str) -> None:
    resp = await srv.session.post(f"{srv.url}/hooks/form?token=form-token", data=fields)
    assert resp.status == 200, await resp.text()


def the_touch(srv: Running, where: str = "1 = 1") -> dict[str, Any]:
    [touch] = srv.rows(f"SELECT id, contact_id, channel, source FROM touches WHERE {where}")
    return touch


async def test_registration_by_buttons_from_a_card(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(
        srv, name="Ivan Petrov", phone="+7 916 123-45-67", message="A quote for a kitchen, please"
    )
    touch = the_touch(srv)

    listing = await bot_env.says(ANNA, "/unregistered", language="en")
    assert "+7 916 123-45-67" in listing.result["text"] and "Ivan Petrov" in listing.result["text"]
    await bot_env.press(ANNA, listing.result["message_id"], OpenCB(kind="touch", id=touch["id"]).pack())
    card = await tg.wait_for("sendMessage", chat_id=ANNA, count=2)
    card_id = card.result["message_id"]
    text = card.result["text"]
    assert "Form" in text and "+7 916 123-45-67" in text and "Ivan Petrov" in text and "First contact" in text

    # the two taps of the common case
    t, c = touch["id"], touch["contact_id"]
    await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="hot").pack())
    assert "A quote for a kitchen, please" in bot_env.text(ANNA, card_id)  # the form's message is the need
    answer = await bot_env.press(ANNA, card_id, CardCB(act="save", t=t, c=c).pack())
    assert answer.get("text") == "Saved."

    anna = srv.scalar("SELECT id FROM staff WHERE telegram_id = ?", [ANNA])
    [registration] = srv.rows("SELECT contact_id, touch_id, disposition, staff_id, origin FROM registrations")
    assert registration == {
        "contact_id": c,
        "touch_id": t,
        "disposition": "lead",
        "staff_id": anna,
        "origin": "bot",
    }
    [lead] = srv.rows("SELECT temperature, stage, owner_id, need, campaign FROM leads")
    assert lead == {
        "temperature": "hot",
        "stage": "new",
        "owner_id": anna,
        "need": "A quote for a kitchen, please",
        "campaign": None,
    }
    shown = bot_env.text(ANNA, card_id)
    assert "Registered by Anna" in shown and "Lead #" in shown
    listing = await bot_env.says(ANNA, "/unregistered", language="en")
    assert "Nothing is waiting" in listing.result["text"]


async def test_typing_a_number_lands_on_the_contact_a_mango_call_created(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start(sources=[*BASE["sources"], MANGO_SOURCE])
    call = summary(
        "entry-typed-1", "79161234567", start=int(time.time()) - 600, answered=True, dct="74950000055"
    )
    resp = await post_mango(srv, "/events/summary", signed_mango(call))
    assert resp.status == 200
    touch = the_touch(srv)
    assert (touch["channel"], touch["source"]) == ("call", "mango")

    card = await bot_env.says(ANNA, "8 916 123-45-67", language="en")
    card_id = card.result["message_id"]
    assert "Call" in card.result["text"] and "+7 916 123-45-67" in card.result["text"]
    assert "brand_msk" in card.result["text"]  # attributed by the tracking number the caller dialled
    t, c = touch["id"], touch["contact_id"]

    await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="warm").pack())
    assert "Type the need (required)" in bot_env.text(ANNA, card_id)
    answer = await bot_env.press(ANNA, card_id, CardCB(act="save", t=t, c=c).pack())
    assert "Need" in answer["text"] and answer["show_alert"]  # the bot keeps asking for what is required
    assert srv.rows("SELECT * FROM registrations") == []

    edits = len(tg.sent("editMessageText", chat_id=ANNA))
    await bot_env.types(ANNA, "Kitchen renovation", language="en")
    await tg.wait_for("editMessageText", chat_id=ANNA, count=edits + 1)
    assert "Need ✱: Kitchen renovation" in bot_env.text(ANNA, card_id)
    await bot_env.press(ANNA, card_id, CardCB(act="fu", t=t, c=c).pack())
    await bot_env.press(ANNA, card_id, CardCB(act="fu", t=t, c=c, v="7").pack())
    await bot_env.press(ANNA, card_id, CardCB(act="save", t=t, c=c).pack())

    [registration] = srv.rows("SELECT contact_id, touch_id FROM registrations")
    assert registration == {"contact_id": c, "touch_id": t}
    [lead] = srv.rows("SELECT temperature, need, campaign, follow_up_on FROM leads")
    assert (
        lead["temperature"] == "warm"
        and lead["need"] == "Kitchen renovation"
        and lead["campaign"] == "brand_msk"
    )
    assert lead["follow_up_on"] is not None
    assert srv.scalar("SELECT COUNT(*) FROM contacts") == 1  # no second contact for the typed number
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1  # and no manual touch


async def test_a_number_never_seen_becomes_a_manual_touch_and_is_registered(bot_env: BotEnv) -> None:
    srv = await bot_env.start()
    card = await bot_env.says(ANNA, "+7 (903) 555-12-34", language="en")
    touch = the_touch(srv)
    assert (touch["channel"], touch["source"]) == ("manual", "telegram")
    assert (
        srv.scalar("SELECT value FROM identifiers WHERE contact_id = ?", [touch["contact_id"]])
        == "+79035551234"
    )
    assert "Entered by hand" in card.result["text"]
    # a re-delivered chat message is the same touch
    await bot_env.press(
        ANNA, card.result["message_id"], CardCB(act="nal", t=touch["id"], c=touch["contact_id"]).pack()
    )
    await bot_env.press(
        ANNA,
        card.result["message_id"],
        CardCB(act="why", t=touch["id"], c=touch["contact_id"], v="partner").pack(),
    )
    [registration] = srv.rows("SELECT disposition, reason FROM registrations")
    assert registration == {"disposition": "not_a_lead", "reason": "partner"}
    assert "not a lead (partner)" in bot_env.text(ANNA, card.result["message_id"])


async def test_a_number_typed_with_a_time_a_count_or_a_second_line_is_read_as_mail_reads_it(
    bot_env: BotEnv,
) -> None:
    """The bot's own digit runs glued "8 916 123-45-67 10" from "… 10:30" and answered that it was no
    phone number, though it was typed with the area code; nothing was registered."""
    srv = await bot_env.start()
    for typed in (
        "Иван, 8 916 123-45-67 10:30",
        "Ольга 89161112233 2 шт",
        "8 916 765 43 21\n8 916 765 43 22",
    ):
        card = await bot_env.says(ANNA, typed, language="en")
        assert "is not a phone number" not in card.params["text"]
    assert srv.rows("SELECT contact_id, value FROM identifiers ORDER BY id") == [
        {"contact_id": 1, "value": "+79161234567"},
        {"contact_id": 2, "value": "+79161112233"},
        {"contact_id": 3, "value": "+79167654321"},
        {"contact_id": 3, "value": "+79167654322"},
    ]
    wrong = await bot_env.says(ANNA, "8 916 12\n8 916 13", language="en")
    assert "“8 916 12” is not a phone number I can use" in wrong.params["text"]


async def test_a_shared_contact_and_a_forwarded_message_start_the_same_flow(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(srv, name="Olga", phone="89161112233")
    tg.user_sends_text(ANNA, "/help", language_code="en")
    await tg.wait_for("sendMessage", chat_id=ANNA)
    update = tg.user_shares_contact(ANNA, "+79161112233", "Olga", contact_user_id=0)
    await tg.wait_until_confirmed(update)
    card = await tg.wait_for("sendMessage", chat_id=ANNA, count=2)
    assert "Olga" in card.result["text"] and "+7 916 111-22-33" in card.result["text"]

    update = tg.user_forwards(ANNA, "Hi, call me back at 8-926-000-11-22 about windows", "Pavel")
    await tg.wait_until_confirmed(update)
    card = await tg.wait_for("sendMessage", chat_id=ANNA, count=3)
    [manual] = srv.rows("SELECT name, message, channel FROM touches WHERE source = 'telegram'")
    assert manual == {
        "name": "Pavel",
        "message": "Hi, call me back at 8-926-000-11-22 about windows",
        "channel": "manual",
    }
    assert "about windows" in card.result["text"]


async def test_a_shared_foreign_contact_is_registered_with_its_own_number(bot_env: BotEnv) -> None:
    """Telegram sends ``contact.phone_number`` without "+": read in RU, Minsk's 375291234567 was
    "not a phone number" and Berlin's 4930123456 was registered as +74930123456 (Ivanovo)."""
    tg = bot_env.tg
    srv = await bot_env.start()
    tg.user_sends_text(ANNA, "/help", language_code="en")
    await tg.wait_for("sendMessage", chat_id=ANNA)
    for count, number in enumerate(("375291234567", "4930123456"), start=2):
        update = tg.user_shares_contact(ANNA, number, "Client", contact_user_id=0)
        await tg.wait_until_confirmed(update)
        card = await tg.wait_for("sendMessage", chat_id=ANNA, count=count)
        assert "is not a phone number" not in card.result["text"]
    assert [r["value"] for r in srv.rows("SELECT value FROM identifiers ORDER BY id")] == [
        "+375291234567",
        "+4930123456",
    ]


async def test_spam_is_put_on_the_block_list_only_when_asked(bot_env: BotEnv) -> None:
    srv = await bot_env.start()
    await post_form(srv, phone="+7 999 000-00-01", message="Cheap SEO services")
    await post_form(srv, phone="+7 999 000-00-02", message="Cheap SEO services again")
    first, second = srv.rows("SELECT id, contact_id FROM touches ORDER BY id")
    for touch, choice in ((first, "block"), (second, "keep")):
        t, c = touch["id"], touch["contact_id"]
        listing = await bot_env.says(ANNA, "/unregistered", language="en")
        await bot_env.press(ANNA, listing.result["message_id"], OpenCB(kind="touch", id=t).pack())

        def is_card(record: CallRecord, t: int = t) -> bool:
            return record.method == "sendMessage" and record.ok and f"t:lead:{t}:" in str(record.params)

        card = await bot_env.tg.wait_for(is_card)
        card_id = card.result["message_id"]
        await bot_env.press(ANNA, card_id, CardCB(act="nal", t=t, c=c).pack())
        await bot_env.press(ANNA, card_id, CardCB(act="why", t=t, c=c, v="spam").pack())
        assert "block list" in bot_env.text(ANNA, card_id)
        await bot_env.press(ANNA, card_id, CardCB(act="spam", t=t, c=c, v=choice).pack())
    assert [r["value"] for r in srv.rows("SELECT value FROM blocklist")] == ["+79990000001"]
    assert [r["reason"] for r in srv.rows("SELECT reason FROM registrations ORDER BY id")] == ["spam", "spam"]
    await post_form(srv, phone="+7 999 000-00-01", message="And again")
    [later] = srv.rows("SELECT blocked FROM touches ORDER BY id DESC LIMIT 1")
    assert later["blocked"] == 1


async def spam_question(bot_env: BotEnv, touch: dict[str, Any]) -> tuple[int, str, list[str]]:
    """Open a touch's card from /unregistered and refuse it as spam: the card, its question and buttons."""
    t, c = touch["id"], touch["contact_id"]
    listing = await bot_env.says(ANNA, "/unregistered", language="en")
    await bot_env.press(ANNA, listing.result["message_id"], OpenCB(kind="touch", id=t).pack())

    def is_card(record: CallRecord) -> bool:
        return record.method == "sendMessage" and record.ok and f"t:lead:{t}:" in str(record.params)

    card_id = (await bot_env.tg.wait_for(is_card)).result["message_id"]
    await bot_env.press(ANNA, card_id, CardCB(act="nal", t=t, c=c).pack())
    await bot_env.press(ANNA, card_id, CardCB(act="why", t=t, c=c, v="spam").pack())
    question = bot_env.text(ANNA, card_id).split("\n\n")[-1]
    return card_id, question, [b["text"] for b in bot_env.tg.buttons(ANNA, card_id)]


async def test_the_spam_question_names_exactly_what_goes_on_the_block_list(bot_env: BotEnv) -> None:
    base = chat_config(bot_env.tmp_path)
    srv = await bot_env.start(bot_env.config(sources=[s.model_dump() for s in base.sources], campaigns=[]))
    await post_form(srv, phone="+7 916 123-45-67", email="ivan@example.com", message="Cheap SEO")
    assert (await post_avito(srv, AVITO_TEXT.body)).status == 200
    form, chat = srv.rows("SELECT id, contact_id FROM touches ORDER BY id")

    card_id, question, buttons = await spam_question(bot_env, form)
    assert question.startswith("Add +7 916 123-45-67, ivan@example.com to the block list? Later calls and")
    assert "from them are still kept" in question and buttons[0] == "🚫 Spam, and block"
    await bot_env.taps(ANNA, card_id, "Spam, and block")
    card_id, question, _buttons = await spam_question(bot_env, chat)
    assert question.startswith("Add Avito 500000002 to the block list? Later calls and messages from it")
    await bot_env.taps(ANNA, card_id, "Spam, and block")
    listed = srv.rows("SELECT kind, value FROM blocklist ORDER BY id")
    assert [(r["kind"], r["value"]) for r in listed] == [
        ("phone", "+79161234567"),
        ("email", "ivan@example.com"),
        ("avito_id", "500000002"),
    ]


async def test_a_contact_with_nothing_valid_to_block_is_not_offered_the_block(bot_env: BotEnv) -> None:
    """A bot's form with a junk number: kept as written, never matched (DESIGN.md), so blocking it would
    catch nothing; the card says so, and a block pressed on a card drawn before leaves no mark that no
    block-list entry could ever take off."""
    srv = await bot_env.start()
    await post_form(srv, phone="12345", message="Buy followers http://spam.example")
    touch = the_touch(srv)
    t, c = touch["id"], touch["contact_id"]
    card_id, question, buttons = await spam_question(bot_env, touch)
    assert question == (
        "This contact cannot be blocked: it has no valid phone number, email address or chat ID, so a later"
        " call or message from it could not be recognised. Refuse it as spam without blocking."
    )
    assert buttons == ["Spam, do not block", "« Back"]

    await bot_env.press(ANNA, card_id, CardCB(act="spam", t=t, c=c, v="block").pack(), forged=True)
    assert srv.rows("SELECT reason FROM registrations") == [{"reason": "spam"}]
    assert (srv.scalar("SELECT COUNT(*) FROM blocklist"), srv.scalar("SELECT blocked FROM contacts")) == (
        0,
        0,
    )
    found = await bot_env.says(ANNA, "/find 12345", language="en")
    assert "12345" in found.result["text"] and "On the block list" not in found.result["text"]


async def test_the_form_can_change_campaign_owner_name_and_temperature_before_saving(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start(lead_fields={"required": ["need", "company"], "desirable": ["size"]})
    await post_form(srv, phone="+7 916 123-00-99", message="Windows for a school", utm_campaign="brand_msk")
    touch = the_touch(srv)
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(ANNA, "89161230099", language="en")
    card_id = card.result["message_id"]
    await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="hot").pack())
    assert "Type the company (required)" in bot_env.text(ANNA, card_id)  # the need came from the form
    edits = len(tg.sent("editMessageText", chat_id=ANNA))
    await bot_env.types(ANNA, "School No. 5", language="en")
    await tg.wait_for("editMessageText", chat_id=ANNA, count=edits + 1)

    vk = srv.scalar("SELECT id FROM campaigns WHERE name = 'vk_ads'")
    boris = srv.scalar("SELECT id FROM staff WHERE telegram_id = 222")
    await bot_env.press(ANNA, card_id, CardCB(act="camp", t=t, c=c).pack())
    assert "• brand_msk" in [b["text"] for b in tg.buttons(ANNA, card_id)]  # preset to the attributed one
    await bot_env.press(ANNA, card_id, CardCB(act="camp", t=t, c=c, v=str(vk)).pack())
    await bot_env.press(ANNA, card_id, CardCB(act="own", t=t, c=c).pack())
    await bot_env.press(ANNA, card_id, CardCB(act="own", t=t, c=c, v=str(boris)).pack())
    await bot_env.taps(ANNA, card_id, "✏️ Name")
    edits = len(tg.sent("editMessageText", chat_id=ANNA))
    await bot_env.types(ANNA, "Irina Sergeevna", language="en")
    await tg.wait_for("editMessageText", chat_id=ANNA, count=edits + 1)
    await bot_env.press(ANNA, card_id, CardCB(act="temp", t=t, c=c, v="cold").pack())
    await bot_env.press(ANNA, card_id, CardCB(act="edit", t=t, c=c, v="amount").pack())
    edits = len(tg.sent("editMessageText", chat_id=ANNA))
    await bot_env.types(ANNA, "150 000,50", language="en")
    await tg.wait_for("editMessageText", chat_id=ANNA, count=edits + 1)
    shown = bot_env.text(ANNA, card_id)
    assert "Campaign: vk_ads" in shown and "Owner: Boris" in shown and "Lead: ❄️ cold" in shown
    assert "Deal amount: RUB\u00a0150,000.50" in shown  # the config's currency, to the kopeck typed
    await bot_env.press(ANNA, card_id, CardCB(act="save", t=t, c=c).pack())
    assert "💰 RUB\u00a0150,000.50" in bot_env.text(ANNA, card_id)  # the saved lead's card

    [lead] = srv.rows("SELECT temperature, campaign, owner_id, need, fields FROM leads")
    assert lead == {
        "temperature": "cold",
        "campaign": "vk_ads",
        "owner_id": boris,
        "need": "Windows for a school",
        "fields": '{"company": "School No. 5"}',
    }
    assert srv.scalar("SELECT name FROM contacts") == "Irina Sergeevna"
    assert srv.scalar("SELECT campaign FROM registrations") == "vk_ads"


async def test_a_returning_persons_lead_goes_to_the_campaign_that_found_them_not_the_later_cards(
    bot_env: BotEnv,
) -> None:
    """Registered from the card of a later touch (brand search), the lead went to brand_msk, while
    the API, a system registration and DESIGN.md give it to the earliest touch's campaign (vk_ads)."""
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(srv, name="Ivan", phone="+7 916 123-45-67", utm_source="vk", message="From the VK ad")
    await post_form(srv, name="Ivan", phone="+7 916 123-45-67", utm_campaign="brand_msk", message="Again")
    first, later = srv.rows("SELECT id, contact_id, campaign FROM touches ORDER BY id")
    assert (first["campaign"], later["campaign"]) == ("vk_ads", "brand_msk")

    listing = await bot_env.says(ANNA, "/unregistered", language="en")
    sent = len(tg.sent("sendMessage", chat_id=ANNA))
    await bot_env.press(ANNA, listing.result["message_id"], OpenCB(kind="touch", id=later["id"]).pack())
    card = await tg.wait_for("sendMessage", chat_id=ANNA, count=sent + 1)
    card_id = card.result["message_id"]
    assert "Campaign: brand_msk" in card.result["text"]  # the card is about the later touch
    t, c = later["id"], later["contact_id"]
    await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="hot").pack())
    assert "Campaign: vk_ads" in bot_env.text(ANNA, card_id).split("Lead:", 1)[1]  # the form's preset
    answer = await bot_env.press(ANNA, card_id, CardCB(act="save", t=t, c=c).pack())
    assert answer.get("text") == "Saved."

    assert srv.scalar("SELECT campaign FROM leads") == "vk_ads"
    assert srv.scalar("SELECT campaign FROM registrations") == "vk_ads"


async def test_a_follow_up_date_already_gone_is_refused_and_asked_again(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(srv, phone="+7 916 123-00-98", message="Windows for a school")
    touch = the_touch(srv)
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(ANNA, "89161230098", language="en")
    card_id = card.result["message_id"]
    await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="cold").pack())
    await bot_env.press(ANNA, card_id, CardCB(act="fu", t=t, c=c).pack())
    await bot_env.press(ANNA, card_id, CardCB(act="edit", t=t, c=c, v="follow_up").pack())
    gone = datetime.now(UTC).date() - timedelta(days=25)  # past the sweep's horizon: never nudged
    replies = len(tg.sent("sendMessage", chat_id=ANNA))
    await bot_env.types(ANNA, gone.isoformat(), language="en")
    reply = await tg.wait_for("sendMessage", chat_id=ANNA, count=replies + 1)
    assert "has passed: a follow-up is today or later. Type the date again." in reply.params["text"]
    assert "Follow-up: —" in bot_env.text(ANNA, card_id)

    coming = datetime.now(UTC).date() + timedelta(days=10)
    edits = len(tg.sent("editMessageText", chat_id=ANNA))
    await bot_env.types(ANNA, coming.isoformat(), language="en")  # still asked: the next answer is taken
    await tg.wait_for("editMessageText", chat_id=ANNA, count=edits + 1)
    await bot_env.press(ANNA, card_id, CardCB(act="save", t=t, c=c).pack())
    assert srv.scalar("SELECT follow_up_on FROM leads") == coming.isoformat()


async def test_a_field_the_config_names_in_russian_works_once_the_ids_are_big(bot_env: BotEnv) -> None:
    """The ✏️ buttons carried the field's name: 2 bytes a Cyrillic letter, and with six- and five-digit
    ids past Telegram's 64 bytes, so "Lead: hot" failed on every card."""
    tg = bot_env.tg
    srv = await bot_env.start(lead_fields={"required": ["need"], "desirable": ["лицо_принимающее_решение"]})

    def months_old(db: Database) -> None:
        db.execute(
            "INSERT INTO contacts (id, created_at, updated_at) VALUES (45677, '2026-01-01', '2026-01-01')"
        )
        db.execute(
            "INSERT INTO touches (id, source, external_id, channel, occurred_at, received_at, updated_at)"
            " VALUES (123455, 'form', 'old', 'manual', '2026-01-01', '2026-01-01', '2026-01-01')"
        )

    await bot_env.write(months_old)
    await post_form(srv, phone="+7 916 123-45-67", message="A kitchen")
    touch = the_touch(srv, "id > 123455")
    t, c = touch["id"], touch["contact_id"]
    assert (t, c) == (123456, 45678)
    card = await bot_env.says(ANNA, "8 916 123-45-67", language="en")
    card_id = card.result["message_id"]
    answer = await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="hot").pack())
    assert not answer.get("show_alert")
    assert "Lead: 🔥 hot" in bot_env.text(ANNA, card_id)
    await bot_env.taps(ANNA, card_id, "✏️ лицо_принимающее_решение")
    assert "✏️ Type the лицо_принимающее_решение, or tap another button to skip it." in bot_env.text(
        ANNA, card_id
    )
    edits = len(tg.sent("editMessageText", chat_id=ANNA))
    await bot_env.types(ANNA, "Director Petrov", language="en")
    await tg.wait_for("editMessageText", chat_id=ANNA, count=edits + 1)
    assert "лицо_принимающее_решение: Director Petrov" in bot_env.text(ANNA, card_id)
    answer = await bot_env.press(ANNA, card_id, CardCB(act="save", t=t, c=c).pack())
    assert answer.get("text") == "Saved."
    [fields] = [json.loads(r["fields"]) for r in srv.rows("SELECT fields FROM leads")]
    assert fields == {"лицо_принимающее_решение": "Director Petrov"}


async def test_a_field_the_config_names_with_html_characters_shows_as_written(bot_env: BotEnv) -> None:
    """A field named ``Budget <100k / >100k`` went into the card's HTML as it was: Telegram refused
    every edit ("can't parse entities"), so "Lead: hot" did nothing and no lead could be registered."""
    tg = bot_env.tg
    budget = "Budget <100k / >100k"
    srv = await bot_env.start(lead_fields={"required": ["need", budget], "desirable": ["R&D"]})
    await post_form(srv, phone="+7 916 123-00-96", message="A kitchen")
    touch = the_touch(srv)
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(ANNA, "89161230096", language="en")
    card_id = card.result["message_id"]
    await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="hot").pack())
    shown = bot_env.text(ANNA, card_id)
    assert f"{budget} ✱: —" in shown and "R&D: —" in shown
    assert "✏️ Type the budget <100k / >100k (required)." in shown
    assert f"✏️ {budget} ✱" in [b["text"] for b in tg.buttons(ANNA, card_id)]  # buttons are not HTML
    edits = len(tg.sent("editMessageText", chat_id=ANNA))
    await bot_env.types(ANNA, "about 80k", language="en")
    await tg.wait_for("editMessageText", chat_id=ANNA, count=edits + 1)
    assert f"{budget} ✱: about 80k" in bot_env.text(ANNA, card_id)
    answer = await bot_env.press(ANNA, card_id, CardCB(act="save", t=t, c=c).pack())
    assert answer.get("text") == "Saved."
    assert f"{budget}: about 80k" in bot_env.text(ANNA, card_id)  # the saved lead's card
    [fields] = [json.loads(r["fields"]) for r in srv.rows("SELECT fields FROM leads")]
    assert fields == {budget: "about 80k"}
    assert [a for a in tg.attempts("editMessageText") if a.status != 200] == []


async def test_a_field_button_from_before_the_fields_changed_says_it_is_old(bot_env: BotEnv) -> None:
    """A ✏️ button carries the field's place in the form; once the config drops fields, a place that
    names none is answered as any old button is, and the form is drawn with today's fields."""
    tg = bot_env.tg
    srv = await bot_env.start(lead_fields={"required": ["need"], "desirable": ["company", "size"]})
    await post_form(srv, phone="+7 916 123-00-97", message="A kitchen")
    touch = the_touch(srv)
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(ANNA, "89161230097", language="en")
    card_id = card.result["message_id"]
    await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="warm").pack())
    size = button_data(tg, ANNA, card_id, "✏️ Company size")
    await srv.stop()

    srv = await bot_env.start(lead_fields={"required": ["need"], "desirable": []})
    answer = await bot_env.press(ANNA, card_id, size)
    assert answer.get("text") == "This button is from an old version of the message; open the list again."
    assert answer.get("show_alert") is True
    shown = [b["text"] for b in tg.buttons(ANNA, card_id)]
    assert "✏️ Need ✱" in shown and not [b for b in shown if "Company" in b]
    assert "Company size" not in bot_env.text(ANNA, card_id)


async def two_open_cards(bot_env: BotEnv) -> tuple[Running, tuple[int, int, int], tuple[int, int, int]]:
    """Alice's and Bob's cards open in Anna's chat, their forms without a need: (card, touch, contact)."""
    srv = await bot_env.start()
    opened = []
    for name, phone in (("Alice", "89160000001"), ("Bob", "89160000002")):
        await post_form(srv, name=name, phone=phone)
        touch = the_touch(srv, f"contact_id = (SELECT id FROM contacts WHERE name = '{name}')")
        card = await bot_env.says(ANNA, phone, language="en")
        opened.append((card.result["message_id"], touch["id"], touch["contact_id"]))
    return srv, opened[0], opened[1]


async def test_saving_one_card_leaves_the_other_card_waiting_for_its_answer(bot_env: BotEnv) -> None:
    """Save on Alice's card stopped the bot taking the need Bob's card asked for: "I did not understand"."""
    tg = bot_env.tg
    srv, (a, ta, ca), (b, tb, cb) = await two_open_cards(bot_env)
    await bot_env.press(ANNA, a, CardCB(act="lead", t=ta, c=ca, v="hot").pack())
    await bot_env.types(ANNA, "Kitchen for Alice", language="en")
    await bot_env.press(ANNA, b, CardCB(act="lead", t=tb, c=cb, v="hot").pack())
    assert "✏️ Type the need (required)." in bot_env.text(ANNA, b)
    await bot_env.press(ANNA, a, CardCB(act="temp", t=ta, c=ca, v="warm").pack())  # asks nothing
    assert (await bot_env.press(ANNA, a, CardCB(act="save", t=ta, c=ca).pack())).get("text") == "Saved."
    replies = len(tg.sent("sendMessage", chat_id=ANNA))
    await bot_env.types(ANNA, "Bathroom for Bob", language="en")
    assert tg.sent("sendMessage", chat_id=ANNA)[replies:] == []
    assert "Need ✱: Bathroom for Bob" in bot_env.text(ANNA, b)
    assert (await bot_env.press(ANNA, b, CardCB(act="save", t=tb, c=cb).pack())).get("text") == "Saved."
    assert srv.rows("SELECT contact_id, need FROM leads ORDER BY id") == [
        {"contact_id": ca, "need": "Kitchen for Alice"},
        {"contact_id": cb, "need": "Bathroom for Bob"},
    ]


async def test_going_back_on_a_lead_leaves_another_card_waiting_for_its_answer(bot_env: BotEnv) -> None:
    """« Back under a saved lead cleared the person's whole route, so the need typed for another
    card's form went to the number look-up instead."""
    tg = bot_env.tg
    srv, (a, ta, ca), (b, tb, cb) = await two_open_cards(bot_env)
    await bot_env.press(ANNA, a, CardCB(act="lead", t=ta, c=ca, v="hot").pack())
    await bot_env.types(ANNA, "Kitchen for Alice", language="en")
    assert (await bot_env.press(ANNA, a, CardCB(act="save", t=ta, c=ca).pack())).get("text") == "Saved."
    alice_lead = int(srv.scalar("SELECT id FROM leads WHERE contact_id = ?", [ca]))
    await bot_env.press(ANNA, b, CardCB(act="lead", t=tb, c=cb, v="hot").pack())
    await bot_env.press(ANNA, a, LeadCB(act="fu", lead=alice_lead).pack())  # the follow-up days
    await bot_env.press(ANNA, a, LeadCB(act="back", lead=alice_lead).pack())
    replies = len(tg.sent("sendMessage", chat_id=ANNA))
    await bot_env.types(ANNA, "Bathroom for Bob", language="en")
    assert tg.sent("sendMessage", chat_id=ANNA)[replies:] == []
    assert "Need ✱: Bathroom for Bob" in bot_env.text(ANNA, b)


async def test_going_back_on_one_card_leaves_the_other_card_waiting_for_its_answer(bot_env: BotEnv) -> None:
    """« Back on Alice's card sent the need typed for Bob's to the number look-up: a stray contact
    entered by hand, counted as an unregistered inbound contact."""
    tg = bot_env.tg
    srv, (a, ta, ca), (b, tb, cb) = await two_open_cards(bot_env)
    await bot_env.press(ANNA, b, CardCB(act="lead", t=tb, c=cb, v="hot").pack())
    await bot_env.press(ANNA, a, CardCB(act="nal", t=ta, c=ca).pack())
    await bot_env.press(ANNA, a, CardCB(act="back", t=ta, c=ca).pack())
    replies = len(tg.sent("sendMessage", chat_id=ANNA))
    await bot_env.types(ANNA, "Bathroom for Bob, call 8 916 555-44-33", language="en")
    assert tg.sent("sendMessage", chat_id=ANNA)[replies:] == []
    assert "Need ✱: Bathroom for Bob, call 8 916 555-44-33" in bot_env.text(ANNA, b)
    assert srv.scalar("SELECT COUNT(*) FROM contacts") == 2
    assert srv.scalar("SELECT COUNT(*) FROM touches WHERE channel = 'manual'") == 0


async def test_staff_register_leads_as_their_own_and_cannot_give_them_to_others(bot_env: BotEnv) -> None:
    """docs/bot.md's roles: giving leads to others is a manager's; the lead card already refuses it,
    and the registration form now does too, forged button or not."""
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(srv, phone="+7 916 123-00-98", message="Windows for a school")
    touch = the_touch(srv)
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(BORIS, "89161230098", language="en")
    card_id = card.result["message_id"]
    await bot_env.press(BORIS, card_id, CardCB(act="lead", t=t, c=c, v="hot").pack())
    assert "Owner: Boris" in bot_env.text(BORIS, card_id)
    assert "👤 Owner" not in [b["text"] for b in tg.buttons(BORIS, card_id)]
    anna = srv.scalar("SELECT id FROM staff WHERE telegram_id = ?", [ANNA])
    for forged in (CardCB(act="own", t=t, c=c), CardCB(act="own", t=t, c=c, v=str(anna))):
        answer = await bot_env.press(BORIS, card_id, forged.pack(), forged=True)
        assert answer.get("text") == "Only a manager can give a lead to someone else."
    assert "Owner: Boris" in bot_env.text(BORIS, card_id)
    await bot_env.press(BORIS, card_id, CardCB(act="save", t=t, c=c).pack())
    boris = srv.scalar("SELECT id FROM staff WHERE telegram_id = ?", [BORIS])
    assert srv.scalar("SELECT owner_id FROM leads") == boris


async def test_a_half_filled_registration_survives_a_restart(bot_env: BotEnv) -> None:
    """The card's draft and the question the bot waits on are kept in the database: a new process on
    the same file takes the typed answer into the card and saves the lead as it was filled in."""
    tg = bot_env.tg
    fields = {"required": ["need", "company"], "desirable": []}
    srv = await bot_env.start(lead_fields=fields)
    await post_form(srv, phone="+7 916 123-00-99", message="Windows for a school")
    touch = the_touch(srv)
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(ANNA, "89161230099", language="en")
    card_id = card.result["message_id"]
    await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="warm").pack())
    boris = srv.scalar("SELECT id FROM staff WHERE telegram_id = 222")
    await bot_env.press(ANNA, card_id, CardCB(act="own", t=t, c=c).pack())
    await bot_env.press(ANNA, card_id, CardCB(act="own", t=t, c=c, v=str(boris)).pack())
    assert "Owner: Boris" in bot_env.text(ANNA, card_id)
    await srv.stop()

    srv = await bot_env.start(lead_fields=fields)  # a new process on the same database
    edits = len(tg.sent("editMessageText", chat_id=ANNA))
    await bot_env.types(ANNA, "School No. 5", language="en")
    await tg.wait_for("editMessageText", chat_id=ANNA, count=edits + 1)
    assert "School No. 5" in bot_env.text(ANNA, card_id)
    answer = await bot_env.press(ANNA, card_id, CardCB(act="save", t=t, c=c).pack())
    assert answer.get("text") == "Saved."
    [lead] = srv.rows("SELECT contact_id, temperature, owner_id, need, fields FROM leads")
    assert lead == {
        "contact_id": c,
        "temperature": "warm",
        "owner_id": boris,
        "need": "Windows for a school",
        "fields": '{"company": "School No. 5"}',
    }
    assert srv.scalar("SELECT COUNT(*) FROM bot_states") == 0  # a saved card leaves no draft behind


async def test_a_draft_nobody_touched_for_journal_days_goes_in_the_retention_pass(bot_env: BotEnv) -> None:
    """A kept draft is a copy of someone's words: the daily pass drops it once it is as old as the
    raw requests it drops, and keeps a fresh one."""
    now = [datetime.now(UTC)]
    srv = await bot_env.start(clock=lambda: now[0])
    await post_form(srv, phone="+7 916 123-00-99", name="Irina Sergeevna")
    touch = the_touch(srv)
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(ANNA, "89161230099", language="en")
    await bot_env.press(ANNA, card.result["message_id"], CardCB(act="lead", t=t, c=c, v="warm").pack())
    assert srv.scalar("SELECT COUNT(*) FROM bot_states WHERE contact_id = ?", [c]) == 1
    store = srv.server.app[keys.STORE]

    now[0] += timedelta(days=srv.config.retention.journal_days - 1)
    assert (await run_pass(store, srv.config.retention, now[0])).drafts == 0
    now[0] += timedelta(days=2)
    assert (await run_pass(store, srv.config.retention, now[0])).drafts == 2  # the draft and its question
    assert srv.scalar("SELECT COUNT(*) FROM bot_states") == 0
    assert srv.scalar("SELECT COUNT(*) FROM registrations") == 0  # the touch is still waiting


async def test_campaigns_go_by_their_titles_on_the_card_and_in_the_picker_and_are_saved_by_key(
    bot_env: BotEnv,
) -> None:
    tg = bot_env.tg
    titled = [
        {**BASE["campaigns"][0], "title": "Brand search, Moscow"},
        {**BASE["campaigns"][1], "title": "VK ads"},
    ]
    srv = await bot_env.start(campaigns=titled)
    await post_form(srv, phone="+7 916 123-00-77", message="A kitchen", utm_campaign="brand_msk")
    touch = the_touch(srv)
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(ANNA, "89161230077", language="en")
    card_id = card.result["message_id"]
    assert "Campaign: Brand search, Moscow" in card.result["text"]

    await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="warm").pack())
    await bot_env.press(ANNA, card_id, CardCB(act="camp", t=t, c=c).pack())
    picker = [b["text"] for b in tg.buttons(ANNA, card_id)]
    assert "• Brand search, Moscow" in picker and "VK ads" in picker and "vk_ads" not in picker
    await bot_env.taps(ANNA, card_id, "VK ads")
    assert "Campaign: VK ads" in bot_env.text(ANNA, card_id)
    await bot_env.press(ANNA, card_id, CardCB(act="save", t=t, c=c).pack())

    assert srv.scalar("SELECT campaign FROM leads") == "vk_ads"
    assert srv.scalar("SELECT campaign FROM registrations") == "vk_ads"
    saved = bot_env.text(ANNA, card_id)
    assert "Campaign: VK ads" in saved and "vk_ads" not in saved
    found = await bot_env.says(ANNA, "/find +79161230077", language="en")
    assert "Brand search, Moscow" in found.params["text"] and "brand_msk" not in found.params["text"]


async def test_a_campaign_taken_out_of_the_config_is_no_longer_offered(bot_env: BotEnv) -> None:
    """After vk_ads was taken out of ``[[campaigns]]`` and the bot restarted, the picker still offered
    it, so new leads could go to a campaign that no longer exists."""
    tg = bot_env.tg
    srv = await bot_env.start()
    vk = srv.scalar("SELECT id FROM campaigns WHERE name = 'vk_ads'")
    await srv.stop()
    srv = await bot_env.start(campaigns=[BASE["campaigns"][0]])
    await post_form(srv, phone="+7 916 123-00-99", message="Windows", utm_campaign="brand_msk")
    touch = the_touch(srv)
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(ANNA, "89161230099", language="en")
    card_id = card.result["message_id"]
    await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="hot").pack())
    await bot_env.press(ANNA, card_id, CardCB(act="camp", t=t, c=c).pack())
    assert [b["text"] for b in tg.buttons(ANNA, card_id)] == ["• brand_msk", "« Back"]
    # A picker drawn before the restart still carries vk_ads's button: it changes nothing.
    await bot_env.press(ANNA, card_id, CardCB(act="camp", t=t, c=c, v=str(vk)).pack(), forged=True)
    assert "Campaign: brand_msk" in bot_env.text(ANNA, card_id).split("Lead:", 1)[1]
    await bot_env.press(ANNA, card_id, CardCB(act="save", t=t, c=c).pack())
    assert srv.scalar("SELECT campaign FROM leads") == "brand_msk"


async def test_find_reads_a_number_as_the_sources_people_write_it(bot_env: BotEnv) -> None:
    """A BY source's form stored "8 029 123-45-67" as +375291234567, but /find read every query in
    the config's RU: "8 029 123-45-67" and "80291234567" answered "Nothing found"."""
    by_form = {"name": "by-form", "provider": "generic_form", "token": "by-token", "region": "BY"}
    srv = await bot_env.start(bot_env.config(sources=[*BASE["sources"], by_form]))
    form = {"name": "Алесь", "phone": "8 029 123-45-67"}
    assert (await srv.session.post(f"{srv.url}/hooks/by-form?token=by-token", data=form)).status == 200
    for query in ("/find 8 029 123-45-67", "/find 80291234567", "/find +375 29 123-45-67"):
        found = await bot_env.says(ANNA, query, language="en")
        assert "Алесь" in found.params["text"] and "Nothing found" not in found.params["text"]


@pytest.mark.parametrize(
    "failure",
    [{"status": 429, "retry_after": 1}, {"status": 0}, {"status": 502}],
    ids=["flood-wait", "dropped-connection", "proxy-error-page"],
)
async def test_a_save_whose_redraw_telegram_does_not_take_says_saved_and_the_card_follows(
    bot_env: BotEnv, failure: dict[str, Any]
) -> None:
    """Telegram busy (a team group's 20 a minute count edits too) or out of reach just as the card is
    redrawn: the lead was saved, so the person is told so, not "nothing was saved"."""
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(srv, name="Ivan Petrov", phone="+7 916 123-45-67", message="A kitchen, please")
    touch = the_touch(srv)
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(ANNA, "+79161234567", language="en")
    card_id = card.result["message_id"]
    await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="hot").pack())

    tg.fail_next("editMessageText", **failure)
    answer = await bot_env.press(ANNA, card_id, CardCB(act="save", t=t, c=c).pack())
    assert answer.get("text") == "Saved."
    assert srv.rows("SELECT temperature, stage FROM leads") == [{"temperature": "hot", "stage": "new"}]
    # the redraw Telegram did not take goes again through the outbox: the card stops showing the form
    await bot_env.delivered(ANNA)
    shown = bot_env.text(ANNA, card_id)
    assert "Registered by Anna" in shown and "Lead #" in shown
    assert all("Save" not in b["text"] for b in tg.buttons(ANNA, card_id))
