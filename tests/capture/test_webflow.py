"""Webflow through a running server: the signed v2 sample, the unsigned v1 sample, and refusals."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from tests.capture.form_checks import assert_expected_contact, config_with, journal, only_touch, source_for
from tests.samples import flip_byte, sample

CURRENT = sample("webflow_form_submission.json")
LEGACY = sample("webflow_form_submission_v1_legacy.json")
TOKEN = "webflow-site-token"
SENT_AT = datetime.fromtimestamp(int(CURRENT.headers["x-webflow-timestamp"]) / 1000, UTC)


def at(moment: datetime):
    return lambda: moment


JUST_AFTER = at(SENT_AT + timedelta(seconds=2))


async def start(start_server, tmp_path, clock=JUST_AFTER):
    return await start_server(config_with(tmp_path, source_for(CURRENT, token=TOKEN)), clock=clock)


def signed(body: bytes, stamp: str = CURRENT.headers["x-webflow-timestamp"]) -> dict[str, str]:
    secret = CURRENT.secrets["secret"].encode()
    signature = hmac.new(secret, stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {**CURRENT.headers, "x-webflow-timestamp": stamp, "x-webflow-signature": signature}


async def test_signed_sample_with_a_numeric_phone_becomes_a_touch(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await srv.session.post(f"{srv.url}{CURRENT.path}", data=CURRENT.body, headers=CURRENT.headers)
    assert resp.status == 200
    touch = only_touch(srv)
    expected = CURRENT.expected
    assert touch["channel"] == expected["channel"]
    assert touch["external_id"] == f"webflow:{expected['external_id']}"
    assert touch["name"] == expected["name"]  # First Name + Last Name
    assert touch["message"] == "Please call me back"
    assert datetime.fromisoformat(touch["occurred_at"]) == datetime(2024, 3, 5, 14, 22, 7, tzinfo=UTC)
    assert_expected_contact(srv, touch, expected)  # 12025550177 (a JSON number) → +12025550177


async def test_legacy_v1_sample_is_accepted_with_the_source_token(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await srv.session.post(
        f"{srv.url}{LEGACY.path}?token={TOKEN}", data=LEGACY.body, headers=LEGACY.headers
    )
    assert resp.status == 200
    touch = only_touch(srv)
    assert touch["channel"] == LEGACY.expected["channel"]
    assert touch["external_id"] == f"webflow:{LEGACY.expected['external_id']}"
    assert touch["name"] == "Some One"
    assert_expected_contact(srv, touch, {**LEGACY.expected, "email": "some.one@example.com"})


async def test_unsigned_request_without_the_token_is_refused(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await srv.session.post(f"{srv.url}{LEGACY.path}", data=LEGACY.body, headers=LEGACY.headers)
    assert resp.status == 401
    assert "unsigned Webflow request" in await resp.text()
    resp = await srv.session.post(
        f"{srv.url}{LEGACY.path}?token=wrong", data=LEGACY.body, headers=LEGACY.headers
    )
    assert resp.status == 401
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_changed_byte_is_refused_even_with_the_token(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    url = f"{srv.url}{CURRENT.path}?token={TOKEN}"
    resp = await srv.session.post(url, data=flip_byte(CURRENT.body), headers=CURRENT.headers)
    assert resp.status == 401
    assert "x-webflow-signature does not match" in await resp.text()
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("rejected", 401)]


async def test_signature_older_than_five_minutes_is_refused(start_server, tmp_path):
    srv = await start(start_server, tmp_path, clock=at(SENT_AT + timedelta(minutes=6)))
    resp = await srv.session.post(f"{srv.url}{CURRENT.path}", data=CURRENT.body, headers=CURRENT.headers)
    assert resp.status == 401
    assert "5 minutes" in await resp.text()
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_redelivery_is_a_no_op(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    for _ in range(2):
        resp = await srv.session.post(f"{srv.url}{CURRENT.path}", data=CURRENT.body, headers=CURRENT.headers)
        assert resp.status == 200
    assert [r["touches_created"] for r in journal(srv)] == [1, 0]


async def test_submission_without_phone_or_email_is_a_400_with_a_reason(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    payload = json.loads(CURRENT.body)
    payload["payload"]["data"] = {"First Name": "Ольга", "Message": "hi"}
    body = json.dumps(payload, ensure_ascii=False).encode()
    resp = await srv.session.post(f"{srv.url}{CURRENT.path}", data=body, headers=signed(body))
    assert resp.status == 400
    assert "no phone or email" in await resp.text()
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("rejected", 400)]


async def test_short_numeric_phone_is_read_in_the_default_region(start_server, tmp_path):
    """Ten digits without a '+' are more likely a national number than a foreign one."""
    srv = await start(start_server, tmp_path)
    payload = json.loads(CURRENT.body)
    payload["payload"]["id"] = "65a0000000000000000000ab"
    payload["payload"]["data"] = {"Name": "Олег", "Phone": 4950000022}
    body = json.dumps(payload, ensure_ascii=False).encode()
    resp = await srv.session.post(f"{srv.url}{CURRENT.path}", data=body, headers=signed(body))
    assert resp.status == 200
    touch = only_touch(srv)
    assert_expected_contact(srv, touch, {"phone": "+74950000022"})


async def test_a_token_only_source_refuses_a_request_signed_with_an_empty_key(start_server, tmp_path):
    source = {"name": CURRENT.source_name, "provider": "webflow", "token": TOKEN}
    srv = await start_server(config_with(tmp_path, source), clock=JUST_AFTER)
    stamp = CURRENT.headers["x-webflow-timestamp"]
    forged = hmac.new(b"", stamp.encode() + b":" + CURRENT.body, hashlib.sha256).hexdigest()
    headers = {**CURRENT.headers, "x-webflow-signature": forged}
    resp = await srv.session.post(f"{srv.url}{CURRENT.path}", data=CURRENT.body, headers=headers)
    assert resp.status == 401
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    resp = await srv.session.post(
        f"{srv.url}{CURRENT.path}?token={TOKEN}", data=CURRENT.body, headers=headers
    )
    assert resp.status == 200
