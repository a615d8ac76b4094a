"""Property: mail to the built-in SMTP server, however hostile, is journalled, stored and never lost.

The two ``.eml`` samples with headers and body replaced by hostile values (folded to SMTP's line
length, so they reach the parser rather than the protocol's limit), and arbitrary bytes as the
message, sent by ``smtplib`` to the aiosmtpd server ``leadline serve`` runs. Every message must be
answered ``250 … Stored as <journal id>``, and that journal row must keep the invariant of
``tests/capture/hostile_checks.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.capture.hostile import NOW, Case, cases, encode, load
from tests.capture.hostile_checks import HANG, PROFILE, Answer, broken, check_answer, last_journal_id
from tests.capture.test_smtp import SAMPLES, smtp_config, wire
from tests.conftest import Running, StartServer

STORED = re.compile(rb"Stored as (\d+)")


@pytest.fixture
async def server(start_server: StartServer, tmp_path: Path) -> Running:
    running: Running = await start_server(smtp_config(tmp_path), clock=lambda: NOW)
    return running


@pytest.fixture
def numbers() -> Iterator[int]:
    return itertools.count(1)


def message(case: Case, n: int) -> bytes:
    """The case's mail, with a Message-ID of its own (the same id twice is one mail, by design)."""
    doc = load(case.sample)
    for path, value in list(doc.leaves()):
        if str(path[0]).lower() == "message-id" and isinstance(value, str):
            doc.set(path, value.replace("@", f".h{n}@", 1))
    for op in case.fields:
        try:
            op.apply(doc, n)
        except (LookupError, TypeError):
            continue
    return encode(doc)[0]


async def deliver(srv: Running, data: bytes) -> tuple[int, bytes]:
    """MAIL, RCPT and DATA from a real client; the reply to the DATA is the one that counts."""
    port = srv.config.source("mx").port

    def talk() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port, timeout=HANG.total) as client:
            client.ehlo()
            client.mail("client@example.com")
            client.rcpt("leads@mx.example.com")
            try:
                return client.data(wire(data))
            except smtplib.SMTPDataError as refused:
                return refused.smtp_code, refused.smtp_error

    try:
        return await asyncio.to_thread(talk)
    except TimeoutError:
        broken("every mail is answered", "no answer", f"{len(data)} bytes")


async def exchange(srv: Running, data: bytes, caplog: Any) -> None:
    before = last_journal_id(srv)
    caplog.clear()
    code, reply = await deliver(srv, data)
    stored = STORED.search(reply)
    if code != 250 or stored is None:
        broken("every mail is taken once journalled", str(code), reply.decode("utf-8", "replace"))
    rows = srv.rows("SELECT id, http_status FROM journal WHERE id > ?", [before])
    if rows and rows[0]["id"] != int(stored[1]):
        broken("the reply names the mail's journal row", "wrong id", f"{reply!r} vs row {rows[0]['id']}")
    # The mail's journal row says how it was judged, in HTTP terms as for a webhook; a row left
    # failed has none, and the 250 it got counts as a 200.
    status = (rows[0]["http_status"] if rows else None) or 200
    check_answer(srv, before, Answer(status, reply), caplog.records)


@pytest.mark.timeout(900)
@settings(PROFILE)
@given(case=cases(SAMPLES, frozenset()))
async def test_mutated_mail_keeps_the_invariant(
    server: Running, numbers: Iterator[int], caplog: Any, case: Case
) -> None:
    await exchange(server, message(case, next(numbers)), caplog)


@pytest.mark.timeout(900)
@settings(PROFILE)
@given(data=st.binary(min_size=1, max_size=4096))
async def test_arbitrary_bytes_as_mail_keep_the_invariant(
    server: Running, numbers: Iterator[int], caplog: Any, data: bytes
) -> None:
    # Lines of at most 500 bytes: longer ones are refused by SMTP itself, before Leadline sees them.
    # The last line is the example's own, so that no two examples are the same mail (a no-op).
    lines = [data[i : i + 500] for i in range(0, len(data), 500)]
    await exchange(server, b"\r\n".join([*lines, f"example {next(numbers)}".encode()]), caplog)
