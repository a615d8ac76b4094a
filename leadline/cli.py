"""The ``leadline`` command: every subcommand takes ``--config PATH``.

The default config is ``$LEADLINE_CONFIG``, else ``./config.toml``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import click

from leadline.config import CONFIG_ENV, DEFAULT_CONFIG, Config, ConfigError, load_config

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Config file (default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG}).",
)


def _load(config_path: Path | None) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        click.echo("The config has problems:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)


@click.group()
@click.version_option(package_name="leadline")
def main() -> None:
    """Leadline: capture every inbound call, email and form; register leads from Telegram."""


@main.command()
@config_option
@click.option("--host", default=None, help="Listen address (default: [http] host).")
@click.option("--port", type=int, default=None, help="Listen port (default: [http] port).")
@click.option("--worker", type=int, default=None, hidden=True, help="Run as worker N of [http] workers.")
@click.option("--primary-pid", type=int, default=None, hidden=True, help="A worker's primary process.")
@click.option("--config-sha256", default=None, hidden=True, help="The config file a worker's primary read.")
def serve(
    config_path: Path | None,
    host: str | None,
    port: int | None,
    worker: int | None,
    primary_pid: int | None,
    config_sha256: str | None,
) -> None:
    """Run the webhook server, the bot and the scheduler in one process.

    With ``[http] workers`` above 1 it also starts that many - 1 worker processes on the same port.
    """
    from leadline.config import config_file
    from leadline.serve import WorkerRole, run_primary, run_worker

    config = _load(config_path)
    path = config_file(config_path)
    if worker is None:
        run_primary(config, path, host, port)
    else:
        if primary_pid is None or config_sha256 is None:
            raise click.UsageError(
                "--worker is started by `leadline serve` itself, with --primary-pid and --config-sha256"
            )
        run_worker(config, path, host, port, WorkerRole(worker, primary_pid, config_sha256))


@main.command("check-config")
@config_option
def check_config(config_path: Path | None) -> None:
    """Validate the config; print the problems, or a summary of what is configured."""
    config = _load(config_path)
    from leadline.summary import summarize

    click.echo(summarize(config))


@main.command()
@config_option
@click.option("--source", default=None, help="Only rows of this source.")
@click.option(
    "--since", default=None, help="Only rows received at or after this time (ISO date or datetime)."
)
@click.option("--dry-run", is_flag=True, help="Show what each row would become; change nothing.")
def replay(config_path: Path | None, source: str | None, since: str | None, dry_run: bool) -> None:
    """Re-run rejected and unprocessed journal rows through today's parsers."""
    from capture.pipeline import replay as replay_rows
    from leadline.app import build_capture
    from storage.backlog import Row, rows
    from storage.db import Store

    config = _load(config_path)
    since_at = _parse_since(since, config.tz)

    async def run() -> tuple[list[Any], dict[int, Row]]:
        store = Store.open(config.database_path)
        try:
            capture = await build_capture(config, store)
            outcomes = await replay_rows(capture, source=source, since=since_at, dry_run=dry_run)
            failed = [o.journal_id for o in outcomes if o.status == "failed"]
            found = await store.read(lambda db: rows(db, failed)) if failed else []
            return outcomes, {row.id: row for row in found}
        finally:
            await store.close()

    outcomes, failing = asyncio.run(run())
    if not outcomes:
        click.echo("Nothing to replay: no rejected or unprocessed rows match.")
        return
    for o in outcomes:
        what = (
            f"{o.touches_created} new touch(es) from {o.events} event(s)"
            if o.status == "processed"
            else o.reason
        )
        click.echo(f"#{o.journal_id}: {o.status} - {what}")
    processed = sum(1 for o in outcomes if o.status == "processed")
    verb = "would be" if dry_run else "were"
    click.echo(f"{processed} of {len(outcomes)} row(s) {verb} processed.")
    if failing:
        # Their touches are missing until the cause is fixed: say which requests, from where and when.
        click.echo(f"{len(failing)} row(s) {'would still fail' if dry_run else 'still failing'}:")
        for o in outcomes:
            if (row := failing.get(o.journal_id)) is not None:
                received = row.received_at.astimezone(config.tz).strftime("%Y-%m-%d %H:%M")
                click.echo(f"  #{row.id} {row.source}, received {received}: {o.reason}")


def _parse_since(since: str | None, tz: tzinfo) -> datetime | None:
    """A time the owner typed means their local time, as everywhere else in Leadline."""
    if not since:
        return None
    try:
        parsed = datetime.fromisoformat(since)
    except ValueError:
        raise click.BadParameter(
            "use an ISO date or datetime, e.g. 2026-11-23 or 2026-11-23T09:00", param_hint="--since"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


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
            c for cid in search_contacts(db, query, config.leadline.region) if (c := contact_card(db, cid))
        ]
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps(cards, ensure_ascii=False, indent=2))
        return
    if not cards:
        click.echo(f"No contact matches {query!r}.")
        sys.exit(1)
    for card in cards:
        click.echo(_format_card(card))


def _format_card(card: dict[str, Any]) -> str:
    lines = [f"Contact #{card['id']}: {card['name'] or '(no name)'}  (since {card['created_at'][:16]})"]
    for ident in card["identifiers"]:
        flag = "" if ident["valid"] else "  [invalid, not used to match]"
        lines.append(f"  {ident['kind']:<6} {ident['value']}{flag}")
    lines.append(f"  {len(card['touches'])} touch(es):")
    for t in card["touches"]:
        extra = f" {t['call_status']}" if t["call_status"] else ""
        campaign = f" campaign={t['campaign']}" if t["campaign"] else ""
        lines.append(f"    {t['occurred_at'][:16]}  {t['channel']:<6}{extra} via {t['source']}{campaign}")
        if t["message"]:
            lines.append(f"      {t['message'][:100]}")
    return "\n".join(lines)


from leadline import report_cli  # noqa: E402  (the numbers' commands)

main.add_command(report_cli.report)
main.add_command(report_cli.export)
main.add_command(report_cli.plan)
main.add_command(report_cli.demo)

from leadline import privacy_cli  # noqa: E402  (a person's rights: forget, subject-export)

main.add_command(privacy_cli.forget_command)
main.add_command(privacy_cli.subject_export)


if __name__ == "__main__":
    main()
