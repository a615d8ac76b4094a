"""VK Callback API through a running server: confirmation, secret, messages, lead forms, retries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.capture.chat_payloads import (
    VK_MESSAGE,
    chat_config,
    chat_touches,
    day_report,
    kinds,
    post_vk,
    response,
    vk_body,
    vk_reply_body,
)
from tests.capture.form_checks import journal
from tests.capture.test_mango import post_mango, signed_mango, summary
from tests.samples import sample

CONFIRMATION = sample("vk_confirmation.json")
RETRY = sample("vk_message_new_retry.json")
LEAD = sample("vk_lead_forms_new.json")
BASE_TIME = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)


async def start(start_server, tmp_path):
    return await start_server(chat_config(tmp_path))


async def post_sample(srv, s, body=None):
    return await srv.session.post(
        f"{srv.url}{s.path}", data=s.body if body is None else body, headers=s.headers
    )


async def test_confirmation_is_answered_with_the_configured_string(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await post_sample(srv, CONFIRMATION)
    assert resp.status == 200
    assert await resp.text() == CONFIRMATION.expected["response_body"]
    assert journal(srv)[0]["note"] == "confirmation"


async def test_a_message_with_the_secret_is_a_chat_touch_answered_ok_and_a_wrong_secret_is_refused(
    start_server, tmp_path
):
    srv = await start(start_server, tmp_path)
    forged = await post_vk(srv, vk_body("e-forged", BASE_TIME, "привет", secret="guessed"))
    assert forged.status == 401
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    resp = await post_sample(srv, VK_MESSAGE)
    assert resp.status == 200
    assert await resp.text() == "ok"
    [touch] = chat_touches(srv, "vk")
    expected = VK_MESSAGE.expected
    assert touch["channel"] == "chat"
    assert touch["external_id"] == f"vk:{expected['external_id']}"
    assert touch["message"] == expected["message"]
    assert json.loads(touch["payload"])["conversation_url"] == "https://vk.com/gim200000001?sel=300000001"
    assert kinds(srv, touch["contact_id"]) == {"phone": expected["phone"], "vk_id": "300000001"}


async def test_a_retry_with_the_same_event_id_is_a_no_op(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post_sample(srv, VK_MESSAGE)).status == 200
    resp = await post_sample(srv, RETRY)
    assert resp.status == 200
    assert await resp.text() == "ok"
    assert len(chat_touches(srv, "vk")) == 1
    assert [r["touches_created"] for r in journal(srv)] == [1, 0]


async def test_three_messages_are_one_touch_and_one_after_the_gap_is_a_new_one(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    for n, text in enumerate(["Добрый день", "Сколько стоит доставка?", "В Химки"]):
        assert (await post_vk(srv, vk_body(f"e{n}", BASE_TIME + timedelta(hours=n), text))).status == 200
    [touch] = chat_touches(srv, "vk")
    assert touch["message"] == "Добрый день\nСколько стоит доставка?\nВ Химки"
    assert (await post_vk(srv, vk_body("e9", BASE_TIME + timedelta(hours=27), "Ещё вопрос"))).status == 200
    assert [t["message"] for t in chat_touches(srv, "vk")][1] == "Ещё вопрос"


async def test_two_people_who_paste_the_same_listing_link_are_two_contacts_without_a_phone(
    start_server, tmp_path
):
    srv = await start(start_server, tmp_path)
    link = "Интересует https://www.avito.ru/moskva/mebel/divan_4951234567"
    assert (await post_vk(srv, vk_body("e1", BASE_TIME, link, user=300000001))).status == 200
    assert (await post_vk(srv, vk_body("e2", BASE_TIME, link, user=300000002))).status == 200
    first, second = chat_touches(srv, "vk")
    assert first["contact_id"] != second["contact_id"]
    assert srv.rows("SELECT value FROM identifiers WHERE kind = 'phone'") == []


async def test_a_lead_form_is_a_form_touch_of_its_campaign_and_joins_the_contact_a_call_made(
    start_server, tmp_path
):
    srv = await start(start_server, tmp_path)
    call = summary("vk-call-1", "74950000035", start=int(BASE_TIME.timestamp()), answered=False)
    assert (await post_mango(srv, "/events/summary", signed_mango(call))).status == 200
    [called] = srv.rows("SELECT contact_id FROM touches WHERE channel = 'call'")
    resp = await post_sample(srv, LEAD)
    assert resp.status == 200
    assert await resp.text() == "ok"
    [touch] = chat_touches(srv, "vk")
    expected = LEAD.expected
    assert touch["channel"] == "form"
    assert touch["name"] == expected["name"]
    assert touch["message"] == expected["message"]
    assert touch["campaign"] == "vk_leads"  # [[campaigns]] vk_forms = [3]
    assert touch["contact_id"] == called["contact_id"]
    assert kinds(srv, touch["contact_id"]) == {
        "phone": expected["phone"],
        "email": expected["email"],
        "vk_id": "300000002",
    }


async def test_a_chat_contact_who_later_shares_a_phone_joins_the_contact_the_call_made(
    start_server, tmp_path
):
    srv = await start(start_server, tmp_path)
    call = summary("vk-call-2", "74950000099", start=int(BASE_TIME.timestamp()), answered=True)
    assert (await post_mango(srv, "/events/summary", signed_mango(call))).status == 200
    [called] = srv.rows("SELECT contact_id FROM touches WHERE channel = 'call'")
    assert (await post_vk(srv, vk_body("p0", BASE_TIME + timedelta(hours=1), "Здравствуйте"))).status == 200
    assert srv.scalar("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL") == 2
    text = "Мой номер +7 495 000-00-99"
    assert (await post_vk(srv, vk_body("p1", BASE_TIME + timedelta(hours=2), text))).status == 200
    [touch] = chat_touches(srv, "vk")
    assert touch["contact_id"] == called["contact_id"]
    assert srv.scalar("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL") == 1
    [merge] = srv.rows("SELECT survivor_id, reason FROM merges")
    assert merge == {"survivor_id": called["contact_id"], "reason": "shared identifier"}


async def test_a_message_in_the_pre_5_103_layout_is_read_too(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    old = json.loads(vk_body("old1", BASE_TIME, "Старый формат"))
    old |= {"v": "5.80", "object": old["object"]["message"]}
    assert (await post_vk(srv, json.dumps(old, ensure_ascii=False).encode())).status == 200
    [touch] = chat_touches(srv, "vk")
    assert touch["message"] == "Старый формат"
    assert kinds(srv, touch["contact_id"]) == {"vk_id": "300000001"}


async def test_other_events_and_the_communitys_own_messages_are_answered_ok_without_a_touch(
    start_server, tmp_path
):
    srv = await start(start_server, tmp_path)
    other = json.loads(VK_MESSAGE.body) | {"type": "message_typing_state", "event_id": "r1"}
    resp = await post_vk(srv, json.dumps(other).encode())
    assert (resp.status, await resp.text()) == (200, "ok")
    own = json.loads(VK_MESSAGE.body) | {"event_id": "r2"}
    own["object"]["message"]["out"] = 1
    resp = await post_vk(srv, json.dumps(own).encode())
    assert (resp.status, await resp.text()) == (200, "ok")
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert [r["note"] for r in journal(srv)] == [
        "message_typing_state: not a touch",
        "the community's own message: not a touch",
    ]


async def test_the_communitys_reply_six_minutes_later_is_a_response_of_6_min(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
    assert (await post_vk(srv, vk_body("e-in", day, "Доставка есть?"))).status == 200
    resp = await post_vk(srv, vk_reply_body("e-out", day + timedelta(minutes=6), "Есть, по городу бесплатно"))
    assert resp.status == 200
    assert await resp.text() == "ok"
    assert (await post_vk(srv, vk_reply_body("e-out", day + timedelta(minutes=6), "Есть"))).status == 200
    assert len(chat_touches(srv, "vk")) == 1
    assert journal(srv)[1]["note"] == "the community's own message: not a touch"
    assert response(await day_report(srv, day.astimezone(srv.config.tz).date())) == (1, 6.0, 0.0, 0)


async def test_a_reply_delivered_before_the_message_it_answers_answers_it_once_that_comes(
    start_server, tmp_path
):
    srv = await start(start_server, tmp_path)
    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
    # VK retries the person's 09:00 message, refused at first, after the community's 09:03 reply.
    assert (await post_vk(srv, vk_reply_body("e-out", day + timedelta(minutes=3), "Есть"))).status == 200
    assert (await post_vk(srv, vk_body("e-in", day, "Доставка есть?"))).status == 200
    assert response(await day_report(srv, day.astimezone(srv.config.tz).date())) == (1, 3.0, 1.0, 0)
    # and a reply sent before the person wrote still answers nothing, whenever the message comes
    early = vk_reply_body("e-out2", day - timedelta(minutes=1), "Привет", user=300000002)
    assert (await post_vk(srv, early)).status == 200
    assert (await post_vk(srv, vk_body("e-in2", day, "Здравствуйте", user=300000002))).status == 200
    assert response(await day_report(srv, day.astimezone(srv.config.tz).date())) == (2, 3.0, 0.5, 1)
