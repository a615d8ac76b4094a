"""Binotel through a running server: PHP-style form and JSON bodies, UA numbers, tokens, retries."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl, urlencode

from capture.providers.binotel import nest
from tests.capture.form_checks import identifiers, journal
from tests.conftest import BASE, build_config
from tests.samples import by_provider, sample

RECEIVED = sample("binotel_received_the_call.txt")
COMPLETED = sample("binotel_api_call_completed.txt")
MISSED = sample("binotel_api_call_completed_missed.txt")
TOKEN = "binotel-token-0001"
#: The Binotel line the samples were dialled on, as a campaign's tracking number.
LINE = {"name": "ua_site", "tracking_numbers": ["+380440000001"]}
SUCCESS = {"status": "success"}


async def start(start_server, tmp_path):
    source = {"name": COMPLETED.source_name, "provider": "binotel", "token": TOKEN, "region": "UA"}
    config = build_config(tmp_path, sources=[*BASE["sources"], source], campaigns=[*BASE["campaigns"], LINE])
    return await start_server(config)


async def post(srv, s, body=None, token=TOKEN, headers=None):
    query = f"?{urlencode({'token': token})}" if token else ""
    return await srv.session.post(
        f"{srv.url}{s.path}{query}", data=s.body if body is None else body, headers=headers or s.headers
    )


def touch_of(srv, external_id):
    [touch] = srv.rows("SELECT * FROM touches WHERE external_id = ?", [external_id])
    return touch


async def test_every_binotel_sample_becomes_the_call_the_manifest_expects(start_server, tmp_path):
    for s in by_provider("binotel"):
        srv = await start(start_server, tmp_path / s.file)
        resp = await post(srv, s)
        assert resp.status == 200
        assert await resp.json() == SUCCESS
        expected = s.expected
        touch = touch_of(srv, expected["external_id"])
        assert (touch["channel"], touch["direction"]) == (expected["channel"], "in")
        assert touch["call_status"] == expected["status"]
        assert touch["call_final"] == (expected["status"] != "ringing")
        if "duration" in expected:
            assert touch["duration_s"] == touch["talk_s"] == expected["duration"]
        caller = expected.get("caller", "+380440000013")  # the missed sample's manifest leaves it out
        assert identifiers(srv, touch["contact_id"]) == {"phone": caller}
        assert touch["tracking_number"] == "0440000001"
        assert touch["campaign"] == "ua_site"  # 0440000001 read as a UA number is +380440000001
        assert touch["extension"] == "901"


async def test_ua_national_number_lands_in_e164_and_completion_settles_the_ringing_call(
    start_server, tmp_path
):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, RECEIVED)).status == 200
    ringing = touch_of(srv, "4700000001")
    assert (ringing["call_status"], ringing["call_final"], ringing["phone_raw"]) == (
        "ringing",
        0,
        "0440000012",
    )
    assert identifiers(srv, ringing["contact_id"]) == {"phone": "+380440000012"}

    assert (await post(srv, COMPLETED)).status == 200
    done = touch_of(srv, "4700000001")
    assert (done["id"], done["call_status"], done["answered"], done["call_final"]) == (
        ringing["id"],
        "answered",
        1,
        1,
    )
    assert done["duration_s"] == 94
    assert done["recording"] == "https://my.binotel.example/call-record/4700000001"
    assert done["occurred_at"].startswith("2024-03-05T14:22:07")  # startTime 1709648527
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1


async def test_missed_call(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, MISSED)).status == 200
    touch = touch_of(srv, "4700000009")
    assert (touch["call_status"], touch["answered"], touch["duration_s"]) == ("missed", 0, 0)
    assert identifiers(srv, touch["contact_id"]) == {"phone": "+380440000013"}


async def test_the_same_call_sent_as_json_is_read_the_same_way(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    body = json.dumps(nest(parse_qsl(COMPLETED.body.decode())))
    resp = await post(srv, COMPLETED, body=body, headers={"Content-Type": "application/json"})
    assert resp.status == 200
    touch = touch_of(srv, "4700000001")
    assert (touch["call_status"], touch["duration_s"], touch["campaign"]) == ("answered", 94, "ua_site")
    assert identifiers(srv, touch["contact_id"]) == {"phone": "+380440000012"}


async def test_redelivery_is_a_no_op(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    again = COMPLETED.body.replace(b"attemptsCounter=1", b"attemptsCounter=2")
    assert (await post(srv, COMPLETED)).status == 200
    assert (await post(srv, COMPLETED, body=again)).status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert srv.scalar("SELECT COUNT(*) FROM call_events") == 1
    assert [r["touches_created"] for r in journal(srv)] == [1, 0]


async def test_call_settings_request_is_answered_without_a_touch(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    body = urlencode(
        {
            "requestType": "apiCallSettings",
            "externalNumber": "0440000012",
            "companyID": "10001",
            "callType": "0",
            "pbxNumber": "0440000001",
            "internalNumber": "901",
        }
    )
    resp = await post(srv, COMPLETED, body=body)
    assert (resp.status, await resp.json()) == (200, SUCCESS)
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    [row] = journal(srv)
    assert row["status"] == "processed"
    assert "CRM data" in row["note"]


async def test_wrong_or_missing_token_is_refused_and_makes_no_touch(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, COMPLETED, token="binotel-token-0002")).status == 401
    assert (await post(srv, COMPLETED, token=None)).status == 401
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("rejected", 401)] * 2


async def test_body_without_a_request_type_is_a_clear_400(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await post(srv, COMPLETED, body=b"generalCallID=4700000001")
    assert resp.status == 400
    assert "requestType" in await resp.text()
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("rejected", 400)]


async def test_a_start_time_past_what_time_t_holds_is_a_clear_400_not_a_parser_crash(
    start_server, tmp_path, caplog
):
    """10**18 seconds: ``OSError`` from the C library, found by test_hostile_properties.py."""
    srv = await start(start_server, tmp_path)
    body = COMPLETED.body.replace(
        b"callDetails%5BstartTime%5D=1709648527", b"callDetails%5BstartTime%5D=1e18"
    )
    assert body != COMPLETED.body
    resp = await post(srv, COMPLETED, body=body)
    assert resp.status == 400
    assert await resp.text() == "startTime is not unix seconds: '1e18'\n"
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("rejected", 400)]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_key_with_a_long_run_of_brackets_is_read_at_once(start_server, tmp_path):
    """findall(r"\\[([^\\]]*)\\]") scanned to the end from each unclosed "[": 300,000 cost minutes."""
    srv = await start(start_server, tmp_path)
    resp = await post(srv, COMPLETED, body=COMPLETED.body + b"&junk" + b"%5B" * 300_000 + b"=1")
    assert resp.status == 200
    assert touch_of(srv, "4700000001")["call_status"] == "answered"


def hangup(call_id: str, disposition: str) -> bytes:
    """``hangupTheCall`` with FORMATS §1.5's fields: no ``callType``, no ``externalNumber``."""
    fields = {"requestType": "hangupTheCall", "generalCallID": call_id, "billsec": "60"}
    return urlencode({**fields, "disposition": disposition, "method": "event"}).encode()


async def test_a_hangup_before_the_completion_leaves_the_number_to_the_completion(start_server, tmp_path):
    """docs/telephony.md: apiCallCompleted wins whichever of the two arrives first. The hangup names
    no number; the call was not a hidden caller's, and is the known contact's."""
    srv = await start(start_server, tmp_path)
    assert (await post(srv, COMPLETED, body=hangup("4700000001", "ANSWER"))).status == 200
    assert (await post(srv, COMPLETED)).status == 200
    touch = touch_of(srv, "4700000001")
    assert (touch["hidden_caller"], touch["call_status"], touch["direction"]) == (0, "answered", "in")
    assert identifiers(srv, touch["contact_id"]) == {"phone": COMPLETED.expected["caller"]}


async def test_a_hangup_leaves_an_outgoing_call_outgoing(start_server, tmp_path):
    """hangupTheCall does not say which way the call went: a call a manager dialled stays theirs,
    not a missed inbound call."""
    srv = await start(start_server, tmp_path)
    dialled = RECEIVED.body.replace(b"callType=0", b"callType=1")
    assert dialled != RECEIVED.body
    assert (await post(srv, RECEIVED, body=dialled)).status == 200
    call_id = touch_of(srv, RECEIVED.expected["external_id"])["external_id"]
    assert (await post(srv, RECEIVED, body=hangup(call_id, "NOANSWER"))).status == 200
    touch = touch_of(srv, call_id)
    assert (touch["direction"], touch["call_final"]) == ("out", 1)


async def test_an_outgoing_call_from_a_campaigns_line_is_not_that_campaigns(start_server, tmp_path):
    """The tracking number is the one a caller dialled: a manager's cold call from the ad line
    (callType=1) gave the ad campaign its lead. The line stays the touch's, to call back from."""
    srv = await start(start_server, tmp_path)
    for s in (RECEIVED, COMPLETED):
        dialled = s.body.replace(b"callType%5D=0", b"callType%5D=1").replace(b"callType=0", b"callType=1")
        assert dialled != s.body
        assert (await post(srv, s, body=dialled)).status == 200
    touch = touch_of(srv, "4700000001")
    assert (touch["direction"], touch["tracking_number"], touch["campaign"]) == ("out", None, None)
    assert touch["line"] == "0440000001"
