"""WhatsApp Cloud API through a running server: the handshake, signatures, statuses, conversations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.capture.chat_payloads import (
    WA_TEXT,
    chat_config,
    chat_touches,
    day_report,
    kinds,
    post_wa,
    wa_body,
    wa_kind_body,
)
from tests.capture.form_checks import journal
from tests.capture.test_mango import post_mango, signed_mango, summary
from tests.cli import run_cli
from tests.conftest import BASE
from tests.numbers.month import month_config
from tests.samples import flip_byte, sample

VERIFY = sample("whatsapp_verify_get.txt")
DUPLICATE = sample("whatsapp_messages_text_duplicate.json")
STATUSES = sample("whatsapp_statuses_delivered.json")
RAW_UTF8 = sample("whatsapp_messages_text_raw_utf8_variant.json")
USERNAME_ONLY = sample("whatsapp_messages_username_only.json")
#: Three days before the server's clock: times a test gives messages are in the past, as real ones are.
BASE_TIME = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)


async def start(start_server, tmp_path, **extra):
    return await start_server(chat_config(tmp_path, **extra))


async def post_sample(srv, s, body=None, headers=None):
    return await srv.session.post(
        f"{srv.url}{s.path}",
        data=s.body if body is None else body,
        headers=s.headers if headers is None else headers,
    )


async def test_the_verification_handshake_echoes_the_challenge_and_a_wrong_token_gets_403(
    start_server, tmp_path
):
    srv = await start(start_server, tmp_path)
    resp = await srv.session.get(f"{srv.url}{VERIFY.path}")
    assert resp.status == 200
    assert await resp.text() == VERIFY.expected["response_body"]
    wrong = VERIFY.path.replace("test_wa_verify_token_0000", "guessed")
    resp = await srv.session.get(f"{srv.url}{wrong}")
    assert resp.status == 403
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert [(r["status"], r["http_status"], r["note"]) for r in journal(srv)] == [
        ("processed", 200, "verification handshake"),
        ("rejected", 403, None),
    ]


async def test_a_signed_message_is_a_chat_touch_and_a_forged_one_is_refused(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    forged = await post_sample(srv, WA_TEXT, body=flip_byte(WA_TEXT.body))
    assert forged.status == 401
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    resp = await post_sample(srv, WA_TEXT)
    assert resp.status == 200
    [touch] = chat_touches(srv, "whatsapp")
    expected = WA_TEXT.expected
    assert touch["channel"] == "chat"
    assert touch["external_id"] == f"whatsapp:{expected['external_id']}"
    assert touch["name"] == expected["name"]
    assert touch["message"] == expected["message"]
    assert json.loads(touch["payload"])["conversation_url"] == "https://wa.me/74950000032"
    assert kinds(srv, touch["contact_id"]) == {
        "phone": "+74950000032",
        "whatsapp_id": "RU.1000000000000000001",
    }


async def test_a_body_signed_in_its_escaped_form_is_accepted(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert not RAW_UTF8.body.isascii()
    resp = await post_sample(srv, RAW_UTF8)
    assert resp.status == 200
    assert len(chat_touches(srv, "whatsapp")) == 1


async def test_a_retry_of_the_same_message_is_a_no_op(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post_sample(srv, WA_TEXT)).status == 200
    assert (await post_sample(srv, DUPLICATE)).status == 200
    assert len(chat_touches(srv, "whatsapp")) == 1
    assert [r["touches_created"] for r in journal(srv)] == [1, 0]


async def test_statuses_are_answered_journalled_and_make_no_touch(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await post_sample(srv, STATUSES)
    assert resp.status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert srv.scalar("SELECT COUNT(*) FROM contacts") == 0
    assert journal(srv) == [
        {
            "status": "processed",
            "http_status": 200,
            "reason": None,
            "note": "statuses: delivered 1",
            "touches_created": 0,
        }
    ]


async def test_a_username_only_sender_is_known_by_their_business_scoped_id(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post_sample(srv, USERNAME_ONLY)).status == 200
    [touch] = chat_touches(srv, "whatsapp")
    assert kinds(srv, touch["contact_id"]) == {
        "whatsapp_id": USERNAME_ONLY.expected["wa_bsuid"],
        "whatsapp_username": USERNAME_ONLY.expected["whatsapp_username"],
    }


async def test_a_username_only_sender_is_found_by_their_username(start_server, tmp_path):
    config = month_config(
        tmp_path, sources=[*BASE["sources"], {"name": "whatsapp", "provider": "whatsapp", **WA_TEXT.secrets}]
    )
    srv = await start_server(config)
    assert (await post_sample(srv, USERNAME_ONLY)).status == 200
    found = await run_cli("contacts", "@Test_Sveta", "--config", str(tmp_path / "config.toml"))
    assert found.code == 0, found.output
    assert "Светлана" in found.output
    # Kept to find her by, never to match: said so, not called invalid.
    assert (
        "whatsapp_username test_sveta  [a username, kept to find them by, not used to match]" in found.output
    )


async def test_two_business_scoped_ids_that_held_one_username_are_two_contacts(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post_sample(srv, USERNAME_ONLY)).status == 200
    # Someone else, with their own business-scoped id, took the username @test_sveta gave up.
    other = USERNAME_ONLY.body.replace(b"RU.1000000000000000004", b"RU.1000000000000000005")
    other = other.replace(b"wamid.GAsw", b"wamid.GBsw")
    assert (await post_wa(srv, other)).status == 200
    first, second = chat_touches(srv, "whatsapp")
    assert first["contact_id"] != second["contact_id"]
    assert srv.scalar("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL") == 2
    assert kinds(srv, second["contact_id"]) == {
        "whatsapp_id": "RU.1000000000000000005",
        "whatsapp_username": "test_sveta",
    }


async def test_three_messages_are_one_touch_and_one_after_the_gap_is_a_new_one(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    lines = ["Здравствуйте", "Хочу записаться", "на субботу"]
    for n, text in enumerate(lines):
        resp = await post_wa(srv, wa_body(f"wamid.A{n}", BASE_TIME + timedelta(minutes=n * 30), text))
        assert resp.status == 200
    [touch] = chat_touches(srv, "whatsapp")
    assert touch["message"] == "\n".join(lines)
    assert [r["touches_created"] for r in journal(srv)] == [1, 0, 0]
    # a retry of a later message adds nothing
    assert (
        await post_wa(srv, wa_body("wamid.A2", BASE_TIME + timedelta(minutes=60), "на субботу"))
    ).status == 200
    assert chat_touches(srv, "whatsapp")[0]["message"] == "\n".join(lines)
    # 25 hours after the last message: a new conversation, on the same contact
    later = BASE_TIME + timedelta(minutes=60, hours=25)
    assert (await post_wa(srv, wa_body("wamid.B0", later, "Снова я"))).status == 200
    first, second = chat_touches(srv, "whatsapp")
    assert second["message"] == "Снова я"
    assert second["contact_id"] == first["contact_id"]


async def test_a_message_delivered_late_makes_the_touch_it_would_have_made_in_order(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    wednesday = BASE_TIME + timedelta(hours=48)
    assert (await post_wa(srv, wa_body("wamid.W", wednesday, "Вы тут?"))).status == 200
    # Monday's message, refused then, comes in only now that Meta retries it: 48 h from Wednesday's
    assert (await post_wa(srv, wa_body("wamid.M", BASE_TIME, "Здравствуйте, хочу записаться"))).status == 200
    touches = sorted(chat_touches(srv, "whatsapp"), key=lambda t: t["occurred_at"])
    assert [(datetime.fromisoformat(t["occurred_at"]), t["message"]) for t in touches] == [
        (BASE_TIME, "Здравствуйте, хочу записаться"),
        (wednesday, "Вы тут?"),
    ]
    monday = await day_report(srv, BASE_TIME.astimezone(srv.config.tz).date())
    assert (monday["inbound_touches"], monday["inbound_contacts"]) == (1, 1)
    # one written an hour before Wednesday's and delivered late starts Wednesday's conversation
    assert (
        await post_wa(srv, wa_body("wamid.V", wednesday - timedelta(hours=1), "Добрый день"))
    ).status == 200
    later = sorted(chat_touches(srv, "whatsapp"), key=lambda t: t["occurred_at"])[1]
    assert datetime.fromisoformat(later["occurred_at"]) == wednesday - timedelta(hours=1)
    assert later["message"] == "Добрый день\nВы тут?"
    assert [r["touches_created"] for r in journal(srv)] == [1, 1, 0]


async def test_reactions_and_a_changed_number_notice_make_no_touch_and_no_inbound_contact(
    start_server, tmp_path
):
    srv = await start(start_server, tmp_path)
    assert (await post_wa(srv, wa_body("wamid.R0", BASE_TIME, "Хочу записаться"))).status == 200
    thumbs_up = {"message_id": "wamid.OURS", "emoji": "\U0001f44d"}
    assert (
        await post_wa(srv, wa_kind_body("wamid.R1", BASE_TIME + timedelta(hours=30), "reaction", thumbs_up))
    ).status == 200
    taken_off = {"message_id": "wamid.OURS"}
    assert (
        await post_wa(srv, wa_kind_body("wamid.R2", BASE_TIME + timedelta(hours=60), "reaction", taken_off))
    ).status == 200
    changed = {
        "body": "Мария changed from 74950000032 to 79169999999",
        "wa_id": "79169999999",
        "type": "user_changed_number",
    }
    assert (
        await post_wa(srv, wa_kind_body("wamid.S1", BASE_TIME + timedelta(hours=1), "system", changed))
    ).status == 200
    [touch] = chat_touches(srv, "whatsapp")
    assert touch["message"] == "Хочу записаться"
    assert [(r["note"], r["touches_created"]) for r in journal(srv)] == [
        (None, 1),
        ("reaction: not a touch", 0),
        ("reaction: not a touch", 0),
        ("system message: not a touch", 0),
    ]
    for hours in (30, 60):
        day = await day_report(srv, (BASE_TIME + timedelta(hours=hours)).astimezone(srv.config.tz).date())
        assert (day["inbound_touches"], day["inbound_contacts"]) == (0, 0)


async def test_a_tapped_button_shows_its_words_and_a_shared_contact_its_number(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    messages = [
        ("button", {"payload": "YES", "text": "Да, перезвоните"}),
        (
            "interactive",
            {"type": "button_reply", "button_reply": {"id": "b1", "title": "Записаться на пятницу"}},
        ),
        (
            "interactive",
            {"type": "list_reply", "list_reply": {"id": "l2", "title": "Маникюр", "description": "60 мин"}},
        ),
        (
            "contacts",
            [
                {
                    "name": {"formatted_name": "Ivan"},
                    "phones": [{"phone": "+7 916 123-45-67", "wa_id": "79161234567"}],
                }
            ],
        ),
    ]
    for n, (kind, content) in enumerate(messages):
        body = wa_kind_body(f"wamid.K{n}", BASE_TIME + timedelta(minutes=n), kind, content)
        assert (await post_wa(srv, body)).status == 200
    [touch] = chat_touches(srv, "whatsapp")
    assert touch["message"].split("\n") == [
        "Да, перезвоните",
        "Записаться на пятницу",
        "Маникюр",
        "[contact: Ivan +7 916 123-45-67]",
    ]
    assert kinds(srv, touch["contact_id"])["phone"] == "+74950000032"
    assert srv.scalar("SELECT COUNT(*) FROM identifiers WHERE kind = 'phone'") == 1


async def test_the_gap_is_the_sources_conversation_gap_hours(start_server, tmp_path):
    srv = await start(start_server, tmp_path, conversation_gap_hours=1)
    assert (await post_wa(srv, wa_body("wamid.C0", BASE_TIME, "раз"))).status == 200
    assert (await post_wa(srv, wa_body("wamid.C1", BASE_TIME + timedelta(minutes=90), "два"))).status == 200
    assert [t["message"] for t in chat_touches(srv, "whatsapp")] == ["раз", "два"]


async def test_the_senders_number_joins_the_contact_an_earlier_call_made(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    call = summary("chat-call-1", "74950000032", start=int(BASE_TIME.timestamp()), answered=False)
    assert (await post_mango(srv, "/events/summary", signed_mango(call))).status == 200
    [called] = srv.rows("SELECT contact_id FROM touches WHERE channel = 'call'")
    assert (await post_sample(srv, WA_TEXT)).status == 200
    [touch] = chat_touches(srv, "whatsapp")
    assert touch["contact_id"] == called["contact_id"]
    assert srv.scalar("SELECT COUNT(*) FROM contacts") == 1
