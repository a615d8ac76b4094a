"""The capture core as a provider meets it: signatures, dedup, bad input, replay."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from capture.pipeline import FINISHED_ELSEWHERE, replay
from leadline.app import build_capture
from storage import backup
from storage.db import Store, WriteLock
from tests.cli import run_cli
from tests.conftest import BASE, build_config
from tests.samples import flip_byte, sample

FORM = sample("generic_html_form_post.txt")
STD = sample("standard_webhooks_contact_created.json")
STD_SENT_AT = datetime.fromtimestamp(int(STD.headers["webhook-timestamp"]), UTC)
SPELLINGS = ["8 (916) 123-45-67", "+7 916 1234567", "79161234567", "8-916-123-45-67", "+7 (916) 123-45-67"]


async def post_form(srv, data, token="form-token", **kwargs):
    return await srv.session.post(f"{srv.url}/hooks/form", params={"token": token}, data=data, **kwargs)


async def test_standard_webhooks_sample_accepted_and_tampered_body_refused(start_server):
    srv = await start_server(clock=lambda: STD_SENT_AT)
    resp = await srv.session.post(f"{srv.url}{STD.path}", data=STD.body, headers=STD.headers)
    assert resp.status == 200
    [touch] = srv.rows("SELECT external_id, name FROM touches")
    assert touch == {"external_id": STD.expected["external_id"], "name": "Test Contact"}

    resp = await srv.session.post(f"{srv.url}{STD.path}", data=flip_byte(STD.body), headers=STD.headers)
    assert resp.status == 401
    assert "signature" in await resp.text()
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert srv.rows("SELECT status, http_status FROM journal ORDER BY id") == [
        {"status": "processed", "http_status": 200},
        {"status": "rejected", "http_status": 401},
    ]


async def test_standard_webhooks_outside_the_time_window_refused(start_server):
    srv = await start_server()  # today's clock: the sample's timestamp is years old
    resp = await srv.session.post(f"{srv.url}{STD.path}", data=STD.body, headers=STD.headers)
    assert resp.status == 401
    assert "5-minute window" in await resp.text()
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_generic_form_tampered_token_refused(start_server):
    srv = await start_server()
    resp = await post_form(srv, FORM.body, token="form-tokeN", headers=FORM.headers)
    assert resp.status == 401
    resp = await srv.session.post(
        f"{srv.url}/hooks/form", data=FORM.body, headers={**FORM.headers, "X-Leadline-Token": "form-token"}
    )
    assert resp.status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    [headers] = srv.rows("SELECT headers FROM journal WHERE status = 'processed'")
    assert "form-token" not in headers["headers"]


async def test_five_spellings_and_mixed_case_email_are_one_contact(start_server):
    srv = await start_server()
    for i, spelling in enumerate(SPELLINGS):
        resp = await post_form(srv, {"phone": spelling, "name": "Ivan", "submission_id": str(i)})
        assert resp.status == 200, await resp.text()
    for i, address in enumerate([" Ivan@Example.COM", "ivan@example.com "]):
        resp = await post_form(srv, {"email": address, "phone": SPELLINGS[i], "submission_id": f"e{i}"})
        assert resp.status == 200
    assert srv.scalar("SELECT COUNT(*) FROM contacts") == 1
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 7
    assert srv.rows("SELECT kind, value FROM identifiers ORDER BY kind") == [
        {"kind": "email", "value": "ivan@example.com"},
        {"kind": "phone", "value": "+79161234567"},
    ]


async def test_phone_and_email_bridging_two_contacts_merges_them_into_the_older(start_server):
    srv = await start_server()
    await post_form(srv, {"phone": "+7 916 111-22-33", "name": "Olga", "submission_id": "1"})
    await post_form(srv, {"email": "olga@example.com", "submission_id": "2"})
    assert srv.scalar("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL") == 2
    resp = await post_form(srv, {"phone": "89161112233", "email": "OLGA@example.com", "submission_id": "3"})
    assert resp.status == 200
    [survivor] = srv.rows("SELECT id, name FROM contacts WHERE merged_into IS NULL")
    assert survivor == {"id": 1, "name": "Olga"}
    assert srv.scalar("SELECT COUNT(DISTINCT contact_id) FROM touches") == 1
    assert srv.scalar("SELECT COUNT(*) FROM touches WHERE contact_id = 1") == 3
    [merge] = srv.rows("SELECT survivor_id, merged_id FROM merges")
    assert merge == {"survivor_id": 1, "merged_id": 2}


async def test_invalid_phone_kept_flagged_and_never_matched(start_server):
    srv = await start_server()
    await post_form(srv, {"phone": "12-34", "email": "a@example.com", "submission_id": "1"})
    await post_form(srv, {"phone": "12-34", "email": "b@example.com", "submission_id": "2"})
    assert srv.scalar("SELECT COUNT(*) FROM contacts") == 2
    assert srv.scalar("SELECT COUNT(*) FROM identifiers WHERE kind = 'phone' AND valid = 0") == 2


async def test_retry_of_the_same_submission_is_a_no_op(start_server):
    srv = await start_server()
    for _ in range(3):
        resp = await post_form(srv, FORM.body, headers=FORM.headers)
        assert resp.status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert srv.scalar("SELECT COUNT(*) FROM journal") == 3
    assert srv.rows("SELECT touches_created FROM journal ORDER BY id") == [
        {"touches_created": 1},
        {"touches_created": 0},
        {"touches_created": 0},
    ]


async def test_each_bad_input_gets_its_status_and_reason_and_is_journalled(start_server, tmp_path):
    config = build_config(tmp_path, http={"public_url": "https://hooks.example.com", "max_body_bytes": 1000})
    srv = await start_server(config)
    cases = [
        (srv.session.post(f"{srv.url}/hooks/nope", data=b"x"), 404, "no source named 'nope'"),
        (srv.session.get(f"{srv.url}/hooks/form?token=form-token"), 405, "method GET not allowed"),
        (post_form(srv, b"phone=1" + b"0" * 2000), 413, "over the limit of 1000"),
        (post_form(srv, FORM.body, token="wrong"), 401, "wrong token"),
        (post_form(srv, {"comment": "no contact at all"}), 400, "no phone or email"),
        (
            srv.session.post(
                f"{srv.url}/hooks/form?token=form-token",
                data=b"{not json",
                headers={"Content-Type": "application/json"},
            ),
            400,
            "not valid JSON",
        ),
        (
            srv.session.post(
                f"{srv.url}/hooks/form?token=form-token",
                data=b"phone=\xff\xfe",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            400,
            "not valid UTF-8",
        ),
    ]
    for request, status, reason in cases:
        resp = await request
        assert resp.status == status
        assert reason in await resp.text()
    rows = srv.rows("SELECT status, http_status, reason FROM journal ORDER BY id")
    assert [(r["status"], r["http_status"]) for r in rows] == [("rejected", s) for _, s, _ in cases]
    assert all(r["reason"] for r in rows)
    resp = await post_form(srv, FORM.body, headers=FORM.headers)
    assert resp.status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1


async def test_replay_turns_a_fixed_rejected_row_into_a_touch_once(start_server, tmp_path):
    srv = await start_server()
    body = {"telefon_klienta": "+7 916 555-44-33", "submission_id": "77"}
    resp = await post_form(srv, body)
    assert resp.status == 400
    await srv.stop()
    # The owner maps the form's odd field name, then replays.
    fixed = build_config(
        tmp_path,
        sources=[
            {
                "name": "form",
                "provider": "generic_form",
                "token": "form-token",
                "field_map": {"phone": ["telefon_klienta"]},
            },
        ],
    )
    config_file = write_config(tmp_path, fixed)
    dry = await run_cli("replay", "--config", str(config_file), "--dry-run")
    assert dry.code == 0, dry.output
    assert "1 of 1 row(s) would be processed" in dry.output
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    first = await run_cli("replay", "--config", str(config_file), "--source", "form")
    assert "#1: processed - 1 new touch(es)" in first.output
    second = await run_cli("replay", "--config", str(config_file))
    assert "Nothing to replay" in second.output
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert srv.rows("SELECT status, touches_created FROM journal") == [
        {"status": "processed", "touches_created": 1}
    ]
    found = await run_cli("contacts", "--config", str(config_file), "8 916 555 44 33")
    assert "+79165554433" in found.output and "form" in found.output


async def test_a_dry_run_says_what_the_replay_then_does_for_a_retried_submission(start_server, tmp_path):
    """Tilda sent one submission three times (same ``tranid``) while its phone field was unknown: the
    replay makes one touch of the three, but the dry run, undoing each row before the next, said each
    would make one, as it did for every later message of a call or a conversation."""
    tilda = {"name": "tilda", "provider": "tilda", "token": "tilda-token"}
    srv = await start_server(build_config(tmp_path, sources=[*BASE["sources"], tilda]))
    submission = {
        "Name": "Ivan",
        "telefon_klienta": "+7 916 111-22-33",
        "tranid": "1234567:1",
        "formid": "f1",
    }
    for _ in range(3):
        resp = await srv.session.post(f"{srv.url}/hooks/tilda?token=tilda-token", data=submission)
        assert resp.status == 400
    assert (await post_form(srv, {"telefon_klienta": "+7 916 444-55-66"})).status == 400
    await srv.stop()
    mapped = {"field_map": {"phone": ["telefon_klienta"]}}
    fixed = build_config(tmp_path, sources=[{**s, **mapped} for s in [*BASE["sources"][:1], tilda]])
    config_file = write_config(tmp_path, fixed)
    said = [
        "#1: processed - 1 new touch(es) from 1 event(s)",
        "#2: processed - 0 new touch(es) from 1 event(s)",
        "#3: processed - 0 new touch(es) from 1 event(s)",
        "#4: processed - 1 new touch(es) from 1 event(s)",
    ]

    dry = await run_cli("replay", "--config", str(config_file), "--dry-run")
    assert dry.output.splitlines() == [*said, "4 of 4 row(s) would be processed."]
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert srv.scalar("SELECT COUNT(*) FROM journal WHERE status = 'rejected' AND http_status = 400") == 4

    done = await run_cli("replay", "--config", str(config_file))
    assert done.output.splitlines() == [*said, "4 of 4 row(s) were processed."]
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 2


async def test_a_dry_run_leaves_the_write_lock_to_the_webhooks_and_no_copy_behind(start_server, tmp_path):
    """On 20,000 replayable rows the dry run was one writer job, rolled back at its end, that held the
    write lock all along: every webhook of the running serve waited (p99 17 s) and /healthz said 503."""
    srv = await start_server()
    for n in range(3):
        resp = await post_form(srv, {"telefon_klienta": f"+7 916 555-44-4{n}", "submission_id": f"d{n}"})
        assert resp.status == 400
    await srv.stop()
    fixed = build_config(
        tmp_path,
        sources=[{**BASE["sources"][0], "field_map": {"phone": ["telefon_klienta"]}}],
    )
    store = Store.open(fixed.database_path)
    lock = WriteLock(fixed.database_path)
    try:
        capture = await build_capture(fixed, store)
        with lock:  # a webhook's writer, or another process's, has the database all along
            said = await asyncio.wait_for(replay(capture, dry_run=True), timeout=90)
    finally:
        lock.close()
        await store.close()
    assert [(o.journal_id, o.status, o.touches_created) for o in said] == [
        (1, "processed", 1),
        (2, "processed", 1),
        (3, "processed", 1),
    ]
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    assert srv.scalar("SELECT COUNT(*) FROM journal WHERE status = 'rejected' AND http_status = 400") == 3
    assert sorted(p.name for p in tmp_path.iterdir() if "snapshot" in p.name) == []


async def test_a_dry_run_cancelled_mid_copy_leaves_no_copy_behind(start_server, tmp_path, monkeypatch):
    """Ctrl+C (or a SIGTERM) during the copy cancelled the await, not the copying thread: the
    folder was removed under it (with its lock file, so no later run removed what SQLite made in it
    afterwards), and a copy of everyone's data could stay beside the database for good."""
    srv = await start_server()
    for n in range(3):
        resp = await post_form(srv, {"telefon_klienta": f"+7 916 555-44-5{n}", "submission_id": f"c{n}"})
        assert resp.status == 400
    await srv.stop()
    mid_copy, go_on = threading.Event(), threading.Event()
    folder_when_the_copy_went_on: list[bool] = []

    def pause_once(seconds: float) -> None:  # the copy's pause between two steps
        if not mid_copy.is_set():
            mid_copy.set()
            go_on.wait()
            folder_when_the_copy_went_on.append(any(".snapshot-" in p.name for p in tmp_path.iterdir()))

    monkeypatch.setattr(backup, "time", SimpleNamespace(sleep=pause_once))
    removing, remove = threading.Event(), backup.Snapshot.remove

    def remove_told(snapshot: backup.Snapshot) -> None:
        removing.set()
        remove(snapshot)

    monkeypatch.setattr(backup.Snapshot, "remove", remove_told)
    store = Store.open(srv.config.database_path)
    try:
        capture = await build_capture(srv.config, store)
        dry_run = asyncio.create_task(replay(capture, dry_run=True))
        await asyncio.to_thread(mid_copy.wait)
        dry_run.cancel()  # what Ctrl+C does to `leadline replay --dry-run`
        await asyncio.to_thread(removing.wait)  # the run is throwing its copy away, the copy paused
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await dry_run
    finally:
        await store.close()
    assert folder_when_the_copy_went_on == [True]  # removed only once the copy had ended
    assert sorted(p.name for p in tmp_path.iterdir() if "snapshot" in p.name) == []
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_two_replays_at_once_leave_each_row_as_the_first_one_finished_it(
    start_server, tmp_path, monkeypatch
):
    """Two ``leadline replay`` at once (two admins; or serve's start-up replay and the command after
    a restart) list the same rows: the one whose turn came second ran them again, found each touch
    there and wrote 0 touches over every row (``journal show``: 0 new touches, a touch pointing at it)."""
    srv = await start_server()
    for n in range(3):
        resp = await post_form(srv, {"telefon_klienta": f"+7 916 555-44-3{n}", "submission_id": f"r{n}"})
        assert resp.status == 400
    await srv.stop()
    fixed = build_config(
        tmp_path,
        sources=[{**BASE["sources"][0], "field_map": {"phone": ["telefon_klienta"]}}],
    )
    # Each its own store, as two processes have.
    one, other = Store.open(fixed.database_path), Store.open(fixed.database_path)
    try:
        first_capture, second_capture = await build_capture(fixed, one), await build_capture(fixed, other)
        listed, finished = asyncio.Event(), asyncio.Event()
        read = other.read

        async def list_then_wait(fn):
            """The second lists the rows; the first then runs them all before the second's turn."""
            found = await read(fn)
            listed.set()
            await finished.wait()
            return found

        monkeypatch.setattr(other, "read", list_then_wait)
        late = asyncio.create_task(replay(second_capture))
        await listed.wait()
        first = await replay(first_capture)
        finished.set()
        second = await late
    finally:
        await one.close()
        await other.close()
    assert [(o.journal_id, o.status, o.touches_created) for o in first] == [
        (1, "processed", 1),
        (2, "processed", 1),
        (3, "processed", 1),
    ]
    assert [(o.journal_id, o.status) for o in second] == [(jid, FINISHED_ELSEWHERE) for jid in (1, 2, 3)]
    assert (
        srv.rows("SELECT status, touches_created FROM journal ORDER BY id")
        == [{"status": "processed", "touches_created": 1}] * 3
    )
    assert srv.scalar("SELECT COUNT(*) FROM touches WHERE journal_id IN (1, 2, 3)") == 3


async def test_forged_rows_are_not_replayed(start_server, tmp_path):
    srv = await start_server()
    await post_form(srv, FORM.body, token="forged")
    result = await run_cli("replay", "--config", str(write_config(tmp_path, srv.config)))
    assert "Nothing to replay" in result.output
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0


async def test_healthz_and_metrics(start_server):
    srv = await start_server()
    resp = await srv.session.get(f"{srv.url}/healthz")
    assert (resp.status, await resp.json()) == (200, {"ok": True})
    await post_form(srv, FORM.body, headers=FORM.headers)
    await post_form(srv, FORM.body, token="bad")
    text = await (await srv.session.get(f"{srv.url}/metrics")).text()
    assert 'leadline_requests_total{source="form",status="200"} 1.0' in text
    assert 'leadline_requests_total{source="form",status="401"} 1.0' in text
    assert 'leadline_touches_created_total{channel="form"} 1.0' in text
    assert "leadline_journal_waiting 0.0" in text


async def test_healthz_fails_when_the_database_is_not_writable(start_server):
    srv = await start_server()
    db = srv.db()
    db.execute(
        "CREATE TRIGGER no_writes BEFORE INSERT ON meta BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    db.execute("DELETE FROM meta")
    db.close()
    resp = await srv.session.get(f"{srv.url}/healthz")
    assert resp.status == 503
    assert "disk says no" in (await resp.json())["error"]


def write_config(tmp_path: Path, config) -> Path:
    """The config as TOML on disk, for CLI commands run against the test's database."""
    import tomllib  # noqa: F401  (the file must be valid TOML; tomli_w is not needed for this shape)

    lines = [f'[leadline]\ndatabase = "{config.database_path}"\nregion = "RU"\n']
    for s in config.sources:
        lines.append(f'[[sources]]\nname = "{s.name}"\nprovider = "{s.provider}"\n')
        for key in ("token", "secret"):
            if getattr(s, key) is not None:
                lines.append(f'{key} = "{s.secret_value(key)}"\n')
        for target, names in s.field_map.items():
            lines.append(f"[sources.field_map]\n{target} = {names!r}\n".replace("'", '"'))
    path = tmp_path / "config.toml"
    path.write_text("".join(lines))
    return path
