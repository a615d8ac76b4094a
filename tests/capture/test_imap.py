"""The IMAP poller against a real Dovecot on 127.0.0.1: mail in the mailbox becomes touches once,
through restarts between fetch and mark, the server going away, and each kind of connection."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from functools import partial
from typing import Any

import pytest

from capture.providers.imap import Mailbox, ingest_uid, poll_once
from leadline.app import build_capture
from storage.db import Store
from tests.capture.form_checks import identifiers
from tests.conftest import BASE, build_config
from tests.dovecot import PASSWORD, USER, Dovecot, new_dovecot
from tests.samples import sample

HTML_ONLY = sample("smtp_html_only.eml")
CYRILLIC = sample("smtp_plain_base64_cyrillic.eml")
#: How long a test waits for the poller before it fails (a deadline, not an expectation).
WAIT = 30.0


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    server = new_dovecot()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def imap_config(tmp_path: Any, server: Dovecot, **extra: Any) -> Any:
    source = {
        "name": "mailbox",
        "provider": "imap",
        "host": "127.0.0.1",
        "port": server.port,
        "username": USER,
        "password": PASSWORD,
        "security": "none",
        "poll_seconds": 0.1,
        "campaign": "vk_ads",
        **extra,
    }
    return build_config(tmp_path, sources=[*BASE["sources"], source])


async def until(check: Callable[[], Any], what: str) -> Any:
    """Wait for ``check()`` to be truthy (the poller works on its own schedule)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def count(srv: Any, table: str) -> int:
    return int(srv.scalar(f"SELECT COUNT(*) FROM {table}"))


def failures(caplog: Any) -> int:
    return sum(r.getMessage() == "IMAP polling failed; retrying" for r in list(caplog.records))


def seen(server: Dovecot, uid: int) -> bool:
    return "\\Seen" in server.flags().get(uid, set())


async def test_messages_in_the_mailbox_become_touches_once(dovecot, start_server, tmp_path):
    uids = [await asyncio.to_thread(dovecot.deliver, s.body) for s in (HTML_ONLY, CYRILLIC)]
    srv = await start_server(imap_config(tmp_path, dovecot))
    await until(lambda: all(seen(dovecot, uid) for uid in uids), "both messages marked seen")
    rows = srv.rows("SELECT * FROM touches ORDER BY id")
    assert [r["external_id"] for r in rows] == [
        f"email:{s.expected['external_id']}" for s in (HTML_ONLY, CYRILLIC)
    ]
    for row, s in zip(rows, (HTML_ONLY, CYRILLIC), strict=True):
        assert row["name"] == s.expected["name"]
        assert identifiers(srv, row["contact_id"]) == {
            "phone": s.expected["phone"],
            "email": s.expected["email"],
        }
        assert row["campaign"] == "vk_ads"
    assert json.loads(rows[0]["payload"])["subject"] == HTML_ONLY.expected["subject"]

    # a later message is fetched too, and the seen ones are not fetched again meanwhile
    reply = EmailMessage()
    reply["From"] = "Oleg <oleg@example.com>"
    reply["To"] = "leads@example.com"
    reply["Subject"] = "Автоответ"
    reply["Message-ID"] = "<auto-1@example.com>"
    reply["Auto-Submitted"] = "auto-replied"
    reply.set_content("Я в отпуске.")
    uid = await asyncio.to_thread(dovecot.deliver, reply.as_bytes())
    await until(lambda: seen(dovecot, uid), "the auto-reply marked seen")
    assert count(srv, "touches") == 3
    assert count(srv, "journal") == 3
    assert srv.scalar("SELECT dropped FROM touches WHERE external_id = 'email:<auto-1@example.com>'") == (
        "auto-reply: Auto-Submitted: 'auto-replied'"
    )
    assert count(srv, "contacts") == 2


async def test_mail_to_a_campaigns_alias_keeps_its_campaign(dovecot, start_server, tmp_path):
    """The alias sales@ (brand_msk's address) delivers into the polled leads@ mailbox, and the MTA
    records both: the touch took Delivered-To alone and lost its campaign to the source's default."""
    srv = await start_server(imap_config(tmp_path, dovecot))
    raw = (
        b"Return-Path: <ivan@mail.ru>\n"
        b"X-Original-To: sales@example.com\n"
        b"Delivered-To: leads@example.com\n"
        b"From: Ivan <ivan@mail.ru>\n"
        b"To: sales@example.com\n"
        b"Subject: price\n"
        b"Message-ID: <alias-1@mail.ru>\n\n"
        b"Hello, call me: 8 916 555-00-71\n"
    )
    uid = await asyncio.to_thread(dovecot.deliver, raw)
    await until(lambda: seen(dovecot, uid), "the letter marked seen")
    [touch] = srv.rows("SELECT campaign, to_address FROM touches")
    assert touch == {"campaign": "brand_msk", "to_address": "sales@example.com, leads@example.com"}


def letter(n: int) -> bytes:
    message = EmailMessage()
    message["From"] = f"Client {n} <client{n}@example.com>"
    message["To"] = "leads@example.com"
    message["Subject"] = "Заявка"
    message["Message-ID"] = f"<letter-{n}@example.com>"
    message.set_content(f"Перезвоните мне: +7 916 555-00-{n:02d}")
    return message.as_bytes()


async def test_a_letter_opened_in_a_mail_client_before_the_poll_is_still_captured(
    dovecot, start_server, tmp_path
):
    history = await asyncio.to_thread(partial(dovecot.deliver, letter(1), read=True))
    unread = await asyncio.to_thread(dovecot.deliver, letter(2))
    srv = await start_server(imap_config(tmp_path, dovecot))
    await until(lambda: seen(dovecot, unread), "the unread letter taken on the first look")

    opened = await asyncio.to_thread(partial(dovecot.deliver, letter(3), read=True))
    await until(lambda: count(srv, "touches") == 2, "the letter read before the poll")
    external = {r["external_id"] for r in srv.rows("SELECT external_id FROM touches")}
    # Mail read before Leadline first looked at the mailbox is history, not new leads.
    assert external == {"email:<letter-2@example.com>", "email:<letter-3@example.com>"}
    # The mailbox position is saved after the touches it covers (a crash in between re-reads a letter,
    # which is a no-op), so it may land a moment after them.
    await until(
        lambda: srv.scalar("SELECT value FROM meta WHERE key = 'imap:mailbox:last_uid'") == str(opened),
        "the mailbox position saved past the letter",
    )
    assert history < unread < opened


async def test_restart_between_fetch_and_mark_makes_no_second_touch(dovecot, start_server, tmp_path):
    config = imap_config(tmp_path, dovecot)
    source = config.source("mailbox")
    uid = await asyncio.to_thread(dovecot.deliver, CYRILLIC.body)

    # A first run journals the message and dies before it marks it seen.
    store = Store.open(config.database_path)
    try:
        capture = await build_capture(config, store)
        mailbox = await Mailbox.open(source)
        [fetched] = await mailbox.unseen()
        outcome = await ingest_uid(mailbox, capture, source, fetched)
        assert outcome is not None
        assert (outcome.status, outcome.touches_created) == ("processed", 1)
        await mailbox.close()
    finally:
        await store.close()
    assert not await asyncio.to_thread(seen, dovecot, uid)

    # The next run fetches it again: same Message-ID, so nothing new, and now it is marked seen.
    srv = await start_server(config)
    await until(lambda: seen(dovecot, uid), "the message marked seen by the restarted poller")
    assert count(srv, "touches") == 1
    rows = srv.rows("SELECT method, status, touches_created FROM journal ORDER BY id")
    assert rows == [{"method": "IMAP", "status": "processed", "touches_created": n} for n in (1, 0)]


async def test_poller_survives_the_server_going_away(dovecot, start_server, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="leadline.imap")
    srv = await start_server(imap_config(tmp_path, dovecot))
    first = await asyncio.to_thread(dovecot.deliver, HTML_ONLY.body)
    await until(lambda: seen(dovecot, first), "the first message marked seen")

    await asyncio.to_thread(dovecot.stop)
    await until(lambda: failures(caplog) >= 1, "the poller to find the server gone")
    resp = await srv.session.get(f"{srv.url}/healthz")
    assert resp.status == 200  # the process carries on meanwhile
    await asyncio.to_thread(dovecot.start)

    second = await asyncio.to_thread(dovecot.deliver, CYRILLIC.body)
    await until(lambda: seen(dovecot, second), "the message delivered after the restart marked seen")
    assert [r["name"] for r in srv.rows("SELECT name FROM touches ORDER BY id")] == ["Олег", "Светлана"]


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_tls_and_starttls_connections(dovecot, start_server, tmp_path, monkeypatch, security):
    # trust the throw-away server's self-signed certificate, as an operator with a private CA would
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.cert))
    port = dovecot.tls_port if security == "tls" else dovecot.port
    srv = await start_server(imap_config(tmp_path, dovecot, security=security, port=port))
    uid = await asyncio.to_thread(dovecot.deliver, CYRILLIC.body)
    await until(lambda: seen(dovecot, uid), f"the message fetched over {security}")
    assert srv.scalar("SELECT name FROM touches") == "Светлана"
    assert "secured" in dovecot.log() or "TLS" in dovecot.log()


async def test_wrong_password_keeps_the_process_up_and_fetches_nothing(
    dovecot, start_server, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="leadline.imap")
    await asyncio.to_thread(dovecot.deliver, CYRILLIC.body)
    srv = await start_server(imap_config(tmp_path, dovecot, password="wrong"))
    await until(lambda: failures(caplog) >= 1, "a refused login")
    [first, *_] = [r for r in caplog.records if r.getMessage() == "IMAP polling failed; retrying"]
    assert "login refused" in first.fields["error"]  # type: ignore[attr-defined]
    assert (await srv.session.get(f"{srv.url}/healthz")).status == 200
    assert count(srv, "journal") == 0


async def test_poll_once_reads_a_mailbox_with_a_cyrillic_name(tmp_path, dovecot):
    config = imap_config(tmp_path, dovecot, mailbox="Заявки")
    source = config.source("mailbox")
    with dovecot.client() as conn:
        assert conn.create("&BBcEMARPBDIEOgQ4-")[0] == "OK"  # "Заявки" in IMAP's modified UTF-7
    await asyncio.to_thread(dovecot.deliver, HTML_ONLY.body, "&BBcEMARPBDIEOgQ4-")
    store = Store.open(config.database_path)
    try:
        capture = await build_capture(config, store)
        mailbox = await Mailbox.open(source)
        try:
            assert await poll_once(mailbox, capture, source) == 1
            assert await poll_once(mailbox, capture, source) == 0
        finally:
            await mailbox.close()
        names = await store.read(lambda db: [r[0] for r in db.execute("SELECT name FROM touches")])
    finally:
        await store.close()
    assert names == ["Олег"]
