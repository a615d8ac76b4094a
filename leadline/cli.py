"""The ``leadline`` command: every subcommand takes ``--config PATH``.

The default config is ``$LEADLINE_CONFIG``, else ``./config.toml``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from leadline.cli_base import (
    CONTEXT_SETTINGS,
    EXIT_NOT_FOUND,
    EXIT_RUNTIME,
    LazyGroup,
    config_option,
    parse_since,
)
from leadline.cli_base import load as _load
from storage.local_time import local_text

# Commands whose modules pull in the report engine, the journal listing or erasure: loaded when
# named, so `leadline serve` does not import what only these commands use (bench/idle.py).
LAZY_COMMANDS = {
    "report": "leadline.report_cli:report",
    "export": "leadline.report_cli:export",
    "plan": "leadline.report_cli:plan",
    "demo": "leadline.report_cli:demo",
    "journal": "leadline.journal_cli:journal",
    "webhooks": "leadline.webhooks_cli:webhooks",
    "forget": "leadline.privacy_cli:forget_command",
    "subject-export": "leadline.privacy_cli:subject_export",
    "backup": "leadline.backup_cli:backup_command",
    "restore": "leadline.backup_cli:restore_command",
}


@click.group(cls=LazyGroup, lazy_commands=LAZY_COMMANDS, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="leadline")
def main() -> None:
    """Leadline: capture every inbound call, email and form; register leads from Telegram."""


@main.command()
@config_option
@click.option("--host", default=None, help="Listen address (default: [http] host).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Listen port (default: [http] port)."
)
@click.option("--worker", type=int, default=None, hidden=True, help="Run as worker N of [http] workers.")
@click.option("--primary-pid", type=int, default=None, hidden=True, help="A worker's primary process.")
@click.option("--config-sha256", default=None, hidden=True, help="The config file a worker's primary read.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default=None,
    help="Least important log lines written (default: [log] level, else info).",
)
def serve(
    config_path: Path | None,
    host: str | None,
    port: int | None,
    worker: int | None,
    primary_pid: int | None,
    config_sha256: str | None,
    log_level: str | None,
) -> None:
    """Run the webhook server, the bot and the scheduler in one process.

    With ``[http] workers`` above 1 it also starts that many - 1 worker processes on the same port.
    """
    from leadline.config import WORKERS_NEED_A_FIXED_PORT, config_file
    from leadline.serve import WorkerRole, run_primary, run_worker

    config = _load(config_path)
    if port == 0 and config.http.workers > 1:  # as the config's own check says of [http] port = 0
        raise click.BadParameter(WORKERS_NEED_A_FIXED_PORT, param_hint="'--port'")
    path = config_file(config_path)
    level = (log_level or config.log.level).upper()
    if worker is None:
        run_primary(config, path, host, port, level)
    else:
        if primary_pid is None or config_sha256 is None:
            raise click.UsageError(
                "--worker is started by `leadline serve` itself, with --primary-pid and --config-sha256"
            )
        run_worker(config, path, host, port, WorkerRole(worker, primary_pid, config_sha256), level)


@main.command("check-config")
@config_option
@click.option(
    "--urls",
    is_flag=True,
    help="Also print each source's URL to paste, its secrets included (for a terminal, not a log).",
)
def check_config(config_path: Path | None, urls: bool) -> None:
    """Validate the config; print the problems, or a summary of what is configured."""
    config = _load(config_path)
    from leadline.config_checks import warnings
    from leadline.summary import summarize

    click.echo(summarize(config))
    if urls:
        # What `serve` shows a terminal, for an operator whose serve writes to the journal.
        from leadline.startup import source_lines
        from leadline.summary import public_base

        listening = [(config.http.host, config.http.port)]
        click.echo("\n".join(source_lines(config, public_base(config, listening), terminal=True)))
    for warning in warnings(config):
        click.echo(f"Warning: {warning}")


@main.command()
@config_option
@click.option("--source", default=None, help="Only rows of this source.")
@click.option(
    "--since", default=None, help="Only rows received at or after this time (ISO date or datetime)."
)
@click.option("--dry-run", is_flag=True, help="Show what each row would become; change nothing.")
def replay(config_path: Path | None, source: str | None, since: str | None, dry_run: bool) -> None:
    """Re-run rejected and unprocessed journal rows through today's parsers."""
    from capture.pipeline import FINISHED_ELSEWHERE
    from capture.pipeline import replay as replay_rows
    from leadline.app import build_capture
    from storage.backlog import Row, rows
    from storage.backup import BackupError
    from storage.db import Store

    config = _load(config_path)
    since_at = parse_since(since, config.tz)

    async def run() -> tuple[list[Any], dict[int, Row]]:
        if dry_run:  # a stop (systemd, `timeout`) ends it as Ctrl+C does: its copy is removed
            task = asyncio.current_task()
            assert task is not None
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        store = Store.open(config.database_path)
        try:
            capture = await build_capture(config, store)
            outcomes = await replay_rows(capture, source=source, since=since_at, dry_run=dry_run)
            failed = [o.journal_id for o in outcomes if o.status == "failed"]
            found = await store.read(lambda db: rows(db, failed)) if failed else []
            return outcomes, {row.id: row for row in found}
        finally:
            await store.close()

    try:
        listed, failing = asyncio.run(run())
    except BackupError as exc:  # the dry run's copy of the database (a full disk, say)
        click.echo(f"{exc} Nothing was replayed.", err=True)
        sys.exit(EXIT_RUNTIME)
    except asyncio.CancelledError:
        sys.exit(128 + signal.SIGTERM)
    if not listed:
        click.echo("Nothing to replay: no rejected or unprocessed rows match.")
        return
    # Rows another replay (serve's at start-up, another command) finished after this one listed them.
    outcomes = [o for o in listed if o.status != FINISHED_ELSEWHERE]
    elsewhere = len(listed) - len(outcomes)
    for o in outcomes:
        what = (
            f"{o.touches_created} new touch(es) from {o.events} event(s)"
            if o.status == "processed"
            else o.reason
        )
        click.echo(f"#{o.journal_id}: {o.status} - {what}")
    processed = sum(1 for o in outcomes if o.status == "processed")
    verb = "would be" if dry_run else "were"
    others = f" {elsewhere} more were finished by another run meanwhile." if elsewhere else ""
    click.echo(f"{processed} of {len(outcomes)} row(s) {verb} processed.{others}")
    if failing:
        # Their touches are missing until the cause is fixed: say which requests, from where and when.
        click.echo(f"{len(failing)} row(s) {'would still fail' if dry_run else 'still failing'}:")
        for o in outcomes:
            if (row := failing.get(o.journal_id)) is not None:
                received = local_text(row.received_at, config.tz)
                click.echo(f"  #{row.id} {row.source}, received {received}: {o.reason}")


@main.command()
@config_option
@click.argument("query")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def contacts(config_path: Path | None, query: str, as_json: bool) -> None:
    """Find contacts by phone (any spelling), email or part of a name, with their touches."""
    from storage.contacts import contact_card, search_contacts
    from storage.db import open_database

    config = _load(config_path)
    db = open_database(config.database_path)
    try:
        cards = [
            c
            for cid in search_contacts(db, query, config.leadline.region, regions=config.phone_regions)
            if (c := contact_card(db, cid))
        ]
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps(cards, ensure_ascii=False, indent=2))
    elif not cards:
        click.echo(f"No contact matches {query!r}.")
    if not cards:  # README: exits 1 when none matches, in either form (a script's `|| none`)
        sys.exit(EXIT_NOT_FOUND)
    if as_json:
        return
    for card in cards:
        click.echo(_format_card(card, config.tz))


def _format_card(card: dict[str, Any], tz: ZoneInfo) -> str:
    from storage.identifiers import SEARCH_ONLY

    # Why an identifier shown is never a match key, when it is not that it is malformed.
    unmatched = dict.fromkeys(SEARCH_ONLY, "a username, kept to find them by")
    since = local_text(card["created_at"], tz)
    lines = [f"Contact #{card['id']}: {card['name'] or '(no name)'}  (since {since})"]
    for ident in card["identifiers"]:
        flag = "" if ident["valid"] else f"  [{unmatched.get(ident['kind'], 'invalid')}, not used to match]"
        lines.append(f"  {ident['kind']:<6} {ident['value']}{flag}")
    lines.append(f"  {len(card['touches'])} touch(es):")
    for t in card["touches"]:
        extra = f" {t['call_status']}" if t["call_status"] else ""
        campaign = f" campaign={t['campaign']}" if t["campaign"] else ""
        lines.append(
            f"    {local_text(t['occurred_at'], tz)}  {t['channel']:<6}{extra} via {t['source']}{campaign}"
        )
        if t["message"]:
            lines.append(f"      {t['message'][:100]}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
