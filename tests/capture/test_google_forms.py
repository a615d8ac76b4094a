"""Google Forms through a running server: our Apps Script contract, with the token as the script sends it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tests.capture.form_checks import assert_expected_contact, config_with, journal, only_touch, source_for
from tests.samples import sample

SUBMIT = sample("google_forms_apps_script.json")
TOKEN = SUBMIT.secrets["token"]


async def start(start_server, tmp_path):
    return await start_server(config_with(tmp_path, source_for(SUBMIT)))


async def test_sample_with_the_token_header_becomes_a_touch(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await srv.session.post(f"{srv.url}{SUBMIT.path}", data=SUBMIT.body, headers=SUBMIT.headers)
    assert resp.status == 200
    touch = only_touch(srv)
    expected = SUBMIT.expected
    assert touch["channel"] == expected["channel"]
    assert touch["external_id"] == f"google_forms:{expected['external_id']}"
    assert touch["name"] == expected["name"]
    assert touch["message"] == "Тест"
    assert datetime.fromisoformat(touch["occurred_at"]) == datetime(2024, 3, 5, 14, 22, 7, tzinfo=UTC)
    assert_expected_contact(srv, touch, expected)
    [headers] = srv.rows("SELECT headers FROM journal")
    assert TOKEN not in headers["headers"]


async def test_token_in_the_query_works_and_a_wrong_one_is_refused(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    no_header = {"Content-Type": "application/json"}
    resp = await srv.session.post(f"{srv.url}{SUBMIT.path}?token=wrong", data=SUBMIT.body, headers=no_header)
    assert resp.status == 401
    resp = await srv.session.post(
        f"{srv.url}{SUBMIT.path}?token={TOKEN}", data=SUBMIT.body, headers=no_header
    )
    assert resp.status == 200
    resp = await srv.session.post(f"{srv.url}{SUBMIT.path}", data=SUBMIT.body, headers=SUBMIT.headers)
    assert resp.status == 200  # the script's retry of the same response_id
    assert [(r["status"], r["touches_created"]) for r in journal(srv)] == [
        ("rejected", 0),
        ("processed", 1),
        ("processed", 0),
    ]


async def test_checkbox_answers_respondent_email_and_utm_are_kept(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    payload = json.loads(SUBMIT.body)
    payload["response_id"] = "2_ABaOnudEXAMPLE0000000001"
    payload["respondent_email"] = "Sergey.Work@example.com"
    payload["answers"] = {"Имя": "Сергей", "Что интересует?": ["Доставка", "Монтаж"]}
    payload["utm"] = {"utm_campaign": "brand_msk"}
    body = json.dumps(payload, ensure_ascii=False).encode()
    assert (
        await srv.session.post(f"{srv.url}{SUBMIT.path}", data=body, headers=SUBMIT.headers)
    ).status == 200
    touch = only_touch(srv)
    assert touch["campaign"] == "brand_msk"
    assert json.loads(touch["payload"])["Что интересует?"] == ["Доставка", "Монтаж"]
    assert_expected_contact(srv, touch, {"email": "sergey.work@example.com"})


async def test_submission_without_phone_or_email_is_a_400_with_a_reason(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    payload = {**json.loads(SUBMIT.body), "answers": {"Имя": "Сергей"}}
    body = json.dumps(payload, ensure_ascii=False).encode()
    resp = await srv.session.post(f"{srv.url}{SUBMIT.path}", data=body, headers=SUBMIT.headers)
    assert resp.status == 400
    assert "no phone or email" in await resp.text()
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("rejected", 400)]
