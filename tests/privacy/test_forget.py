"""``leadline forget``: the person is gone from the file and its log, replay cannot bring them back,
and the day's figures stay as they were."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from leadline.config import WebhookConfig
from storage.db import open_database
from storage.merges import undo_merge
from storage.registrations import change_lead
from storage.schema import migrate
from storage.webhook_deliveries import collect
from tests.capture.test_smtp import send
from tests.cli import run_cli
from tests.conftest import BASE, StartServer
from tests.dovecot import free_port
from tests.multipart import build_multipart
from tests.numbers.month import month_config
from tests.privacy.people import (
    API_AUTH,
    E164,
    EMAIL,
    NAME,
    OTHER_PHONE,
    PHONE_TYPED,
    TRACES,
    leave_a_trail,
    privacy_config,
    traces_in,
)
from tests.samples import sample


async def report(config: Path, as_of: str) -> dict[str, Any]:
    result = await run_cli("report", "--config", str(config), "--json", "--period", "day", "--as-of", as_of)
    assert result.code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


async def test_forget_leaves_no_byte_of_the_person_and_no_figure_changed(
    tmp_path: Path, start_server: StartServer
) -> None:
    config = privacy_config(tmp_path)
    srv = await start_server(config)
    await leave_a_trail(srv)
    cfg, fixed, database = tmp_path / "config.toml", tmp_path / "fixed.toml", config.database_path
    as_of = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    before = await report(cfg, as_of)
    assert before["inbound_contacts"] == 2 and before["leads"] == 1
    held = {trace for found in (await traces_in(database)).values() for trace in found}
    assert held >= {E164, PHONE_TYPED, "79161234567", EMAIL, "Zwanziger"}  # in the file to begin with

    asked = await run_cli("forget", PHONE_TYPED, "--config", str(cfg))
    assert asked.code == 1 and "Erase everything Leadline holds about contact #1?" in asked.output
    assert "Aborted" in asked.output
    assert srv.scalar("SELECT COUNT(*) FROM identifiers WHERE value = ?", [E164]) == 1

    done = await run_cli("forget", PHONE_TYPED, "--config", str(cfg), "--yes")
    assert done.code == 0, done.output
    assert "Erased contact #1" in done.output and "write-ahead log is truncated" in done.output
    assert await traces_in(database) == {database.name: [], f"{database.name}-wal": []}
    assert await report(cfg, as_of) == before
    [erasure] = srv.rows("SELECT origin, reason, contact_id, kinds FROM erasures")
    assert erasure == {"origin": "cli", "reason": "request", "contact_id": 1, "kinds": '["email", "phone"]'}
    assert srv.scalar("SELECT COUNT(*) FROM touches WHERE contact_id = 1") == 2  # still counted

    # The form the site refused named the person: once its field map is fixed, a replay would make
    # them a contact again, but the erased row is no longer a request to replay.
    replayed = await run_cli("replay", "--config", str(fixed))
    assert replayed.code == 0 and "Nothing to replay" in replayed.output, replayed.output
    assert await traces_in(database) == {database.name: [], f"{database.name}-wal": []}
    assert await report(cfg, as_of) == before
    found = await run_cli("contacts", E164, "--config", str(cfg))
    assert found.code == 1 and "No contact matches" in found.output

    again = await run_cli("forget", E164, "--config", str(cfg), "--yes")
    assert again.code == 1 and "Nobody to erase: no contact has this phone number or email" in again.output


async def test_a_providers_retry_of_a_form_is_shown_and_erased_with_the_person(
    tmp_path: Path, start_server: StartServer
) -> None:
    """A retry makes no touch but keeps a raw request of its own, which names the person as the
    first did (here with the number spelled as no identifier of theirs has it)."""
    config = privacy_config(tmp_path)
    srv = await start_server(config)
    await leave_a_trail(srv)
    spelled, words = "8 (916) 123 45 67", "Still waiting for the kitchen quote"
    for _ in range(2):  # the site's form plug-in sends it again after a timeout
        form = {"name": NAME, "phone": spelled, "message": words}
        async with srv.session.post(f"{srv.url}/hooks/form?token=form-token", json=form) as resp:
            assert resp.status == 200, await resp.text()
    retry = srv.scalar("SELECT MAX(id) FROM journal")
    assert srv.scalar("SELECT touches_created FROM journal WHERE id = ?", [retry]) == 0
    cfg = str(tmp_path / "config.toml")

    out = tmp_path / "subject.json"
    shown = await run_cli("subject-export", E164, "--config", cfg, "--output", str(out))
    assert shown.code == 0, shown.output
    assert {retry - 1, retry} <= {r["id"] for r in json.loads(out.read_text(encoding="utf-8"))["requests"]}

    done = await run_cli("forget", E164, "--config", cfg, "--yes")
    assert done.code == 0, done.output
    assert srv.scalar("SELECT redacted FROM journal WHERE id = ?", [retry]) == "erased"
    database = config.database_path
    assert await traces_in(database, [*TRACES, spelled, words]) == {
        database.name: [],
        f"{database.name}-wal": [],
    }


async def test_a_mail_that_names_the_person_only_in_a_base64_or_quoted_printable_body_is_erased(
    tmp_path: Path, start_server: StartServer
) -> None:
    """Mail clients send Cyrillic text base64 (or quoted-printable, its lines broken with ``=``):
    the bytes stored hold no number, though capture reads one. A mail that failed to store was left
    as it was by ``forget``, and the next replay (or start) made the erased person a contact again."""
    smtp = {
        "name": "mx",
        "provider": "smtp",
        "host": "127.0.0.1",
        "port": free_port(),
        "addresses": ["leads@mx.example.com"],
    }
    sendgrid = {"name": "sendgrid", "provider": "sendgrid", "token": "sg-token"}
    config = month_config(tmp_path, sources=[*BASE["sources"], smtp, sendgrid])
    srv = await start_server(config)
    # Known by their number alone, from the site's form.
    async with srv.session.post(
        f"{srv.url}/hooks/form?token=form-token", json={"phone": "+7 495 000-00-22"}
    ) as resp:
        assert resp.status == 200, await resp.text()
    db = srv.db()
    db.execute(
        "CREATE TRIGGER no_mail BEFORE INSERT ON touches WHEN NEW.channel = 'email'"
        " BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
    )
    db.close()
    # Their mail, through the SMTP server (the sample's text is base64) and through SendGrid's raw
    # MIME (quoted-printable), while touches cannot be written: both are kept as failed.
    assert await send(srv, sample("smtp_plain_base64_cyrillic.eml").body) == {}
    quoted_printable = (
        b"From: Svetlana <svetlana@example.com>\r\nTo: leads@example.com\r\nSubject: Call back\r\n"
        b"Message-ID: <sg-qp-1@example.com>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"=D0=9F=D0=B5=D1=80=D0=B5=D0=B7=D0=B2=D0=BE=D0=BD=D0=B8=D1=82=D0=B5: +7 495 0=\r\n00-00-22\r\n"
    )
    body, content_type = build_multipart(
        [
            ("email", quoted_printable),
            ("envelope", '{"to": ["leads@example.com"], "from": "svetlana@example.com"}'),
        ]
    )
    async with srv.session.post(
        f"{srv.url}/hooks/sendgrid?token=sg-token", data=body, headers={"Content-Type": content_type}
    ) as resp:
        assert resp.status == 200, await resp.text()
    db = srv.db()
    db.execute("DROP TRIGGER no_mail")
    db.close()
    mails = "SELECT status, http_status FROM journal WHERE source IN ('mx', 'sendgrid') ORDER BY id"
    assert srv.rows(mails) == [{"status": "failed", "http_status": None}] * 2
    cfg = str(tmp_path / "config.toml")

    done = await run_cli("forget", "+74950000022", "--config", cfg, "--yes")
    assert done.code == 0, done.output
    assert srv.rows(mails) == [{"status": "rejected", "http_status": 410}] * 2

    replayed = await run_cli("replay", "--config", cfg)
    assert "Nothing to replay" in replayed.output, replayed.output
    assert srv.scalar("SELECT COUNT(*) FROM identifiers") == 0
    found = await run_cli("contacts", "4950000022", "--config", cfg)
    assert found.code == 1 and "No contact matches" in found.output


async def test_forget_takes_their_address_from_a_touch_that_went_to_the_person_kept_apart_from_them(
    tmp_path: Path, start_server: StartServer
) -> None:
    """After an undone merge a touch naming both people is the phone owner's, and its address the
    other's: erasing her takes her address from his touch and leaves the rest of it his."""
    config = privacy_config(tmp_path)
    srv = await start_server(config)
    forms = [
        {"name": "Karl Other", "phone": OTHER_PHONE, "message": "phone only"},
        {"name": NAME, "email": EMAIL, "message": "mail only"},
        {"name": "Karl Other", "phone": OTHER_PHONE, "email": EMAIL, "message": "both"},
    ]
    for form in forms:
        async with srv.session.post(f"{srv.url}/hooks/form?token=form-token", json=form) as resp:
            assert resp.status == 200, await resp.text()
    db = srv.db()
    try:
        with db.atomic():
            undo_merge(db, srv.scalar("SELECT id FROM merges"), at=datetime.now(UTC))
    finally:
        db.close()
    both = srv.scalar("SELECT id FROM touches WHERE message = 'both'")
    karl = srv.scalar("SELECT contact_id FROM identifiers WHERE kind = 'phone'")
    assert srv.rows("SELECT contact_id, email_raw FROM touches WHERE id = ?", [both]) == [
        {"contact_id": karl, "email_raw": EMAIL}
    ]
    cfg = str(tmp_path / "config.toml")

    out = tmp_path / "subject.json"
    shown = await run_cli("subject-export", EMAIL, "--config", cfg, "--output", str(out))
    assert shown.code == 0, shown.output
    [named] = json.loads(out.read_text(encoding="utf-8"))["named_in_touches"]
    assert (named["id"], named["email_raw"], named["payload"]) == (both, EMAIL, {"email": EMAIL})
    assert "phone_raw" not in named and "Karl" not in json.dumps(named)

    done = await run_cli("forget", EMAIL, "--config", cfg, "--yes")
    assert done.code == 0, done.output
    [his] = srv.rows(
        "SELECT contact_id, phone_raw, email_raw, name, message, payload FROM touches WHERE id = ?", [both]
    )
    assert his == {
        "contact_id": karl,
        "phone_raw": OTHER_PHONE,
        "email_raw": None,
        "name": "Karl Other",
        "message": "both",
        "payload": json.dumps(
            {"name": "Karl Other", "phone": OTHER_PHONE, "message": "both"}, ensure_ascii=False
        ),
    }
    database = config.database_path
    traces = [EMAIL, EMAIL.lower(), "Ottilie", "Zwanziger"]
    assert await traces_in(database, traces) == {database.name: [], f"{database.name}-wal": []}


async def test_forget_erases_the_reason_typed_when_the_lead_went_back_to_marketing(
    tmp_path: Path, start_server: StartServer
) -> None:
    """The reason is staff's free text about the person, kept in the lead and in its history."""
    config = privacy_config(tmp_path)
    srv = await start_server(config)
    await leave_a_trail(srv)
    lead = srv.scalar("SELECT id FROM leads")
    db = srv.db()
    try:
        with db.atomic():
            at = datetime.now(UTC)
            change_lead(db, lead, at=at, stage="qualified")
            change_lead(db, lead, at=at, stage="returned", reason=f"{NAME} wants a call after the holidays")
    finally:
        db.close()
    assert NAME in str(srv.rows("SELECT returned_reason FROM leads"))

    done = await run_cli("forget", E164, "--config", str(tmp_path / "config.toml"), "--yes")
    assert done.code == 0, done.output
    assert srv.rows("SELECT stage, returned_reason FROM leads") == [
        {"stage": "returned", "returned_reason": None}
    ]
    changes = srv.rows("SELECT old, new FROM lead_changes WHERE field = 'returned_reason'")
    assert changes == [{"old": None, "new": None}]
    assert await traces_in(config.database_path) == {
        config.database_path.name: [],
        f"{config.database_path.name}-wal": [],
    }


async def test_people_erased_before_the_upgrade_lose_the_reason_typed_about_them(
    tmp_path: Path, start_server: StartServer
) -> None:
    """Older releases' forget left the reason a lead went back to marketing; m020 takes it from
    people already erased, in the lead, its history and a CRM's webhook, and from nobody else."""
    config = privacy_config(tmp_path)
    srv = await start_server(config)
    await leave_a_trail(srv)
    lead = srv.scalar("SELECT id FROM leads")
    contact = srv.scalar("SELECT contact_id FROM leads")
    done = await run_cli("forget", E164, "--config", str(tmp_path / "config.toml"), "--yes")
    assert done.code == 0, done.output
    await srv.stop()
    reason = f"{NAME} wants a call after the holidays"
    payload = {
        "type": "lead.changed",
        "data": {"contact_id": contact, "field": "returned_reason", "old": None, "new": reason},
    }
    db = open_database(config.database_path)
    try:
        with db.atomic():  # what an older release's forget left behind
            at = datetime.now(UTC).isoformat()
            db.execute(
                "UPDATE leads SET stage = 'returned', returned_reason = ? WHERE id = ?", [reason, lead]
            )
            db.execute(
                "INSERT INTO lead_changes (lead_id, at, field, old, new) VALUES (?, ?, 'returned_reason', NULL, ?)",
                [lead, at, reason],
            )
            db.execute(
                "INSERT INTO webhook_deliveries (webhook_id, endpoint, event_type, payload, next_attempt_at,"
                " created_at) VALUES ('msg_1', 'https://crm.example.com/hook', 'lead.changed', ?, ?, ?)",
                [json.dumps(payload), at, at],
            )
            db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm020_erased_returned_reasons'")
        migrate(db)
        assert db.execute("SELECT returned_reason FROM leads").fetchall() == [(None,)]
        assert db.execute("SELECT old, new FROM lead_changes WHERE field = 'returned_reason'").fetchall() == [
            (None, None)
        ]
        sent = json.loads(db.execute("SELECT payload FROM webhook_deliveries").fetchone()[0])
        assert sent["data"] == {"contact_id": contact, "field": "returned_reason", "old": None, "new": None}
    finally:
        db.close()


async def test_forget_after_an_undone_merge_takes_her_words_from_the_crm_webhook_queued_while_merged(
    tmp_path: Path, start_server: StartServer
) -> None:
    """Her lead's need, edited while she was merged into him, was queued for the CRM under his
    contact id: after the undo, forget redacted no webhook and subject-export did not show it, and
    the CRM was sent her words once it was back."""
    config = privacy_config(tmp_path)
    srv = await start_server(config)
    crm = [WebhookConfig.model_validate({"url": "http://127.0.0.1:9/crm", "secret": "whsec_" + "A" * 44})]
    db = srv.db()
    try:
        with db.atomic():
            collect(db, crm, datetime.now(UTC))  # marks where the CRM's webhook starts
    finally:
        db.close()
    async with srv.session.post(
        f"{srv.url}/hooks/form?token=form-token", json={"name": "Karl Other", "phone": OTHER_PHONE}
    ) as resp:
        assert resp.status == 200, await resp.text()
    registration = {"email": EMAIL, "disposition": "lead", "temperature": "warm", "need": "a kitchen"}
    async with srv.session.post(f"{srv.url}/api/registrations", json=registration, headers=API_AUTH) as resp:
        assert resp.status == 201, await resp.text()
    both = {"name": "Karl Other", "phone": OTHER_PHONE, "email": EMAIL}
    async with srv.session.post(f"{srv.url}/hooks/form?token=form-token", json=both) as resp:
        assert resp.status == 200, await resp.text()
    lead = srv.scalar("SELECT id FROM leads")
    db = srv.db()
    try:
        with db.atomic():
            at = datetime.now(UTC)
            change_lead(db, lead, at=at, need=f"A kitchen for {NAME}, write to {EMAIL}")
            collect(db, crm, at)  # the CRM is down: the events wait in the queue
            undo_merge(db, srv.scalar("SELECT id FROM merges"), at=at)
    finally:
        db.close()
    queued = srv.rows("SELECT id, payload FROM webhook_deliveries WHERE payload LIKE '%Zwanziger%'")
    assert len(queued) == 1
    cfg = str(tmp_path / "config.toml")

    out = tmp_path / "subject.json"
    shown = await run_cli("subject-export", EMAIL, "--config", cfg, "--output", str(out))
    assert shown.code == 0, shown.output
    webhooks = json.loads(out.read_text(encoding="utf-8"))["webhooks"]
    assert queued[0]["id"] in [w["id"] for w in webhooks]
    assert {w["payload"]["data"]["lead_id"] for w in webhooks} == {lead}  # nothing of Karl's

    done = await run_cli("forget", EMAIL, "--config", cfg, "--yes")
    assert done.code == 0, done.output
    [payload] = [
        json.loads(p)
        for p in srv.rows("SELECT payload FROM webhook_deliveries WHERE id = ?", [queued[0]["id"]])[
            0
        ].values()
    ]
    assert (payload["data"]["field"], payload["data"]["old"], payload["data"]["new"]) == ("need", None, None)
    database = config.database_path
    traces = [EMAIL, EMAIL.lower(), "Ottilie", "Zwanziger"]
    assert await traces_in(database, traces) == {database.name: [], f"{database.name}-wal": []}
