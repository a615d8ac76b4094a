"""UIS / CoMagic through a running server: the template's JSON and form bodies, tokens, retries."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from tests.capture.form_checks import config_with, identifiers, journal
from tests.cli import run_cli
from tests.samples import by_provider, sample

CALL_END = sample("uis_call_ended.json")
TOKEN = "uis-token-0001"


async def start(start_server, tmp_path):
    return await start_server(
        config_with(tmp_path, {"name": CALL_END.source_name, "provider": "uis_comagic", "token": TOKEN})
    )


async def post(srv, body, token=TOKEN, content_type=None):
    query = f"?{urlencode({'token': token})}" if token else ""
    headers = {"Content-Type": content_type} if content_type else CALL_END.headers
    return await srv.session.post(f"{srv.url}{CALL_END.path}{query}", data=body, headers=headers)


def variant(**changes):
    """The call-end sample with some variables changed, as another UIS template would fill them."""
    data = json.loads(CALL_END.body)
    data.update(changes)
    return data


async def test_every_uis_sample_becomes_the_call_the_manifest_expects(start_server, tmp_path):
    for s in by_provider("uis_comagic"):
        srv = await start(start_server, tmp_path / s.file)
        resp = await post(srv, s.body)  # the sample's own Content-Type is the template's free text
        assert resp.status == 200
        [touch] = srv.rows("SELECT * FROM touches")
        expected = s.expected
        assert (touch["channel"], touch["direction"]) == (expected["channel"], "in")
        assert touch["external_id"] == str(expected["external_id"])
        assert (touch["call_status"], touch["answered"], touch["call_final"]) == (expected["status"], 1, 1)
        assert touch["duration_s"] == touch["talk_s"] == expected["duration"]
        assert touch["tracking_number"] == "74950000055"
        assert touch["campaign"] == "brand_msk"  # +74950000055 is brand_msk's tracking number
        assert identifiers(srv, touch["contact_id"]) == {"phone": expected["caller"]}
        assert journal(srv) == [
            {"status": "processed", "http_status": 200, "reason": None, "note": None, "touches_created": 1}
        ]


async def test_a_caller_from_abroad_is_their_own_valid_number(start_server, tmp_path):
    """UIS writes numbers as international digits without "+" (the sample's 74950000012): read in
    RU, a Minsk caller was an invalid number and a Berlin one an Ivanovo stranger."""
    srv = await start(start_server, tmp_path)
    callers = {"3001230001": "375291234567", "3001230002": "4930123456"}
    for session, caller in callers.items():
        body = variant(call_session_id=session, contact_phone_number=caller, calling_phone_number=caller)
        assert (await post(srv, json.dumps(body).encode())).status == 200
    touches = srv.rows("SELECT contact_id FROM touches ORDER BY id")
    assert [identifiers(srv, t["contact_id"]) for t in touches] == [
        {"phone": "+375291234567"},
        {"phone": "+4930123456"},
    ]
    assert srv.rows("SELECT DISTINCT valid FROM identifiers WHERE kind = 'phone'") == [{"valid": 1}]


async def test_an_outgoing_call_from_a_campaigns_number_is_not_that_campaigns(start_server, tmp_path):
    """The tracking number is the one a caller dialled: an outgoing call's virtual number is the
    line we called from, and it gave brand_msk a lead it never brought. The line stays the touch's."""
    srv = await start(start_server, tmp_path)
    body = variant(direction="out", calling_phone_number="74950000055", called_phone_number="79161234567")
    body["contact_phone_number"] = "79161234567"
    assert (await post(srv, json.dumps(body).encode())).status == 200
    [touch] = srv.rows("SELECT direction, tracking_number, campaign, line FROM touches")
    assert touch == {"direction": "out", "tracking_number": None, "campaign": None, "line": "74950000055"}


async def test_a_lost_call_sent_as_a_form_is_missed(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    form = variant(
        call_session_id="3001234999",
        is_lost="true",
        talk_time_duration="0",
        notification_mnemonic="lost_call",
        virtual_phone_number="74950000077",
    )
    resp = await post(srv, urlencode(form), content_type="application/x-www-form-urlencoded")
    assert resp.status == 200
    [touch] = srv.rows("SELECT * FROM touches")
    assert (touch["external_id"], touch["call_status"], touch["answered"]) == ("3001234999", "missed", 0)
    assert touch["duration_s"] == 0
    assert touch["campaign"] is None  # 74950000077 is nobody's tracking number
    assert identifiers(srv, touch["contact_id"]) == {"phone": "+74950000012"}


async def test_a_get_notification_carries_the_variables_in_the_query(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    query = urlencode({**variant(is_lost="false"), "token": TOKEN})
    resp = await srv.session.get(f"{srv.url}{CALL_END.path}?{query}")
    assert resp.status == 200
    [touch] = srv.rows("SELECT * FROM touches")
    assert (touch["external_id"], touch["call_status"], touch["duration_s"]) == ("3001234567", "answered", 94)
    [row] = srv.rows("SELECT method, query_string FROM journal")
    assert row["method"] == "GET"
    assert TOKEN not in row["query_string"]  # the journal keeps the call, not the secret


async def test_call_start_rings_and_call_end_settles_the_same_touch(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    # a template shared by every notification leaves the end-of-call variables empty at the start
    start_note = variant(notification_mnemonic="call_start", is_lost=None, talk_time_duration="")
    del start_note["total_time_duration"]
    assert (await post(srv, json.dumps(start_note), content_type="application/json")).status == 200
    [ringing] = srv.rows("SELECT * FROM touches")
    assert (ringing["call_status"], ringing["call_final"]) == ("ringing", 0)

    assert (await post(srv, CALL_END.body)).status == 200
    [answered] = srv.rows("SELECT * FROM touches")
    assert (answered["id"], answered["call_status"], answered["call_final"]) == (ringing["id"], "answered", 1)
    assert srv.scalar("SELECT COUNT(*) FROM call_events") == 2


async def test_retry_of_the_same_notification_is_a_no_op(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, CALL_END.body)).status == 200
    assert (await post(srv, CALL_END.body)).status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert srv.scalar("SELECT COUNT(*) FROM call_events") == 1
    assert [r["touches_created"] for r in journal(srv)] == [1, 0]


async def test_internal_call_is_journalled_but_not_a_touch(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    body = json.dumps(variant(call_session_id=3001230001, is_internal=True, contact_phone_number="102"))
    assert (await post(srv, body, content_type="application/json")).status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert [r["status"] for r in journal(srv)] == ["processed"]


async def test_wrong_or_missing_token_is_refused_and_makes_no_touch(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    wrong = await post(srv, CALL_END.body, token="uis-token-0002")
    assert (wrong.status, await wrong.text()) == (401, "wrong token\n")
    missing = await post(srv, CALL_END.body, token=None)
    assert missing.status == 401
    assert "missing token" in await missing.text()
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("rejected", 401)] * 2


async def test_template_without_a_session_id_is_a_clear_400_kept_for_replay(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    body = json.dumps(
        {k: v for k, v in variant().items() if k not in ("call_session_id", "communication_id")}
    )
    resp = await post(srv, body, content_type="application/json")
    assert resp.status == 400
    assert "call_session_id" in await resp.text()
    [row] = srv.rows("SELECT status, http_status, body FROM journal")
    assert (row["status"], row["http_status"], row["body"]) == ("rejected", 400, body.encode())


async def test_a_forged_call_whose_body_cannot_be_inflated_is_never_replayed(start_server, tmp_path):
    """No token, and a body refused before the token was checked (not gzip though it says so): the
    400 was replayed with no check at all, and UIS reads a call from the query when the body is
    empty, so anyone could make a missed call from a number of their choosing. A row from before
    m029 (not marked anonymous) is passed over too once the database is upgraded."""
    srv = await start(start_server, tmp_path)
    forged = {
        "call_session_id": "999001",
        "calling_phone_number": "79161112233",
        "virtual_phone_number": "74950000055",
        "notification_mnemonic": "call_end",
        "is_lost": "true",
        "direction": "in",
    }
    resp = await srv.session.post(
        f"{srv.url}{CALL_END.path}?{urlencode(forged)}", data=b"x", headers={"Content-Encoding": "gzip"}
    )
    assert resp.status == 400
    assert "could not be decompressed as gzip" in await resp.text()
    await srv.stop()
    config = tmp_path / "replay.toml"
    config.write_text(
        f'[leadline]\ndatabase = "{srv.config.database_path}"\nregion = "RU"\n\n'
        f'[[sources]]\nname = "{CALL_END.source_name}"\nprovider = "uis_comagic"\ntoken = "{TOKEN}"\n'
    )
    for upgraded in (False, True):
        if upgraded:  # the same row as a release before m029 left it
            db = srv.db()
            with db.conn:
                db.execute("UPDATE journal SET anonymous = 0")
                db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm029_anonymous_bodies'")
            db.close()
        for args in (("--dry-run",), ()):
            result = await run_cli("replay", "--config", str(config), *args)
            assert "Nothing to replay" in result.output, result.output
        assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
        assert srv.scalar("SELECT COUNT(*) FROM contacts") == 0
        assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("rejected", 400)]
