"""Files of personal data: the database with its WAL and SHM, and what Leadline writes outside it
(backups, exports, subject exports). Each is readable by Leadline's user only, whatever the umask."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

#: What SQLite keeps beside a database: its WAL, the WAL's index, a rollback journal.
DATABASE_COMPANIONS = ("-wal", "-shm", "-journal")


def owner_only(path: str | Path, flags: int) -> int:
    """``os.open`` for a file of personal data (a backup, an export, a subject export): readable by
    Leadline's user only, whatever the umask of the shell or cron job that runs the command, and
    whatever mode a file it replaces had. Also an ``opener`` for :func:`open`."""
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def private_database(path: str | Path) -> list[Path]:
    """Make the database file owner-only before SQLite opens it for writing; returns the files of an
    existing database that were open to others, now made owner-only.

    A new database is created here, empty and 0600, since SQLite would create it under the process's
    umask (644 from a shell). SQLite's unix VFS gives the ``-wal`` and ``-shm`` it creates the
    database file's own permission bits, so they follow. A database an older Leadline made keeps
    its mode until opened: then it and whatever ``-wal``/``-shm`` are there lose their group and
    other bits. A file that cannot be made so (another user's) is left to SQLite as it is.
    """
    database = Path(path)
    if str(path) == ":memory:" or str(path).startswith("file:"):
        return []
    try:
        os.close(os.open(database, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError:
        return []  # a directory it cannot write, say: SQLite says so in its own words
    else:
        return []
    opened: list[Path] = []
    for file in (database, *(Path(f"{database}{end}") for end in DATABASE_COMPANIONS)):
        with contextlib.suppress(OSError):  # not there, or not ours to change
            mode = stat.S_IMODE(file.stat().st_mode)
            if mode & 0o077:
                file.chmod(mode & 0o700)
                opened.append(file)
    return opened
