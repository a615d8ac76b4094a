"""`leadline demo`: a fresh database filled through the real provider parsers, then its numbers."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path

import aiohttp

from leadline.cli_base import EXIT_RUNTIME
from leadline.load import load_config
from storage.db import connect
from tests.cli import free_port, run_cli, run_cli_sync, start_serve
from tests.numbers.month import month_config
from tests.test_serve_start import CONFIG as SERVE_CONFIG


def test_demo_fills_a_database_through_the_real_parsers_and_prints_the_numbers(tmp_path: Path):
    month_config(tmp_path)
    config = tmp_path / "config.toml"
    target = tmp_path / "demo.db"
    result = run_cli_sync("demo", "--config", str(config), "--database", str(target), "--days", "4")
    assert result.code == 0, result.output
    assert " rejected)" in result.output and "(0 rejected)" in result.output
    assert "Leadline report" in result.output and "By campaign" in result.output
    assert "Yesterday's digest, as the owner gets it:" in result.output

    db = connect(target)
    try:
        by_source = dict(
            db.execute("SELECT source, COUNT(*) FROM journal WHERE status = 'processed' GROUP BY source")
        )
        assert set(by_source) == {"mango", "zadarma", "tilda", "mail"}
        assert db.execute("SELECT COUNT(*) FROM journal WHERE status != 'processed'").fetchone()[0] == 0
        calls = db.execute(
            "SELECT SUM(hidden_caller), SUM(answered = 0), SUM(called_back_at IS NOT NULL), SUM(direction = 'out')"
            " FROM touches WHERE channel = 'call'"
        ).fetchone()
        assert all(n > 0 for n in calls), calls  # hidden numbers, missed calls, call-backs, outbound calls
        repeats = db.execute(
            "SELECT COUNT(*) FROM (SELECT contact_id FROM touches WHERE direction = 'in' AND contact_id IS NOT NULL"
            " GROUP BY contact_id HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        assert repeats > 0
        assert db.execute("SELECT COUNT(*) FROM registrations").fetchone()[0] > 0
        assert db.execute("SELECT COUNT(*) FROM campaign_costs WHERE origin = 'config'").fetchone()[0] == 7
    finally:
        db.close()
    charts = list(tmp_path.glob("demo-digest-*.png"))
    assert len(charts) == 1 and charts[0].read_bytes().startswith(b"\x89PNG")

    # The demo's own config lets every other command read it.
    report = run_cli_sync("report", "--config", str(tmp_path / "demo.toml"), "--period", "week", "--json")
    assert report.code == 0, report.output
    assert json.loads(report.output)["filters"] == {"channel": None, "campaign": None, "staff_id": None}

    again = run_cli_sync("demo", "--config", str(config), "--database", str(target))
    assert again.code == 2 and "pass --force to replace it" in again.output


async def test_demo_force_refuses_a_database_serve_runs_on_and_serve_loses_nothing(tmp_path: Path):
    """``demo --force`` removed the files under a running serve, which went on answering 200 for
    forms written into files nobody opened any more."""
    port = free_port()
    target = tmp_path / "leadline.db"
    config = tmp_path / "config.toml"
    config.write_text(SERVE_CONFIG.format(db=target, port=port))
    proc = await start_serve(config, port)
    try:
        refused = await run_cli("demo", "--config", str(config), "--database", str(target), "--force")
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/hooks/site-form?token=s3cret%2Ftoken%261"
            async with session.post(url, data={"name": "Ivan", "phone": "+7 916 123-45-67"}) as resp:
                assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=90)

    assert refused.code == EXIT_RUNTIME, refused.output
    assert refused.output == (
        f"`leadline serve` is running on {target}: stop it first, or give --database another file;"
        " nothing was replaced.\n"
    )
    found = await run_cli("contacts", "--config", str(config), "--json", "9161234567")
    assert found.code == 0, found.output
    assert [card["name"] for card in json.loads(found.output)] == ["Ivan"]


def test_the_demo_config_keeps_the_sla_and_digest_so_a_report_on_it_reads_as_the_demo_did(tmp_path: Path):
    """The written config had no [sla]: the demo printed "within the 5 min SLA" and `leadline
    report` on the config it names for that printed the same days against 15 minutes."""
    sla = {"registration_minutes": 5, "callback_minutes": 10, "escalation_minutes": 20, "stale_days": 3}
    month_config(tmp_path, sla=sla, digest={"time": "08:30"})
    config = tmp_path / "config.toml"
    target = tmp_path / "demo.db"
    result = run_cli_sync("demo", "--config", str(config), "--database", str(target), "--days", "4")
    assert result.code == 0, result.output
    printed = re.search(r"within the 5 min SLA\s*│\s*(\d+) of (\d+)", result.output)
    period = re.search(r"Leadline report (\S+)\.\.(\S+) ", result.output)
    assert printed and period, result.output

    written = tmp_path / "demo.toml"
    again = run_cli_sync("report", "--config", str(written), "--from", period[1], "--to", period[2], "--json")
    assert again.code == 0, again.output
    data = json.loads(again.output)
    assert data["sla"]["registration_minutes"] == 5
    assert (data["registered_within_sla"], data["registration_lag_count"]) == (
        int(printed[1]),
        int(printed[2]),
    )
    # Every key of both sections, the nudges' too, as the demo ran with them.
    assert load_config(written).sla == load_config(config).sla
    assert load_config(written).digest == load_config(config).digest
