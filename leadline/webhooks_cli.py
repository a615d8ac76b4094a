"""``leadline webhooks``: what waits for a CRM, and what was given up on, put back in the queue.

A delivery is retried for as long as the journal keeps raw requests (leadline/webhooks_out.py), so
a ``failed`` one means a CRM that refused for that long, or an endpoint taken out of the config:
whoever runs Leadline must be able to see them without SQL, and send them again once the cause is
fixed. Each line names the webhook by its ``name``, else by its host only: a URL's path or query
may hold a CRM's token.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from leadline.cli_base import EXIT_NOT_FOUND, config_option, load
from storage.local_time import local_text
from storage.webhook_deliveries import STATUSES, Listed


def listed_line(item: Listed, tz: ZoneInfo) -> str:
    """One delivery on one line: its id, when it was queued, where to, what, and how it stands."""
    from leadline.webhooks_out import label

    tries = f"{item.attempts} attempt" + ("" if item.attempts == 1 else "s")
    if item.status == "pending":
        state = f"pending, {tries}, next {local_text(item.next_attempt_at, tz)}"
    elif item.expired:
        state = f"{item.status}, {tries}, payload expired"
    else:
        state = f"{item.status}, {tries}"
    error = f": {item.last_error}" if item.last_error else ""
    return (
        f"#{item.id:<6} {local_text(item.created_at, tz)}  {label(item.endpoint):<22} "
        f"{item.event_type:<20} {state}{error}"
    )


def listed_json(item: Listed, tz: ZoneInfo) -> dict[str, Any]:
    from leadline.webhooks_out import label

    return {
        "id": item.id,
        "webhook": label(item.endpoint),
        "event_type": item.event_type,
        "status": item.status,
        "attempts": item.attempts,
        "created_at": item.created_at.astimezone(tz).isoformat(),
        "next_attempt_at": item.next_attempt_at.astimezone(tz).isoformat()
        if item.status == "pending"
        else None,
        "last_error": item.last_error,
        "payload_expired": item.expired,
    }


@click.group(invoke_without_command=True)
@config_option
@click.option(
    "--status",
    type=click.Choice([*STATUSES, "all"], case_sensitive=False),
    default=None,
    help="Only deliveries with this status (default: pending and failed).",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="The oldest N that match."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def webhooks(
    ctx: click.Context, config_path: Path | None, status: str | None, limit: int, as_json: bool
) -> None:
    """List the deliveries to a CRM that wait or were given up: id, time, webhook, event, attempts, error.

    `leadline webhooks requeue ID... | --all` sends failed ones again.
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = config_path  # `leadline webhooks --config X requeue`: the subcommand takes it too
        return
    from storage.db import open_database
    from storage.webhook_deliveries import listing

    config = load(config_path)
    wanted = ("pending", "failed") if status is None else STATUSES if status == "all" else (status.lower(),)
    db = open_database(config.database_path)
    try:
        shown, more = listing(db, wanted, limit)
    finally:
        db.close()
    if not shown:
        click.echo(f"No delivery is {' or '.join(wanted)}.", err=True)
    for item in shown:
        click.echo(json.dumps(listed_json(item, config.tz)) if as_json else listed_line(item, config.tz))
    if more:
        click.echo("(newer deliveries match too: raise --limit)", err=True)


@webhooks.command()
@config_option
@click.argument("ids", metavar="ID...", type=int, nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every failed delivery.")
@click.pass_context
def requeue(ctx: click.Context, config_path: Path | None, ids: tuple[int, ...], every: bool) -> None:
    """Send failed deliveries again, from now on, in the order they were queued."""
    import asyncio

    from storage.db import Store, now_utc
    from storage.webhook_deliveries import requeue as requeue_rows

    if bool(ids) == every:
        raise click.UsageError("give the IDs of failed deliveries (leadline webhooks lists them), or --all")
    config = load(config_path or ctx.obj)

    async def run() -> list[int]:
        store = Store.open(config.database_path)
        try:
            return await store.write(lambda db: requeue_rows(db, None if every else ids, now_utc()))
        finally:
            await store.close()

    done = asyncio.run(run())
    missed = sorted(set(ids) - set(done))
    if done:
        click.echo(
            f"{len(done)} deliver{'y' if len(done) == 1 else 'ies'} queued again: a running serve sends them."
        )
    if missed:
        click.echo("Not failed, or their payload expired: " + ", ".join(f"#{i}" for i in missed), err=True)
    if not done:
        click.echo("Nothing to requeue: no failed delivery matches.", err=True)
        sys.exit(EXIT_NOT_FOUND)
