"""``leadline journal``: what arrived, as the journal kept it.

The first thing a new user asks after pasting a URL into a provider is whether anything came, and
what became of it. Every request is here, refused ones too (a wrong token's 401, a provider's test
ping, a row whose processing failed), in the office's time. ``journal show ID`` prints one request
whole: its headers redacted as the journal stored them, its query string redacted again (a row
may predate the redaction), and its body as stored but for its secrets, with control characters
escaped so that a sender's bytes cannot drive the terminal. The journal keeps a body whole (replay
and signature checks need its bytes), so its secrets are hidden here, at display: the config's
secret values wherever they appear, and fields named as secrets (VK's ``secret``, Mango's
``vpbx_api_key``) whatever their value, since a refused request may carry a stale or guessed one.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlite_utils import Database

from leadline.cli_base import EXIT_NOT_FOUND, config_option, load, parse_since
from leadline.logs import spellings
from storage.journal import REDACTED, redact_fields, redact_query
from storage.journal_listing import STATUSES, Entry, Filters, Request, after, last_id, latest, request
from storage.local_time import SECONDS, local_text

#: How often ``--follow`` looks for new rows.
FOLLOW_SECONDS = 1.0
#: Polls ``--follow`` waits for a row still being processed before printing it as it is.
HOLD_POLLS = 5


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with every control character (and newlines, unless ``lines``) shown as an escape."""
    keep = "\n\t" if lines else ""
    return "".join(
        c if c.isprintable() or c in keep else c.encode("unicode_escape").decode("ascii") for c in text
    )


def _filters(config_tz: ZoneInfo, source: str | None, status: str | None, since: str | None) -> Filters:
    http_status: int | None = None
    if status is not None and status.isdigit():
        http_status, status = int(status), None
    elif status is not None and status.lower() not in STATUSES:
        raise click.BadParameter(
            f"use {', '.join(STATUSES)} or an HTTP status such as 401", param_hint="--status"
        )
    return Filters(
        source=source,
        status=status.lower() if status else None,
        http_status=http_status,
        since=parse_since(since, config_tz),
    )


def entry_line(entry: Entry, tz: ZoneInfo) -> str:
    """One request on one line: when, from where, what was answered, what it became, and why."""
    answered = f"{entry.status} {entry.http_status}" if entry.http_status else entry.status
    touches = f"{entry.touches_created} touch" + ("" if entry.touches_created == 1 else "es")
    why = entry.reason or entry.note or ""
    request_line = printable(f"{entry.method} {entry.path or '/'}")
    return (
        f"#{entry.id:<6} {local_text(entry.received_at, tz, SECONDS)}  {printable(entry.source):<14} "
        f"{request_line:<22} {answered:<13} {touches:<10} {printable(why)}"
    ).rstrip()


def entry_json(entry: Entry, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": entry.id,
        "received_at": entry.received_at.astimezone(tz).isoformat(),
        "source": entry.source,
        "method": entry.method,
        "path": entry.path,
        "status": entry.status,
        "http_status": entry.http_status,
        "reason": entry.reason,
        "note": entry.note,
        "events": entry.events,
        "touches_created": entry.touches_created,
        "body_size": entry.body_size,
    }


@click.group(invoke_without_command=True)
@config_option
@click.option("--source", default=None, help="Only requests to this source.")
@click.option(
    "--status",
    default=None,
    help="Only rows with this status (processed, rejected, failed, received) or HTTP status (e.g. 401).",
)
@click.option(
    "--since", default=None, help="Only requests received at or after this time (ISO date or datetime)."
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="The newest N that match."
)
@click.option("-f", "--follow", is_flag=True, help="Then print new requests as they arrive (Ctrl+C stops).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def journal(
    ctx: click.Context,
    config_path: Path | None,
    source: str | None,
    status: str | None,
    since: str | None,
    limit: int,
    follow: bool,
    as_json: bool,
) -> None:
    """List journalled requests: time, source, path, status, reason and touches made.

    Every request is listed, refused ones too (401s, provider test pings, rows that failed).
    `leadline journal show ID` prints one with its headers and body.
    """
    if ctx.invoked_subcommand is not None:
        # `leadline journal --config X show ID`: the subcommand takes the group's --config too.
        ctx.obj = config_path
        return
    from storage.db import open_database

    config = load(config_path)
    tz = config.tz
    filters = _filters(tz, source, status, since)

    def emit(entry: Entry) -> None:
        if as_json:
            click.echo(json.dumps(entry_json(entry, tz), ensure_ascii=False))
        else:
            click.echo(entry_line(entry, tz))

    db = open_database(config.database_path)
    try:
        newest = last_id(db)
        shown, more = latest(db, filters, limit)
        if more:
            click.echo("(older requests match too: raise --limit or narrow with --since)", err=True)
        elif not shown and not follow:
            click.echo("No journalled request matches.", err=True)
        for entry in shown:
            emit(entry)
        if follow:
            _follow(db, filters, max([newest, *(e.id for e in shown)]), emit)
    except KeyboardInterrupt:
        pass
    finally:
        db.close()


def _follow(db: Database, filters: Filters, cursor: int, emit: Callable[[Entry], None]) -> None:
    """Print rows above ``cursor`` as they come, in order; one still being processed is held back
    for a few polls so that it is printed with what it became."""
    held: dict[int, int] = {}
    while True:
        time.sleep(FOLLOW_SECONDS)
        for entry in after(db, filters, cursor):
            if entry.status == "received" and held.get(entry.id, 0) < HOLD_POLLS:
                held[entry.id] = held.get(entry.id, 0) + 1
                break
            emit(entry)
            cursor = entry.id
            held.pop(entry.id, None)


@journal.command()
@config_option
@click.argument("journal_id", metavar="ID", type=int)
@click.pass_context
def show(ctx: click.Context, config_path: Path | None, journal_id: int) -> None:
    """Print one journalled request: what was answered, its headers (secrets redacted) and its body."""
    from storage.db import open_database

    config = load(config_path or ctx.obj)
    db = open_database(config.database_path)
    try:
        found = request(db, journal_id)
    finally:
        db.close()
    if found is None:
        click.echo(f"No journalled request #{journal_id}.", err=True)
        sys.exit(EXIT_NOT_FOUND)
    click.echo(request_text(found, config.tz, config.secret_values()))


def request_text(found: Request, tz: ZoneInfo, secrets: Iterable[str]) -> str:
    """The request as ``journal show`` prints it, with every spelling of each of ``secrets`` hidden."""
    entry = found.entry
    query = redact_query(found.query_string)
    lines = [
        f"Request #{entry.id}, received {local_text(entry.received_at, tz, SECONDS)}"
        + (f" from {printable(found.remote)}" if found.remote else ""),
        f"  source:  {printable(entry.source)}" + (f" ({found.provider})" if found.provider else ""),
        "  request: "
        + printable(f"{entry.method} {found.url or entry.path}" + (f"?{query}" if query else "")),
        "  status:  "
        + (f"{entry.status}, answered {entry.http_status}" if entry.http_status else entry.status)
        + (f": {printable(entry.reason)}" if entry.reason else ""),
    ]
    if entry.note:
        lines.append(f"  note:    {printable(entry.note)}")
    if found.processed_at is not None:
        lines.append(
            f"  processed {local_text(found.processed_at, tz, SECONDS)}: {entry.events} event(s),"
            f" {entry.touches_created} new touch(es)"
        )
    lines.append("Headers (secret ones redacted when stored):")
    lines += [f"  {printable(name)}: {printable(value)}" for name, value in found.headers]
    content_type = next((value for name, value in found.headers if name.lower() == "content-type"), "")
    lines.append(_body_text(found.body, entry.body_size, content_type))
    text = "\n".join(lines)
    for secret in spellings(secrets):
        text = text.replace(secret, REDACTED)
    return text


def _body_text(body: bytes, size: int, content_type: str) -> str:
    if not body:
        return f"Body: not kept ({size} bytes)" if size else "Body: empty"
    try:
        text, how = body.decode("utf-8"), ""
    except UnicodeDecodeError:
        text, how = body.decode("utf-8", "backslashreplace"), ", not UTF-8: other bytes as \\xNN"
    return f"Body ({len(body)} bytes{how}):\n{printable(redact_fields(text, content_type), lines=True)}"
