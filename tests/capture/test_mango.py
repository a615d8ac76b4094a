"""Mango Office through a running server: every manifest sample, signatures, order and retries."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from storage.db import iso
from storage.identifiers import phone
from tests.conftest import BASE, Running, StartServer, build_config
from tests.samples import Sample, by_provider, flip_byte, sample

MANGO = by_provider("mango")
KEY = MANGO[0].secrets["vpbx_api_key"]
SALT = MANGO[0].secrets["vpbx_api_salt"]
MANGO_SOURCE = {"name": MANGO[0].source_name, "provider": "mango", "vpbx_api_key": KEY, "vpbx_api_salt": SALT}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def mango_config(tmp_path: Path, **overrides: Any) -> Any:
    return build_config(tmp_path, sources=[*BASE["sources"], MANGO_SOURCE], **overrides)


def signed_mango(payload: dict[str, Any], key: str = KEY, salt: str = SALT) -> bytes:
    """A body signed the way Mango signs: sha256 over key + the json text + salt."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    sign = hashlib.sha256((key + text + salt).encode()).hexdigest()
    return urlencode({"vpbx_api_key": key, "sign": sign, "json": text}).encode()


def summary(
    entry_id: str,
    caller: str | None,
    *,
    start: int,
    answered: bool,
    direction: int = 1,
    extension: str = "101",
    dct: str | None = None,
) -> dict[str, Any]:
    """A Mango events/summary payload: inbound from ``caller``, or outbound to it (direction 2)."""
    outside = {"number": caller} if caller is not None else {}
    ours = {"extension": extension, "number": f"sip:user{extension}@example.mangosip.ru"}
    payload: dict[str, Any] = {
        "entry_id": entry_id,
        "call_direction": direction,
        "from": outside if direction == 1 else ours,
        "to": ours if direction == 1 else outside,
        "line_number": "74950000001",
        "create_time": start,
        "forward_time": start + 5,
        "talk_time": start + 10 if answered else 0,
        "end_time": start + 70,
        "entry_result": int(answered),
        "disconnect_reason": 1110 if answered else 1111,
    }
    if dct:
        payload["dct"] = {"number": dct, "type": 1}
    return payload


async def post_mango(srv: Running, path: str, body: bytes) -> Any:
    return await srv.session.post(f"{srv.url}/hooks/mango{path}", data=body, headers=FORM)


async def post_sample(srv: Running, s: Sample, body: bytes | None = None) -> Any:
    return await srv.session.post(
        f"{srv.url}{s.path}", data=s.body if body is None else body, headers=s.headers
    )


def touch_of(srv: Running, external_id: str) -> dict[str, Any]:
    [row] = srv.rows("SELECT * FROM touches WHERE source = 'mango' AND external_id = ?", [external_id])
    return row


def phone_of(srv: Running, contact_id: int | None) -> str | None:
    value = srv.scalar("SELECT value FROM identifiers WHERE contact_id = ? AND kind = 'phone'", [contact_id])
    return None if value is None else str(value)


async def test_every_mango_sample_yields_its_expected_fields(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(mango_config(tmp_path))
    before: dict[str, Any] | None = None
    for s in MANGO:
        resp = await post_sample(srv, s)
        assert (resp.status, await resp.read()) == (200, b""), s.file
        expected = s.expected
        if "recording_id" in expected:
            [touch] = srv.rows("SELECT * FROM touches WHERE recording = ?", [expected["recording_id"]])
            assert touch["external_id"] == json.loads(_json_field(s))["entry_id"]
            continue
        touch = touch_of(srv, expected["external_id"])
        assert touch["channel"] == expected["channel"] == "call"
        status = expected["status"]
        if status == "ignore_older_seq" or status.startswith("duplicate_of:"):
            assert touch == before, s.file
        elif status in ("answered", "missed"):
            final = int(s.entry["event"] == "/events/summary")
            assert (touch["call_status"], touch["answered"], touch["call_final"]) == (
                status,
                int(status == "answered"),
                final,
            )
        else:
            assert touch["call_status"] == status, s.file
        if "caller" in expected:
            assert phone_of(srv, touch["contact_id"]) == expected["caller"]
        if "duration" in expected:
            assert touch["duration_s"] == expected["duration"]
        if "timestamp" in expected:
            assert touch["occurred_at"] == iso(datetime.fromtimestamp(expected["timestamp"], UTC))
        if "tracking_number" in expected:
            number = phone(touch["tracking_number"], "RU")
            assert number is not None and number.value == expected["tracking_number"]
            assert touch["campaign"] == "brand_msk"
        if "provider" in expected:
            assert srv.scalar("SELECT provider FROM journal ORDER BY id DESC LIMIT 1") == expected["provider"]
        before = touch
    # Two calls, each one touch: the answered one (four call events, summary, recording) and the missed one.
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 2
    answered = touch_of(srv, sample("mango_events_summary_answered.txt").expected["external_id"])
    assert (answered["extension"], answered["staff_id"]) == (
        "101",
        srv.scalar("SELECT id FROM staff WHERE name = 'Anna'"),
    )
    assert answered["last_seq"] == 4
    assert srv.scalar("SELECT COUNT(*) FROM journal WHERE status = 'processed'") == len(MANGO)


def _json_field(s: Sample) -> str:
    from urllib.parse import parse_qs

    return parse_qs(s.body.decode())["json"][0]


async def test_each_mango_sample_with_one_byte_changed_is_refused(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(mango_config(tmp_path))
    for s in MANGO:
        resp = await post_sample(srv, s, flip_byte(s.body))
        assert resp.status == 401, s.file
        assert "sign" in await resp.text()
    rows = srv.rows("SELECT status, http_status FROM journal")
    assert rows == [{"status": "rejected", "http_status": 401}] * len(MANGO)
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_a_wrong_key_or_a_missing_sign_is_refused(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(mango_config(tmp_path))
    payload = summary("E-key", "79161234567", start=1_770_000_000, answered=True)
    resp = await post_mango(srv, "/events/summary", signed_mango(payload, key="someone-elses-key"))
    assert resp.status == 401
    assert "vpbx_api_key" in await resp.text()
    resp = await post_mango(srv, "/events/summary", urlencode({"vpbx_api_key": KEY, "json": "{}"}).encode())
    assert resp.status == 401
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_the_late_seq_2_appeared_changes_nothing(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(mango_config(tmp_path))
    for file in ("mango_events_call_appeared.txt", "mango_events_call_connected.txt"):
        assert (await post_sample(srv, sample(file))).status == 200
    late = sample("mango_events_call_appeared_seq2_late.txt")
    before = touch_of(srv, late.expected["external_id"])
    assert (await post_sample(srv, late)).status == 200
    after = touch_of(srv, late.expected["external_id"])
    assert after == before
    assert (after["call_status"], after["answered"], after["last_seq"]) == ("answered", 1, 3)
    applied = srv.rows("SELECT seq, applied FROM call_events ORDER BY id")
    assert applied == [{"seq": 1, "applied": 1}, {"seq": 3, "applied": 1}, {"seq": 2, "applied": 0}]


async def test_the_duplicate_missed_summary_is_a_no_op(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(mango_config(tmp_path))
    for file in ("mango_events_summary_missed.txt", "mango_events_summary_missed_duplicate.txt"):
        assert (await post_sample(srv, sample(file))).status == 200
    [touch] = srv.rows("SELECT * FROM touches")
    assert (touch["call_status"], touch["answered"], touch["called_back_at"]) == ("missed", 0, None)
    assert srv.scalar("SELECT COUNT(*) FROM call_events") == 1
    assert [r["touches_created"] for r in srv.rows("SELECT touches_created FROM journal ORDER BY id")] == [
        1,
        0,
    ]


async def test_a_signed_call_event_replayed_to_the_summary_path_cannot_end_its_call_as_missed(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Mango signs the JSON, not the path: someone holding a captured 'Appeared' posts it unchanged
    to /events/summary, before the real summary comes."""
    srv = await start_server(mango_config(tmp_path))
    appeared = sample("mango_events_call_appeared.txt")
    resp = await post_mango(srv, "/events/summary", appeared.body)
    assert resp.status == 400
    assert "not a call's summary" in await resp.text()
    assert (await post_sample(srv, sample("mango_events_summary_answered.txt"))).status == 200
    [touch] = srv.rows("SELECT * FROM touches")
    assert (touch["call_status"], touch["call_final"], touch["answered"]) == ("answered", 1, 1)


async def test_the_summary_settles_a_call_whose_events_came_first_and_a_late_event_cannot_undo_it(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(mango_config(tmp_path))
    for file in (
        "mango_events_call_appeared.txt",
        "mango_events_call_connected.txt",
        "mango_events_summary_answered.txt",
        "mango_events_call_disconnected.txt",
    ):
        assert (await post_sample(srv, sample(file))).status == 200
    [touch] = srv.rows("SELECT * FROM touches")
    assert (touch["call_status"], touch["call_final"], touch["duration_s"]) == ("answered", 1, 87)


async def test_a_recording_that_overtakes_its_call_is_kept_for_the_call(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(mango_config(tmp_path))
    assert (await post_sample(srv, sample("mango_events_recording_completed.txt"))).status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert srv.scalar("SELECT status FROM journal") == "processed"
    for file in ("mango_events_call_appeared.txt", "mango_events_summary_answered.txt"):
        assert (await post_sample(srv, sample(file))).status == 200
    [touch] = srv.rows("SELECT recording, call_status FROM touches")
    assert touch == {
        "recording": sample("mango_events_recording_completed.txt").expected["recording_id"],
        "call_status": "answered",
    }
    assert srv.scalar("SELECT COUNT(*) FROM pending_recordings") == 0


async def test_dtmf_and_command_results_are_accepted_without_a_touch_and_unknown_paths_are_refused(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(mango_config(tmp_path))
    dtmf = {"entry_id": "E-dtmf", "call_id": "C1", "seq": 1, "dtmf": "1", "timestamp": 1_770_000_000}
    assert (await post_mango(srv, "/events/dtmf", signed_mango(dtmf))).status == 200
    result = {"command_id": "cmd-1", "result": "1000"}
    assert (await post_mango(srv, "/result/callback", signed_mango(result))).status == 200
    resp = await post_mango(srv, "/nonsense", signed_mango(dtmf))
    assert resp.status == 400
    assert "unknown Mango path" in await resp.text()
    notes = srv.rows("SELECT status, note FROM journal ORDER BY id")
    assert [n["status"] for n in notes] == ["processed", "processed", "rejected"]
    assert "dtmf" in notes[0]["note"]
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_a_hidden_caller_makes_a_touch_without_a_contact(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(mango_config(tmp_path))
    for entry_id, caller in (("E-sip", "sip:guest@example.mangosip.ru"), ("E-empty", ""), ("E-absent", None)):
        body = signed_mango(summary(entry_id, caller, start=1_770_000_000, answered=False))
        assert (await post_mango(srv, "/events/summary", body)).status == 200
    rows = srv.rows("SELECT external_id, contact_id, hidden_caller, call_status FROM touches ORDER BY id")
    assert rows == [
        {"external_id": e, "contact_id": None, "hidden_caller": 1, "call_status": "missed"}
        for e in ("E-sip", "E-empty", "E-absent")
    ]
    assert srv.scalar("SELECT COUNT(*) FROM contacts") == 0


async def test_an_internal_call_is_not_a_touch(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(mango_config(tmp_path))
    payload = summary("E-internal", None, start=1_770_000_000, answered=True, direction=0)
    payload["from"] = {"extension": "102", "number": "sip:user102@example.mangosip.ru"}
    assert (await post_mango(srv, "/events/summary", signed_mango(payload))).status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_a_blocked_caller_is_kept_and_flagged(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(mango_config(tmp_path))
    db = srv.db()
    db.execute(
        "INSERT INTO blocklist (kind, value, at) VALUES ('phone', '+79161234567', '2026-01-01T00:00:00+00:00')"
    )
    db.close()
    body = signed_mango(summary("E-spam", "8 916 123-45-67", start=1_770_000_000, answered=False))
    assert (await post_mango(srv, "/events/summary", body)).status == 200
    [touch] = srv.rows("SELECT blocked, phone_raw, contact_id FROM touches")
    assert (touch["blocked"], touch["phone_raw"]) == (1, "8 916 123-45-67")
    assert phone_of(srv, touch["contact_id"]) == "+79161234567"


@pytest.mark.parametrize("end_time", [4_102_444_800_000, 10**18, 2**63])
async def test_a_time_past_any_calendar_is_a_clear_400_not_a_parser_crash(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, end_time: int
) -> None:
    """2100 in milliseconds (year 131971), 10**18 s, 2**63: found by test_hostile_properties.py as
    ``ValueError``/``OSError``/``OverflowError`` tracebacks from the parser."""
    srv = await start_server(mango_config(tmp_path))
    payload = summary("E-far", "74950000012", start=1_770_000_000, answered=True) | {"end_time": end_time}
    resp = await post_mango(srv, "/events/summary", signed_mango(payload))
    assert (resp.status, await resp.text()) == (400, f"end_time is not a unix time: {end_time}\n")
    assert srv.rows("SELECT status, http_status FROM journal") == [{"status": "rejected", "http_status": 400}]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_foreign_caller_sent_without_plus_is_their_own_number(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Mango writes numbers as international digits without "+" (FORMATS §0.5): read in RU, Minsk's
    375291234567 was kept invalid (no number to call back, a second contact for their form) and
    Berlin's 4930123456 became +74930123456, a stranger in Ivanovo whom Call back dialled."""
    srv = await start_server(mango_config(tmp_path))
    minsk, berlin = (
        summary("e-minsk", "375291234567", start=1_770_000_000, answered=False),
        summary("e-berlin", "4930123456", start=1_770_000_100, answered=True),
    )
    for payload in (minsk, berlin):
        assert (await post_mango(srv, "/events/summary", signed_mango(payload))).status == 200
    form = {"Имя": "Алесь", "Телефон": "+375 29 123-45-67"}
    assert (await srv.session.post(f"{srv.url}/hooks/form?token=form-token", data=form)).status == 200
    minsk_touch, berlin_touch = (
        touch_of(srv, "e-minsk"),
        touch_of(srv, "e-berlin"),
    )
    assert phone_of(srv, minsk_touch["contact_id"]) == "+375291234567"
    assert phone_of(srv, berlin_touch["contact_id"]) == "+4930123456"
    assert srv.scalar("SELECT COUNT(*) FROM contacts") == 2
