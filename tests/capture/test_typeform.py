"""Typeform through a running server: the signed sample, retries, tampering, answers without refs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

from tests.capture.form_checks import assert_expected_contact, config_with, journal, only_touch, source_for
from tests.samples import flip_byte, sample

RESPONSE = sample("typeform_form_response.json")
DUPLICATE = sample("typeform_form_response_duplicate.json")
SECRET = RESPONSE.secrets["secret"]


async def start(start_server, tmp_path):
    return await start_server(config_with(tmp_path, source_for(RESPONSE)))


def signed(body: bytes) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return {**RESPONSE.headers, "Typeform-Signature": f"sha256={digest}"}


async def test_signed_sample_becomes_a_touch_at_submission_time(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await srv.session.post(f"{srv.url}{RESPONSE.path}", data=RESPONSE.body, headers=RESPONSE.headers)
    assert resp.status == 200
    touch = only_touch(srv)
    expected = RESPONSE.expected
    assert touch["channel"] == expected["channel"]
    # The touch is the response (form_response.token); the delivery's event_id is kept beside it.
    assert touch["external_id"] == f"typeform:{json.loads(RESPONSE.body)['form_response']['token']}"
    assert json.loads(touch["payload"])["event_id"] == expected["external_id"]
    assert touch["name"] == expected["name"]
    assert touch["message"] == expected["message"]
    assert touch["utm"] == {"utm_source": expected["utm_source"], "utm_campaign": "spring_sale"}
    assert touch["campaign"] is None  # neither google nor spring_sale is a configured campaign
    occurred = datetime.fromisoformat(touch["occurred_at"])
    assert occurred == datetime.fromisoformat(expected["timestamp"].replace("Z", "+00:00")).astimezone(UTC)
    assert_expected_contact(srv, touch, expected)


async def test_redelivered_event_is_a_no_op(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    for s in (RESPONSE, DUPLICATE):
        resp = await srv.session.post(f"{srv.url}{s.path}", data=s.body, headers=s.headers)
        assert resp.status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert [r["touches_created"] for r in journal(srv)] == [1, 0]


async def test_a_partial_response_and_its_completion_are_one_touch(start_server, tmp_path):
    """With partial responses on, Typeform delivers a respondent's answers so far as a
    ``form_response_partial`` event and the finished response as another event: one submission."""
    srv = await start(start_server, tmp_path)
    partial = json.loads(RESPONSE.body)
    partial["event_id"] = "01HR00000000000000000PARTIAL"
    partial["event_type"] = "form_response_partial"
    partial["form_response"]["answers"] = partial["form_response"]["answers"][:2]  # name and phone so far
    body = json.dumps(partial, ensure_ascii=False).encode()
    for data, headers in (
        (body, signed(body)),
        (RESPONSE.body, RESPONSE.headers),
        (DUPLICATE.body, DUPLICATE.headers),
    ):
        resp = await srv.session.post(f"{srv.url}{RESPONSE.path}", data=data, headers=headers)
        assert resp.status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert [r["touches_created"] for r in journal(srv)] == [1, 0, 0]


async def test_a_retry_of_a_delivery_stored_by_an_earlier_release_is_a_no_op(start_server, tmp_path):
    """Earlier releases keyed a Typeform touch by the delivery's event_id; Typeform retrying that
    delivery after an upgrade must not make a second touch."""
    srv = await start(start_server, tmp_path)
    resp = await srv.session.post(f"{srv.url}{RESPONSE.path}", data=RESPONSE.body, headers=RESPONSE.headers)
    assert resp.status == 200
    db = srv.db()  # the row as the earlier release wrote it
    with db.conn:
        db.execute("UPDATE touches SET external_id = ?", [f"typeform:{RESPONSE.expected['external_id']}"])
    db.close()
    resp = await srv.session.post(
        f"{srv.url}{DUPLICATE.path}", data=DUPLICATE.body, headers=DUPLICATE.headers
    )
    assert resp.status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert [r["touches_created"] for r in journal(srv)] == [1, 0]


async def test_changed_byte_or_wrong_secret_is_refused(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await srv.session.post(
        f"{srv.url}{RESPONSE.path}", data=flip_byte(RESPONSE.body), headers=RESPONSE.headers
    )
    assert resp.status == 401
    assert "Typeform-Signature does not match" in await resp.text()
    unsigned = {k: v for k, v in RESPONSE.headers.items() if k != "Typeform-Signature"}
    resp = await srv.session.post(f"{srv.url}{RESPONSE.path}", data=RESPONSE.body, headers=unsigned)
    assert resp.status == 401
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("rejected", 401)] * 2


async def test_response_without_phone_or_email_is_a_400_with_a_reason(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    payload = json.loads(RESPONSE.body)
    payload["form_response"]["answers"] = [
        a for a in payload["form_response"]["answers"] if a["type"] == "text"
    ]
    body = json.dumps(payload, ensure_ascii=False).encode()
    resp = await srv.session.post(f"{srv.url}{RESPONSE.path}", data=body, headers=signed(body))
    assert resp.status == 400
    assert "no phone_number or email answer" in await resp.text()
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("rejected", 400)]


async def test_answers_with_generated_refs_are_read_by_their_question(start_server, tmp_path):
    """Authors often leave refs as generated ids: the question's wording and type tell name and message."""
    srv = await start(start_server, tmp_path)
    payload = json.loads(RESPONSE.body)
    payload["event_id"] = "01HR0000000000000000000002"
    for answer in payload["form_response"]["answers"]:
        answer["field"]["ref"] = f"0a1b2c3d-{answer['field']['id']}"
    payload["form_response"]["definition"]["fields"][3]["title"] = "Что вам нужно?"
    body = json.dumps(payload, ensure_ascii=False).encode()
    resp = await srv.session.post(f"{srv.url}{RESPONSE.path}", data=body, headers=signed(body))
    assert resp.status == 200
    touch = only_touch(srv)
    assert touch["name"] == "Анна Смирнова"  # "Как вас зовут?"
    assert touch["message"] == "Нужна консультация по тарифам"  # the long_text answer


async def test_a_text_question_about_the_phone_is_the_phone_when_no_answer_is_typed_so(
    start_server, tmp_path
):
    """A form built with a short-text "Ваш номер телефона" instead of a Phone number question."""
    srv = await start(start_server, tmp_path)
    payload = json.loads(RESPONSE.body)
    response = payload["form_response"]
    response["definition"]["fields"][1].update(title="Ваш номер телефона", type="short_text", ref="f2")
    response["answers"][1] = {
        "type": "text",
        "text": "+1 202 555 0142",
        "field": {"id": "Fld00000002", "ref": "f2"},
    }
    body = json.dumps(payload, ensure_ascii=False).encode()
    resp = await srv.session.post(f"{srv.url}{RESPONSE.path}", data=body, headers=signed(body))
    assert resp.status == 200
    assert_expected_contact(srv, only_touch(srv), RESPONSE.expected)
