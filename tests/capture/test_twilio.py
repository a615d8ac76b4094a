"""Twilio Voice through a running server: every manifest sample, the TwiML we answer, signatures."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from leadline.config import ConfigError
from tests.conftest import BASE, Running, StartServer, build_config
from tests.samples import PUBLIC_URL, Sample, by_provider, flip_byte, sample

TWILIO = by_provider("twilio")
TOKEN = TWILIO[0].secrets["auth_token"]
FORWARD_TO = "+74951112233"
SOURCE = {"name": TWILIO[0].source_name, "provider": "twilio", "auth_token": TOKEN, "forward_to": FORWARD_TO}


def twilio_config(tmp_path: Path) -> Any:
    return build_config(tmp_path, sources=[*BASE["sources"], SOURCE])


async def post(srv: Running, s: Sample, body: bytes | None = None) -> Any:
    return await srv.session.post(
        f"{srv.url}{s.path}", data=s.body if body is None else body, headers=s.headers
    )


async def post_signed(srv: Running, tail: str, params: dict[str, str]) -> Any:
    """A request signed as Twilio signs it: the public URL plus the sorted parameters."""
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC_URL}/hooks/twilio{tail}", params)
    return await srv.session.post(
        f"{srv.url}/hooks/twilio{tail}",
        data=urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )


def the_touch(srv: Running, call_sid: str) -> dict[str, Any]:
    [row] = srv.rows("SELECT * FROM touches WHERE external_id = ?", [call_sid])
    return row


def phone_of(srv: Running, contact_id: int | None) -> str | None:
    value = srv.scalar("SELECT value FROM identifiers WHERE contact_id = ? AND kind = 'phone'", [contact_id])
    return None if value is None else str(value)


def dial_of(twiml: str) -> ET.Element:
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    [dial] = root.findall("Dial")
    return dial


async def test_every_twilio_sample_yields_its_expected_fields(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(twilio_config(tmp_path))
    for s in TWILIO:
        resp = await post(srv, s)
        assert resp.status == 200, s.file
        expected = s.expected
        row = the_touch(srv, expected["external_id"])
        assert row["channel"] == expected["channel"]
        status = expected["status"]
        assert row["call_status"] == status
        if status in ("answered", "missed"):
            assert (row["answered"], row["call_final"]) == (int(status == "answered"), 1)
        if "caller" in expected:
            assert phone_of(srv, row["contact_id"]) == expected["caller"]
        if "duration" in expected:
            assert row["duration_s"] == expected["duration"]
        if "provider" in expected:
            assert srv.scalar("SELECT provider FROM journal ORDER BY id DESC LIMIT 1") == expected["provider"]
    # The voice webhook, the parent call's status callback and the dial action are one call; the
    # dial action (nobody picked up the forwarded leg) corrects the parent's "completed".
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 2
    first = the_touch(srv, "CA00000000000000000000000000000001")
    assert (first["direction"], first["tracking_number"], first["call_status"]) == (
        "in",
        "+12025550100",
        "missed",
    )
    assert first["recording"].endswith("/Recordings/RE00000000000000000000000000000001")
    outbound = the_touch(srv, "CA00000000000000000000000000000002")
    assert (outbound["direction"], phone_of(srv, outbound["contact_id"])) == ("out", "+12025550145")


async def test_the_voice_webhook_answers_twiml_that_dials_forward_to(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(twilio_config(tmp_path))
    resp = await post(srv, sample("twilio_voice_incoming.txt"))
    assert resp.status == 200
    assert resp.content_type == "text/xml"
    dial = dial_of(await resp.text())
    assert (dial.text or "").strip() == FORWARD_TO
    assert dial.get("action") == f"{PUBLIC_URL}/hooks/twilio/dial-action"
    assert dial.get("method") == "POST"
    row = the_touch(srv, "CA00000000000000000000000000000001")
    assert (row["call_status"], row["call_final"]) == ("ringing", 0)


async def test_a_token_source_hears_the_dial_action_and_a_call_nobody_picked_up_is_missed(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Twilio requests the action URL of our TwiML as written: it must carry the source's token."""
    source = {**SOURCE, "token": "tw-token-0001"}
    srv = await start_server(build_config(tmp_path, sources=[*BASE["sources"], source]))
    call = {"CallSid": "CA" + "7" * 32, "From": "+79161234567", "To": "+74950000055", "Direction": "inbound"}
    voice = await post_signed(srv, "/voice?token=tw-token-0001", {**call, "CallStatus": "ringing"})
    assert voice.status == 200
    action = dial_of(await voice.text()).get("action") or ""
    outcome = {**call, "CallStatus": "in-progress", "DialCallStatus": "no-answer", "DialCallDuration": "0"}
    resp = await post_signed(srv, action.removeprefix(f"{PUBLIC_URL}/hooks/twilio"), outcome)
    assert resp.status == 200, await resp.text()
    completed = {**call, "CallStatus": "completed", "CallDuration": "35", "SequenceNumber": "3"}
    assert (await post_signed(srv, "/status?token=tw-token-0001", completed)).status == 200
    row = the_touch(srv, call["CallSid"])
    assert (row["call_status"], row["answered"], row["call_final"]) == ("missed", 0, 1)


async def test_the_dial_action_is_answered_with_empty_twiml(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(twilio_config(tmp_path))
    resp = await post(srv, sample("twilio_dial_action_no_answer.txt"))
    assert (resp.status, resp.content_type) == (200, "text/xml")
    root = ET.fromstring(await resp.text())
    assert (root.tag, list(root)) == ("Response", [])


async def test_the_dial_action_wins_whichever_arrives_first(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(twilio_config(tmp_path))
    for file in ("twilio_dial_action_no_answer.txt", "twilio_status_callback_completed.txt"):
        assert (await post(srv, sample(file))).status == 200
    row = the_touch(srv, "CA00000000000000000000000000000001")
    assert (row["call_status"], row["answered"], row["duration_s"]) == ("missed", 0, 0)
    assert row["recording"] is not None  # the status callback still brings the recording


async def test_a_forwarded_call_that_was_picked_up_is_answered(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(twilio_config(tmp_path))
    params = {
        "CallSid": "CA0000000000000000000000000000000A",
        "From": "+79161234567",
        "To": "+74950000055",
        "Direction": "inbound",
        "CallStatus": "in-progress",
        "DialCallStatus": "completed",
        "DialCallDuration": "65",
    }
    assert (await post_signed(srv, "/dial-action", params)).status == 200
    row = the_touch(srv, params["CallSid"])
    assert (row["call_status"], row["talk_s"], row["campaign"]) == ("answered", 65, "brand_msk")


async def test_a_twilio_client_caller_is_hidden(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(twilio_config(tmp_path))
    params = {
        "CallSid": "CA0000000000000000000000000000000B",
        "From": "client:alice",
        "To": "+12025550100",
        "Direction": "inbound",
        "CallStatus": "ringing",
    }
    assert (await post_signed(srv, "/voice", params)).status == 200
    row = the_touch(srv, params["CallSid"])
    assert (row["hidden_caller"], row["contact_id"], row["phone_raw"]) == (1, None, "client:alice")


async def test_each_twilio_sample_with_one_byte_changed_is_refused(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(twilio_config(tmp_path))
    for s in TWILIO:
        resp = await post(srv, s, flip_byte(s.body))
        assert resp.status == 401, s.file
        assert "X-Twilio-Signature" in await resp.text()
    assert srv.rows("SELECT DISTINCT status, http_status FROM journal") == [
        {"status": "rejected", "http_status": 401}
    ]
    assert srv.scalar("SELECT COUNT(*) FROM journal") == len(TWILIO)
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_the_signature_covers_the_query_string(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(twilio_config(tmp_path))
    s = sample("twilio_status_callback_completed.txt")
    resp = await srv.session.post(
        f"{srv.url}{s.path.replace('src=main', 'src=other')}", data=s.body, headers=s.headers
    )
    assert resp.status == 401
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_an_unknown_path_is_refused_with_a_reason(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(twilio_config(tmp_path))
    resp = await post_signed(srv, "/sms", {"CallSid": "CA1", "From": "+79161234567"})
    assert resp.status == 400
    assert "/voice, /status or /dial-action" in await resp.text()


def test_a_twilio_source_needs_forward_to(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(tmp_path, sources=[{"name": "twilio", "provider": "twilio", "auth_token": TOKEN}])
    assert any("forward_to" in problem for problem in caught.value.problems)


async def test_a_call_back_dial_action_whose_client_is_not_a_number_is_refused(
    start_server: StartServer, tmp_path: Path
) -> None:
    """``callback_to`` (capture/dial/twilio.py puts the client's digits there) is the touch's caller."""
    srv = await start_server(twilio_config(tmp_path))
    rest_call = {"AccountSid": "AC" + "1" * 32, "CallSid": "CA" + "0" * 32, "Direction": "outbound-api"}
    rest_call |= {"From": "+12025550100", "To": "+12025550199", "CallStatus": "in-progress"}
    resp = await post_signed(
        srv, "/dial-action?callback_to=anna", {**rest_call, "DialCallStatus": "completed"}
    )
    assert resp.status == 400
    assert "callback_to is not a number's digits" in await resp.text()
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
