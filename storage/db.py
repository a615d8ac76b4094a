"""The one way to reach SQLite: group commit for writes, and pooled readers.

SQLite allows one writer at a time, and a durable commit (``synchronous=FULL``) costs an fsync.
So a writer takes whatever work is waiting, runs each piece in its own savepoint inside one
transaction, commits once, and only then answers each caller. A request is acknowledged only after
the commit that holds it, yet a burst of requests shares one fsync.

There are two writers with the same batching. :meth:`Store.write` hands work to a writer thread, so
a long job (a replay chunk, a bot action) never stalls the event loop. :meth:`Store.write_now` is
for capture, the hot path: a request's journal row and touches, small and bounded. It runs on the
event loop, at most ``NOW_BATCH`` jobs a turn: on a thread, each SQLite call gives up the GIL and
the writer then waits for the event loop to give it back, while holding the database lock that
the other processes wait for (bench/ingest.py, form mix, 2 workers: 4 000 requests/s with p99 26-38
ms on the thread, 5 100-5 400 with p99 19-23 ms on the loop; Mango mix 3 900 → 6 000). Only its
COMMIT, which waits for the disk, goes to a thread of its own: one GIL hand-off per batch, and the
loop reads and judges the next batch's requests during the fsync (form mix, 1 worker, medians of 6
runs: Leadline / floor 0.59 → 0.79).

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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from storage.private_files import private_database
from storage.schema import migrate

T = TypeVar("T")

log = logging.getLogger("leadline.store")

MAX_BATCH = 512
#: Values one statement binds in an IN list: under the 999 variables older SQLite builds allow, so
#: the look-ups for a burst (NOW_BATCH requests of up to 20 identifiers each) work with any of them.
IN_CHUNK = 500
#: SQLite's page cache of a connection that writes, in KiB (its default is 2,000). Every insert
#: lands at a random place in the indexes on phones, emails, names and ids, so the pages it touches
#: spread over the whole file; with the default, a database of a few weeks no longer fits, and each
#: request read some 14 pages back from the WAL or the file (callgrind: a read and a zeroed page
#: apiece). Filled only as pages are read: an idle process holds none of it.
WRITE_CACHE_KIB = 65_536
#: How long closing waits for the lock to write what webhooks left queued (they get 503 after it).
CLOSE_SECONDS = 10.0
#: Jobs :meth:`Store.write_now` writes in one turn of the event loop (~100 µs each).
NOW_BATCH = 64
#: How long the event loop's writer waits before trying a lock held elsewhere again, doubling up
#: to the second. Short: a coarse wait lets the other processes take the lock again and again
#: (3 workers, backing off to 20 ms: p99 186 ms; to 1 ms: 24 ms).
NOW_RETRY = (0.0001, 0.001)


def chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """``values`` in slices of at most ``size``: one statement per slice keeps IN lists within limits."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


#: What every part that needs "now" is given, so a test can hand it a fixed moment.
Clock = Callable[[], datetime]


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """How every time is stored: UTC, ISO-8601, so text order is time order."""
    if moment.tzinfo is UTC:
        return _utc_text(moment)
    if moment.tzinfo is None:
        raise ValueError("naive datetime given; every stored time must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


@lru_cache(maxsize=1024)
def _utc_text(moment: datetime) -> str:
    """Cached: a request's receipt time (the clock's, in UTC) is written five times over: its journal
    row, its touch's times, its contact's. Only UTC times: two local times that compare equal can
    be an hour apart (``fold`` on a clock turned back), and the cache would give one the other's."""
    return moment.isoformat(timespec="microseconds")


#: A stored time read back: ``datetime.fromisoformat`` itself, not a function around it (a year's
#: report reads some 900 000 times).
parse_iso: Callable[[str], datetime] = datetime.fromisoformat


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


@contextmanager
def one_reading(db: Database) -> Iterator[None]:
    """Every read inside sees the base as it was at one moment (one read transaction), so tables read
    one after another agree with each other while ``serve`` goes on writing: in WAL mode the writers
    are not held up, and the reader sees none of what they commit meanwhile."""
    conn = db.conn
    conn.execute("BEGIN")
    try:
        # The moment is now, not at the first read of whatever the block does first.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        yield
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")  # it only read: nothing to keep


def connect(path: str | Path, *, readonly: bool = False) -> Database:
    """A connection with the pragmas every part of Leadline relies on; one that may write finds the
    database file (and its WAL and SHM) readable by Leadline's user only, whatever the umask."""
    if not readonly:
        _private(path)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        # Deleted and overwritten content is zeroed, not left in free space: an erased person must
        # not survive in the file's free pages (storage/erasure.py).
        conn.execute("PRAGMA secure_delete = ON")
        if readonly:
            conn.execute("PRAGMA query_only = ON")
        else:
            conn.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
    except BaseException:
        conn.close()  # out of file descriptors, say: do not leak the half-open one
        raise
    return Database(conn)


def _private(path: str | Path) -> None:
    opened = private_database(path)
    if opened:
        log.warning(
            "the database files were readable by other users of the machine: made owner-only",
            extra={"fields": {"files": [str(p) for p in opened]}},
        )


def open_database(path: str | Path) -> Database:
    """Open (creating if needed) and migrate: for the CLI and for start-up."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = connect(path)
    migrate(db)
    return db


#: Writes many jobs' items at once; returns one result per item.
GroupFn = Callable[[Database, list[Any]], list[Any]]


@dataclass
class _Job:
    fn: Callable[[Database], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    #: Set for jobs that can be written together with their neighbours (see :meth:`Store.write`).
    group: GroupFn | None = None
    item: Any = None


class WriteLock:
    """The lock every writing process takes around a transaction (see the module's docstring)."""

    def __init__(self, database: Path) -> None:
        self._fd = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # releases the GIL while it waits

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never waits (for the event loop)."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


#: Called by a writer after each commit with the number of jobs it held.
CommitHook = Callable[[int], None]


class Store:
    """Async access to one SQLite file; create with :meth:`open`, finish with :meth:`close`."""

    def __init__(self, path: Path, on_commit: CommitHook | None = None) -> None:
        self.path = path
        self._on_commit = on_commit
        self._write_lock: WriteLock | None = None
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer_db: Database | None = None
        self._writer = threading.Thread(target=self._write_loop, name="leadline-writer", daemon=True)
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="leadline-reader")
        self._local = threading.local()
        self._read_conns: list[Database] = []
        self._lock = threading.Lock()
        #: Jobs written by a group function rather than one by one (a figure for tests and benches).
        self.grouped_jobs = 0
        # The event loop's writer (see write_now): its own connection and its own open lock file,
        # so that the lock also keeps it and the writer thread apart.
        self._now_loop: asyncio.AbstractEventLoop | None = None
        self._now_db: Database | None = None
        self._now_lock: WriteLock | None = None
        self._now_jobs: list[_Job] = []
        self._now_handle: asyncio.Handle | None = None
        #: The loop writer's COMMIT while it waits for the disk, on its own thread (see
        #: _write_now_batch); the next batch waits for it.
        self._now_commit: asyncio.Future[Any] | None = None
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadline-commit")
        self._now_retry = 0.0
        self._closing = False

    @classmethod
    def open(cls, path: str | Path, on_commit: CommitHook | None = None) -> Store:
        """Open for use from synchronous code (the CLI); the app uses :meth:`open_async`."""
        store = cls(Path(path), on_commit)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        store._write_lock = WriteLock(store.path)
        with store._write_lock:
            open_database(store.path).close()
        # Opened here, not in the thread: a failure must reach the caller, not end a thread unseen.
        store._writer_db = connect(store.path)
        store._writer.start()
        return store

    @classmethod
    async def open_async(cls, path: str | Path, on_commit: CommitHook | None = None) -> Store:
        """Migrate on a worker thread, so start-up never runs SQL on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, cls.open, path, on_commit)

    async def write(
        self, fn: Callable[[Database], T], *, group: GroupFn | None = None, item: Any = None
    ) -> T:
        """Run ``fn`` in the writer; returns once the transaction holding its changes is durable.

        ``fn`` runs inside a savepoint: if it raises, its own changes are undone, the others in the
        batch commit, and the exception is raised here.

        With ``group``, jobs waiting side by side with the same ``group`` are written by one call
        ``group(db, [item, ...])``: a handful of statements for the lot instead of a handful per job,
        which is what lets the single writer keep up with a burst of webhooks. ``group`` returns
        one result per item, leaving the database exactly as running their ``fn`` in turn would.
        If it raises, its writes are undone and every job's ``fn`` runs alone.
        """
        if self._closing:
            raise RuntimeError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, loop, future, group, item))
        return await future

    async def write_now(
        self, fn: Callable[[Database], T], *, group: GroupFn | None = None, item: Any = None
    ) -> T:
        """:meth:`write` on the event loop itself, for small jobs of bounded size (capture's).

        Jobs that arrive while the loop is busy are written together on its next turn; when
        another process or the writer thread holds the lock, the loop goes on serving and tries
        again shortly. Only the loop that first called it writes this way; another goes to the thread.
        """
        if self._closing:
            raise RuntimeError("the store is closed")
        loop = asyncio.get_running_loop()
        if self._now_loop is None:
            db = connect(self.path)
            try:
                # Never wait inside SQLite on the loop: a writer outside the lock (a sqlite3 shell,
                # pending migrations) makes BEGIN fail at once, and the batch is tried again later.
                db.conn.execute("PRAGMA busy_timeout = 0")
                lock = WriteLock(self.path)
            except BaseException:
                db.close()
                raise
            self._now_loop, self._now_db, self._now_lock = loop, db, lock
        elif self._now_loop is not loop:
            return await self.write(fn, group=group, item=item)
        future: asyncio.Future[T] = loop.create_future()
        self._now_jobs.append(_Job(fn, loop, future, group, item))
        if self._now_handle is None:
            self._now_handle = loop.call_soon(self._write_now_batch)
        return await future

    def _write_now_batch(self) -> None:
        self._now_handle = None
        loop, db, lock = self._now_loop, self._now_db, self._now_lock
        if not self._now_jobs or loop is None or db is None or lock is None or self._now_commit:
            return
        if not lock.try_acquire():
            self._write_now_later(loop)
            return
        batch, self._now_jobs = self._now_jobs[:NOW_BATCH], self._now_jobs[NOW_BATCH:]
        try:
            db.conn.execute("BEGIN IMMEDIATE")
            outcomes = self._run_jobs(db, batch)
        except BaseException as exc:
            self._now_failed(loop, db, lock, batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        # COMMIT waits for the disk (fsync): on a thread, which gives up the GIL for it, so the
        # loop goes on reading and judging the requests that will make the next batch.
        self._now_commit = loop.run_in_executor(self._committer, db.conn.execute, "COMMIT")
        self._now_commit.add_done_callback(partial(self._now_committed, batch, outcomes))

    def _now_committed(
        self,
        batch: list[_Job],
        outcomes: list[tuple[_Job, Any, BaseException | None]],
        done: asyncio.Future[Any],
    ) -> None:
        self._now_commit = None
        loop, db, lock = self._now_loop, self._now_db, self._now_lock
        if loop is None or db is None or lock is None:  # cannot be: closing waits for the commit
            return
        error = done.exception()
        if error is not None:
            self._now_failed(loop, db, lock, batch, error)
            return
        lock.release()
        self._now_retry = 0.0
        self._committed(len(batch))
        _settle_all(outcomes)
        if self._now_jobs and self._now_handle is None:
            self._now_handle = loop.call_soon(self._write_now_batch)

    def _now_failed(
        self,
        loop: asyncio.AbstractEventLoop,
        db: Database,
        lock: WriteLock,
        batch: list[_Job],
        exc: BaseException,
    ) -> None:
        """Answer, never leave a caller waiting or a transaction open; busy is tried again later."""
        busy = _busy(exc)
        try:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
        finally:
            lock.release()
            if busy:  # someone writes without taking the lock: try again shortly
                self._now_jobs = batch + self._now_jobs
                if self._now_handle is not None:
                    self._now_handle.cancel()
                self._write_now_later(loop)
            else:  # a broken disk or file: 503 now
                _settle_all([(job, None, exc) for job in batch])
                if self._now_jobs and self._now_handle is None:
                    self._now_handle = loop.call_soon(self._write_now_batch)

    def _write_now_later(self, loop: asyncio.AbstractEventLoop) -> None:
        first, most = NOW_RETRY
        self._now_retry = min(self._now_retry * 2, most) if self._now_retry else first
        self._now_handle = loop.call_later(self._now_retry, self._write_now_batch)

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
        db, lock = self._writer_db, self._write_lock
        assert db is not None and lock is not None, "Store.open starts the writer"
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
                except BaseException as exc:  # answer, never leave a caller waiting or the thread dead
                    if db.conn.in_transaction:
                        db.conn.execute("ROLLBACK")
                    outcomes = [(job, None, _raisable(exc)) for job in batch]
                self._settle(outcomes)
                if stop:
                    return
        finally:
            db.close()
            lock.close()

    def _run_batch(self, db: Database, batch: list[_Job]) -> list[tuple[_Job, Any, BaseException | None]]:
        """The writer thread's transaction: every job, one commit; all fail together if it does."""
        conn = db.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes = self._run_jobs(db, batch)
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(job, None, exc) for job in batch]
        self._committed(len(batch))
        return outcomes

    def _run_jobs(self, db: Database, batch: list[_Job]) -> list[tuple[_Job, Any, BaseException | None]]:
        """Run a batch's jobs in the open transaction: side-by-side jobs of one group at once."""
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        start = 0
        while start < len(batch):
            group = batch[start].group
            end = start + 1
            while group is not None and end < len(batch) and batch[end].group == group:
                end += 1
            grouped = _run_group(db, batch[start:end]) if end - start > 1 else None
            if grouped is not None:
                self.grouped_jobs += len(grouped)
                outcomes += grouped
            else:
                outcomes += [_run_job(db, job) for job in batch[start:end]]
            start = end
        return outcomes

    def _committed(self, jobs: int) -> None:
        if self._on_commit is not None:
            try:
                self._on_commit(jobs)
            except Exception:  # a counter must never turn a committed batch into failed requests
                log.exception("the commit hook failed")

    def _settle(self, outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, BaseException | None]]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, settled in by_loop.items():
            # One wake-up of the event loop per batch, not one per request.
            try:
                loop.call_soon_threadsafe(_settle_all, settled)
            except RuntimeError:  # that loop has closed: nobody is waiting there any more
                log.warning("%d write(s) finished after their event loop closed", len(settled))

    async def _close_now(self) -> None:
        """Write what the loop's writer was given, then let go of its connection and lock.

        New work is refused from now on, so this ends; a job whose caller gave up is still written,
        as the writer thread would have written it.
        """
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_SECONDS
        while (self._now_jobs or self._now_commit) and loop is self._now_loop and loop.time() < deadline:
            if self._now_handle is None:
                self._now_handle = loop.call_soon(self._write_now_batch)
            await asyncio.sleep(0.001)
        if self._now_handle is not None:
            self._now_handle.cancel()
            self._now_handle = None
        if self._now_jobs:  # the lock never came, or another loop's: answer (503) rather than drop
            self._settle([(job, None, RuntimeError("the store was closed")) for job in self._now_jobs])
            self._now_jobs = []
        if self._now_commit is not None:  # a commit still waiting for the disk ends before its connection
            await asyncio.wait([self._now_commit])
        if self._now_db is not None:
            self._now_db.close()
        if self._now_lock is not None:
            self._now_lock.close()
        self._now_loop, self._now_db, self._now_lock = None, None, None

    async def close(self) -> None:
        await self._close_now()
        self._jobs.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
        self._readers.shutdown(wait=True)
        self._committer.shutdown(wait=True)
        with self._lock:
            for db in self._read_conns:
                db.close()
            self._read_conns.clear()


def _busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.OperationalError) and code is not None and code & 0xFF == sqlite3.SQLITE_BUSY
    )


def _run_job(db: Database, job: _Job) -> tuple[_Job, Any, BaseException | None]:
    conn = db.conn
    conn.execute("SAVEPOINT job")
    try:
        result = job.fn(db)
    except Exception as exc:
        if not conn.in_transaction:
            # SQLite rolled the whole transaction back (a full disk, say): nothing of this batch
            # is stored, so no later job may run and commit on its own.
            raise
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        return job, None, exc
    conn.execute("RELEASE job")
    return job, result, None


def _run_group(db: Database, jobs: list[_Job]) -> list[tuple[_Job, Any, BaseException | None]] | None:
    """The jobs as the group function wrote them at once; None if it failed."""
    group = jobs[0].group
    assert group is not None
    conn = db.conn
    conn.execute("SAVEPOINT grouped")
    try:
        results = group(db, [job.item for job in jobs])
        if len(results) != len(jobs):
            raise RuntimeError(f"group write returned {len(results)} results for {len(jobs)} jobs")
    except Exception as exc:
        if not conn.in_transaction:
            raise
        conn.execute("ROLLBACK TO grouped")
        conn.execute("RELEASE grouped")
        log.warning("a grouped write failed (%s); its jobs are written one by one", type(exc).__name__)
        return None
    conn.execute("RELEASE grouped")
    return [(job, result, None) for job, result in zip(jobs, results, strict=True)]


def _settle_all(outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
    for job, result, error in outcomes:
        if job.future.done():
            continue
        if error is not None:
            job.future.set_exception(_raisable(error))
        else:
            job.future.set_result(result)


def _raisable(error: BaseException) -> BaseException:
    """An exception a future can carry: it refuses StopIteration (an unguarded ``next()`` in a
    job), and a KeyboardInterrupt or SystemExit belongs to the process, not to one caller."""
    if isinstance(error, Exception) and not isinstance(error, StopIteration):
        return error
    wrapped = RuntimeError(f"the write raised {type(error).__name__}")
    wrapped.__cause__ = error
    return wrapped
