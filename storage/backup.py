"""Copies of the database taken while it is in use, checked before they count, and put back.

SQLite's online backup API copies the file through a connection, so a copy taken while ``serve``
writes is a consistent database with the write-ahead log's content in it, not a torn file. It
copies in steps with a pause between them, leaving the disk and the CPU to the ingest. Between two
steps the backup restarts from the first page whenever another connection has committed, and
under steady ingest a file of more than a few steps never finished; so the copy holds one read
transaction across all its steps. In WAL mode a reader never blocks a writer: the writers go on
committing, and the log is only kept from being checkpointed past that snapshot until the copy
ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from storage.db import WriteLock, chunks, connect
from storage.private_files import owner_only

#: Pages copied per step (4 KiB each by default: 1 MiB), and the pause after each step.
STEP_PAGES = 256
STEP_PAUSE = 0.005
#: Problems ``integrity_check`` lists at most: enough to say what is wrong, bounded for any file.
MAX_PROBLEMS = 10
#: The table sqlite-utils' migrations keep: a file without it is no Leadline database.
MIGRATIONS_TABLE = "_sqlite_migrations"
#: Tables whose rows a restore reports, before and after.
COUNTED = ("contacts", "touches", "journal")


class BackupError(Exception):
    """A copy that failed, or a file that cannot be restored; the message says why."""


@dataclass(frozen=True, slots=True)
class Copied:
    path: Path
    pages: int
    size: int


@dataclass(frozen=True, slots=True)
class Restored:
    #: Rows of :data:`COUNTED` in the database replaced (empty when there was none) and in the copy.
    before: dict[str, int]
    after: dict[str, int]
    #: Contacts the replaced database had erased that the restored copy holds again.
    erased_again: list[int]


def backup_name(stem: str, at: datetime) -> str:
    """A backup's file name in a directory: the database's name and the UTC time, which sort alike."""
    return f"{stem}-{at:%Y%m%dT%H%M%S}.{at.microsecond // 1000:03d}Z.db"


def stale(names: Iterable[str], stem: str, keep: int) -> list[str]:
    """The backups of ``stem`` beyond the newest ``keep``; other files are never touched."""
    pattern = re.compile(rf"{re.escape(stem)}-\d{{8}}T\d{{6}}\.\d{{3}}Z\.db")
    ours = sorted((name for name in names if pattern.fullmatch(name)), reverse=True)
    return ours[keep:]


def rotate(directory: Path, stem: str, keep: int) -> list[Path]:
    """Remove the backups of ``stem`` in ``directory`` beyond the newest ``keep``; returns them."""
    removed = [directory / name for name in stale((p.name for p in directory.iterdir()), stem, keep)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def problems(path: Path) -> list[str]:
    """What ``PRAGMA integrity_check`` finds wrong with the file, or that it is no Leadline database."""
    if not path.is_file():
        return [f"{path} is not a file"]
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    try:
        found = [row[0] for row in conn.execute(f"PRAGMA integrity_check({MAX_PROBLEMS})")]
        if found != ["ok"]:
            return found
        tables = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", [MIGRATIONS_TABLE]).fetchall()
    except sqlite3.DatabaseError as exc:  # not a database at all, or encrypted
        return [str(exc)]
    finally:
        conn.close()
    return [] if tables else [f"{path} is an SQLite file but not a Leadline database"]


#: The files SQLite and Leadline keep beside a database, by their suffix.
_COMPANIONS = ("", "-wal", "-shm", "-journal", ".lock", ".serve.lock")


def _own_file(database: Path, target: Path) -> str | None:
    """Which of the database's own files ``target`` is, if any (by path or, for a link, by inode).

    The copy is renamed over its target: over the live database, the running server would go on
    writing to a file nobody opens any more, and answer 200 for requests that are lost.
    """
    for suffix in _COMPANIONS:
        own = database.with_name(database.name + suffix)
        if target.resolve() == own.resolve() or (
            target.exists() and own.exists() and os.path.samefile(target, own)
        ):
            return f"the database {database}" if not suffix else f"the database's own file {own}"
    return None


def copy(database: Path, target: Path, *, pages: int = STEP_PAGES, pause: float = STEP_PAUSE) -> Copied:
    """Copy ``database`` to ``target``, checked; ``target`` appears only once the copy is sound.

    The copy is written beside ``target`` under a temporary name, checked, flushed to the disk and
    then renamed over it, so a failed or interrupted run never leaves a half-written backup that
    a later restore or rotation would take for a good one.
    """
    if not database.is_file():
        raise BackupError(f"No database at {database}: nothing to back up.")
    own = _own_file(database, target)
    if own is not None:
        raise BackupError(f"{target} is {own}, not a place for its backup: give a directory or another file.")
    # One name per database and directory, not per run: a run that was killed midway (a reboot, a
    # timer's timeout) left its half-copy under it, and the next run takes it over and removes it.
    partial = target.with_name(f".{database.stem}.backup.partial")
    try:
        held = _hold(partial)
    except OSError as exc:
        raise BackupError(f"Cannot write {target}: {reason(exc)}; nothing was backed up.") from None
    if held is None:
        raise BackupError(
            f"Another backup of {database} is being written beside {target}; nothing was backed up."
        )
    try:
        _forget_leftovers(partial.parent, database.stem)
        return _copy(database, partial, target, pages, pause)
    except OSError as exc:  # a directory it may not write, a read-only or full disk
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise BackupError(f"Cannot write {target}: {reason(exc)}; nothing was backed up.") from None
    finally:
        os.close(held)


def _hold(partial: Path) -> int | None:
    """The temporary file, opened, emptied and locked for this run; None while another run holds it."""
    fd = owner_only(partial, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    return fd


def _forget_leftovers(directory: Path, stem: str) -> None:
    """What a killed run left: the rollback journal of the temporary file (SQLite would replay it
    into the new copy), and the half-copies releases before this one named after their run."""
    pattern = re.compile(rf"\.{re.escape(stem)}(\.backup|-\d{{8}}T\d{{6}}\.\d{{3}}Z\.db)\.partial(-journal)?")
    for path in directory.iterdir():
        if pattern.fullmatch(path.name) and path.name != f".{stem}.backup.partial":
            path.unlink(missing_ok=True)


def reason(exc: OSError) -> str:
    """The system's words for a failed file operation (``Permission denied``), without the path."""
    return exc.strerror or str(exc)


class _Stopped(Exception):
    """The copy was stopped between two steps (:meth:`Snapshot.remove`)."""


def _pages(database: Path, into: Path, pages: int, pause: float, stop: threading.Event | None = None) -> int:
    """Copy ``database`` into the file ``into`` in steps, from one read snapshot; returns the pages.

    Opening fails too (``sqlite3.Error``): a database on a read-only or full disk, where its -wal
    or -shm cannot be made, or a file that is no database at all. Once ``stop`` is set the copy
    ends at its next step (:class:`_Stopped`).
    """

    def step(*_: object) -> None:
        if stop is not None and stop.is_set():
            raise _Stopped  # SQLite abandons the copy and the exception comes out of backup()
        time.sleep(pause)

    source = connect(database, readonly=True)
    try:
        dest = sqlite3.connect(into, isolation_level=None)
        try:
            source.conn.execute("BEGIN")
            source.conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # the snapshot starts
            source.conn.backup(dest, pages=pages, progress=step)
            source.conn.execute("COMMIT")
            # One self-contained file: a backup needs no -wal or -shm beside it.
            dest.execute("PRAGMA journal_mode = DELETE")
            return int(dest.execute("PRAGMA page_count").fetchone()[0])
        finally:
            dest.close()
    finally:
        source.close()


def _copy(database: Path, partial: Path, target: Path, pages: int, pause: float) -> Copied:
    try:
        copied = _pages(database, partial, pages, pause)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"The copy of {database} failed: {exc}") from None
    found = problems(partial)
    if found:
        partial.unlink(missing_ok=True)
        raise BackupError(f"The copy of {database} failed its integrity check: {'; '.join(found)}")
    _flush(partial)
    os.replace(partial, target)
    _flush(target.parent)
    return Copied(target, copied, target.stat().st_size)


class Snapshot:
    """A private copy of the database to try something on and throw away (``replay --dry-run``).

    Trying it on the live database would hold the write lock for as long as it runs and roll it
    all back at the end, and every webhook would wait for it. The copy is taken as a backup is (no
    lock, one read snapshot, in steps) into a folder of its own beside the database that only
    Leadline's user may enter: it holds everyone's personal data. The folder goes with
    :meth:`remove`; one a killed run left behind goes at the next snapshot of the database, which
    knows it from a live one by the lock the folder's owner holds on a file in it.

    :meth:`take` runs on a thread, which goes on when the await on it is cancelled (Ctrl+C, a
    SIGTERM): :meth:`remove` stops it and waits for its end, so that SQLite creates nothing in the
    folder after it is gone (once its lock file is gone no later run would remove it).
    """

    def __init__(self, database: Path) -> None:
        if not database.is_file():
            raise BackupError(f"No database at {database}: nothing to copy.")
        _forget_snapshots(database)
        try:
            folder = Path(tempfile.mkdtemp(prefix=f".{database.stem}{_SNAPSHOT}", dir=database.parent))
        except OSError as exc:
            raise BackupError(f"Cannot make a copy of {database} beside it: {reason(exc)}.") from None
        self.database = database
        self.path = folder / database.name
        try:
            self._held = owner_only(folder / _HELD, os.O_RDWR)
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise BackupError(f"Cannot make a copy of {database} beside it: {reason(exc)}.") from None
        fcntl.flock(self._held, fcntl.LOCK_EX)  # a new folder: nobody else holds it
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._ended.set()  # no copy going on

    def take(self, *, pages: int = STEP_PAGES, pause: float = STEP_PAUSE) -> None:
        """Copy the database as it stands now (blocking: run it on a thread)."""
        with self._lock:
            if self._stop.is_set():  # removed before this thread got to run
                raise BackupError(f"The copy of {self.database} was stopped.")
            self._ended.clear()
        try:
            os.close(owner_only(self.path, os.O_RDWR))  # owner-only before a byte is in it
            _pages(self.database, self.path, pages, pause, self._stop)
        except _Stopped:
            raise BackupError(f"The copy of {self.database} was stopped.") from None
        except sqlite3.Error as exc:
            raise BackupError(f"The copy of {self.database} failed: {exc}.") from None
        except OSError as exc:  # a full disk
            raise BackupError(f"Cannot make a copy of {self.database} beside it: {reason(exc)}.") from None
        finally:
            self._ended.set()

    def remove(self) -> None:
        """Stop a copy under way and wait for its end (one step at most), then remove the copy with
        its folder (its -wal, -shm and lock files); safe to call twice. Blocking: the caller on an
        event loop runs it on a thread."""
        with self._lock:
            self._stop.set()
        self._ended.wait()
        shutil.rmtree(self.path.parent, ignore_errors=True)
        if self._held >= 0:
            os.close(self._held)
            self._held = -1


#: A snapshot's folder is ``.<database stem>.snapshot-<random>``, and holds the lock file ``held``.
_SNAPSHOT = ".snapshot-"
_HELD = "held"


def _forget_snapshots(database: Path) -> None:
    """Remove the snapshot folders of ``database`` that runs killed before their end left behind."""
    for folder in database.parent.glob(f".{glob.escape(database.stem)}{_SNAPSHOT}*"):
        try:
            fd = os.open(folder / _HELD, os.O_RDWR)
        except OSError:  # not a folder of ours, or one whose run has not locked it yet
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a run going on now
            continue
        finally:
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)


def restore(source: Path, database: Path) -> Restored:
    """Put the backup ``source`` in the place of ``database``, once it has passed its check.

    The caller makes sure no ``serve`` runs; the writers' lock keeps out any other writer (a
    ``replay``, a ``forget``) for the moment of the copy. The copy goes through SQLite, which
    also empties the replaced database's write-ahead log rather than leaving it to be replayed
    over the restored pages.
    """
    found = problems(source)
    if found:
        raise BackupError(f"{source} cannot be restored: {'; '.join(found)}")
    database.parent.mkdir(parents=True, exist_ok=True)
    lock = WriteLock(database)
    try:
        with lock:
            src = sqlite3.connect(f"file:{quote(str(source))}?mode=ro", uri=True)
            dest = connect(database)
            try:
                before, erased = _counts(dest.conn), _erased(dest.conn)
                src.backup(dest.conn)
                dest.conn.execute("PRAGMA journal_mode = WAL")
                after, kept = _counts(dest.conn), _erased(dest.conn)
                back = _present(dest.conn, sorted(erased - kept))
            finally:
                src.close()
                dest.close()
    except sqlite3.Error as exc:
        raise BackupError(f"Restoring {source} to {database} failed: {exc}") from None
    finally:
        lock.close()
    return Restored(before, after, back)


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in COUNTED if t in tables}


def _erased(conn: sqlite3.Connection) -> set[int]:
    """The contacts erased in this database (the ``erasures`` record keeps their ids, not their data)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'erasures'").fetchall():
        return set()
    rows = conn.execute("SELECT contact_id FROM erasures WHERE contact_id IS NOT NULL")
    return {int(row[0]) for row in rows}


def _present(conn: sqlite3.Connection, contact_ids: list[int]) -> list[int]:
    """Which of ``contact_ids`` are in the database with their data (not erased there).

    A backup made before erasure existed (schema m001–m005) has no ``erased_at``: every contact
    in it still holds its data.
    """
    columns = {row[1] for row in conn.execute("PRAGMA table_info(contacts)")}
    kept = " AND erased_at IS NULL" if "erased_at" in columns else ""
    found: list[int] = []
    for part in chunks(contact_ids):
        marks = ", ".join("?" * len(part))
        rows = conn.execute(f"SELECT id FROM contacts WHERE id IN ({marks}){kept}", part)
        found += (int(row[0]) for row in rows)
    return sorted(found)


def _flush(path: Path) -> None:
    """fsync a file or a directory: a backup counts once it, and its name, are on the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
