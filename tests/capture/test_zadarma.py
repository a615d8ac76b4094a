"""Zadarma / Novofon through a running server: every manifest sample, the URL check, retries."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from storage.db import iso
from tests.capture.test_calls import Clock
from tests.cli import ROOT
from tests.conftest import BASE, Running, StartServer, build_config
from tests.samples import Sample, by_provider, flip_byte, sample

ZADARMA = by_provider("zadarma")
SECRET = next(s.secrets["api_secret"] for s in ZADARMA if s.secrets)
SOURCE = {"name": ZADARMA[0].source_name, "provider": "zadarma", "api_secret": SECRET}
#: When the samples' calls happened: 17:22:07 Moscow time on 2024-03-05, a second before this.
SAMPLE_DAY = datetime(2024, 3, 5, 14, 22, 8, tzinfo=UTC)


def zadarma_config(tmp_path: Path) -> Any:
    return build_config(tmp_path, sources=[*BASE["sources"], SOURCE])


async def post(srv: Running, s: Sample, body: bytes | None = None) -> Any:
    method = s.entry["method"]
    return await srv.session.request(
        method, f"{srv.url}{s.path}", data=s.body if body is None else body, headers=s.headers
    )


def touches(srv: Running, external_id: str) -> list[dict[str, Any]]:
    return srv.rows("SELECT * FROM touches WHERE external_id = ?", [external_id])


def phone_of(srv: Running, contact_id: int | None) -> str | None:
    value = srv.scalar("SELECT value FROM identifiers WHERE contact_id = ? AND kind = 'phone'", [contact_id])
    return None if value is None else str(value)


async def test_every_zadarma_sample_yields_its_expected_fields(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(zadarma_config(tmp_path), clock=Clock(SAMPLE_DAY))
    previous: dict[str, dict[str, Any]] = {}
    for s in ZADARMA:
        resp = await post(srv, s)
        expected = s.expected
        body = await resp.read()
        if "response_body" in expected:
            assert (resp.status, body.decode()) == (expected["response_status"], expected["response_body"])
            assert resp.content_type == "text/plain"
            assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
            continue
        assert (resp.status, body) == (200, b""), s.file
        if expected.get("status", "").startswith("duplicate_of:"):
            original = sample(expected["status"].split(":", 1)[1])
            [row] = touches(srv, original.expected["external_id"])
            assert row == previous[original.expected["external_id"]]
            continue
        [row] = touches(srv, expected["external_id"])
        previous[row["external_id"]] = row
        assert row["channel"] == expected.get("channel", "call")
        status = expected.get("status")
        if status in ("answered", "missed", "busy"):
            answered = status == "answered"
            assert (row["call_status"], row["answered"], row["call_final"]) == (
                "answered" if answered else "missed",
                int(answered),
                int(s.entry["event"].endswith("END")),
            )
        elif status == "ringing_extension":
            assert (row["call_status"], row["extension"]) == ("ringing", expected["extension"])
        elif status is not None:
            assert row["call_status"] == status
        if "caller" in expected:
            assert phone_of(srv, row["contact_id"]) == expected["caller"]
        if "contact" in expected:
            assert phone_of(srv, row["contact_id"]) == expected["contact"]
        if "direction" in expected:
            assert row["direction"] == expected["direction"]
        if "duration" in expected:
            assert row["duration_s"] == expected["duration"]
        if "recording_ref" in expected:
            assert row["recording"] == expected["recording_ref"]
        if "provider" in expected:
            assert srv.scalar("SELECT provider FROM journal ORDER BY id DESC LIMIT 1") == expected["provider"]
    # One inbound answered call (start, internal, answer, end, end again, record), one missed, one outbound.
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 3
    [answered] = touches(srv, sample("zadarma_notify_end_answered.txt").expected["external_id"])
    assert answered["occurred_at"] == iso(datetime(2024, 3, 5, 14, 22, 7, tzinfo=UTC))  # 17:22:07 Moscow
    assert (answered["extension"], answered["staff_id"]) == (
        "101",
        srv.scalar("SELECT id FROM staff WHERE name='Anna'"),
    )


def _signed_value_at(s: Sample) -> int:
    """A byte inside a field the event's signature covers (Zadarma signs only some fields)."""
    field = b"call_id_with_rec=" if s.entry["event"] == "NOTIFY_RECORD" else b"call_start="
    return s.body.index(field) + len(field) + 3


async def test_each_signed_zadarma_sample_with_one_byte_changed_is_refused(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(zadarma_config(tmp_path))
    signed = [s for s in ZADARMA if s.entry.get("signature")]
    for s in signed:
        resp = await post(srv, s, flip_byte(s.body, _signed_value_at(s)))
        assert resp.status == 401, s.file
        assert "Signature does not match" in await resp.text()
    assert srv.rows("SELECT DISTINCT status, http_status FROM journal") == [
        {"status": "rejected", "http_status": 401}
    ]
    assert srv.scalar("SELECT COUNT(*) FROM journal") == len(signed)
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_a_missing_signature_is_refused(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(zadarma_config(tmp_path))
    s = sample("zadarma_notify_start.txt")
    resp = await srv.session.post(
        f"{srv.url}{s.path}", data=s.body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert resp.status == 401
    assert "missing Signature" in await resp.text()


async def test_the_duplicate_notify_end_is_a_no_op(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(zadarma_config(tmp_path))
    for file in ("zadarma_notify_end_answered.txt", "zadarma_notify_end_answered_duplicate.txt"):
        assert (await post(srv, sample(file))).status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert srv.scalar("SELECT COUNT(*) FROM call_events") == 1
    assert [r["status"] for r in srv.rows("SELECT status FROM journal")] == ["processed", "processed"]


async def test_the_url_check_is_echoed_verbatim_by_get_and_by_post(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(zadarma_config(tmp_path))
    echo = sample("zadarma_echo_verification.txt")
    resp = await srv.session.get(f"{srv.url}{echo.path}")
    assert (resp.status, await resp.text()) == (200, echo.expected["response_body"])
    resp = await srv.session.post(f"{srv.url}/hooks/zadarma?zd_echo=a%20b%2Bc")
    assert (resp.status, await resp.text()) == (200, "a b+c")
    assert [r["note"] for r in srv.rows("SELECT note FROM journal")] == ["zd_echo URL check"] * 2
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_unsigned_answers_keep_only_the_start_of_a_body_anyone_could_send(
    start_server: StartServer, tmp_path: Path
) -> None:
    """The URL check and an event no signature covers are answered 200 unsigned, as Zadarma expects:
    their journal rows keep the first 4 KB of what came, as a refused request's do."""
    srv = await start_server(zadarma_config(tmp_path))
    pad = "x" * 100_000
    for url, body in [
        (f"{srv.url}/hooks/zadarma", f"event=NOTIFY_WHATEVER&pad={pad}"),
        (f"{srv.url}/hooks/zadarma?zd_echo=abc", f"pad={pad}"),
    ]:
        resp = await srv.session.post(
            url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert resp.status == 200
    rows = srv.rows("SELECT status, body_size, length(body) AS kept FROM journal ORDER BY id")
    sizes = [len(f"event=NOTIFY_WHATEVER&pad={pad}"), len(f"pad={pad}")]
    assert [(r["status"], r["body_size"], r["kept"]) for r in rows] == [("processed", n, 4096) for n in sizes]
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_notify_internal_only_names_the_extension_of_the_inbound_call(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(zadarma_config(tmp_path))
    start, internal = sample("zadarma_notify_start.txt"), sample("zadarma_notify_internal.txt")
    assert (await post(srv, start)).status == 200
    before = touches(srv, start.expected["external_id"])
    assert (await post(srv, internal)).status == 200
    after = touches(srv, internal.expected["external_id"])
    assert len(before) == len(after) == 1
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert (before[0]["extension"], after[0]["extension"], after[0]["call_status"]) == (
        None,
        "101",
        "ringing",
    )


async def test_an_outbound_call_is_a_touch_on_the_number_dialled(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(zadarma_config(tmp_path))
    for file in ("zadarma_notify_out_start.txt", "zadarma_notify_out_end.txt"):
        assert (await post(srv, sample(file))).status == 200
    [row] = srv.rows("SELECT * FROM touches")
    # Zadarma writes international digits without their "+" (FORMATS §0.5): the number keeps it.
    assert (row["direction"], row["call_status"], row["phone_raw"]) == ("out", "missed", "+79160000014")
    assert row["tracking_number"] is None


async def test_callers_from_abroad_on_a_ru_account_are_their_own_valid_numbers(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Read in RU, 4930123456 (Berlin) was an Ivanovo stranger whom Call back dialled, and
    375291234567 (Minsk) or 380441234567 (Kyiv) an invalid number, never matched nor called back."""
    srv = await start_server(zadarma_config(tmp_path), clock=Clock(SAMPLE_DAY))
    call = {"called_did": "74950000001", "internal": "101", "duration": "0", "is_recorded": "0"}
    call |= {"disposition": "no answer", "status_code": "19", "call_id_with_rec": ""}
    notifications = [
        {**call, "event": "NOTIFY_END", "pbx_call_id": "in_berlin", "caller_id": "4930123456"},
        {**call, "event": "NOTIFY_END", "pbx_call_id": "in_minsk", "caller_id": "375291234567"},
        {**call, "event": "NOTIFY_OUT_END", "pbx_call_id": "out_kyiv", "destination": "380441234567"},
    ]
    for i, fields in enumerate(notifications):
        body, headers = signed_body({**fields, "call_start": f"2024-03-05 17:2{i}:07"})
        resp = await srv.session.post(f"{srv.url}/hooks/zadarma", data=body, headers=headers)
        assert resp.status == 200, await resp.text()
    rows = srv.rows(
        "SELECT t.external_id, i.value, i.valid FROM touches t"
        " JOIN identifiers i ON i.contact_id = t.contact_id AND i.kind = 'phone' ORDER BY t.id"
    )
    assert rows == [
        {"external_id": "in_berlin", "value": "+4930123456", "valid": 1},
        {"external_id": "in_minsk", "value": "+375291234567", "valid": 1},
        {"external_id": "out_kyiv", "value": "+380441234567", "valid": 1},
    ]


async def test_an_event_leadline_does_not_read_is_journalled_with_a_note(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(zadarma_config(tmp_path))
    body = urlencode({"event": "NOTIFY_SMS", "caller_id": "79161234567", "text": "hi"}).encode()
    secret_sig = base64.b64encode(hmac.new(SECRET.encode(), b"x", hashlib.sha1).hexdigest().encode()).decode()
    resp = await srv.session.post(
        f"{srv.url}/hooks/zadarma",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Signature": secret_sig},
    )
    assert resp.status == 200
    assert "NOTIFY_SMS" in srv.scalar("SELECT note FROM journal")
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


def signed_body(fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """A notification signed as Zadarma signs it, over the fields its event's signature covers."""
    from capture.providers.zadarma import SIGNED_FIELDS

    message = "".join(fields.get(name, "") for name in SIGNED_FIELDS[fields["event"]])
    digest = hmac.new(SECRET.encode(), message.encode(), hashlib.sha1).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Signature": base64.b64encode(digest.encode()).decode(),
    }
    return urlencode(fields).encode(), headers


async def test_a_captured_notification_sent_again_with_a_new_pbx_call_id_is_refused(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(zadarma_config(tmp_path), clock=Clock(SAMPLE_DAY))
    start, end = sample("zadarma_notify_start.txt"), sample("zadarma_notify_end_answered.txt")
    assert (await post(srv, start)).status == 200
    # NOTIFY_END's signature is NOTIFY_START's (caller_id + called_did + call_start): the rest is free
    forged = end.body.replace(b"in_3f2a9c0d8e7b4a6c9d1e2f3a4b5c6d7e", b"in_forged000000000000000000000001")
    forged = forged.replace(b"disposition=answered", b"disposition=no+answer")
    resp = await post(srv, end, forged)
    assert resp.status == 401
    assert "already came with another pbx_call_id" in await resp.text()
    # the same with digits moved between the signed fields: the concatenation, so the signature, holds
    moved = (b"caller_id=749500000127&called_did=4950000001", b"caller_id=&called_did=7495000001274950000001")
    for fields in moved:
        resplit = forged.replace(b"caller_id=74950000012&called_did=74950000001", fields)
        assert (await post(srv, end, resplit)).status == 401, fields
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert srv.rows("SELECT status, http_status FROM journal ORDER BY id") == [
        {"status": "processed", "http_status": 200},
        *[{"status": "rejected", "http_status": 401}] * 3,
    ]
    # the real call goes on: its own NOTIFY_END (and Zadarma's retry of it) settle it
    assert (await post(srv, end)).status == 200
    assert (await post(srv, sample("zadarma_notify_end_answered_duplicate.txt"))).status == 200
    [call] = touches(srv, end.expected["external_id"])
    assert (call["call_status"], call["answered"], call["call_final"]) == ("answered", 1, 1)
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1


async def test_two_withheld_callers_in_the_same_second_are_two_calls(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A withheld number says nothing of who called, so its signed fields are not bound to one call."""
    srv = await start_server(zadarma_config(tmp_path), clock=Clock(SAMPLE_DAY))
    for call_id in ("in_withheld_1", "in_withheld_2"):
        body, headers = signed_body(
            {
                "event": "NOTIFY_START",
                "call_start": "2024-03-05 17:22:07",
                "pbx_call_id": call_id,
                "caller_id": "anonymous",
                "called_did": "74950000001",
            }
        )
        resp = await srv.session.post(f"{srv.url}/hooks/zadarma", data=body, headers=headers)
        assert resp.status == 200, await resp.text()
    assert sorted(r["external_id"] for r in srv.rows("SELECT external_id FROM touches")) == [
        "in_withheld_1",
        "in_withheld_2",
    ]


async def test_call_start_is_read_in_the_sources_timezone(start_server: StartServer, tmp_path: Path) -> None:
    """An account whose clock writes UTC, in an office on Moscow time: the source says so."""
    source = {**SOURCE, "timezone": "UTC"}
    arrived = datetime(2024, 3, 5, 14, 23, 42, tzinfo=UTC)
    srv = await start_server(build_config(tmp_path, sources=[*BASE["sources"], source]), clock=Clock(arrived))
    body, headers = signed_body(
        {
            "event": "NOTIFY_END",
            "call_start": "2024-03-05 14:22:07",
            "pbx_call_id": "in_utc_account",
            "caller_id": "79160000013",
            "called_did": "74950000001",
            "duration": "95",
            "disposition": "answered",
        }
    )
    assert (await srv.session.post(f"{srv.url}/hooks/zadarma", data=body, headers=headers)).status == 200
    assert srv.scalar("SELECT occurred_at FROM touches") == iso(datetime(2024, 3, 5, 14, 22, 7, tzinfo=UTC))


async def test_a_call_in_the_hour_repeated_when_the_clocks_go_back_is_stored_when_it_happened(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Berlin's clocks go back at 03:00 on 25 October 2026, so 02:30 comes twice (00:30Z, then 01:30Z).
    A call at the second 02:30 was stored at the first, an hour before its notification came; each
    is now the one nearest the notification's arrival less the call's duration."""
    source = {**SOURCE, "timezone": "Europe/Berlin"}
    clock = Clock(datetime(2026, 10, 25, 0, 32, tzinfo=UTC))
    srv = await start_server(build_config(tmp_path, sources=[*BASE["sources"], source]), clock=clock)
    # Two callers: the signature binds its fields to the first call they came with.
    for call_id, arrived, caller in (
        ("in_first_half_past_two", 0, "79160000013"),
        ("in_second_half_past_two", 1, "79160000014"),
    ):
        clock.now = datetime(2026, 10, 25, arrived, 32, tzinfo=UTC)
        body, headers = signed_body(
            {
                "event": "NOTIFY_END",
                "call_start": "2026-10-25 02:30:00",
                "pbx_call_id": call_id,
                "caller_id": caller,
                "called_did": "74950000001",
                "duration": "120",
                "disposition": "answered",
            }
        )
        assert (await srv.session.post(f"{srv.url}/hooks/zadarma", data=body, headers=headers)).status == 200
    assert [
        touches(srv, call_id)[0]["occurred_at"]
        for call_id in ("in_first_half_past_two", "in_second_half_past_two")
    ] == [
        iso(datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        iso(datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
    ]


def test_the_docs_say_call_start_is_read_in_the_sources_timezone() -> None:
    """docs/telephony.md said Leadline worked the zone out from when a notification arrived; it reads
    call_start in the source's timezone (default [leadline] timezone), a key the docs never named."""
    telephony = (ROOT / "docs" / "telephony.md").read_text(encoding="utf-8")
    section = telephony.split("## Zadarma", 1)[1].split("\n## ", 1)[0]
    assert "works it out from when the notification" not in section
    assert 'timezone = "' in section  # the key, in the source's example
    assert "the source's `timezone`, by default `[leadline] timezone`" in section
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [row] = [line for line in readme.splitlines() if line.startswith("| `zadarma` |")]
    assert "`timezone`" in row


async def test_an_answered_call_of_zero_seconds_is_missed(start_server: StartServer, tmp_path: Path) -> None:
    """FORMATS §1.2: missed is NOTIFY_END with disposition other than "answered", or duration 0. A
    zero-second "answered" call was counted answered: never missed, never nudged for a call-back."""
    srv = await start_server(zadarma_config(tmp_path), clock=Clock(SAMPLE_DAY))
    fields = {"call_start": "2024-03-05 17:22:07", "caller_id": "79160000013", "called_did": "74950000001"}
    fields |= {"pbx_call_id": "in_zero_seconds", "internal": "101"}
    end = {"event": "NOTIFY_END", "duration": "0", "disposition": "answered"}
    for event in ({"event": "NOTIFY_ANSWER", "destination": "101"}, end):
        body, headers = signed_body({**fields, **event})
        assert (await srv.session.post(f"{srv.url}/hooks/zadarma", data=body, headers=headers)).status == 200
    [row] = touches(srv, "in_zero_seconds")
    assert (row["call_status"], row["answered"], row["call_final"], row["duration_s"]) == ("missed", 0, 1, 0)
