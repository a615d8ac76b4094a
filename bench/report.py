"""Report speed on a year of a busy office: 1 000 000 touches on 200 000 contacts by default.

Fills a temporary database with ``leadline demo``'s generator (the real Mango, Zadarma, Tilda and
Postmark parsers and the storage functions, in large transactions, each request journalled raw as
a live one is; ``--no-journal`` for the touches alone), then prints the time of ``leadline report
--json`` for one month and for the whole year (as a user runs it: a separate process), the same
reports built in-process, the digest's build time and the database size. Then a retention pass
(``[retention]``'s defaults, the day after the year) and the size after it: the file's (the raw data
is zeroed where it was, so the file keeps its size), how much of it is whole free pages that new data
reuses, and what ``VACUUM`` leaves; and whether the year's report came out the same. Targets from the issue: a month under 1 s and a year under 5 s on
2 cores. Run: ``.venv/bin/python bench/report.py`` (``--touches 100000 --contacts 20000`` for a
quick look; ``--keep DIR`` keeps the database to look at).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.digest import compose  # noqa: E402
from leadline.app import build_capture  # noqa: E402
from leadline.config import Config, RetentionSection  # noqa: E402
from leadline.demo import Shape, demo_config, story, write_demo_config, write_direct  # noqa: E402
from leadline.report_cli import collector_held  # noqa: E402
from storage.db import Store, connect  # noqa: E402
from storage.reports.report import build_report  # noqa: E402
from storage.reports.scope import Period, Rules, Scope  # noqa: E402
from storage.retention import Pass, run_pass  # noqa: E402
from storage.worktime import WorkingCalendar  # noqa: E402

CHUNK_DAYS = 30


def shape_for(touches: int, contacts: int, days: int) -> Shape:
    """A shape whose year lands near the wanted totals (people arrive 5x less on weekend days)."""
    weighted_days = days * (5 / 7 + 2 / 7 / 5)
    per_day = contacts / weighted_days
    cold = per_day * 0.05
    # Each person makes touches_per_person inbound touches plus call-backs of missed calls; cold
    # calls add one outbound touch each.
    # (calibrated on a run: the story's repeats and call-backs give about 0.84 of the naive count)
    per_person = max(1.0, (touches / contacts - 0.2 - 0.05) / 1.03 / 0.84)
    return Shape(
        days=CHUNK_DAYS,
        people_per_workday=per_day * 0.95,
        people_per_weekend_day=per_day * 0.95 / 5,
        touches_per_person=per_person,
        cold_calls_per_workday=cold,
    )


def fill(config: Config, shape: Shape, start: date, days: int, journalled: bool) -> tuple[int, float]:
    async def setup() -> None:
        store = Store.open(config.database_path)
        try:
            await build_capture(config, store)
        finally:
            await store.close()

    asyncio.run(setup())
    store_for_context = Store(config.database_path)  # never started: write_direct only needs the config
    from capture.pipeline import Capture

    capture = Capture(config=config, store=store_for_context)
    db = connect(config.database_path)
    db.execute("PRAGMA synchronous = OFF")  # a bulk load; the reports below read a normal file
    calendar = WorkingCalendar.from_config(config.working_time, config.tz)
    written, started = 0, time.perf_counter()
    for chunk, offset in enumerate(range(0, days, CHUNK_DAYS)):
        part = Shape(
            **{
                **shape.__dict__,
                "days": min(CHUNK_DAYS, days - offset),
                "seed": 1000 + chunk,
                "offset": chunk * 100_000,
            }
        )
        actions = story(part, start + timedelta(days=offset), calendar)
        for _ in write_direct(capture, db, actions, journalled=journalled):
            pass
        written += len(actions)
        touches = db.execute("SELECT COUNT(*) FROM touches").fetchone()[0]
        print(
            f"  {start + timedelta(days=offset)}: {len(actions)} actions, {touches} touches so far "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    db.execute("ANALYZE")
    db.close()
    return written, time.perf_counter() - started


def timed_cli(config_file: Path, *args: str) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "leadline", "report", "--config", str(config_file), "--json", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return time.perf_counter() - started, json.loads(proc.stdout)


def timed_in_process(config: Config, period: Period, now: datetime) -> float:
    db = connect(config.database_path, readonly=True)
    try:
        started = time.perf_counter()
        with collector_held():  # as `leadline report` builds it
            build_report(db, Scope(period, as_of=now), Rules.from_config(config))
        return time.perf_counter() - started
    finally:
        db.close()


def sizes(db_path: Path) -> tuple[int, int]:
    """The database file's size after a full checkpoint, and how much of it is free pages."""
    db = connect(db_path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        free = (
            db.execute("PRAGMA freelist_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
        )
    finally:
        db.close()
    return sum(os.path.getsize(p) for p in db_path.parent.glob(f"{db_path.name}*")), int(free)


def retention(config: Config, now: datetime) -> tuple[Pass, float]:
    async def run() -> Pass:
        store = Store.open(config.database_path)
        try:
            return await run_pass(store, RetentionSection(), now)
        finally:
            await store.close()

    started = time.perf_counter()
    result = asyncio.run(run())
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--touches", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--keep", type=Path, default=None, help="Folder to keep the database in.")
    parser.add_argument(
        "--reuse", action="store_true", help="Time the reports on the kept database; no fill."
    )
    parser.add_argument("--no-journal", action="store_true", help="Fill touches only, no raw requests.")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="leadline-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / "bench.db"
    end = date(2026, 10, 31)
    start = end - timedelta(days=args.days - 1)
    config = demo_config(Config(), db_path, (start, end))
    config_file = write_demo_config(config)
    actions, seconds = 0, 0.0
    if not (args.reuse and db_path.exists()):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        print(
            f"Filling {db_path}: {args.days} days from {start}, target {args.touches} touches, {args.contacts} contacts"
        )
        actions, seconds = fill(
            config, shape_for(args.touches, args.contacts, args.days), start, args.days, not args.no_journal
        )
    else:
        print(f"Reusing {db_path}")
    db = connect(db_path)
    touches, contacts = db.execute("SELECT COUNT(*), COUNT(DISTINCT contact_id) FROM touches").fetchone()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    size = sum(os.path.getsize(p) for p in folder.glob("bench.db*"))
    print(f"Filled: {touches} touches on {contacts} contacts from {actions} actions in {seconds:.0f} s")

    now = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=config.tz) + timedelta(
        hours=9
    )
    month = Period.month(end, config.tz)
    year = Period(start, end, config.tz)
    month_cli, month_data = timed_cli(config_file, "--period", month.label, "--as-of", now.isoformat())
    year_cli, year_data = timed_cli(
        config_file, "--from", start.isoformat(), "--to", end.isoformat(), "--as-of", now.isoformat()
    )
    month_in = min(timed_in_process(config, month, now) for _ in range(3))
    year_in = min(timed_in_process(config, year, now) for _ in range(2))
    db = connect(db_path, readonly=True)
    started = time.perf_counter()
    compose(db, config, Period.day(end, config.tz), now)
    digest_s = time.perf_counter() - started
    db.close()

    print()
    print(
        f"month report ({month.label}, {month_data['inbound_touches']} touches): "
        f"`leadline report --json` {month_cli:.2f} s, in-process {month_in:.2f} s   (target < 1 s)"
    )
    print(
        f"year report ({year.label}, {year_data['inbound_touches']} touches): "
        f"`leadline report --json` {year_cli:.2f} s, in-process {year_in:.2f} s   (target < 5 s)"
    )
    print(f"digest build (text + 14-day chart): {digest_s:.2f} s")
    print(f"database size: {size / 1e6:.0f} MB ({db_path})")

    before, _ = sizes(db_path)
    result, pass_s = retention(config, now)
    after, free = sizes(db_path)
    _, year_after = timed_cli(
        config_file, "--from", start.isoformat(), "--to", end.isoformat(), "--as-of", now.isoformat()
    )
    print(
        f"retention pass ([retention] defaults, on {now.date()}): {pass_s:.1f} s; {result.requests} raw requests,"
        f" {result.fields} touches' provider fields, {result.unregistered + result.refused} contacts anonymised"
    )
    db = connect(db_path)
    started = time.perf_counter()
    db.execute("VACUUM")
    vacuum_s = time.perf_counter() - started
    db.close()
    vacuumed, _ = sizes(db_path)
    print(
        f"database size before the pass {before / 1e6:.0f} MB, after {after / 1e6:.0f} MB (the raw data is"
        f" zeroed in place; {free / 1e6:.0f} MB of whole free pages that new data reuses), after VACUUM"
        f" ({vacuum_s:.0f} s) {vacuumed / 1e6:.0f} MB ({vacuumed / before:.2f}x)"
    )
    print(f"the year's report after the pass is {'the same' if year_after == year_data else 'DIFFERENT'}")
    print(f"cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
