"""``leadline backup`` and ``leadline restore``: the one SQLite file, copied while it runs, and put back.

A backup is safe beside a running ``serve`` (storage/backup.py says how it stays out of the
ingest's way); a restore is not, so it claims the database as ``serve`` does and refuses while
one runs. Both check the file before it counts: a copy that fails ``integrity_check`` is never
kept, a backup that fails it is never restored.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from leadline.cli_base import EXIT_RUNTIME, config_option, load
from leadline.serve import claim_database
from storage.backup import BackupError, backup_name, copy, reason, restore, rotate
from storage.db import now_utc

#: Backups a directory keeps when ``--keep`` is not given.
DEFAULT_KEEP = 7


def _size(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KB"


@click.command("backup")
@config_option
@click.argument("dest", type=click.Path())
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=None,
    help=f"Backups to keep in a DEST directory, this one included (default {DEFAULT_KEEP}).",
)
def backup_command(config_path: Path | None, dest: str, keep: int | None) -> None:
    """Copy the database to DEST while Leadline runs, check the copy, and rotate old copies.

    DEST is a directory (one that exists, or a path ending in /, which is created): each run writes
    <database name>-<UTC time>.db there and removes that database's oldest backups beyond --keep;
    other files in it are left alone. Any other DEST is the backup file itself, replaced if it
    exists (--keep does not apply; rotate such files yourself). A backup keeps people erased after
    it was made until it is removed.
    """
    config = load(config_path)
    database = config.database_path
    place = Path(dest)
    directory = place.is_dir() or dest.endswith(os.sep)
    if keep is not None and not directory:
        raise click.UsageError(f"--keep rotates the backups in a directory; {dest} is not one")
    if not directory and not place.parent.is_dir():
        raise click.BadParameter(f"{place.parent} is not a directory", param_hint="DEST")
    try:
        if directory:
            try:
                place.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BackupError(f"Cannot create {place}: {reason(exc)}; nothing was backed up.") from None
        copied = copy(database, place / backup_name(database.stem, now_utc()) if directory else place)
    except BackupError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_RUNTIME)
    click.echo(f"Backed up {database} to {copied.path} ({_size(copied.size)}); integrity check: ok.")
    if directory:
        removed = rotate(place, database.stem, keep or DEFAULT_KEEP)
        for path in removed:
            click.echo(f"Removed the old backup {path.name}.")


@click.command("restore")
@config_option
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore_command(config_path: Path | None, src: Path) -> None:
    """Replace the database with the backup SRC, after checking SRC's integrity.

    Refuses while `leadline serve` runs on the database: stop it first, and start it again after.
    """
    config = load(config_path)
    database = config.database_path
    claim = claim_database(database)
    if claim is None:
        click.echo(
            f"`leadline serve` is running on {database}: stop it first (systemctl stop leadline);"
            " nothing was restored.",
            err=True,
        )
        sys.exit(EXIT_RUNTIME)
    try:
        restored = restore(src, database)
    except BackupError as exc:
        click.echo(f"{exc}; nothing was restored.", err=True)
        sys.exit(EXIT_RUNTIME)
    finally:
        os.close(claim)
    counts = ", ".join(f"{n} {table}" for table, n in restored.after.items())
    click.echo(f"Restored {database} from {src} (integrity check: ok): {counts}.")
    if restored.before:
        was = ", ".join(f"{n} {table}" for table, n in restored.before.items())
        click.echo(f"The database it replaced held {was}.")
    if restored.erased_again:
        click.echo(
            f"{len(restored.erased_again)} contact(s) erased after this backup was made are back:"
            " erase them again (docs/privacy.md):"
        )
        for contact_id in restored.erased_again:
            click.echo(f"  leadline forget '#{contact_id}'")
