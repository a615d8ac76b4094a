"""Jotform through a running server: the sample's parts sent as a real multipart body."""

from __future__ import annotations

import json

from tests.capture.form_checks import assert_expected_contact, config_with, journal, only_touch
from tests.multipart import build_multipart
from tests.samples import sample

SUBMISSION = sample("jotform_submission.json")
PARTS: dict[str, str] = json.loads(SUBMISSION.body)["parts"]
TOKEN = "jotform-token-0001"


async def start(start_server, tmp_path):
    return await start_server(
        config_with(tmp_path, {"name": SUBMISSION.source_name, "provider": "jotform", "token": TOKEN})
    )


async def post(srv, parts, token=TOKEN):
    body, content_type = build_multipart(parts)
    return await srv.session.post(
        f"{srv.url}{SUBMISSION.path}",
        params={"token": token},
        data=body,
        headers={"Content-Type": content_type},
    )


async def test_sample_submission_becomes_a_touch(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await post(srv, PARTS)
    assert resp.status == 200
    touch = only_touch(srv)
    expected = SUBMISSION.expected
    assert touch["channel"] == expected["channel"]
    assert touch["external_id"] == f"jotform:{expected['external_id']}"
    assert touch["name"] == expected["name"]  # {"first", "last"} joined
    assert touch["message"] == expected["message"]
    assert_expected_contact(srv, touch, expected)  # {"full": "+1 (202) 555-0131"} → +12025550131


async def test_resubmitted_submission_is_a_no_op_and_wrong_token_refused(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, PARTS)).status == 200
    assert (await post(srv, PARTS)).status == 200
    resp = await post(srv, PARTS, token="jotform-token-0002")
    assert resp.status == 401
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert [(r["status"], r["touches_created"]) for r in journal(srv)] == [
        ("processed", 1),
        ("processed", 0),
        ("rejected", 0),
    ]


async def test_question_ids_in_names_and_utm_hidden_fields_are_read(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    answers = {
        "q3_fullName3": {"first": "Анна", "last": "Лебедева"},
        "q4_email4": "ANNA@example.com",
        "q5_mobilePhone": {"area": "916", "phone": "0000023"},
        "q8_utm_source": "vk",
    }
    parts = {
        **PARTS,
        "submissionID": "5800000000000000002",
        "rawRequest": json.dumps(answers, ensure_ascii=False),
    }
    assert (await post(srv, parts)).status == 200
    touch = only_touch(srv)
    assert touch["name"] == "Анна Лебедева"
    assert touch["campaign"] == "vk_ads"
    assert_expected_contact(srv, touch, {"phone": "+79160000023", "email": "anna@example.com"})


async def test_submission_without_phone_or_email_is_a_400_with_a_reason(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    raw = json.dumps({"q3_name": {"first": "Пётр", "last": "Иванов"}, "q6_message": "hi"})
    resp = await post(srv, {**PARTS, "rawRequest": raw})
    assert resp.status == 400
    assert "no phone or email" in await resp.text()
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("rejected", 400)]


async def test_a_question_key_with_a_long_run_of_digits_is_read_at_once(start_server, tmp_path):
    """``q\\d+_(.+?)\\d*`` backtracked over the digits: a key of 300,000 of them cost minutes."""
    srv = await start(start_server, tmp_path)
    answers = json.loads(PARTS["rawRequest"]) | {f"q9_note{'1' * 300_000}x": "call after six"}
    resp = await post(srv, PARTS | {"rawRequest": json.dumps(answers)})
    assert resp.status == 200
    touch = only_touch(srv)
    assert touch["external_id"] == f"jotform:{SUBMISSION.expected['external_id']}"
    assert_expected_contact(srv, touch, SUBMISSION.expected)
