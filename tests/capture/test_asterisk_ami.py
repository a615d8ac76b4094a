"""Asterisk over AMI: Leadline logs in to a fake PBX on 127.0.0.1 and turns its events into calls.

The fake (tests/fake_ami.py) speaks the wire protocol; the samples are pushed to Leadline as
the PBX would send them. Waits poll the database or the fake with a bounded timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from capture import journal
from capture.providers.asterisk_ami import background
from leadline import keys
from leadline.app import build_capture
from leadline.config import Config, SourceConfig
from storage.db import Store, connect
from tests.capture.form_checks import identifiers
from tests.conftest import BASE, build_config
from tests.fake_ami import FakeAmi, Login
from tests.samples import sample

ANSWERED = sample("asterisk_ami_cdr_answered.txt")
NO_ANSWER = sample("asterisk_ami_cdr_no_answer.txt")
NEWCHANNEL = sample("asterisk_ami_newchannel.txt")
HANGUP = sample("asterisk_ami_hangup.txt")
#: The DID the Newchannel sample dialled, as a campaign's tracking number.
LINE = {"name": "pbx_line", "tracking_numbers": ["+74950000001"]}
NOISE = b"Event: Newexten\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/101-00000013\r\nExten: 101\r\n\r\n"
FAST = {"backoff_base": 0.01, "backoff_max": 0.05}

T = TypeVar("T")


@pytest.fixture
async def fake_ami() -> AsyncIterator[FakeAmi]:
    fake = FakeAmi()
    await fake.start()
    yield fake
    await fake.stop()


def ami_config(tmp_path: Path, fake: FakeAmi) -> Config:
    pbx = {
        "name": "pbx",
        "provider": "asterisk_ami",
        "host": "127.0.0.1",
        "port": fake.port,
        "username": "leadline",
        "secret": "ami-secret",
    }
    return build_config(tmp_path, sources=[*BASE["sources"], pbx], campaigns=[*BASE["campaigns"], LINE])


def pbx(config: Config) -> SourceConfig:
    source = config.source("pbx")
    assert source is not None
    return source


def rows(config: Config, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    db = connect(config.database_path)
    try:
        cursor = db.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        db.close()


async def eventually(check: Callable[[], T], within: float = 10.0) -> T:
    """``check()`` once it is truthy (the database is polled); fails the test after ``within`` s."""
    async with asyncio.timeout(within):
        while True:
            if result := check():
                return result
            await asyncio.sleep(0.02)


def touches(config: Config, count: int) -> Callable[[], list[dict[str, Any]]]:
    def check() -> list[dict[str, Any]]:
        found = rows(config, "SELECT * FROM touches ORDER BY id")
        return found if len(found) >= count else []

    return check


def settled(config: Config, external_id: str) -> Callable[[], list[dict[str, Any]]]:
    return lambda: rows(
        config, "SELECT * FROM touches WHERE external_id = ? AND call_final = 1", [external_id]
    )


def cdr(**changes: str) -> bytes:
    """The answered CDR sample with some fields replaced."""
    lines = []
    for line in ANSWERED.body.decode().split("\r\n"):
        key = line.partition(":")[0]
        lines.append(f"{key}: {changes[key]}" if key in changes else line)
    return "\r\n".join(lines).encode()


def disconnects(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        r.__dict__["fields"]
        for r in caplog.records
        if r.name == "leadline.ami" and r.getMessage() == "AMI disconnected"
    ]


async def test_cdr_events_become_answered_and_missed_call_touches(start_server, fake_ami, tmp_path):
    srv = await start_server(ami_config(tmp_path, fake_ami))
    await fake_ami.wait_for(lambda f: f.clients == 1)
    assert fake_ami.logins == [Login("leadline", True, "call,cdr")]

    for block in (NOISE, ANSWERED.body, NO_ANSWER.body):
        assert await fake_ami.push(block) == 1
    answered, missed = await eventually(touches(srv.config, 2))

    anna = srv.scalar("SELECT id FROM staff WHERE name = 'Anna'")
    assert answered["external_id"] == ANSWERED.expected["external_id"]
    assert (answered["channel"], answered["direction"]) == ("call", "in")
    assert (answered["call_status"], answered["answered"], answered["call_final"]) == ("answered", 1, 1)
    assert answered["duration_s"] == answered["talk_s"] == ANSWERED.expected["duration"]
    assert (answered["extension"], answered["staff_id"]) == ("101", anna)  # DestinationChannel PJSIP/101-…
    assert identifiers(srv, answered["contact_id"]) == {"phone": ANSWERED.expected["caller"]}

    assert missed["external_id"] == NO_ANSWER.expected["external_id"]
    assert (missed["call_status"], missed["answered"], missed["call_final"]) == ("missed", 0, 1)
    assert missed["duration_s"] == NO_ANSWER.expected["duration"]
    assert identifiers(srv, missed["contact_id"]) == {"phone": NO_ANSWER.expected["caller"]}  # 8916… → +7916…

    # Only the call events are journalled, byte for byte, so replay reads what the PBX sent.
    logged = srv.rows("SELECT id, method, path, provider, status, body FROM journal ORDER BY id")
    assert [(r["method"], r["path"], r["provider"], r["status"]) for r in logged] == [
        ("AMI", "/event", "asterisk_ami", "processed")
    ] * 2
    assert [r["body"] for r in logged] == [ANSWERED.body, NO_ANSWER.body]
    capture, source = srv.server.app[keys.CAPTURE], srv.config.source("pbx")
    db = srv.db()
    try:
        row = journal.get(db, logged[0]["id"])
    finally:
        db.close()
    assert row is not None
    verdict = capture.judge(row.raw, source, verify=False)
    assert verdict.result is not None
    assert [e.call_id for e in verdict.result.events] == [ANSWERED.expected["external_id"]]

    resp = await srv.session.post(f"{srv.url}/hooks/pbx", data=ANSWERED.body)
    assert resp.status == 405  # AMI sources take nothing over HTTP

    await srv.stop()
    await fake_ami.wait_for(lambda f: f.connections == 0)  # shutting down closed the session


async def test_newchannel_rings_hangup_settles_and_a_later_cdr_corrects(start_server, fake_ami, tmp_path):
    srv = await start_server(ami_config(tmp_path, fake_ami))
    await fake_ami.wait_for(lambda f: f.clients == 1)
    call_id = NEWCHANNEL.expected["external_id"]

    await fake_ami.push(NEWCHANNEL.body)
    [ringing] = await eventually(touches(srv.config, 1))
    assert (ringing["external_id"], ringing["call_status"], ringing["call_final"]) == (call_id, "ringing", 0)
    assert ringing["tracking_number"] == "74950000001"
    assert ringing["campaign"] == "pbx_line"  # the DID dialled is the tracking number
    assert identifiers(srv, ringing["contact_id"]) == {"phone": NEWCHANNEL.expected["caller"]}

    await fake_ami.push(HANGUP.body)
    [ended] = await eventually(settled(srv.config, call_id))
    assert (ended["answered"], ended["call_status"]) == (1, "answered")  # the channel was Up at hang-up
    assert ended["extension"] is None  # a Hangup alone does not say who took the call

    await fake_ami.push(ANSWERED.body)
    [final] = await eventually(lambda: rows(srv.config, "SELECT * FROM touches WHERE extension = '101'"))
    assert (final["id"], final["duration_s"], final["answered"]) == (ringing["id"], 94, 1)
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1


async def test_internal_and_outbound_cdrs(start_server, fake_ami, tmp_path):
    srv = await start_server(ami_config(tmp_path, fake_ami))
    await fake_ami.wait_for(lambda f: f.clients == 1)
    internal = cdr(
        UniqueID="1709700000.1",
        Source="101",
        Destination="102",
        Channel="PJSIP/101-00000031",
        DestinationChannel="PJSIP/102-00000032",
        CallerID='"Anna" <101>',
    )
    outbound = cdr(
        UniqueID="1709700100.2",
        Source="101",
        Destination="89161234567",
        Channel="PJSIP/101-00000033",
        DestinationChannel="PJSIP/trunk-provider-00000034",
    )
    await fake_ami.push(internal)
    await fake_ami.push(outbound)

    [touch] = await eventually(touches(srv.config, 1))
    assert (touch["external_id"], touch["direction"], touch["answered"]) == ("1709700100.2", "out", 1)
    assert touch["extension"] == "101"
    assert touch["tracking_number"] is None
    assert identifiers(srv, touch["contact_id"]) == {"phone": "+79161234567"}
    await eventually(lambda: srv.scalar("SELECT COUNT(*) FROM journal WHERE status = 'processed'") == 2)
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1  # extension to extension is not a touch


async def test_a_cdr_the_parser_refuses_is_kept_and_the_session_goes_on(start_server, fake_ami, tmp_path):
    srv = await start_server(ami_config(tmp_path, fake_ami))
    await fake_ami.wait_for(lambda f: f.clients == 1)
    await fake_ami.push(cdr(BillableSeconds="ninety-four"))
    await fake_ami.push(NO_ANSWER.body)

    [touch] = await eventually(touches(srv.config, 1))
    assert touch["external_id"] == NO_ANSWER.expected["external_id"]
    [refused] = srv.rows("SELECT status, http_status, reason FROM journal WHERE status = 'rejected'")
    assert (refused["http_status"], refused["reason"]) == (
        400,
        "BillableSeconds is not a number of seconds: 'ninety-four'",
    )
    assert fake_ami.clients == 1


async def test_wrong_secret_is_refused_retried_and_never_fatal(fake_ami, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="leadline.ami")
    fake_ami.secret = "the-pbx-wants-another"
    config = ami_config(tmp_path, fake_ami)
    store = Store.open(config.database_path)
    try:
        capture = await build_capture(config, store)
        async with background(capture, pbx(config), **FAST):
            await fake_ami.wait_for(lambda f: len(f.logins) >= 3)
            assert not any(login.accepted for login in fake_ami.logins)

            fake_ami.secret = "ami-secret"  # the admin fixes manager.conf
            await fake_ami.wait_for(lambda f: f.clients == 1)
            await fake_ami.push(ANSWERED.body)
            [touch] = await eventually(touches(config, 1))
            assert touch["external_id"] == ANSWERED.expected["external_id"]
    finally:
        await store.close()

    refused = [f for f in disconnects(caplog) if f["reason"] == "login refused: Authentication failed"]
    assert [f["retry_in"] for f in refused[:3]] == [0.01, 0.02, 0.04]
    assert all(f["retry_in"] <= 0.05 for f in refused)
    assert "ami-secret" not in caplog.text and "the-pbx-wants-another" not in caplog.text
    assert not any("secret" in str(r.__dict__.get("fields", "")) for r in caplog.records)


async def test_pbx_going_away_is_survived_and_events_after_its_return_are_captured(
    fake_ami, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="leadline.ami")
    config = ami_config(tmp_path, fake_ami)
    store = Store.open(config.database_path)
    try:
        capture = await build_capture(config, store)
        async with background(capture, pbx(config), **FAST):
            await fake_ami.wait_for(lambda f: f.clients == 1)
            await fake_ami.push(ANSWERED.body)
            await eventually(touches(config, 1))

            await fake_ami.stop()  # the PBX restarts: connection dropped, port closed
            await eventually(lambda: len(disconnects(caplog)) >= 4)
            await fake_ami.start()  # back on the same port
            await fake_ami.wait_for(lambda f: f.clients == 1)
            await fake_ami.push(NO_ANSWER.body)
            await eventually(touches(config, 2))
    finally:
        await store.close()

    gone = disconnects(caplog)
    assert gone[0]["reason"] == "the PBX closed the connection"
    # after a good login the backoff starts again from its base, then doubles up to the cap
    assert [f["retry_in"] for f in gone[:4]] == [0.01, 0.02, 0.04, 0.05]
    assert all("Error" in f["reason"] for f in gone[1:4])  # connection refused while it was down
    assert [login.accepted for login in fake_ami.logins] == [True, True]


async def test_a_pbx_that_stops_answering_pings_is_dropped_and_reconnected(fake_ami, tmp_path):
    config = ami_config(tmp_path, fake_ami)
    store = Store.open(config.database_path)
    try:
        capture = await build_capture(config, store)
        async with background(capture, pbx(config), keepalive=0.05, **FAST):
            await fake_ami.wait_for(lambda f: f.clients == 1)
            await fake_ami.wait_for(lambda f: "Ping" in f.actions)  # silence is answered with a ping
            fake_ami.answer_pings = False  # half-dead: the socket stays open, nothing answers
            await fake_ami.wait_for(lambda f: len(f.logins) == 2)
            fake_ami.answer_pings = True
            await fake_ami.wait_for(lambda f: f.clients == 1)
            await fake_ami.push(ANSWERED.body)
            await eventually(touches(config, 1))
    finally:
        await store.close()
    await fake_ami.wait_for(lambda f: f.connections == 0)
