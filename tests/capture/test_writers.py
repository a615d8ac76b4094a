"""The writers: a burst written together stores what one by one stores; the lock is honoured.

The writer hands the requests waiting side by side to ``Capture._write`` at once, a few
statements for the lot; one request at a time is the reference. The same requests go through both into two SQLite files, and every row must agree.
Capture writes on the event loop, so it must still wait for the lock another process holds.
"""

from __future__ import annotations

import asyncio
import fcntl
import gzip
import os
import random
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlite_utils import Database

from capture.pipeline import Capture, Outcome, Verdict
from capture.providers.base import ParseResult, RawRequest, Reply, make_headers
from leadline.config import Config
from storage.db import Store, connect
from storage.events import ContactEvent
from tests.capture.form_checks import SPELLINGS
from tests.conftest import Running, StartServer, build_config

CLOCK = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
BLOCKED = "+79160000013"


def _requests() -> list[RawRequest]:
    """Forms from 30 people: five phone spellings, mixed-case mail, retries, typos, our own
    tracking number, a blocked caller, people who bridge two records, and forged tokens."""
    rng = random.Random(7)
    sent: list[RawRequest] = []
    for n in range(400):
        person = rng.randrange(30)
        digits = f"{person:07d}"
        fields: dict[str, str] = {"submission_id": f"s{n}"}
        roll = rng.random()
        if roll < 0.6:
            fields["phone"] = rng.choice(SPELLINGS).format(a=digits[:3], b=digits[3:5], c=digits[5:])
        if roll > 0.3:
            fields["email"] = rng.choice([f"Lead{person}@Example.com", f" lead{person}@example.com "])
        if rng.random() < 0.05:  # someone who gives one person's phone and another's mail
            fields["email"] = f"lead{(person + 1) % 30}@example.com"
        if rng.random() < 0.05:
            fields["phone"] = rng.choice(["12345", "+7 495 000-00-55"])  # a typo; our tracking number
        if rng.random() < 0.7:
            fields["name"] = rng.choice(["Иван", "Anna", ""])
        if rng.random() < 0.2:
            fields["utm_campaign"] = "brand_msk"
        token = "forged" if rng.random() < 0.03 else "form-token"
        if sent and rng.random() < 0.1:  # the provider's retry: the very same request again
            sent.append(sent[rng.randrange(len(sent))])
            continue
        sent.append(
            RawRequest(
                source="form",
                method="POST",
                path="",
                query_string=f"token={token}",
                headers=make_headers([("Content-Type", "application/x-www-form-urlencoded")]),
                body=urlencode(fields).encode(),
                received_at=CLOCK + timedelta(seconds=n),
                url=f"https://hooks.example.com/hooks/form?token={token}",
                remote="127.0.0.1",
            )
        )
    return sent


Seed = Callable[[Database], object]


def _block_a_caller(db: Database) -> object:
    return db.execute(
        "INSERT INTO blocklist (kind, value, reason, at) VALUES ('phone', ?, 'spam', ?)",
        [BLOCKED, CLOCK.isoformat()],
    )


async def _run(
    config: Config,
    requests: list[RawRequest] | list[tuple[RawRequest, Verdict]],
    *,
    together: bool,
    seed: Seed = _block_a_caller,
) -> tuple[list[Outcome], int]:
    """Requests (judged here, or with their verdicts) through capture: in turn, or all at once."""
    store = await Store.open_async(config.database_path)
    try:
        await store.write(seed)
        capture = Capture(config, store, clock=lambda: CLOCK)
        judged: list[tuple[RawRequest, Verdict]] = []
        for request in requests:
            if isinstance(request, RawRequest):
                source = config.source(request.source)
                assert source is not None
                judged.append((request, capture.judge(request, source)))
            else:
                judged.append(request)
        if together:
            outcomes = list(await asyncio.gather(*(capture.record(raw, v) for raw, v in judged)))
        else:
            outcomes = [await capture.record(raw, v) for raw, v in judged]
        return outcomes, store.grouped_jobs
    finally:
        await store.close()


def _dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = connect(path)
    try:
        return {
            table: db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            for table in ("journal", "contacts", "identifiers", "touches", "merges")
        }
    finally:
        db.close()


async def test_a_burst_written_together_stores_what_one_by_one_stores(tmp_path: Path) -> None:
    requests = _requests()
    one_by_one = build_config(tmp_path / "a")
    together = build_config(tmp_path / "b")

    single_outcomes, single_grouped = await _run(one_by_one, requests, together=False)
    group_outcomes, grouped = await _run(together, requests, together=True)

    assert single_grouped == 0
    assert grouped > len(requests) // 2  # most of the burst really was written in groups
    assert group_outcomes == single_outcomes
    expected, got = _dump(one_by_one.database_path), _dump(together.database_path)
    for table in expected:
        assert got[table] == expected[table], table
    # The data covers what the grouped path must get right, and what it leaves to the other.
    assert len(expected["merges"]) >= 3
    assert sum(o.status == "rejected" for o in group_outcomes) >= 5
    assert sum(o.status == "processed" and o.touches_created == 0 for o in group_outcomes) >= 20
    touches = {row[2]: row for row in got["touches"]}  # by external_id
    assert len(touches) == len(got["touches"])
    assert any(row[19] == 1 for row in got["touches"]), "the blocked caller's touch is marked"


def _events() -> list[tuple[RawRequest, Verdict]]:
    """What no form sends: two sources, mail and form events, several events per request or none,
    dropped events, the same event id again across and within requests, invalid identifiers, our
    tracking number, times missing, refusals."""
    rng = random.Random(3)
    cases: list[tuple[RawRequest, Verdict]] = []
    for n in range(300):
        events = []
        for k in range(rng.choice([0, 1, 1, 2, 3])):
            p = rng.randrange(15)
            events.append(
                ContactEvent(
                    channel=rng.choice(["form", "email"]),
                    external_id=f"e{rng.randrange(200)}" if rng.random() < 0.3 else f"e{n}-{k}",
                    occurred_at=(CLOCK + timedelta(minutes=n)) if rng.random() < 0.9 else None,
                    phones=tuple(
                        rng.sample(
                            [f"+7916000{p:04d}", f"8916000{p:04d}", "12345", "+74950000055"], rng.randrange(3)
                        )
                    ),
                    emails=tuple(
                        rng.sample([f"P{p}@x.ru", f"p{(p + 1) % 15}@x.ru", "bad@@x"], rng.randrange(2))
                    ),
                    name=rng.choice([None, "", "Ann", "Bob"]),
                    to_address=rng.choice([None, "sales@example.com"]),
                    dropped=rng.choice([None, None, None, "auto-reply"]),
                )
            )
        raw = RawRequest(
            source=rng.choice(["form", "std"]),
            method="POST",
            path="",
            query_string="",
            headers=make_headers([("Content-Type", "text/plain")]),
            body=f"r{n}".encode(),
            received_at=CLOCK + timedelta(seconds=n),
            url="https://hooks.example.com/hooks/x",
            remote="127.0.0.1",
        )
        if rng.random() < 0.05:
            cases.append((raw, Verdict("generic_form", 401, "bad token")))
        else:
            result = ParseResult(tuple(events), Reply(200, b"ok"), note=None if events else "ping")
            cases.append((raw, Verdict("generic_form", 200, result=result)))
    return cases


async def test_events_of_every_shape_written_together_store_what_one_by_one_stores(tmp_path: Path) -> None:
    cases = _events()
    one_by_one, together = build_config(tmp_path / "a"), build_config(tmp_path / "b")
    single_outcomes, _ = await _run(one_by_one, cases, together=False)
    group_outcomes, grouped = await _run(together, cases, together=True)
    assert grouped > len(cases) // 2
    assert group_outcomes == single_outcomes
    expected, got = _dump(one_by_one.database_path), _dump(together.database_path)
    for table in expected:
        assert got[table] == expected[table], table
    assert any(row[18] for row in got["touches"]), "some touches are dropped ones"


async def test_a_group_that_fails_is_written_one_by_one(tmp_path: Path) -> None:
    cases = _events()[:40]
    naive = ContactEvent(
        channel="form", external_id="naive", occurred_at=datetime(2026, 1, 1), phones=("+79160001111",)
    )
    cases[5] = (cases[5][0], Verdict("generic_form", 200, result=ParseResult((naive,), Reply(200, b"ok"))))
    one_by_one, together = build_config(tmp_path / "a"), build_config(tmp_path / "b")
    single_outcomes, _ = await _run(one_by_one, cases, together=False)
    group_outcomes, _ = await _run(together, cases, together=True)
    assert group_outcomes == single_outcomes
    assert group_outcomes[5].status == "failed"  # kept for replay, and the other 39 are stored
    assert _dump(together.database_path) == _dump(one_by_one.database_path)


async def test_a_number_a_contact_holds_as_invalid_is_not_theirs_when_it_becomes_valid(
    tmp_path: Path,
) -> None:
    """A number stored invalid (say before a phonenumbers update) that parses now: both ways, the
    contact keeps it as it was, and the next form with only that number is somebody new."""
    number, stamp = "+79161234567", CLOCK.isoformat()

    def seed(db: Database) -> object:
        db.execute(
            "INSERT INTO contacts (id, name, created_at, updated_at) VALUES (1, 'x', ?, ?)", [stamp, stamp]
        )
        return db.execute(
            "INSERT INTO identifiers (contact_id, kind, value, raw, valid, created_at) VALUES"
            " (1, 'phone', ?, ?, 0, ?), (1, 'email', 'e@example.com', 'e@example.com', 1, ?)",
            [number, number, stamp, stamp],
        )

    forms = [_form(1, phone=number, email="e@example.com"), _form(2, phone=number)]
    for name, together in (("a", False), ("b", True)):
        config = build_config(tmp_path / name)
        await _run(config, forms, together=together, seed=seed)
        db = connect(config.database_path)
        try:
            touches = db.execute("SELECT external_id, contact_id FROM touches ORDER BY id").fetchall()
        finally:
            db.close()
        assert touches == [("form:s1", 1), ("form:s2", 2)], name


def _form(n: int, **fields: str) -> RawRequest:
    return RawRequest(
        source="form",
        method="POST",
        path="",
        query_string="token=form-token",
        headers=make_headers([("Content-Type", "application/x-www-form-urlencoded")]),
        body=urlencode({"submission_id": f"s{n}", **fields}).encode(),
        received_at=CLOCK + timedelta(seconds=n),
        url="https://hooks.example.com/hooks/form?token=form-token",
        remote="127.0.0.1",
    )


def _swap_for_a_directory(path: Path, *, back: bool = False) -> None:
    aside = path.with_suffix(".aside")
    if back:
        path.rmdir()
        aside.rename(path)
    else:
        path.rename(aside)
        path.mkdir()


async def test_capture_recovers_when_its_first_write_could_not_open_the_database(tmp_path: Path) -> None:
    config = build_config(tmp_path)
    store = await Store.open_async(config.database_path)
    capture = Capture(config, store, clock=lambda: CLOCK)
    source = config.source("form")
    assert source is not None
    lock = Path(f"{config.database_path}.lock")
    _swap_for_a_directory(lock)  # the lock file cannot be opened now, as when file descriptors run out
    try:
        with pytest.raises(OSError):
            await capture.ingest(_form(1, phone="+79161234567"), source)
    finally:
        _swap_for_a_directory(lock, back=True)
    try:
        outcome = await asyncio.wait_for(capture.ingest(_form(2, phone="+79161234568"), source), 10)
        assert outcome.status == "processed"
    finally:
        await asyncio.wait_for(store.close(), 10)


async def test_close_writes_what_was_queued_and_refuses_what_comes_after(tmp_path: Path) -> None:
    store = await Store.open_async(build_config(tmp_path).database_path)

    def insert(value: str) -> Callable[[Database], str]:
        def run(db: Database) -> str:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", [value, value])
            return value

        return run

    first = asyncio.ensure_future(store.write_now(insert("a")))
    given_up = asyncio.ensure_future(store.write_now(insert("b")))
    await asyncio.sleep(0)  # both are queued
    given_up.cancel()  # its caller went away; the write was accepted and still happens
    await store.close()
    assert await first == "a"
    with pytest.raises(RuntimeError, match="closed"):
        await store.write_now(insert("c"))
    db = connect(tmp_path / "leadline.db")
    try:
        assert [
            r[0] for r in db.execute("SELECT key FROM meta WHERE key IN ('a', 'b', 'c') ORDER BY key")
        ] == ["a", "b"]
    finally:
        db.close()


async def test_a_compressed_body_over_the_limit_is_refused_and_journalled(start_server: StartServer) -> None:
    srv: Running = await start_server()
    body = gzip.compress(urlencode({"phone": "+79161234567", "message": "a" * 2_000_000}).encode())
    resp = await srv.session.post(
        f"{srv.url}/hooks/form?token=form-token",
        data=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 413
    assert "over the limit" in await resp.text()
    assert srv.rows("SELECT status, http_status FROM journal") == [{"status": "rejected", "http_status": 413}]


async def test_a_broken_database_file_is_answered_by_both_writers_and_frees_the_lock(tmp_path: Path) -> None:
    store = await Store.open_async(tmp_path / "broken.db")
    try:
        await store.write_now(lambda db: db.execute("CREATE TABLE t (x)"))
        _overwrite_header(tmp_path / "broken.db")
        for write in (store.write, store.write_now):
            with pytest.raises(sqlite3.DatabaseError):
                await asyncio.wait_for(write(lambda db: db.execute("INSERT INTO t VALUES (1)")), 10)
        # Neither writer kept the lock: the other processes can go on.
        fd = os.open(tmp_path / "broken.db.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if still held
        finally:
            os.close(fd)
    finally:
        await asyncio.wait_for(store.close(), 20)


def _overwrite_header(path: Path) -> None:
    checkpoint = sqlite3.connect(path)
    try:
        checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the file itself
    finally:
        checkpoint.close()
    with path.open("r+b") as f:
        f.write(b"this is no longer an SQLite file")


async def test_one_job_raising_stopiteration_does_not_strand_the_others(tmp_path: Path) -> None:
    store = await Store.open_async(tmp_path / "s.db")
    try:
        for write in (store.write, store.write_now):
            broken = write(lambda db: next(iter([])))
            fine = write(lambda db: 42)
            results = await asyncio.wait_for(asyncio.gather(broken, fine, return_exceptions=True), 10)
            assert isinstance(results[0], RuntimeError) and "StopIteration" in str(results[0])
            assert results[1] == 42
    finally:
        await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.write(lambda db: 1)


async def test_a_body_that_does_not_decompress_is_refused_with_a_reason_and_journalled(
    start_server: StartServer,
) -> None:
    srv: Running = await start_server()
    resp = await srv.session.post(
        f"{srv.url}/hooks/form?token=form-token",
        data=b"phone=%2B79161234567",
        headers={"Content-Encoding": "gzip", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 400
    assert "could not be decompressed as gzip" in await resp.text()
    assert srv.rows("SELECT status, http_status FROM journal") == [{"status": "rejected", "http_status": 400}]


async def test_a_webhook_waits_while_a_writer_outside_the_lock_holds_the_database(
    start_server: StartServer,
) -> None:
    """An admin's sqlite3 shell in a transaction takes no lock file: the webhook waits, then is stored."""
    srv: Running = await start_server()
    shell = sqlite3.connect(srv.config.database_path, isolation_level=None)
    try:
        shell.execute("BEGIN IMMEDIATE")
        sending = asyncio.create_task(
            srv.session.post(
                f"{srv.url}/hooks/form?token=form-token",
                data={"phone": "+7 916 123-45-67", "submission_id": "b1"},
            )
        )
        await asyncio.sleep(0.3)
        assert not sending.done(), "answered before the journal row could be committed"
        shell.execute("COMMIT")
    finally:
        shell.close()
    resp = await sending
    assert resp.status == 200
    assert srv.rows("SELECT status FROM journal") == [{"status": "processed"}]
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1


async def test_the_loop_writer_retries_while_the_database_is_busy_and_then_writes(tmp_path: Path) -> None:
    """SQLite busy without the lock file held (a shell's open transaction): the loop never waits
    inside SQLite, it tries again later; the write lands once the shell commits."""
    store = await Store.open_async(tmp_path / "busy.db")
    shell = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    try:
        shell.execute("BEGIN IMMEDIATE")
        writing = asyncio.ensure_future(
            store.write_now(lambda db: db.execute("INSERT INTO meta VALUES ('k', 'v')"))
        )
        await asyncio.sleep(0.3)  # the loop keeps running meanwhile: this sleep ends
        assert not writing.done()
        shell.execute("COMMIT")
        await asyncio.wait_for(writing, 10)
        assert shell.execute("SELECT value FROM meta WHERE key = 'k'").fetchone() == ("v",)
    finally:
        shell.close()
        await store.close()


async def test_a_webhook_waits_while_another_process_holds_the_lock_and_is_then_stored(
    start_server: StartServer,
) -> None:
    srv: Running = await start_server()
    fd = os.open(f"{srv.config.database_path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a second `leadline serve` worker or `replay` would
        sending = asyncio.create_task(
            srv.session.post(
                f"{srv.url}/hooks/form?token=form-token",
                data={"phone": "+7 916 123-45-67", "submission_id": "w1"},
            )
        )
        await asyncio.sleep(0.3)
        assert not sending.done(), "answered before the journal row could be committed"
        assert srv.scalar("SELECT COUNT(*) FROM journal") == 0
        released_at = datetime.now(UTC)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    resp = await sending
    assert resp.status == 200
    row = srv.rows("SELECT received_at, status FROM journal")[0]
    assert row["status"] == "processed"
    assert datetime.fromisoformat(row["received_at"]) < released_at  # it arrived while the lock was held
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1


async def test_a_burst_of_requests_with_twenty_numbers_each_is_written_together_on_an_older_sqlite(
    tmp_path: Path,
) -> None:
    """SQLite before 3.32 binds at most 999 variables a statement; the burst's look-ups need 1 280."""
    config = build_config(tmp_path)
    source = config.source("form")
    assert source is not None
    store = await Store.open_async(config.database_path)
    try:
        await store.write_now(lambda db: db.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999))
        capture = Capture(config, store, clock=lambda: CLOCK)
        burst = []
        for n in range(64):
            numbers = [("phone", f"+7916{n:03d}{k:04d}") for k in range(20)]
            raw = _form(n)
            burst.append(replace(raw, body=raw.body + b"&" + urlencode(numbers).encode()))
        outcomes = await asyncio.gather(*(capture.record(raw, capture.judge(raw, source)) for raw in burst))
        assert [o.status for o in outcomes] == ["processed"] * 64
        assert store.grouped_jobs == 64  # one group, not 64 writes after the group failed
    finally:
        await store.close()
    assert len(_dump(config.database_path)["identifiers"]) == 64 * 20


async def test_a_commit_that_fails_is_answered_and_the_next_batch_is_written(tmp_path: Path) -> None:
    """The loop's writer commits on a thread while the loop serves: a COMMIT that fails (a deferred
    foreign key is checked only then) answers its callers, and the lock and the loop go on."""
    store = await Store.open_async(tmp_path / "commit.db")

    def orphan(db: Database) -> None:
        db.execute("PRAGMA defer_foreign_keys = ON")
        db.execute(
            "INSERT INTO identifiers (contact_id, kind, value, raw, valid, created_at)"
            " VALUES (999, 'phone', '+79161234567', '+79161234567', 1, ?)",
            [CLOCK.isoformat()],
        )

    try:
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await asyncio.wait_for(store.write_now(orphan), 10)
        assert (
            await asyncio.wait_for(store.write_now(lambda db: db.execute("SELECT 42").fetchone()[0]), 10)
            == 42
        )
        assert (
            await asyncio.wait_for(
                store.read(lambda db: db.execute("SELECT COUNT(*) FROM identifiers").fetchone()[0]), 10
            )
            == 0
        )
    finally:
        await asyncio.wait_for(store.close(), 20)
