"""Avito Messenger webhook through a running server: the URL token, own replies, conversations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.capture.chat_payloads import (
    AVITO_TEXT,
    avito_body,
    chat_config,
    chat_touches,
    day_report,
    kinds,
    post_avito,
    response,
)
from tests.capture.form_checks import journal
from tests.capture.test_mango import post_mango, signed_mango, summary
from tests.samples import sample

OWN_REPLY = sample("avito_message_own_reply.json")
BASE_TIME = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)


async def start(start_server, tmp_path):
    return await start_server(chat_config(tmp_path))


async def test_a_buyers_message_with_the_token_is_a_chat_touch_about_the_item(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post_avito(srv, AVITO_TEXT.body, token=None)).status == 401
    assert (await post_avito(srv, AVITO_TEXT.body, token="guessed")).status == 401
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    resp = await srv.session.post(
        f"{srv.url}{AVITO_TEXT.path}", data=AVITO_TEXT.body, headers=AVITO_TEXT.headers
    )
    assert resp.status == 200
    assert await resp.json() == {"ok": True}
    [touch] = chat_touches(srv, "avito")
    expected = AVITO_TEXT.expected
    assert touch["channel"] == "chat"
    assert touch["external_id"] == f"avito:{expected['external_id']}"
    assert touch["message"] == f"[item {expected['item_id']}] {expected['message']}"
    assert touch["campaign"] == "avito_sofa"  # [[campaigns]] avito_items
    payload = json.loads(touch["payload"])
    assert (
        payload["conversation_url"]
        == "https://www.avito.ru/profile/messenger/channel/u2i-TESTchat00000000000001"
    )
    assert kinds(srv, touch["contact_id"]) == {"avito_id": "500000002"}


async def test_avitos_url_check_is_answered_with_the_token_and_refused_without(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post_avito(srv, b"{}", token=None)).status == 401
    resp = await post_avito(srv, b"{}")
    assert resp.status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert [(r["http_status"], r["note"]) for r in journal(srv)] == [(401, None), (200, "URL check")]


async def test_a_phone_the_buyer_types_later_joins_the_contact_a_call_made(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    call = summary("avito-call-1", "74950000098", start=int(BASE_TIME.timestamp()), answered=False)
    assert (await post_mango(srv, "/events/summary", signed_mango(call))).status == 200
    [called] = srv.rows("SELECT contact_id FROM touches WHERE channel = 'call'")
    assert (
        await post_avito(srv, avito_body("p0", BASE_TIME + timedelta(hours=1), "Диван ещё продаётся?"))
    ).status == 200
    assert srv.scalar("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL") == 2
    text = "Перезвоните мне: 8 (495) 000-00-98"
    assert (await post_avito(srv, avito_body("p1", BASE_TIME + timedelta(hours=2), text))).status == 200
    # one contact, with the call and the Avito conversation on it
    assert srv.scalar("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL") == 1
    touches = srv.rows("SELECT channel, contact_id FROM touches ORDER BY id")
    assert touches == [
        {"channel": "call", "contact_id": called["contact_id"]},
        {"channel": "chat", "contact_id": called["contact_id"]},
    ]
    assert kinds(srv, called["contact_id"]) == {"phone": "+74950000098", "avito_id": "500000002"}
    [merge] = srv.rows("SELECT survivor_id, reason FROM merges")
    assert merge == {"survivor_id": called["contact_id"], "reason": "shared identifier"}


async def test_our_own_reply_is_answered_and_makes_no_touch(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await srv.session.post(
        f"{srv.url}{OWN_REPLY.path}", data=OWN_REPLY.body, headers=OWN_REPLY.headers
    )
    assert resp.status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert journal(srv)[0]["note"] == "our own reply: not a touch"


async def test_our_own_reply_dated_before_2000_is_kept_with_the_time_received_and_a_note(
    start_server, tmp_path
):
    srv = await start(start_server, tmp_path)
    body = json.loads(OWN_REPLY.body)
    body["payload"]["value"]["created"] = 915148800  # 1999-01-01: a clock that was never set
    resp = await srv.session.post(f"{srv.url}{OWN_REPLY.path}", json=body, headers=OWN_REPLY.headers)
    assert resp.status == 200
    [row] = journal(srv)
    assert row["status"] == "processed"
    assert row["note"].startswith("our own reply: not a touch; occurred_at 1999-01-01T00:00:00+00:00")
    assert "before 2000: the time received is used" in row["note"]
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_a_retry_is_a_no_op_and_a_conversation_is_one_touch_until_the_gap(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    for n, text in enumerate(["Диван ещё продаётся?", "Можно завтра?", "Адрес?"]):
        assert (
            await post_avito(srv, avito_body(f"m{n}", BASE_TIME + timedelta(hours=n), text))
        ).status == 200
    assert (
        await post_avito(srv, avito_body("m1", BASE_TIME + timedelta(hours=1), "Можно завтра?"))
    ).status == 200
    [touch] = chat_touches(srv, "avito")
    assert touch["message"].split("\n") == [
        "[item 6000000001] Диван ещё продаётся?",
        "[item 6000000001] Можно завтра?",
        "[item 6000000001] Адрес?",
    ]
    assert [r["touches_created"] for r in journal(srv)] == [1, 0, 0, 0]
    assert (
        await post_avito(srv, avito_body("m9", BASE_TIME + timedelta(hours=30), "Ещё актуально?"))
    ).status == 200
    assert len(chat_touches(srv, "avito")) == 2


async def test_our_reply_four_minutes_after_the_buyers_message_is_a_response_of_4_min(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    seller = json.loads(AVITO_TEXT.body)["payload"]["value"]["user_id"]
    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
    assert (
        await post_avito(srv, avito_body("early", day - timedelta(minutes=5), "Здравствуйте!", author=seller))
    ).status == 200
    assert (await post_avito(srv, avito_body("b1", day, "Диван ещё продаётся?"))).status == 200
    reply = avito_body("r1", day + timedelta(minutes=4), "Да, продаётся", author=seller)
    assert (await post_avito(srv, reply)).status == 200
    assert (await post_avito(srv, reply)).status == 200  # Avito's retry: a no-op
    assert len(chat_touches(srv, "avito")) == 1
    # our message before the buyer's answered nobody; the one 4 minutes after is the response
    assert response(await day_report(srv, day.astimezone(srv.config.tz).date())) == (1, 4.0, 1.0, 0)
