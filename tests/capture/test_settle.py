"""Hostile input through a running server: whatever would fail in storage is settled before the answer.

Each case was seen in an attack run answered 2xx and then failing in processing (journal row
``failed``, no touch). Now the sender gets a touch or a 4xx with its reason, never both a 2xx and
a failed row.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.capture.form_checks import config_with, source_for
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


def phones(count: int, first: int = 0) -> list[str]:
    return [f"+7916{n:07d}" for n in range(first, first + count)]


def uis_variant(**changes: str) -> bytes:
    data = json.loads(UIS.body)
    data.update(changes)
    return json.dumps(data).encode()


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


def numbered_form() -> bytes:
    """A form whose compressed stream is long enough that half of it inflates to a readable form."""
    return urlencode({"phone": "+79161234567", "message": " ".join(str(n) for n in range(5000))}).encode()
