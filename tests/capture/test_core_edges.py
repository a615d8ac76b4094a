"""Edge cases a reviewer found: odd bytes, shared invalid identifiers, naive times, restarts."""

from __future__ import annotations

import hashlib
import hmac
from base64 import b64decode, b64encode
from datetime import UTC, datetime
from pathlib import Path

import pytest

from capture import journal
from capture.providers.base import RawRequest, make_headers
from leadline.config import ConfigError
from leadline.load import parse_config
from storage.db import open_database
from storage.merges import undo_merge
from tests.cli import run_cli
from tests.conftest import build_config
from tests.samples import sample

FORM = sample("generic_html_form_post.txt")
STD_SECRET = "whsec_dGVzdC1zdGFuZGFyZC13ZWJob29rcy1zZWNyZXQtMzJi"


async def test_a_token_header_with_a_stray_byte_is_refused_and_never_replayable(start_server, tmp_path):
    srv = await start_server()
    resp = await srv.session.post(
        f"{srv.url}/hooks/form", data=FORM.body, headers={**FORM.headers, "X-Leadline-Token": "form-tok\xe9n"}
    )
    assert resp.status == 401
    config = tmp_path / "replay.toml"
    config.write_text(
        f'[leadline]\ndatabase = "{srv.config.database_path}"\n\n'
        '[[sources]]\nname = "form"\nprovider = "generic_form"\ntoken = "form-token"\n'
    )
    result = await run_cli("replay", "--config", str(config))
    assert "Nothing to replay" in result.output
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_a_header_that_is_not_utf8_does_not_stop_the_journal(start_server):
    srv = await start_server()
    resp = await srv.session.post(
        f"{srv.url}/hooks/form?token=form-token",
        data=FORM.body,
        headers={**FORM.headers, "User-Agent": "caf\xe9"},
    )
    assert resp.status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    db = srv.db()
    try:
        row = journal.get(db, 1)
    finally:
        db.close()
    assert row is not None and row.raw.headers["User-Agent"] in ("caf\udce9", "caf\xe9")


async def test_contacts_sharing_an_invalid_number_merge_and_the_merge_can_be_undone(start_server):
    srv = await start_server()
    post = f"{srv.url}/hooks/form?token=form-token"
    for i, body in enumerate(
        [
            {"phone": "000", "email": "a@example.com"},
            {"phone": "000", "email": "b@example.com"},
            {"email": "a@example.com", "message": "it's me", "name": "Ann"},
        ]
    ):
        assert (await srv.session.post(post, data={**body, "submission_id": str(i)})).status == 200
    assert (
        await srv.session.post(
            post, data={"email": "B@example.com", "phone": "+79160000001", "submission_id": "x"}
        )
    ).status == 200
    assert srv.scalar("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL") == 2
    # a touch that names both addresses joins them
    resp = await srv.session.post(
        post, data={"email": "a@example.com", "e-mail": "b@example.com", "submission_id": "bridge"}
    )
    assert resp.status == 200
    assert srv.scalar("SELECT COUNT(*) FROM journal WHERE status != 'processed'") == 0
    assert srv.scalar("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL") == 1
    assert srv.scalar("SELECT COUNT(*) FROM identifiers WHERE value = '000'") == 1
    db = srv.db()
    try:
        merge_id = db.execute("SELECT id FROM merges").fetchone()[0]
        db.execute("BEGIN")
        restored = undo_merge(db, merge_id, at=datetime.now(UTC))
        db.execute("COMMIT")
    finally:
        db.close()
    assert srv.scalar("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL") == 2
    assert srv.scalar("SELECT COUNT(*) FROM identifiers WHERE value = '000'") == 2
    assert srv.scalar("SELECT COUNT(*) FROM touches WHERE contact_id = ?", [restored]) == 2


async def test_a_standard_webhook_whose_timestamp_has_no_zone_is_stored_as_utc(start_server):
    sent_at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    srv = await start_server(clock=lambda: sent_at)
    body = b'{"type":"contact.created","timestamp":"2026-11-23T11:59:00","data":{"phone":"+79160000002"}}'
    msg_id, stamp = "msg_naive", str(int(sent_at.timestamp()))
    key = b64decode(STD_SECRET.removeprefix("whsec_"))
    sig = b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()).decode()
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": f"v1,{sig}",
        "Content-Type": "application/json",
    }
    assert (await srv.session.post(f"{srv.url}/hooks/std", data=body, headers=headers)).status == 200
    assert srv.scalar("SELECT occurred_at FROM touches") == "2026-11-23T11:59:00.000000+00:00"


def test_an_empty_secret_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LEADLINE_TEST_EMPTY", "")
    with pytest.raises(ConfigError) as error:
        parse_config(
            {"sources": [{"name": "z", "provider": "zadarma", "api_secret": "env:LEADLINE_TEST_EMPTY"}]}
        )
    assert error.value.problems == ["sources[0]: provider zadarma needs api_secret"]


async def test_a_restart_finishes_a_row_journalled_but_not_processed(start_server, tmp_path):
    config = build_config(tmp_path)
    db = open_database(config.database_path)
    raw = RawRequest(
        "form",
        "POST",
        "",
        "token=form-token",
        make_headers(FORM.headers),
        FORM.body,
        datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
    )
    db.execute("BEGIN")
    journal.insert(db, raw, provider="generic_form", status="received")
    db.execute("COMMIT")
    db.close()
    srv = await start_server(config)
    assert srv.rows("SELECT status, touches_created FROM journal") == [
        {"status": "processed", "touches_created": 1}
    ]
    assert srv.scalar("SELECT name FROM touches") == FORM.expected["name"]


async def test_a_refused_request_keeps_only_the_head_of_its_body(start_server):
    srv = await start_server()
    resp = await srv.session.post(f"{srv.url}/hooks/nowhere", data=b"x" * 100_000)
    assert resp.status == 404
    assert srv.rows("SELECT body_size, length(body) AS kept FROM journal") == [
        {"body_size": 100_000, "kept": 4096}
    ]


async def test_a_row_whose_events_cannot_be_stored_is_kept_as_failed_and_finished_on_restart(
    start_server, tmp_path
):
    srv = await start_server()
    db = srv.db()
    db.execute(
        "CREATE TRIGGER no_touches BEFORE INSERT ON touches BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
    )
    db.close()
    resp = await srv.session.post(
        f"{srv.url}/hooks/form?token=form-token", data=FORM.body, headers=FORM.headers
    )
    assert resp.status == 200  # the request is journalled: the provider must not resend it forever
    assert srv.rows("SELECT status, reason FROM journal") == [
        {"status": "failed", "reason": "IntegrityError: disk trouble"}
    ]
    assert srv.scalar("SELECT COUNT(*) FROM contacts") == 0  # nothing half-written
    await srv.stop()
    db = srv.db()
    db.execute("DROP TRIGGER no_touches")
    db.close()
    again = await start_server(srv.config)
    assert again.rows("SELECT status, touches_created FROM journal") == [
        {"status": "processed", "touches_created": 1}
    ]
    assert again.scalar("SELECT COUNT(*) FROM contacts") == 1
