"""Tilda through a running server: its samples, the test ping, retries, tokens, the API key."""

from __future__ import annotations

from urllib.parse import urlencode

from tests.capture.form_checks import assert_expected_contact, config_with, journal, only_touch
from tests.samples import sample

FORM = sample("tilda_form_submission.txt")
PHONE8 = sample("tilda_form_submission_phone8.txt")
DUPLICATE = sample("tilda_form_submission_duplicate.txt")
PING = sample("tilda_test_ping.txt")
TOKEN = "tilda-token-0001"


async def start(start_server, tmp_path):
    return await start_server(
        config_with(tmp_path, {"name": FORM.source_name, "provider": "tilda", "token": TOKEN})
    )


async def post(srv, s, body=None, token=TOKEN, headers=None):
    query = f"?token={token}" if token else ""
    return await srv.session.post(
        f"{srv.url}{s.path}{query}",
        data=s.body if body is None else body,
        headers={**s.headers, **(headers or {})},
    )


async def test_submission_sample_becomes_a_touch_with_utm_and_campaign(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await post(srv, FORM)
    assert resp.status == 200
    assert await resp.read() == b""
    touch = only_touch(srv)
    expected = FORM.expected
    assert touch["channel"] == expected["channel"]
    assert touch["external_id"] == f"tilda:{expected['external_id']}"
    assert touch["name"] == expected["name"]
    assert touch["message"] == expected["message"]
    assert touch["utm"]["utm_source"] == expected["utm_source"]
    assert touch["utm"]["utm_term"] == "купить диван"
    assert touch["campaign"] == "brand_msk"  # utm_campaign=brand_msk
    assert touch["phone_raw"] == "+7 (495) 000-00-12"  # kept as written; the identifier is E.164
    assert_expected_contact(srv, touch, expected)
    assert journal(srv) == [
        {"status": "processed", "http_status": 200, "reason": None, "note": None, "touches_created": 1}
    ]


async def test_retry_with_the_same_tranid_is_a_no_op(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, FORM)).status == 200
    assert (await post(srv, DUPLICATE)).status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert srv.scalar("SELECT COUNT(*) FROM contacts") == 1
    assert [r["touches_created"] for r in journal(srv)] == [1, 0]


async def test_eight_prefix_phone_and_shouting_email_are_normalised(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, PHONE8)).status == 200
    touch = only_touch(srv)
    assert touch["external_id"] == f"tilda:{PHONE8.expected['external_id']}"
    assert touch["name"] == PHONE8.expected["name"]
    assert touch["utm"] == {}
    assert touch["campaign"] is None
    assert_expected_contact(srv, touch, PHONE8.expected)  # +79160000013, maria@example.com


async def test_test_ping_is_acknowledged_journalled_and_makes_no_touch(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await post(srv, PING)
    assert resp.status == PING.expected["response_status"]
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert journal(srv) == [
        {"status": "processed", "http_status": 200, "reason": None, "note": "test ping", "touches_created": 0}
    ]


async def test_wrong_or_missing_token_is_refused(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, FORM, token="tilda-token-0002")).status == 401
    resp = await post(srv, FORM, token=None)
    assert resp.status == 401
    assert "missing token" in await resp.text()
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert [r["status"] for r in journal(srv)] == ["rejected", "rejected"]


async def test_tilda_api_key_in_a_header_is_accepted_as_the_token_but_not_in_the_body(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, FORM, token=None, headers={"X-Api-Key": TOKEN})).status == 200
    # A key in the body would be stored with the raw body: it is refused, so nobody relies on it.
    body = PHONE8.body + b"&api_key=" + TOKEN.encode()
    assert (await post(srv, PHONE8, body=body, token=None)).status == 401
    assert (await post(srv, PHONE8, token=None, headers={"X-Api-Key": "nope"})).status == 401
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    processed = srv.rows("SELECT headers, body FROM journal WHERE status = 'processed'")
    assert all(TOKEN not in r["headers"] and TOKEN.encode() not in r["body"] for r in processed)


async def test_missing_phone_and_email_is_a_400_with_a_reason(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    body = urlencode({"Name": "Иван", "Comments": "позвоните", "tranid": "1:2", "formid": "f1"}).encode()
    resp = await post(srv, FORM, body=body)
    assert resp.status == 400
    assert "no phone or email" in await resp.text()
    [row] = journal(srv)
    assert (row["status"], row["http_status"]) == ("rejected", 400)


async def test_utm_from_the_cookies_field_fills_gaps_left_by_utm_fields(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    cookies = "_ym_uid=1; TILDAUTM=utm_source%3Dvk%7C%7C%7Cutm_medium%3Dcpc%7C%7C%7Cutm_campaign%3Dspring; utm_term=sofa"
    body = urlencode(
        {"Phone": "+7 916 000-00-21", "COOKIES": cookies, "utm_campaign": "autumn", "tranid": "1:3"}
    )
    assert (await post(srv, FORM, body=body.encode())).status == 200
    touch = only_touch(srv)
    assert touch["utm"] == {
        "utm_source": "vk",
        "utm_medium": "cpc",
        "utm_campaign": "autumn",
        "utm_term": "sofa",
    }
    assert touch["campaign"] == "vk_ads"
