"""The nudge sweep over a large base: 1 000 000 touches, 10 000 of them due, timed and measured.

Builds (once, cached by its parameters under the temp folder) a base of a year of inbound flow:
contacts, touches (calls, forms, letters), registrations of all but the due contacts, leads (some
with a follow-up date today, some stale). Then, in a fresh process so its memory is the sweep's
own, it runs the sweep as ``leadline serve`` does (:func:`storage.nudges.due.due_nudges` on a
read connection, then :func:`storage.nudges.record.plan_and_record` in one write transaction)
three times: the first sweep (records and queues the first batch for every person), the same
minute again (every chat is inside its batch window: only the derivation runs), and five minutes
later (the next batch). Prints each time, the due count, what was written, and the peak memory
(Python heap via tracemalloc, and the process's peak RSS), with the ratio to the 1 s target beside
each time.

Run: ``.venv/bin/python bench/sweep.py`` (``--touches``, ``--due``, ``--staff``, ``--rebuild``).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlite_utils import Database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.nudge_texts import lay_out  # noqa: E402
from leadline.config import WorkingTimeSection  # noqa: E402
from storage.db import connect, iso, open_database, parse_iso  # noqa: E402
from storage.nudges.due import due_nudges  # noqa: E402
from storage.nudges.record import Recorded, plan_and_record  # noqa: E402
from storage.nudges.rules import NudgeRules  # noqa: E402
from storage.worktime import WorkingCalendar  # noqa: E402

MSK = ZoneInfo("Europe/Moscow")
#: A Tuesday afternoon; the due touches came in on Monday and this morning.
NOW = datetime(2026, 4, 14, 15, 0, tzinfo=MSK)
TARGET_S = 1.0


def build(path: Path, touches: int, due: int, staff: int, seed: int = 8) -> None:
    """A year of inbound flow; every contact registered except the ``due`` ones."""
    rnd = random.Random(seed)
    open_database(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    created = iso(NOW - timedelta(days=400))
    conn.executemany(
        "INSERT INTO staff (id, name, telegram_id, role, extensions, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                i,
                f"Person {i}",
                100000 + i,
                "owner" if i == 1 else ("manager" if i == 2 else "staff"),
                json.dumps([f"{100 + i}"]),
                created,
            )
            for i in range(1, staff + 1)
        ],
    )
    old_touches = touches - due
    contacts = max(1, old_touches * 2 // 5)
    total_contacts = contacts + due
    conn.executemany(
        "INSERT INTO contacts (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
        ((i, f"Client {i}", created, created) for i in range(1, total_contacts + 1)),
    )
    conn.executemany(
        "INSERT INTO identifiers (contact_id, kind, value, raw, valid, created_at) VALUES (?, 'phone', ?, ?, 1, ?)",
        ((i, f"+7916{i:07d}", f"8916{i:07d}", created) for i in range(1, total_contacts + 1)),
    )
    year = 365 * 24 * 3600

    def touch_rows():  # type: ignore[no-untyped-def]
        for i in range(1, old_touches + 1):
            contact = rnd.randint(1, contacts)
            at = iso(NOW - timedelta(days=3) - timedelta(seconds=rnd.randrange(year)))
            kind = rnd.random()
            if kind < 0.6:  # calls; the missed ones were called back ten minutes later
                answered = int(rnd.random() < 0.85)
                back = None if answered else iso(parse_iso(at) + timedelta(minutes=10))
                yield (
                    i,
                    "pbx",
                    f"call-{i}",
                    "call",
                    contact,
                    at,
                    rnd.randint(1, staff),
                    "answered" if answered else "missed",
                    answered,
                    1,
                    back,
                )
            else:
                yield (
                    i,
                    "site",
                    f"form-{i}",
                    "form" if kind < 0.9 else "email",
                    contact,
                    at,
                    None,
                    None,
                    None,
                    0,
                    None,
                )
        monday, tuesday = (NOW - timedelta(days=1)).replace(hour=9, minute=0), NOW.replace(hour=9, minute=0)
        workday = [monday + timedelta(minutes=m) for m in range(9 * 60)]
        workday += [tuesday + timedelta(minutes=m) for m in range(5 * 60 + 30)]
        for j in range(due):
            i = old_touches + j + 1
            contact = contacts + j + 1
            at = iso(workday[j % len(workday)] + timedelta(seconds=j // len(workday)))
            if j % 10 == 0:  # a tenth are missed calls nobody called back
                yield (
                    i,
                    "pbx",
                    f"call-{i}",
                    "call",
                    contact,
                    at,
                    rnd.randint(1, staff),
                    "missed",
                    0,
                    1,
                    None,
                )
            elif j % 3 == 0:
                yield (i, "site", f"form-{i}", "form", contact, at, None, None, None, 0, None)
            else:
                yield (
                    i,
                    "pbx",
                    f"call-{i}",
                    "call",
                    contact,
                    at,
                    rnd.randint(1, staff),
                    "answered",
                    1,
                    1,
                    None,
                )

    conn.executemany(
        "INSERT INTO touches (id, source, external_id, channel, contact_id, occurred_at, received_at, staff_id,"
        " call_status, answered, call_final, called_back_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?6, ?, ?, ?, ?, ?, ?6)",
        touch_rows(),
    )
    conn.executemany(
        "INSERT INTO registrations (id, contact_id, disposition, reason, staff_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            (
                i,
                i,
                "lead" if i % 8 == 0 else "not_a_lead",
                None if i % 8 == 0 else "other",
                1 + i % staff,
                created,
            )
            for i in range(1, contacts + 1)
        ),
    )
    today = NOW.date()

    def lead_rows():  # type: ignore[no-untyped-def]
        for i in range(8, contacts + 1, 8):
            updated = NOW - timedelta(seconds=rnd.randrange(year))
            stage = rnd.choice(("won", "lost", "lost", "new", "qualified"))
            follow = (
                today.isoformat()
                if i % 400 == 0
                else (today + timedelta(days=rnd.randint(1, 60))).isoformat()
                if i % 5 == 0
                else None
            )
            yield (
                i,
                i,
                i,
                rnd.choice(("hot", "warm", "cold")),
                stage,
                1 + i % staff,
                follow,
                iso(updated),
                iso(updated),
            )

    conn.executemany(
        "INSERT INTO leads (id, contact_id, registration_id, temperature, stage, owner_id, follow_up_on, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        lead_rows(),
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def rules() -> NudgeRules:
    return NudgeRules(calendar=WorkingCalendar.from_config(WorkingTimeSection(), MSK))


def _reset(writer: Database) -> None:
    """Back to the base as built: no nudges, nothing queued."""
    writer.execute("BEGIN IMMEDIATE")
    for table in ("nudge_deliveries", "nudge_messages", "nudges", "outbox"):
        writer.execute(f"DELETE FROM {table}")
    writer.execute("COMMIT")


def _sweep(
    reader: Database, writer: Database, r: NudgeRules, now: datetime
) -> tuple[float, float, int, Recorded]:
    started = time.perf_counter()
    due = due_nudges(reader, now, r)
    derived = time.perf_counter()
    writer.execute("BEGIN IMMEDIATE")
    recorded = plan_and_record(writer, now, r, render=lay_out, due=due)
    writer.execute("COMMIT")
    return derived - started, time.perf_counter() - derived, len(due), recorded


SWEEPS = (("first sweep", NOW), ("same minute", NOW), ("5 min later", NOW + timedelta(minutes=5)))


def measure(path: Path) -> None:
    """The three sweeps timed, then once more under tracemalloc for the heap; one line each."""
    reader = connect(path, readonly=True)
    writer = connect(path)
    r = rules()
    _reset(writer)
    for label, now in SWEEPS:
        read_s, write_s, due, recorded = _sweep(reader, writer, r, now)
        total = read_s + write_s
        print(
            f"{label:12s} {total * 1000:5.0f} ms (read {1000 * read_s:4.0f} + write {1000 * write_s:4.0f})"
            f"  x{total / TARGET_S:4.2f} of the 1 s target  due {due:6d}  messages {len(recorded.outbox_ids):3d}"
            f"  new nudges {recorded.nudges:4d}  held for later {recorded.held:6d}"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _reset(writer)
    tracemalloc.start()
    peaks = []
    for _, now in SWEEPS:
        tracemalloc.reset_peak()
        _sweep(reader, writer, r, now)
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
    tracemalloc.stop()
    print(
        f"peak Python heap per sweep: {', '.join(f'{p:.1f}' for p in peaks)} MiB; peak RSS of the process: {rss:.0f} MiB"
    )
    _reset(writer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--touches", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--staff", type=int, default=20)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return
    path = Path(tempfile.gettempdir()) / f"leadline-sweep-{args.touches}-{args.due}-{args.staff}.db"
    if args.rebuild or not path.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        started = time.perf_counter()
        build(path, args.touches, args.due, args.staff)
        print(f"built {path} in {time.perf_counter() - started:.0f} s")
    counts = (
        sqlite3.connect(path)
        .execute(
            "SELECT (SELECT COUNT(*) FROM touches), (SELECT COUNT(*) FROM contacts), (SELECT COUNT(*) FROM registrations),"
            " (SELECT COUNT(*) FROM leads)"
        )
        .fetchone()
    )
    print(
        f"base: {counts[0]} touches, {counts[1]} contacts, {counts[2]} registrations, {counts[3]} leads; now {NOW.isoformat()}"
    )
    subprocess.run([sys.executable, __file__, "--measure", str(path)], check=True)


if __name__ == "__main__":
    main()
