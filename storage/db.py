"""The one way to reach SQLite: a single writer thread with group commit, and pooled readers.

SQLite allows one writer at a time, and a durable commit (``synchronous=FULL``) costs an fsync.
So every write goes to one thread that takes whatever work is waiting, runs each piece in its own
savepoint inside one transaction, commits once, and only then answers each caller. A request is
acknowledged only after the commit that holds it, yet a burst of requests shares one fsync.
Nothing here runs SQL on the event loop.

Several processes may write the same file (``[http] workers``, or ``leadline replay`` beside a
running server). Each transaction first takes an exclusive ``flock`` on ``<database>.lock``:
SQLite's own busy handler would make the loser sleep 1, 2, 5, 10 ms and retry, while the kernel
wakes a process waiting on the lock the moment the other commits.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from storage.schema import migrate

T = TypeVar("T")

log = logging.getLogger("leadline.store")

MAX_BATCH = 512


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """How every time is stored: UTC, ISO-8601, so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given; every stored time must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


@contextmanager
def savepoint(db: Database, name: str) -> Iterator[None]:
    """Undo only this block's writes when it raises (cheaper than ``atomic()``: no random name)."""
    conn = db.conn
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


def connect(path: str | Path, *, readonly: bool = False) -> Database:
    """A connection with the pragmas every part of Leadline relies on."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    return Database(conn)


def open_database(path: str | Path) -> Database:
    """Open (creating if needed) and migrate: for the CLI and for start-up."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = connect(path)
    migrate(db)
    return db


@dataclass
class _Job:
    fn: Callable[[Database], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class WriteLock:
    """The lock every writing process takes around a transaction (see the module's docstring)."""

    def __init__(self, database: Path) -> None:
        self._fd = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # releases the GIL while it waits

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


#: Called by the writer thread after each commit with the number of jobs it held.
CommitHook = Callable[[int], None]


class Store:
    """Async access to one SQLite file; create with :meth:`open`, finish with :meth:`close`."""

    def __init__(self, path: Path, on_commit: CommitHook | None = None) -> None:
        self.path = path
        self._on_commit = on_commit
        self._write_lock: WriteLock | None = None
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="leadline-writer", daemon=True)
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="leadline-reader")
        self._local = threading.local()
        self._read_conns: list[Database] = []
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path, on_commit: CommitHook | None = None) -> Store:
        """Open for use from synchronous code (the CLI); the app uses :meth:`open_async`."""
        store = cls(Path(path), on_commit)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        store._write_lock = WriteLock(store.path)
        with store._write_lock:
            open_database(store.path).close()
        store._writer.start()
        return store

    @classmethod
    async def open_async(cls, path: str | Path, on_commit: CommitHook | None = None) -> Store:
        """Migrate on a worker thread, so start-up never runs SQL on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, cls.open, path, on_commit)

    async def write(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn`` in the writer; returns once the transaction holding its changes is durable.

        ``fn`` runs inside a savepoint: if it raises, its own changes are undone, the others in the
        batch commit, and the exception is raised here.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, loop, future))
        return await future

    async def read(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn`` on a pooled read-only connection (it sees the last committed state)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    def _run_read(self, fn: Callable[[Database], T]) -> T:
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.path, readonly=True)
            self._local.db = db
            with self._lock:
                self._read_conns.append(db)
        return fn(db)

    def _write_loop(self) -> None:
        db = connect(self.path)
        lock = self._write_lock
        assert lock is not None, "Store.open starts the writer"
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                batch = [job]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                try:
                    with lock:
                        outcomes = self._run_batch(db, batch)
                except Exception as exc:  # the lock itself failed: answer, never leave a caller waiting
                    outcomes = [(job, None, exc) for job in batch]
                self._settle(outcomes)
                if stop:
                    return
        finally:
            db.close()
            lock.close()

    def _run_batch(self, db: Database, batch: list[_Job]) -> list[tuple[_Job, Any, BaseException | None]]:
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        conn = db.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                conn.execute("SAVEPOINT job")
                try:
                    result = job.fn(db)
                except Exception as exc:
                    if not conn.in_transaction:
                        # SQLite rolled the whole transaction back (a full disk, say): nothing of
                        # this batch is stored, so no later job may run and commit on its own.
                        raise
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append((job, None, exc))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((job, result, None))
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(job, None, exc) for job in batch]
        if self._on_commit is not None:
            try:
                self._on_commit(len(batch))
            except Exception:  # a counter must never turn a committed batch into failed requests
                log.exception("the commit hook failed")
        return outcomes

    def _settle(self, outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, BaseException | None]]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, settled in by_loop.items():
            # One wake-up of the event loop per batch, not one per request.
            loop.call_soon_threadsafe(_settle_all, settled)

    async def close(self) -> None:
        self._jobs.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
        self._readers.shutdown(wait=True)
        with self._lock:
            for db in self._read_conns:
                db.close()
            self._read_conns.clear()


def _settle_all(outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
    for job, result, error in outcomes:
        if job.future.done():
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
