"""FreeSWITCH mod_json_cdr through a running server: every body encoding, legs, directions, tokens."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote, urlencode

import pytest

from tests.capture.form_checks import identifiers, journal
from tests.conftest import BASE, build_config
from tests.samples import by_provider, sample

CDR = sample("freeswitch_json_cdr.json")
UUID = CDR.expected["external_id"]
TOKEN = "fs-token-0001"
#: The DID the sample dialled, as a campaign's tracking number.
LINE = {"name": "fs_line", "tracking_numbers": ["+74950000001"]}
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def start(start_server, tmp_path):
    source = {"name": CDR.source_name, "provider": "freeswitch", "token": TOKEN}
    config = build_config(tmp_path, sources=[*BASE["sources"], source], campaigns=[*BASE["campaigns"], LINE])
    return await start_server(config)


async def post(srv, body, token=TOKEN, headers=None):
    query = f"?{urlencode({'token': token})}" if token else ""
    return await srv.session.post(f"{srv.url}{CDR.path}{query}", data=body, headers=headers or JSON)


def cdr(**variables):
    """The sample CDR with some variables replaced (URL-encoded, as encode-values does)."""
    document = json.loads(CDR.body)
    document["variables"].update({k: quote(str(v), safe="") for k, v in variables.items()})
    return json.dumps(document)


async def test_every_freeswitch_sample_becomes_the_call_the_manifest_expects(start_server, tmp_path):
    for s in by_provider("freeswitch"):
        srv = await start(start_server, tmp_path / s.file)
        resp = await srv.session.post(f"{srv.url}{s.path}?token={TOKEN}", data=s.body, headers=s.headers)
        assert resp.status == 200
        [touch] = srv.rows("SELECT * FROM touches")
        expected = s.expected
        assert touch["external_id"] == expected["external_id"]
        assert (touch["channel"], touch["direction"]) == (expected["channel"], "in")
        assert (touch["call_status"], touch["answered"], touch["call_final"]) == (expected["status"], 1, 1)
        assert touch["duration_s"] == touch["talk_s"] == expected["duration"]
        assert touch["occurred_at"].startswith("2024-03-05T14:22:07")  # start_epoch 1709648527
        assert (touch["tracking_number"], touch["campaign"]) == ("74950000001", "fs_line")
        assert identifiers(srv, touch["contact_id"]) == {"phone": expected["caller"]}


@pytest.mark.parametrize(
    ("encoding", "body", "headers"),
    [
        ("cdr= form field", "cdr=" + quote(CDR.body.decode(), safe=""), FORM),
        ("cdr= form field, base64", urlencode({"cdr": base64.b64encode(CDR.body).decode()}), FORM),
        ("whole body base64", base64.b64encode(CDR.body), {"Content-Type": "text/plain"}),
    ],
)
async def test_other_encodings_give_the_same_call(start_server, tmp_path, encoding, body, headers):
    srv = await start(start_server, tmp_path)
    resp = await post(srv, body, headers=headers)
    assert resp.status == 200, encoding
    [touch] = srv.rows("SELECT * FROM touches")
    assert (touch["external_id"], touch["call_status"], touch["duration_s"]) == (UUID, "answered", 94)
    assert identifiers(srv, touch["contact_id"]) == {"phone": "+74950000012"}


async def test_unanswered_call_is_missed(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    body = cdr(
        uuid="5a5a5a5a-0000-0000-0000-000000000001",
        caller_id_number="+79160000013",
        answer_epoch=0,
        billsec=0,
        hangup_cause="NO_ANSWER",
    )
    assert (await post(srv, body)).status == 200
    [touch] = srv.rows("SELECT * FROM touches")
    assert (touch["call_status"], touch["answered"], touch["duration_s"]) == ("missed", 0, 0)
    assert identifiers(srv, touch["contact_id"]) == {"phone": "+79160000013"}  # %2B79160000013 decoded


async def test_ivr_answer_without_a_bridge_is_missed(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, cdr(bridge_epoch=0))).status == 200
    [touch] = srv.rows("SELECT * FROM touches")
    assert (touch["call_status"], touch["answered"]) == ("missed", 0)


async def test_outbound_call_from_an_extension_and_an_internal_call(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    outbound = cdr(
        uuid="5a5a5a5a-0000-0000-0000-000000000002", caller_id_number="102", destination_number="89161234567"
    )
    internal = cdr(
        uuid="5a5a5a5a-0000-0000-0000-000000000003", caller_id_number="101", destination_number="102"
    )
    assert (await post(srv, outbound)).status == 200
    assert (await post(srv, internal)).status == 200
    [touch] = srv.rows("SELECT * FROM touches")
    assert (touch["direction"], touch["extension"], touch["tracking_number"]) == ("out", "102", None)
    assert touch["staff_id"] == srv.scalar("SELECT id FROM staff WHERE name = 'Boris'")
    assert identifiers(srv, touch["contact_id"]) == {"phone": "+79161234567"}
    assert [r["status"] for r in journal(srv)] == ["processed", "processed"]


async def test_b_leg_is_journalled_and_folds_into_nothing(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    b_leg = cdr(uuid="5a5a5a5a-0000-0000-0000-000000000004", originator=UUID, direction="outbound")
    assert (await post(srv, b_leg)).status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    [row] = journal(srv)
    assert row["status"] == "processed"
    assert "B leg" in row["note"]


async def test_retry_of_the_same_cdr_is_a_no_op(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, CDR.body)).status == 200
    assert (await post(srv, CDR.body)).status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert [r["touches_created"] for r in journal(srv)] == [1, 0]


async def test_wrong_or_missing_token_is_refused_and_makes_no_touch(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, CDR.body, token="fs-token-0002")).status == 401
    assert (await post(srv, CDR.body, token=None)).status == 401
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("rejected", 401)] * 2


async def test_a_body_that_is_no_cdr_is_a_clear_400_kept_for_replay(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await post(srv, b"hangup=now", headers=FORM)
    assert resp.status == 400
    assert "'cdr' field" in await resp.text()
    [row] = srv.rows("SELECT status, http_status, body FROM journal")
    assert (row["status"], row["http_status"], row["body"]) == ("rejected", 400, b"hangup=now")


@pytest.mark.parametrize("start_epoch", ["4102444800000", "1e18", "1e309", "9223372036854775808"])
async def test_a_start_time_past_any_calendar_is_a_clear_400_not_a_parser_crash(
    start_server, tmp_path, caplog, start_epoch
):
    """Milliseconds where seconds belong (year 131971), 10**18 s, infinity, 2**63: found by
    tests/capture/test_hostile_properties.py as ``ValueError``/``OSError``/``OverflowError`` tracebacks."""
    srv = await start(start_server, tmp_path)
    resp = await post(srv, cdr(start_epoch=start_epoch))
    assert resp.status == 400
    assert await resp.text() == f"variables.start_epoch is not unix seconds: {start_epoch!r}\n"
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("rejected", 400)]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_our_own_call_back_is_an_outgoing_call_that_answers_the_missed_one(start_server, tmp_path):
    """The 📞 call-back's originate rings user/101 with the client's number as caller id and marks
    the leg (capture/dial/freeswitch.py); its CDR is an outgoing call of the office, not the client
    calling in (docs/telephony.md: "an ordinary outgoing call of the office")."""
    srv = await start(start_server, tmp_path)
    missed = cdr(
        uuid="aaaaaaaa-0000-0000-0000-000000000001",
        caller_id_number="79160000013",
        destination_number="74950000001",
        start_epoch="1709648527",
        end_epoch="1709648560",
        billsec="0",
        hangup_cause="NO_ANSWER",
    )
    assert (await post(srv, missed)).status == 200
    back = cdr(
        uuid="bbbbbbbb-0000-0000-0000-000000000002",
        direction="outbound",
        leadline_callback="true",
        caller_id_number="79160000013",
        destination_number="79160000013",
        dialed_user="101",
        start_epoch="1709648827",
        bridge_epoch="1709648835",
        end_epoch="1709648900",
        billsec="70",
        hangup_cause="NORMAL_CLEARING",
    )
    assert (await post(srv, back)).status == 200
    first, second = srv.rows(
        "SELECT id, direction, contact_id, extension, tracking_number, called_back_by FROM touches ORDER BY id"
    )
    assert (second["direction"], second["extension"], second["tracking_number"]) == ("out", "101", None)
    assert second["contact_id"] == first["contact_id"]
    assert first["called_back_by"] == second["id"]
