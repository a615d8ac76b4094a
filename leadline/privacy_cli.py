"""``leadline forget`` and ``leadline subject-export``: a person's rights from the command line.

The commands only find the person, ask, call ``storage.erasure`` / ``storage.subjects`` /
``storage.subject_export`` and print; what is erased and what is shown is decided there. They are
added to the main group in ``leadline/cli.py``.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from leadline.cli_base import EXIT_NOT_FOUND, config_option
from leadline.cli_base import load as _load
from leadline.config import Config
from storage.db import Store, open_database
from storage.erasure import Actor, Erased, forget
from storage.private_files import owner_only
from storage.subject_export import export_subject
from storage.subject_scans import scan
from storage.subjects import Subject, SubjectNotFound, find_subject, name_and_erasure, subject_of


def _find(config: Config, who: str) -> tuple[Subject, int, dict[str, Any]]:
    """The person, how many raw requests name them, and their contact row; exits 1 when nobody matches."""
    db = open_database(config.database_path)
    try:
        try:
            contact_id = find_subject(db, who, config.leadline.region)
        except SubjectNotFound as exc:
            click.echo(f"Nobody to erase: {exc}.", err=True)
            sys.exit(EXIT_NOT_FOUND)
        subject = subject_of(db, contact_id)
        assert subject is not None
        requests = len({*subject.journal_ids, *scan(db, subject).journal_ids})
        contact = name_and_erasure(db, subject.contact_id)
    finally:
        db.close()
    return subject, requests, contact


def _user() -> str:
    """Who ran the command, for the erasure's record (a container may have no name for its user)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown user"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}{'es' if word.endswith('ch') else 's'}"


@click.command("forget")
@config_option
@click.argument("who", metavar="PHONE|EMAIL|#ID")
@click.option("--yes", is_flag=True, help="Erase without asking.")
def forget_command(config_path: Path | None, who: str, yes: bool) -> None:
    """Erase one person: identifiers, names, texts, raw requests, messages, and the file's free pages.

    Their touches stay, anonymous, so past reports do not change; the erasure is recorded without
    the erased values. Backups made before keep the data until they rotate out.
    """
    config = _load(config_path)
    subject, requests, contact = _find(config, who)
    shown = ", ".join(f"{kind} {value}" for kind, value, *_ in subject.identifiers) or "no phone or email"
    merged = len(subject.contact_ids) - 1
    click.echo(
        f"Contact #{subject.contact_id}: {contact['name'] or '(no name)'}; {shown}"
        + (f"; {_plural(merged, 'contact')} merged into it" if merged else "")
        + (f"; already erased at {contact['erased_at'][:16]}" if contact["erased_at"] else "")
    )
    click.echo(
        f"  {_plural(len(subject.touch_ids), 'touch')}, {_plural(len(subject.registration_ids), 'registration')},"
        f" {_plural(len(subject.lead_ids), 'lead')}, {_plural(requests, 'raw request')}"
    )
    if not yes:
        click.confirm(
            f"Erase everything Leadline holds about contact #{subject.contact_id}? This cannot be undone",
            abort=True,
        )

    async def run() -> Erased | None:
        store = Store.open(config.database_path)
        try:
            actor = Actor("cli", f"cli: {_user()}")
            return await forget(store, subject.contact_id, at=datetime.now(UTC), actor=actor)
        finally:
            await store.close()

    erased = asyncio.run(run())
    if erased is None:
        click.echo(f"Contact #{subject.contact_id} no longer exists.", err=True)
        sys.exit(EXIT_NOT_FOUND)
    changed = ", ".join(f"{table} {n}" for table, n in sorted(erased.counts.items()) if n) or "none"
    click.echo(
        f"Erased contact #{erased.contact_id} (erasure #{erased.erasure_id}). Rows changed: {changed}."
    )
    click.echo(
        f"Their {_plural(len(erased.touch_ids), 'touch')} stay on the anonymous contact, so past reports"
        " do not change."
    )
    if erased.checkpointed:
        click.echo("The database file's free pages are zeroed and its write-ahead log is truncated.")
    else:
        click.echo(
            "The write-ahead log is still being read by another process: it is truncated at the next"
            " checkpoint (run `leadline forget` again, or restart `leadline serve`)."
        )
    click.echo("Backups made before now still hold this person until they rotate out.")


@click.command("subject-export")
@config_option
@click.argument("who", metavar="PHONE|EMAIL|#ID")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSON to this file (default: standard output).",
)
def subject_export(config_path: Path | None, who: str, output: Path | None) -> None:
    """Everything Leadline holds about one person, as JSON: contact, identifiers, touches,
    registrations, leads and the raw requests."""
    config = _load(config_path)
    db = open_database(config.database_path)
    try:
        try:
            contact_id = find_subject(db, who, config.leadline.region)
        except SubjectNotFound as exc:
            click.echo(f"Nothing to export: {exc}.", err=True)
            sys.exit(EXIT_NOT_FOUND)
        held = export_subject(db, contact_id)
        assert held is not None, "find_subject returns a contact that exists"
        data = {"exported_at": datetime.now(UTC).isoformat(timespec="seconds"), **held}
    finally:
        db.close()
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        with open(output, "w", encoding="utf-8", opener=owner_only) as fh:
            fh.write(text)
        click.echo(f"Wrote what is held about contact #{data['contact_id']} to {output}.", err=True)
