"""Hostile input through a running server: whatever would fail in storage is settled before the answer.

Each case was seen in an attack run answered 2xx and then failing in processing (journal row
``failed``, no touch). Now the sender gets a touch or a 4xx with its reason, never both a 2xx and
a failed row.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import zlib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from tests.capture.form_checks import config_with, source_for
from tests.capture.test_smtp import send, smtp_config
from tests.capture.test_twilio import SOURCE as TWILIO_SOURCE
from tests.capture.test_twilio import post_signed
from tests.cli import run_cli
from tests.conftest import Running, StartServer
from tests.samples import sample

#: Phones and emails one touch keeps (capture/settle.py); the rest stay in its text.
MAX_IDENTIFIERS = 20
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FORM_URL = "/hooks/form?token=form-token"
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
UIS = sample("uis_call_ended.json")
UIS_TOKEN = "uis-token-0001"
BINOTEL = sample("binotel_api_call_completed.txt")
BINOTEL_TOKEN = "binotel-token-0001"
GOOGLE = sample("google_forms_apps_script.json")
TWILIO_DONE = sample("twilio_status_callback_completed.txt")


async def post_json(srv: Running, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return await srv.session.post(
        f"{srv.url}{FORM_URL}", data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )


def journal_rows(srv: Running) -> list[dict[str, Any]]:
    return srv.rows("SELECT status, http_status, reason, note FROM journal ORDER BY id")


def the_touch(srv: Running) -> dict[str, Any]:
    [touch] = srv.rows("SELECT * FROM touches")
    touch["payload"] = json.loads(touch["payload"])
    return touch


def identifier_count(srv: Running, contact_id: int) -> int:
    return int(srv.scalar("SELECT COUNT(*) FROM identifiers WHERE contact_id = ?", [contact_id]))


async def test_a_lone_surrogate_in_json_is_stored_as_a_replacement_character(start_server: StartServer):
    srv = await start_server()
    resp = await post_json(srv, b'{"phone": "+79161234567", "name": "Ann\\ud800a", "utm_source": "\\udfff"}')
    assert resp.status == 200
    assert [r["status"] for r in journal_rows(srv)] == ["processed"]
    touch = the_touch(srv)
    assert touch["name"] == "Ann\ufffda"
    assert json.loads(touch["utm"]) == {"utm_source": "\ufffd"}
    assert srv.scalar("SELECT name FROM contacts") == "Ann\ufffda"


async def test_surrogate_bytes_in_a_form_body_are_stored_as_replacement_characters(start_server: StartServer):
    srv = await start_server()
    body = (
        b'{"phone": "+79161234567", "message": "caf\xed\xa0\x80 \xed\xbf\xbf", "sub": {"k\xed\xa0\x80": "v"}}'
    )
    resp = await post_json(srv, body)
    assert resp.status == 200
    assert [r["status"] for r in journal_rows(srv)] == ["processed"]
    touch = the_touch(srv)
    assert touch["message"] == "caf\ufffd \ufffd"
    assert touch["payload"]["sub.k\ufffd"] == "v"
    assert srv.scalar("SELECT body FROM journal") == body  # the raw bytes stay in the journal


async def raw_post(srv: Running, target: str, headers: bytes, body: bytes) -> int:
    """A request written byte by byte: an HTTP client library would encode a header's 0xff as UTF-8."""
    host, port = srv.server.host, srv.server.port
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n".encode()
        writer.write(head + headers + b"Connection: close\r\n\r\n" + body)
        status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


async def test_an_idempotency_key_that_is_not_utf8_keys_the_touch_and_its_retry(start_server: StartServer):
    srv = await start_server()
    headers = b"Content-Type: application/x-www-form-urlencoded\r\nIdempotency-Key: key-\xff\r\n"
    for _ in range(2):
        assert await raw_post(srv, FORM_URL, headers, b"phone=%2B79161234567") == 200
    assert [r["status"] for r in journal_rows(srv)] == ["processed", "processed"]
    assert the_touch(srv)["external_id"] == "form:key-\ufffd"


async def test_nul_characters_are_stripped_from_what_a_touch_stores(start_server: StartServer):
    srv = await start_server()
    body = "phone=%2B79161234567&name=An%00na&message=hi%00%00there&city%00=Mo%00scow&submission_id=a%00b"
    resp = await srv.session.post(f"{srv.url}{FORM_URL}", data=body, headers=FORM_HEADERS)
    assert resp.status == 200
    assert [r["status"] for r in journal_rows(srv)] == ["processed"]
    touch = the_touch(srv)
    assert (touch["name"], touch["message"], touch["external_id"]) == ("Anna", "hithere", "form:ab")
    assert touch["payload"]["city"] == "Moscow"
    assert srv.scalar("SELECT name FROM contacts") == "Anna"


async def test_a_field_longer_than_a_touch_keeps_is_cut_there_and_whole_in_the_journal(
    start_server: StartServer,
):
    srv = await start_server()
    long = "x" * 70_000
    body = urlencode({"phone": "+79161234567", "comment2": long, "city": "Москва"})
    resp = await srv.session.post(f"{srv.url}{FORM_URL}", data=body, headers=FORM_HEADERS)
    assert resp.status == 200
    payload = the_touch(srv)["payload"]
    assert payload["comment2"] == "x" * 65_536 + "…"
    assert payload["city"] == "Москва"
    [row] = journal_rows(srv)
    assert row["status"] == "processed"
    assert long in srv.scalar("SELECT body FROM journal").decode()


def phones(count: int, first: int = 0) -> list[str]:
    return [f"+7916{n:07d}" for n in range(first, first + count)]


async def test_a_form_with_a_thousand_phones_keeps_twenty_on_the_contact_and_the_rest_in_its_text(
    start_server: StartServer,
):
    srv = await start_server()
    numbers = phones(1000)
    body = urlencode([("name", "Many"), ("email", "many@example.com"), *(("phone", p) for p in numbers)])
    resp = await srv.session.post(f"{srv.url}{FORM_URL}", data=body, headers=FORM_HEADERS)
    assert resp.status == 200
    [row] = journal_rows(srv)
    assert row["status"] == "processed"
    assert "981 more" in row["note"]  # 19 phones and the email are kept
    touch = the_touch(srv)
    assert identifier_count(srv, touch["contact_id"]) == MAX_IDENTIFIERS
    assert srv.scalar("SELECT COUNT(*) FROM identifiers WHERE value = 'many@example.com'") == 1
    assert all(p in touch["message"] for p in numbers[MAX_IDENTIFIERS - 1 :])


async def test_a_mail_with_a_thousand_addresses_through_smtp_keeps_twenty_and_the_rest_in_its_text(
    start_server: StartServer, tmp_path
):
    srv = await start_server(smtp_config(tmp_path))
    addresses = [f"client{n:04d}@example.com" for n in range(1000)]
    mail = EmailMessage()
    mail["From"] = "Site form <noreply@site.example>"
    mail["To"] = "leads@mx.example.com"
    mail["Subject"] = "New request"
    mail["Message-ID"] = "<many@site.example>"
    mail.set_content("\n".join(f"Email: {a}" for a in addresses))
    assert await send(srv, mail.as_bytes(), sender="noreply@site.example") == {}
    [row] = journal_rows(srv)
    assert row["status"] == "processed"
    touch = the_touch(srv)
    assert identifier_count(srv, touch["contact_id"]) == MAX_IDENTIFIERS
    assert all(a in touch["message"] for a in addresses)


def uis_variant(**changes: str) -> bytes:
    data = json.loads(UIS.body)
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("talk_time_duration", "1e308"),
        ("talk_time_duration", "79000000000"),
        ("talk_time_duration", "inf"),
        ("talk_time_duration", "NaN"),
        ("talk_time_duration", "-5"),
        ("talk_time_duration", str(8 * 24 * 3600)),
        ("total_time_duration", "1e308"),
    ],
)
async def test_a_call_duration_out_of_range_is_refused_naming_the_field(
    start_server: StartServer, tmp_path, field: str, value: str
):
    srv = await start_server(
        config_with(tmp_path, {"name": UIS.source_name, "provider": "uis_comagic", "token": UIS_TOKEN})
    )
    resp = await srv.session.post(
        f"{srv.url}{UIS.path}?token={UIS_TOKEN}", data=uis_variant(**{field: value}), headers=UIS.headers
    )
    assert resp.status == 400
    assert field in await resp.text()
    [row] = journal_rows(srv)
    assert (row["status"], row["http_status"]) == ("rejected", 400)
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


@pytest.mark.parametrize(
    ("param", "value", "named"),
    [
        ("CallDuration", str(10**20), "duration"),
        ("CallDuration", "-1", "duration"),
        ("SequenceNumber", str(10**20), "sequence number"),
    ],
)
async def test_a_number_out_of_range_is_refused_whichever_provider_parsed_it(
    start_server: StartServer, tmp_path, param: str, value: str, named: str
):
    srv = await start_server(config_with(tmp_path, TWILIO_SOURCE))
    params = dict(parse_qsl(TWILIO_DONE.body.decode(), keep_blank_values=True))
    resp = await post_signed(srv, "/status", {**params, param: value})
    assert resp.status == 400
    assert named in await resp.text()
    assert [(r["status"], r["http_status"]) for r in journal_rows(srv)] == [("rejected", 400)]
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


def nested_json(depth: int) -> bytes:
    return b'{"phone": "+79161234567", "deep": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


def binotel_with_nested_key(depth: int) -> bytes:
    return BINOTEL.body + b"&callDetails" + b"%5Ba%5D" * depth + b"=1"


@pytest.mark.parametrize(
    ("source", "body"),
    [
        ("form", nested_json(5000)),  # beyond Python's own recursion limit
        ("form", nested_json(900)),  # within it: read, and flattened into keys of 900 parts
        ("form", nested_json(33)),
        ("binotel", binotel_with_nested_key(5000)),
        ("binotel", binotel_with_nested_key(33)),
        ("google", None),
    ],
)
async def test_nesting_past_32_levels_is_refused_with_a_reason(
    start_server: StartServer, tmp_path, source: str, body: bytes | None
):
    srv = await start_server(
        config_with(
            tmp_path,
            {"name": BINOTEL.source_name, "provider": "binotel", "token": BINOTEL_TOKEN},
            source_for(GOOGLE),
        )
    )
    if source == "form":
        resp = await post_json(srv, body or b"")
    elif source == "binotel":
        url = f"{srv.url}{BINOTEL.path}?token={BINOTEL_TOKEN}"
        resp = await srv.session.post(url, data=body, headers=BINOTEL.headers)
    else:
        answers = json.loads(GOOGLE.body)
        answers["answers"]["Comment"] = json.loads(b'{"a": ' * 40 + b"1" + b"}" * 40)
        resp = await srv.session.post(f"{srv.url}{GOOGLE.path}", json=answers, headers=GOOGLE.headers)
    assert resp.status == 400
    assert "nested deeper than 32 levels" in await resp.text()
    assert [(r["status"], r["http_status"]) for r in journal_rows(srv)] == [("rejected", 400)]


@pytest.mark.parametrize(
    ("sent", "why"),
    [
        ("1970-01-01T00:00:00Z", "before 2000"),
        ((NOW + timedelta(days=2)).isoformat(), "more than a day after"),
    ],
)
async def test_a_time_out_of_range_is_replaced_by_the_time_received_and_flagged(
    start_server: StartServer, tmp_path, sent: str, why: str
):
    srv = await start_server(config_with(tmp_path, source_for(GOOGLE)), clock=lambda: NOW)
    body = json.loads(GOOGLE.body)
    body["timestamp"] = sent
    resp = await srv.session.post(f"{srv.url}{GOOGLE.path}", json=body, headers=GOOGLE.headers)
    assert resp.status == 200
    [row] = journal_rows(srv)
    assert row["status"] == "processed"
    assert why in row["note"] and "time received" in row["note"]
    touch = the_touch(srv)
    assert datetime.fromisoformat(touch["occurred_at"]) == NOW
    assert any(why in flag for flag in touch["payload"]["leadline_settled"])


def numbered_form() -> bytes:
    """A form whose compressed stream is long enough that half of it inflates to a readable form."""
    return urlencode({"phone": "+79161234567", "message": " ".join(str(n) for n in range(5000))}).encode()


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("gzip", lambda b: gzip.compress(b) * 2)],
)
async def test_a_compressed_body_cut_off_is_refused_with_a_reason(
    start_server: StartServer, encoding: str, compress: Any
):
    srv = await start_server()
    whole = compress(numbered_form())
    headers = {"Content-Encoding": encoding, **FORM_HEADERS}
    resp = await srv.session.post(f"{srv.url}{FORM_URL}", data=whole[: len(whole) // 2 + 7], headers=headers)
    assert resp.status == 400
    assert "cut off" in await resp.text()
    assert [(r["status"], r["http_status"]) for r in journal_rows(srv)] == [("rejected", 400)]
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    resp = await srv.session.post(f"{srv.url}{FORM_URL}", data=whole, headers=headers)
    assert resp.status == 200  # the whole stream (two gzip members in the last case) is read
    assert the_touch(srv)["message"].endswith(" 4999")


async def test_a_row_that_still_fails_is_reported_by_metrics_replay_and_one_line_at_start(
    start_server: StartServer, tmp_path, caplog: pytest.LogCaptureFixture
):
    srv = await start_server()
    db = srv.db()
    db.execute(
        "CREATE TRIGGER no_boom BEFORE INSERT ON touches WHEN NEW.name = 'Boom'"
        " BEGIN SELECT RAISE(ABORT, 'touches named Boom are refused'); END"
    )
    db.close()
    resp = await srv.session.post(f"{srv.url}{FORM_URL}", data={"phone": "+79161234567", "name": "Boom"})
    assert resp.status == 200  # journalled: the row is kept for a replay once the cause is fixed
    assert [r["status"] for r in journal_rows(srv)] == ["failed"]
    text = await (await srv.session.get(f"{srv.url}/metrics")).text()
    assert 'leadline_journal_failed{source="form"} 1.0' in text
    assert 'leadline_journal_failed{source="std"} 0.0' in text
    await srv.stop()

    caplog.clear()
    with caplog.at_level(logging.INFO):
        restarted = await start_server(srv.config)
    assert [r["status"] for r in journal_rows(restarted)] == ["failed"]
    [line] = [r for r in caplog.records if "still fail" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert not [r for r in caplog.records if r.exc_info], "no traceback at start for a known failed row"
    await restarted.stop()

    config = tmp_path / "replay.toml"
    config.write_text(
        f'[leadline]\ndatabase = "{srv.config.database_path}"\n\n'
        '[[sources]]\nname = "form"\nprovider = "generic_form"\ntoken = "form-token"\n'
    )
    result = await run_cli("replay", "--config", str(config))
    assert result.code == 0, result.output
    assert "1 row(s) still failing:" in result.output
    assert "#1 form" in result.output and "touches named Boom are refused" in result.output


async def test_a_value_too_long_to_be_a_phone_is_kept_as_text_not_as_an_identifier(start_server: StartServer):
    """An index of megabyte keys would slow every later write: such a "phone" is text."""
    srv = await start_server()
    long_phone = "9" * 100_000
    body = urlencode({"phone": long_phone, "email": "ann@example.com", "message": "hi"}).encode()
    resp = await srv.session.post(f"{srv.url}{FORM_URL}", data=body, headers=FORM_HEADERS)
    assert resp.status == 200
    assert [r["status"] for r in journal_rows(srv)] == ["processed"]
    values = [r["value"] for r in srv.rows("SELECT value FROM identifiers")]
    assert values == ["ann@example.com"]
    touch = the_touch(srv)
    assert touch["message"].startswith("hi\n\n9999")
    assert len(touch["message"]) == 65_536 + 1  # cut, with an ellipsis; the journal keeps all of it
    assert srv.scalar("SELECT body_size FROM journal") == len(body)
    assert "too long for a phone or an email" in journal_rows(srv)[0]["note"]
