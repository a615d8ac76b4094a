"""Bad input gets a reply that says what happened and what to do; nothing is written half-way."""

from __future__ import annotations

import pytest

from bot.callbacks import CardCB, MergeCB
from tests.bot.conftest import ANNA, BORIS, BotEnv
from tests.bot.test_registration import post_form
from tests.conftest import BASE

CRM_TOKEN = "crm-token-0123456789"


async def test_a_wrong_phone_an_unknown_command_and_plain_chatter(bot_env: BotEnv) -> None:
    srv = await bot_env.start()
    wrong = await bot_env.says(ANNA, "8 916 12", language="en")
    assert "“8 916 12” is not a phone number I can use" in wrong.params["text"]
    unknown = await bot_env.says(ANNA, "/frobnicate now", language="en")
    assert "I do not know the command /frobnicate" in unknown.params["text"]
    chatter = await bot_env.says(ANNA, "good morning", language="en")
    assert "I did not understand that" in chatter.params["text"]
    nothing = await bot_env.says(ANNA, "/find Nobody", language="en")
    assert "Nothing found for “Nobody”" in nothing.params["text"]
    bare = await bot_env.says(ANNA, "/find", language="en")
    assert "Type /find and a phone number" in bare.params["text"]
    assert (
        srv.scalar("SELECT COUNT(*) FROM touches") == 0 and srv.scalar("SELECT COUNT(*) FROM contacts") == 0
    )


#: Telegram's longest message, of the character that grows most when escaped for HTML.
FULL = 4096
FILL = "<"


def full(prefix: str, suffix: str = "") -> str:
    """A message of Telegram's 4,096 characters: ``prefix``, then ``FILL`` up to ``suffix``."""
    return prefix + FILL * (FULL - len(prefix) - len(suffix)) + suffix


#: (what is typed, the words of the answer in en and in ru, the quote it must carry)
TOO_LONG = [
    (full("/find "), "Nothing found for “", "По запросу «", "&lt;" * 99 + "…"),
    (full("/report "), "I cannot read the period “", "Не понимаю период «", "&lt;" * 99 + "…"),
    (full("/plan "), "I do not know “", "Не знаю, что такое «", "&lt;" * 99 + "…"),
    (full("/cost ", " 2026-11 100"), "There is no campaign “", "Кампании «", "&lt;" * 99 + "…"),
    (full("/cost brand_msk 2026-11 100 "), "The item “", "Статья расхода «", "&lt;" * 99 + "…"),
    (full("/forget "), "Nobody found for “", "Никого не найдено по «", "&lt;" * 99 + "…"),
    (full("/"), "I do not know the command /", "Я не знаю команду /", "&lt;" * 98 + "…"),
    ("7" * FULL, "is not a phone number I can use", "не номер телефона", "7" * 99 + "…"),
]


@pytest.mark.parametrize("language", ["en", "ru"])
async def test_a_message_of_4096_characters_is_quoted_cut_and_answered(
    bot_env: BotEnv, language: str
) -> None:
    """Each answer quotes what was typed, cut to 100 characters, so it reaches Telegram and says what
    to fix; Russian words are longer, and a quote of the whole message would not fit in either."""
    srv = await bot_env.start()
    await post_form(srv, name="Petr", phone="+7 916 555-00-01")
    [contact] = srv.rows("SELECT id FROM contacts")
    for typed, en, ru, quote in TOO_LONG:
        answer = await bot_env.says(ANNA, typed, language=language)
        assert (en if language == "en" else ru) in answer.params["text"], typed[:20]
        assert quote in answer.params["text"]
    found = await bot_env.says(ANNA, "/find +79165550001", language=language)
    await bot_env.press(ANNA, found.result["message_id"], MergeCB(act="ask", a=contact["id"]).pack())
    answer = await bot_env.says(ANNA, full(""), language=language)
    words = "No contact found for “" if language == "en" else "Контакт «"
    assert f"{words}{'&lt;' * 99}…" in answer.params["text"]
    await bot_env.delivered(ANNA)
    assert srv.scalar("SELECT COUNT(*) FROM outbox WHERE status != 'sent'") == 0


@pytest.mark.parametrize("language", ["en", "ru"])
async def test_find_lists_ten_contacts_with_the_longest_names_a_form_keeps(
    bot_env: BotEnv, language: str
) -> None:
    """A form keeps a name of up to 1,024 characters: the list of ten matches cuts each name, so it
    reaches Telegram with its ten buttons."""
    srv = await bot_env.start()
    for n in range(10):
        await post_form(srv, name=f"Ivanov{n} " + "Ж" * 1014, phone=f"+7 916 123-45-{n:02d}")
    found = await bot_env.says(ANNA, "/find Ivanov", language=language)
    heading = (
        "Found 10 contacts for “Ivanov”:"
        if language == "en"
        else "По запросу «Ivanov» найдено контактов: 10."
    )
    lines = found.params["text"].split("\n")
    assert lines[0] == heading and len(lines) == 11
    for n, line in enumerate(lines[1:]):
        assert line.startswith(f"{n + 1}. Ivanov") and "Ж" * 91 + "…" in line and len(line) < 120
    assert [b["text"] for b in bot_env.tg.buttons(ANNA, found.result["message_id"])] == [
        str(n) for n in range(1, 11)
    ]


async def test_an_old_card_for_a_contact_someone_else_registered(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(srv, phone="+7 916 222-33-44", message="Doors")
    [touch] = srv.rows("SELECT id, contact_id FROM touches")
    t, c = touch["id"], touch["contact_id"]
    anna_card = await bot_env.says(ANNA, "89162223344", language="en")
    boris_card = await bot_env.says(BORIS, "89162223344", language="en")

    await bot_env.press(BORIS, boris_card.result["message_id"], CardCB(act="nal", t=t, c=c).pack())
    await bot_env.press(
        BORIS, boris_card.result["message_id"], CardCB(act="why", t=t, c=c, v="existing_client").pack()
    )
    answer = await bot_env.press(
        ANNA, anna_card.result["message_id"], CardCB(act="lead", t=t, c=c, v="hot").pack()
    )
    assert (
        answer["show_alert"] and "Already registered by Boris: not a lead (existing client)" in answer["text"]
    )
    assert "Registered by Boris" in bot_env.text(ANNA, anna_card.result["message_id"])
    assert tg.buttons(ANNA, anna_card.result["message_id"]) == []
    assert srv.scalar("SELECT COUNT(*) FROM registrations") == 1
    assert srv.scalar("SELECT COUNT(*) FROM leads") == 0


async def test_an_old_card_for_a_contact_a_crm_or_a_source_rule_registered(bot_env: BotEnv) -> None:
    """Nobody on staff registered them, so the card named nobody: "Already registered by —"."""
    quiz = {
        "name": "quiz",
        "provider": "generic_form",
        "token": "quiz-token",
        "register": "lead",
        "temperature": "warm",
    }
    srv = await bot_env.start(
        api_clients=[{"name": "crm", "token": CRM_TOKEN}],
        sources=[*BASE["sources"], quiz],
    )
    await post_form(srv, phone="+7 916 222-33-44", message="Doors")
    [touch] = srv.rows("SELECT id, contact_id FROM touches")
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(ANNA, "89162223344", language="en")
    await bot_env.press(ANNA, card.result["message_id"], CardCB(act="lead", t=t, c=c, v="hot").pack())
    async with srv.session.post(
        f"{srv.url}/api/registrations",
        json={"phone": "8 916 222-33-44", "disposition": "lead", "temperature": "warm", "need": "Doors"},
        headers={"Authorization": f"Bearer {CRM_TOKEN}"},
    ) as resp:
        assert resp.status == 201
    answer = await bot_env.press(ANNA, card.result["message_id"], CardCB(act="save", t=t, c=c).pack())
    assert answer["show_alert"]
    assert answer["text"] == "Already registered through the API: lead (warm). Nothing to do here."
    assert "✅ Registered through the API, " in bot_env.text(ANNA, card.result["message_id"])
    assert bot_env.tg.buttons(ANNA, card.result["message_id"]) == []
    assert srv.scalar("SELECT COUNT(*) FROM registrations") == 1

    resp = await srv.session.post(
        f"{srv.url}/hooks/quiz?token=quiz-token", data={"phone": "+7 916 555-66-77"}
    )
    assert resp.status == 200
    shown = await bot_env.says(BORIS, "89165556677", language="ru")
    assert "✅ Зарегистрирован автоматически по правилу источника, " in shown.params["text"]


async def test_an_old_card_for_a_contact_that_was_merged(bot_env: BotEnv) -> None:
    srv = await bot_env.start()
    await post_form(srv, phone="+7 916 333-44-55")
    await post_form(srv, email="olga@example.com", message="Curtains")
    phone_touch, mail_touch = srv.rows("SELECT id, contact_id FROM touches ORDER BY id")
    card = await bot_env.says(ANNA, "olga@example.com", language="en")
    card_id = card.result["message_id"]
    # a later form with both the phone and the address shows the two contacts are one person
    await post_form(srv, phone="+7 916 333-44-55", email="olga@example.com")
    survivor = phone_touch["contact_id"]
    assert srv.scalar("SELECT merged_into FROM contacts WHERE id = ?", [mail_touch["contact_id"]]) == survivor

    t, c = mail_touch["id"], mail_touch["contact_id"]
    answer = await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="cold").pack())
    assert answer["show_alert"] and f"merged with contact #{survivor}" in answer["text"]
    assert srv.scalar("SELECT COUNT(*) FROM registrations") == 0
    # the card now carries the surviving contact: the same tap registers it
    await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=survivor, v="cold").pack())
    assert "Need ✱: Curtains" in bot_env.text(ANNA, card_id)  # from the form's message
    await bot_env.press(ANNA, card_id, CardCB(act="save", t=t, c=survivor).pack())
    [registration] = srv.rows("SELECT contact_id FROM registrations")
    assert registration["contact_id"] == survivor


async def test_an_answer_typed_into_a_card_someone_else_registered_meanwhile(bot_env: BotEnv) -> None:
    """The card, already showing "Registered by Boris", turned back into the form with all its buttons
    when Anna typed the need it had asked for, and Boris's line was gone."""
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(srv, phone="+7 916 222-33-45")  # no message: the need is asked for
    [touch] = srv.rows("SELECT id, contact_id FROM touches")
    t, c = touch["id"], touch["contact_id"]
    anna_card = (await bot_env.says(ANNA, "89162223345", language="en")).result["message_id"]
    boris_card = (await bot_env.says(BORIS, "89162223345", language="en")).result["message_id"]
    await bot_env.press(ANNA, anna_card, CardCB(act="lead", t=t, c=c, v="hot").pack())
    assert "✏️ Type the need (required)." in bot_env.text(ANNA, anna_card)
    await bot_env.press(BORIS, boris_card, CardCB(act="nal", t=t, c=c).pack())
    await bot_env.press(BORIS, boris_card, CardCB(act="why", t=t, c=c, v="other").pack())

    replies = len(tg.sent("sendMessage", chat_id=ANNA))
    await bot_env.types(ANNA, "Kitchen", language="en")
    assert [m["text"] for m in tg.sent("sendMessage", chat_id=ANNA)[replies:]] == [
        "Already registered by Boris: not a lead (other). Nothing to do here."
    ]
    shown = bot_env.text(ANNA, anna_card)
    assert "Registered by Boris" in shown and "Kitchen" not in shown and "Save" not in shown
    assert tg.buttons(ANNA, anna_card) == []
    assert srv.rows("SELECT disposition, reason FROM registrations") == [
        {"disposition": "not_a_lead", "reason": "other"}
    ]
    assert srv.scalar("SELECT COUNT(*) FROM leads") == 0


async def test_an_answer_typed_into_a_card_whose_contact_was_merged_meanwhile(bot_env: BotEnv) -> None:
    srv = await bot_env.start()
    await post_form(srv, phone="+7 916 333-44-56")
    await post_form(srv, email="olga@example.com")
    phone_touch, mail_touch = srv.rows("SELECT id, contact_id FROM touches ORDER BY id")
    t, c = mail_touch["id"], mail_touch["contact_id"]
    card_id = (await bot_env.says(ANNA, "olga@example.com", language="en")).result["message_id"]
    await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="cold").pack())
    await post_form(srv, phone="+7 916 333-44-56", email="olga@example.com")  # the two are one person
    survivor = phone_touch["contact_id"]

    replies = len(bot_env.tg.sent("sendMessage", chat_id=ANNA))
    await bot_env.types(ANNA, "Curtains", language="en")
    [reply] = bot_env.tg.sent("sendMessage", chat_id=ANNA)[replies:]
    assert f"merged with contact #{survivor}" in reply["text"]
    assert "Curtains" not in bot_env.text(ANNA, card_id)
    # the card now carries the surviving contact: its buttons register it
    lead = CardCB(act="lead", t=t, c=survivor, v="cold").pack()
    assert lead in [b["callback_data"] for b in bot_env.tg.buttons(ANNA, card_id)]
    await bot_env.press(ANNA, card_id, lead)
    assert "✏️ Type the need (required)." in bot_env.text(ANNA, card_id)
    assert srv.scalar("SELECT COUNT(*) FROM registrations") == 0


async def test_typed_answers_that_do_not_fit_are_asked_again(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(srv, phone="+7 916 444-55-66", message="Tiles")
    [touch] = srv.rows("SELECT id, contact_id FROM touches")
    t, c = touch["id"], touch["contact_id"]
    card = await bot_env.says(ANNA, "+79164445566", language="en")
    card_id = card.result["message_id"]
    await bot_env.press(ANNA, card_id, CardCB(act="lead", t=t, c=c, v="warm").pack())
    await bot_env.press(ANNA, card_id, CardCB(act="edit", t=t, c=c, v="amount").pack())
    wrong = await bot_env.says(ANNA, "a lot", language="en")
    assert "“a lot” is not an amount" in wrong.params["text"]
    edits = len(tg.sent("editMessageText", chat_id=ANNA))
    await bot_env.types(ANNA, "1,5k", language="en")
    await tg.wait_for("editMessageText", chat_id=ANNA, count=edits + 1)
    assert "Deal amount: RUB\u00a01,500" in bot_env.text(ANNA, card_id)
    await bot_env.press(ANNA, card_id, CardCB(act="save", t=t, c=c).pack())
    assert srv.scalar("SELECT amount FROM leads") == 1500


async def test_merge_and_undo_by_a_manager(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(srv, name="Petr", phone="+7 916 555-00-01")
    await post_form(srv, name="Petr S.", email="petr@example.com")
    first, second = srv.rows("SELECT id FROM contacts ORDER BY id")
    found = await bot_env.says(ANNA, "/find +79165550001", language="en")
    await bot_env.press(ANNA, found.result["message_id"], MergeCB(act="ask", a=first["id"]).pack())
    question = await bot_env.says(ANNA, "petr@example.com", language="en")
    assert "Merge these two contacts?" in question.params["text"]
    await bot_env.press(
        ANNA, question.result["message_id"], MergeCB(act="do", a=first["id"], b=second["id"]).pack()
    )
    assert srv.scalar("SELECT merged_into FROM contacts WHERE id = ?", [second["id"]]) == first["id"]
    [merge] = srv.rows("SELECT id, reason, staff_id FROM merges")
    anna = srv.scalar("SELECT id FROM staff WHERE telegram_id = ?", [ANNA])
    assert (merge["reason"], merge["staff_id"]) == ("merged by staff", anna)
    assert srv.scalar("SELECT COUNT(DISTINCT contact_id) FROM touches") == 1

    await bot_env.press(ANNA, question.result["message_id"], MergeCB(act="undo", a=merge["id"]).pack())
    assert srv.scalar("SELECT merged_into FROM contacts WHERE id = ?", [second["id"]]) is None
    assert srv.scalar("SELECT undone_by FROM merges") == anna
    assert srv.scalar("SELECT COUNT(DISTINCT contact_id) FROM touches") == 2
    assert "separate again" in bot_env.text(ANNA, question.result["message_id"])

    # Boris (staff) has no merge button on the contact card
    found = await bot_env.says(BORIS, "/find +79165550001", language="en")
    assert all("Merge" not in b["text"] for b in tg.buttons(BORIS, found.result["message_id"]))
    assert any(
        b["callback_data"].startswith("o:touch:") for b in tg.buttons(BORIS, found.result["message_id"])
    )


async def test_an_unexpected_failure_is_answered_and_the_bot_goes_on(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(srv, phone="+7 916 555-66-77", message="Roof")
    [touch] = srv.rows("SELECT id, contact_id FROM touches")
    card = await bot_env.says(ANNA, "+79165556677", language="en")
    t, c = touch["id"], touch["contact_id"]
    await bot_env.press(ANNA, card.result["message_id"], CardCB(act="lead", t=t, c=c, v="hot").pack())
    # a button no version of the bot ever drew (garbage in the value): the handler fails inside
    update = tg.user_presses_button(
        ANNA, card.result["message_id"], f"t:camp:{t}:{c}:not-a-number", strict=False
    )
    await tg.wait_until_confirmed(update)
    [answer] = [a for a in tg.callback_answers.values() if "went wrong" in a.get("text", "")]
    assert answer["text"] == "Something went wrong on our side, and nothing was saved. Please try again."
    assert srv.scalar("SELECT COUNT(*) FROM registrations") == 0
    alive = await bot_env.says(ANNA, "/help", language="en")
    assert alive.params["text"].startswith("How to use the bot")


async def test_a_merge_whose_redraw_telegram_does_not_take_says_saved_and_offers_the_undo(
    bot_env: BotEnv,
) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(srv, name="Petr", phone="+7 916 555-00-01")
    await post_form(srv, name="Petr S.", email="petr@example.com")
    first, second = srv.rows("SELECT id FROM contacts ORDER BY id")
    found = await bot_env.says(ANNA, "/find +79165550001", language="en")
    await bot_env.press(ANNA, found.result["message_id"], MergeCB(act="ask", a=first["id"]).pack())
    question = await bot_env.says(ANNA, "petr@example.com", language="en")
    question_id = question.result["message_id"]

    tg.fail_next("editMessageText", status=0)  # the connection drops under the redraw
    answer = await bot_env.press(ANNA, question_id, MergeCB(act="do", a=first["id"], b=second["id"]).pack())
    assert answer.get("text") == "Saved."
    assert srv.scalar("SELECT merged_into FROM contacts WHERE id = ?", [second["id"]]) == first["id"]
    await bot_env.delivered(ANNA)
    assert bot_env.text(ANNA, question_id).startswith("🔗 Merged")
    assert [b["text"] for b in tg.buttons(ANNA, question_id)] == [f"↩️ Undo merge with #{second['id']}"]
