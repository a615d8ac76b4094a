"""The writers: a burst written together stores what one by one stores; the lock is honoured.

The writer groups waiting form and mail requests into a few statements for the lot
(``Capture._record_many`` and ``storage.touches.plan_contact_events``); the one-by-one path is
the reference. The same requests go through both into two SQLite files, and every row must agree.
Capture writes on the event loop, so it must still wait for the lock another process holds.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from capture.pipeline import Capture, Outcome
from capture.providers.base import RawRequest, make_headers
from leadline.config import Config
from storage.db import Store, connect
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


async def _ingest(config: Config, requests: list[RawRequest], *, together: bool) -> tuple[list[Outcome], int]:
    store = await Store.open_async(config.database_path)
    try:
        await store.write(
            lambda db: db.execute(
                "INSERT INTO blocklist (kind, value, reason, at) VALUES ('phone', ?, 'spam', ?)",
                [BLOCKED, CLOCK.isoformat()],
            )
        )
        capture = Capture(config, store, clock=lambda: CLOCK)
        source = config.source("form")
        assert source is not None
        if together:
            outcomes = list(await asyncio.gather(*(capture.ingest(raw, source) for raw in requests)))
        else:
            outcomes = [await capture.ingest(raw, source) for raw in requests]
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

    single_outcomes, single_grouped = await _ingest(one_by_one, requests, together=False)
    group_outcomes, grouped = await _ingest(together, requests, together=True)

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
