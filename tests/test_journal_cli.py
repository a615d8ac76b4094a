"""``leadline journal``: a new user pastes a URL into a provider, then checks what arrived."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.capture.chat_payloads import VK_MESSAGE, VK_SECRET, post_vk, vk_body
from tests.capture.form_checks import config_with
from tests.capture.test_core_http import write_config
from tests.capture.test_mango import KEY, MANGO_SOURCE, post_mango, post_sample, signed_mango, summary
from tests.cli import ROOT, run_cli
from tests.conftest import BASE, Running, StartServer
from tests.numbers.month import month_config
from tests.samples import sample

#: 22:59:30 on the office clock in Moscow.
AT = datetime(2026, 11, 23, 19, 59, 30, tzinfo=UTC)
PING = sample("tilda_test_ping.txt")
MANGO_MISSED = sample("mango_events_summary_missed.txt")
TILDA = {"name": PING.source_name, "provider": "tilda", "token": "tilda-token-0001"}


async def post_form(srv: Running, data: dict[str, str] | bytes, token: str = "form-token") -> int:
    resp = await srv.session.post(f"{srv.url}/hooks/form", params={"token": token}, data=data)
    return resp.status


async def arrivals(start_server: StartServer, tmp_path: Path) -> tuple[Running, Path]:
    """A form, a wrong token, Tilda's test ping, a form without a phone and a row that fails."""
    srv = await start_server(config_with(tmp_path, TILDA), clock=lambda: AT)
    assert await post_form(srv, {"phone": "+7 916 123-45-67", "name": "Ivan"}) == 200
    assert await post_form(srv, {"phone": "+7 916 123-45-67"}, token="wrong-token") == 401
    resp = await srv.session.post(
        f"{srv.url}{PING.path}?token=tilda-token-0001", data=PING.body, headers=PING.headers
    )
    assert resp.status == 200
    assert await post_form(srv, {"comment": "call me"}) == 400
    db = srv.db()
    db.execute(
        "CREATE TRIGGER no_boom BEFORE INSERT ON touches WHEN NEW.name = 'Boom'"
        " BEGIN SELECT RAISE(ABORT, 'touches named Boom are refused'); END"
    )
    db.close()
    assert await post_form(srv, {"phone": "+7 916 765-43-21", "name": "Boom"}) == 200
    return srv, write_config(tmp_path, srv.config)


async def test_the_journal_lists_every_request_with_what_it_became_in_office_time(
    start_server: StartServer, tmp_path: Path
):
    _, config = await arrivals(start_server, tmp_path)
    result = await run_cli("journal", "--config", str(config))
    assert result.code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 5, result.output
    assert all("2026-11-23 22:59:30 MSK" in line for line in lines), result.output
    form, forged, ping, unreadable, failed = lines
    assert form.startswith("#1 ") and "form" in form and "processed 200 1 touch" in form
    assert "rejected 401" in forged and "0 touches" in forged and "wrong token" in forged
    assert "tilda" in ping and "processed 200" in ping and "test ping" in ping
    assert "rejected 400" in unreadable and "no phone or email" in unreadable
    assert "failed" in failed and "touches named Boom are refused" in failed

    only_401 = await run_cli("journal", "--config", str(config), "--status", "401")
    assert only_401.output.splitlines() == [forged]
    only_tilda = await run_cli("journal", "--config", str(config), "--source", "tilda", "--json")
    [row] = [json.loads(line) for line in only_tilda.output.splitlines()]
    assert row["received_at"] == "2026-11-23T22:59:30+03:00"
    assert (row["source"], row["status"], row["note"], row["touches_created"]) == (
        "tilda",
        "processed",
        "test ping",
        0,
    )
    last_two = await run_cli("journal", "--config", str(config), "--limit", "2")
    assert [line for line in last_two.output.splitlines() if line.startswith("#")] == [unreadable, failed]
    assert "older requests match too" in last_two.output
    later = await run_cli("journal", "--config", str(config), "--since", "2026-11-23T23:00")
    assert "No journalled request matches." in later.output
    bad = await run_cli("journal", "--config", str(config), "--status", "lost")
    assert bad.code == 2 and "--status" in bad.output


async def test_journal_show_prints_one_request_with_its_secrets_redacted(
    start_server: StartServer, tmp_path: Path
):
    _, config = await arrivals(start_server, tmp_path)
    shown = await run_cli("journal", "show", "2", "--config", str(config))
    assert shown.code == 0, shown.output
    assert "Request #2, received 2026-11-23 22:59:30 MSK from 127.0.0.1" in shown.output
    assert "status:  rejected, answered 401: wrong token" in shown.output
    assert "/hooks/form?token=%5Bredacted%5D" in shown.output
    assert "phone=%2B7+916+123-45-67" in shown.output  # the body as it came
    assert "wrong-token" not in shown.output

    missing = await run_cli("journal", "show", "99", "--config", str(config))
    assert missing.code == 1 and "No journalled request #99." in missing.output

    # README: every command takes --config, here given to the group before its subcommand.
    before = await run_cli("journal", "--config", str(config), "show", "2")
    assert (before.code, before.output) == (0, shown.output)


async def test_journal_show_hides_a_provider_secret_sent_in_the_body_and_the_row_keeps_it(
    start_server: StartServer, tmp_path: Path
):
    """VK sends its secret in the JSON body, Mango its key as a form field: shown, both are hidden,
    the config's and a stale one alike; the journal keeps the bytes replay and signatures need."""
    vk = {"name": VK_MESSAGE.source_name, "provider": "vk", **VK_MESSAGE.secrets}
    srv = await start_server(month_config(tmp_path, sources=[*BASE["sources"], vk, MANGO_SOURCE]))
    assert (await post_vk(srv, VK_MESSAGE.body)).status == 200
    assert (await post_sample(srv, MANGO_MISSED)).status == 200
    stale_vk = vk_body("stale-1", AT, "Здравствуйте", secret="stale-vk-secret-0001")
    assert (await post_vk(srv, stale_vk)).status == 401
    stale_mango = signed_mango(
        summary("stale-1", "79160000013", start=0, answered=False), key="stale-key-0001"
    )
    assert (await post_mango(srv, "/events/summary", stale_mango)).status == 401
    # a config's secret where no field names it: someone pasted it into a site form
    form = {"phone": "+7 916 123-45-67", "comment": f"our VK key is {VK_SECRET}, right?"}
    assert (await post_form(srv, form)) == 200
    rows = srv.rows("SELECT id, body FROM journal ORDER BY id")
    secrets = [VK_SECRET, KEY, "stale-vk-secret-0001", "stale-key-0001", VK_SECRET]
    assert all(secret.encode() in bytes(row["body"]) for row, secret in zip(rows, secrets, strict=True))

    shown = []
    for row, secret in zip(rows, secrets, strict=True):
        result = await run_cli("journal", "show", str(row["id"]), "--config", str(tmp_path / "config.toml"))
        assert result.code == 0, result.output
        assert secret not in result.output
        shown.append(result.output)
    vk_shown, mango_shown, stale_vk_shown, stale_mango_shown, form_shown = shown
    assert "comment=our+VK+key+is+[redacted]%2C+right%3F" in form_shown
    assert '"secret":"[redacted]"}' in vk_shown  # compact as VK sends it
    assert '"secret": "[redacted]"}' in stale_vk_shown  # as tests/capture/chat_payloads.py writes it
    assert (
        "vpbx_api_key=[redacted]&sign=" in mango_shown
        and "vpbx_api_key=[redacted]&sign=" in stale_mango_shown
    )
    assert "%22call_direction%22%3A1" in mango_shown  # the rest of the body as it came


async def test_journal_show_never_prints_a_token_or_drives_the_terminal(
    start_server: StartServer, tmp_path: Path
):
    srv = await start_server()
    # A sender's escape sequence in the body (it would clear the screen), a bidi override in a header.
    hostile = b"phone=%2B79161234567&name=\x1b[2J\x1b]0;owned\x07Ivan"
    resp = await srv.session.post(
        f"{srv.url}/hooks/form?token=form-token",
        data=hostile,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Note": "abc\u202edef"},
    )
    assert resp.status == 200
    # A row as an older Leadline, or a backup restored from one, stored it: the token in the clear.
    db = srv.db()
    db.execute("UPDATE journal SET query_string = 'token=form-token&utm_source=vk' WHERE id = 1")
    db.close()
    shown = await run_cli("journal", "show", "1", "--config", str(write_config(tmp_path, srv.config)))
    assert shown.code == 0, shown.output
    assert "form-token" not in shown.output
    assert "utm_source=vk" in shown.output
    assert "\x1b" not in shown.output and "\x07" not in shown.output and "\u202e" not in shown.output
    assert "name=\\x1b[2J\\x1b]0;owned\\x07Ivan" in shown.output
    assert "X-Note: abc\\u202edef" in shown.output


async def test_journal_follow_prints_requests_as_they_arrive(start_server: StartServer, tmp_path: Path):
    srv = await start_server(clock=lambda: AT)
    assert await post_form(srv, {"phone": "+7 916 123-45-67"}) == 200
    config = write_config(tmp_path, srv.config)
    follow = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "leadline", "journal", "--follow", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert follow.stdout is not None
        first = (await asyncio.wait_for(follow.stdout.readline(), 60)).decode()
        assert first.startswith("#1 ") and "processed 200" in first
        assert await post_form(srv, {"phone": "+7 916 123-45-67"}, token="wrong-token") == 401
        second = (await asyncio.wait_for(follow.stdout.readline(), 60)).decode()
        assert second.startswith("#2 ") and "rejected 401" in second and "wrong token" in second
    finally:
        follow.terminate()
        await follow.wait()
