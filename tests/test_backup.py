"""``leadline backup`` and ``leadline restore`` as an operator runs them: beside a busy server, from cron."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from leadline.cli_base import EXIT_RUNTIME
from storage import schema
from storage.backup import BackupError, Snapshot, copy
from storage.db import iso, now_utc
from tests.capture.test_core_http import write_config
from tests.cli import ROOT, free_port, run_cli, run_cli_sync, start_serve
from tests.conftest import Running, StartServer
from tests.test_serve_start import CONFIG as SERVE_CONFIG

#: Journal rows of 4 KB written before the backup: about 8 MB, some thirty steps of the copy.
FILLER_ROWS = 2000


def count(path: Path, sql: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def fill(srv: Running) -> None:
    """Old requests, so that the copy takes many steps while new ones arrive."""
    db = srv.db()
    at = iso(now_utc())
    with db.conn:
        db.conn.executemany(
            "INSERT INTO journal (source, method, body, received_at, status) VALUES (?, ?, ?, ?, ?)",
            [("form", "POST", b"x" * 4096, at, "rejected")] * FILLER_ROWS,
        )
    db.close()


async def test_a_backup_taken_during_ingest_holds_every_request_answered_before_it(
    start_server: StartServer, tmp_path: Path
):
    srv = await start_server()
    fill(srv)
    statuses: list[int] = []
    stop, warm = asyncio.Event(), asyncio.Event()

    async def ingest() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            data = {"phone": f"+7 916 {n // 10000:03d}-{n % 10000 // 100:02d}-{n % 100:02d}", "name": "Ivan"}
            resp = await srv.session.post(f"{srv.url}/hooks/form", params={"token": "form-token"}, data=data)
            statuses.append(resp.status)
            if len(statuses) == 20:
                warm.set()

    sender = asyncio.create_task(ingest())
    await warm.wait()
    answered_before = len(statuses)
    # Small steps, so that requests are committed between most of them, as on a big file.
    copied = await asyncio.to_thread(
        copy, srv.config.database_path, tmp_path / "copy.db", pages=4, pause=0.001
    )
    answered_after = len(statuses)
    stop.set()
    await sender

    assert set(statuses) == {200}
    assert copied.pages > 4 * 100
    forms = count(copied.path, "SELECT count(*) FROM journal WHERE status = 'processed'")
    assert answered_before <= forms <= answered_after
    # One consistent moment: each request in the copy has its touch, and no touch lacks its request.
    assert count(copied.path, "SELECT count(*) FROM touches") == forms
    assert count(copied.path, "SELECT count(*) FROM journal") == FILLER_ROWS + forms
    assert sqlite3.connect(copied.path).execute("PRAGMA integrity_check").fetchall() == [("ok",)]


async def test_the_backup_command_copies_a_running_server_database(start_server: StartServer, tmp_path: Path):
    srv = await start_server()
    for phone in ("+7 916 123-45-67", "+7 916 765-43-21"):
        resp = await srv.session.post(
            f"{srv.url}/hooks/form", params={"token": "form-token"}, data={"phone": phone}
        )
        assert resp.status == 200
    config = write_config(tmp_path, srv.config)

    result = await run_cli("backup", str(tmp_path / "backups") + "/", "--config", str(config))

    assert result.code == 0, result.output
    [made] = (tmp_path / "backups").iterdir()
    assert result.output == (
        f"Backed up {srv.config.database_path} to {made} ({made.stat().st_size // 1024} KB);"
        " integrity check: ok.\n"
    )
    assert count(made, "SELECT count(*) FROM touches") == 2
    assert made.stat().st_mode & 0o777 == 0o600  # personal data, whatever the umask


async def test_a_backup_onto_the_database_itself_is_refused_and_the_server_loses_nothing(
    start_server: StartServer, tmp_path: Path
):
    """Renamed over the live file, the copy would take its place while the server went on writing
    to the old one: requests answered 200 afterwards would be lost."""
    srv = await start_server()
    config = write_config(tmp_path, srv.config)
    database = srv.config.database_path
    inode = database.stat().st_ino
    (tmp_path / "link.db").symlink_to(database)
    for dest in (database, Path(f"{database}-wal"), tmp_path / "link.db"):
        result = await run_cli("backup", str(dest), "--config", str(config))
        assert result.code == EXIT_RUNTIME, result.output
        assert "not a place for its backup: give a directory or another file." in result.output
    assert database.stat().st_ino == inode
    resp = await srv.session.post(
        f"{srv.url}/hooks/form", params={"token": "form-token"}, data={"phone": "+7 916 123-45-67"}
    )
    assert resp.status == 200
    assert srv.scalar("SELECT count(*) FROM touches") == 1


def test_a_directory_keeps_the_newest_backups_and_nothing_else_is_removed(tmp_path: Path):
    db = tmp_path / "leadline.db"
    config = tmp_path / "config.toml"
    config.write_text(f'[leadline]\ndatabase = "{db}"\n')
    run_cli_sync("journal", "--config", str(config))  # creates the database
    backups = tmp_path / "backups"
    backups.mkdir()
    old = ["leadline-20261101T030000.000Z.db", "leadline-20261102T030000.000Z.db"]
    others = ["leadline-20261001T030000.000Z.db.txt", "notes.db", "crm-20261001T030000.000Z.db"]
    for name in [*old, *others]:
        (backups / name).write_bytes(b"")

    result = run_cli_sync("backup", str(backups), "--keep", "2", "--config", str(config))

    assert result.code == 0, result.output
    assert "Removed the old backup leadline-20261101T030000.000Z.db." in result.output
    kept = sorted(p.name for p in backups.iterdir())
    [made] = [name for name in kept if name not in old and name not in others]
    assert made.startswith("leadline-2") and made.endswith("Z.db")
    assert sorted([made, old[1], *others]) == kept


@pytest.mark.parametrize(
    ("dest", "said"),
    [
        # A directory that exists but takes no file (as a read-only disk or another user's does).
        ("/proc/self/", "Cannot write /proc/self/leadline-"),
        # One that cannot be made.
        ("/proc/self/backups/", "Cannot create /proc/self/backups: No such file or directory;"),
    ],
)
def test_a_backup_it_cannot_write_is_one_line_and_exit_4(tmp_path: Path, dest: str, said: str):
    """A cron job or timer that checks for 4 got 1 and an eight-frame traceback."""
    config = tmp_path / "config.toml"
    config.write_text(f'[leadline]\ndatabase = "{tmp_path / "leadline.db"}"\n')
    run_cli_sync("journal", "--config", str(config))  # creates the database

    result = run_cli_sync("backup", dest, "--config", str(config))

    assert result.code == EXIT_RUNTIME == 4, result.output
    [line] = result.output.splitlines()
    assert line.startswith(said), line
    assert line.endswith("; nothing was backed up."), line


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        # SQLite cannot make the database's -wal and -shm beside it, as on a read-only or full disk.
        (
            lambda db: [Path(f"{db}{suffix}").mkdir() for suffix in ("-wal", "-shm")],
            "unable to open database file",
        ),
        (lambda db: db.write_text("not a database at all " * 100), "file is not a database"),
    ],
)
def test_a_database_the_backup_cannot_open_is_one_line_and_exit_4_and_leaves_no_partial_file(
    tmp_path: Path, spoil: Callable[[Path], object], said: str
):
    """Opening the database was outside the copy's error handling: a traceback, exit 1, and an empty
    ``.leadline.backup.partial`` left in DEST."""
    database = tmp_path / "leadline.db"
    config = tmp_path / "config.toml"
    config.write_text(f'[leadline]\ndatabase = "{database}"\n')
    run_cli_sync("journal", "--config", str(config))  # creates the database
    spoil(database)
    dest = tmp_path / "backups"

    result = run_cli_sync("backup", f"{dest}/", "--config", str(config))

    assert result.code == EXIT_RUNTIME == 4, result.output
    assert result.output.splitlines() == [f"The copy of {database} failed: {said}"]
    assert list(dest.iterdir()) == []


def test_a_copy_that_cannot_take_its_name_leaves_no_partial_file(tmp_path: Path):
    """The copy is written and checked, then its rename fails: the half of a backup goes too."""
    database = tmp_path / "leadline.db"
    schema.migrate(Database(database))
    target = tmp_path / "taken.db"
    (target / "inside").mkdir(parents=True)  # a directory, which a file cannot replace

    with pytest.raises(BackupError) as failed:
        copy(database, target)

    assert str(failed.value) == f"Cannot write {target}: Is a directory; nothing was backed up."
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leadline.db", "taken.db"]


def test_keep_is_refused_for_a_single_file(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text(f'[leadline]\ndatabase = "{tmp_path / "leadline.db"}"\n')
    result = run_cli_sync("backup", str(tmp_path / "copy.db"), "--keep", "3", "--config", str(config))
    assert result.code == 2, result.output
    assert "--keep rotates the backups in a directory" in result.output


async def test_restore_refuses_while_serve_runs_and_restores_once_it_stopped(tmp_path: Path):
    port = free_port()
    db = tmp_path / "leadline.db"
    config = tmp_path / "config.toml"
    config.write_text(SERVE_CONFIG.format(db=db, port=port))
    assert run_cli_sync("backup", str(tmp_path / "empty.db"), "--config", str(config)).code == 4
    run_cli_sync("journal", "--config", str(config))  # an empty database, backed up
    assert run_cli_sync("backup", str(tmp_path / "empty.db"), "--config", str(config)).code == 0

    proc = await start_serve(config, port)
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/hooks/site-form?token=s3cret%2Ftoken%261"
            async with session.post(url, data={"phone": "+7 916 123-45-67"}) as resp:
                assert resp.status == 200
        refused = await run_cli("restore", str(tmp_path / "empty.db"), "--config", str(config))
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=90)

    assert refused.code == EXIT_RUNTIME, refused.output
    assert "`leadline serve` is running on" in refused.output
    assert "nothing was restored" in refused.output
    assert count(db, "SELECT count(*) FROM touches") == 1

    restored = await run_cli("restore", str(tmp_path / "empty.db"), "--config", str(config))
    assert restored.code == 0, restored.output
    assert restored.output.splitlines() == [
        f"Restored {db} from {tmp_path / 'empty.db'} (integrity check: ok): 0 contacts, 0 touches, 0 journal.",
        "The database it replaced held 1 contacts, 1 touches, 1 journal.",
    ]
    assert count(db, "SELECT count(*) FROM touches") == 0


def test_restore_checks_the_backup_first_and_leaves_the_database_alone(tmp_path: Path):
    db = tmp_path / "leadline.db"
    config = tmp_path / "config.toml"
    config.write_text(f'[leadline]\ndatabase = "{db}"\n')
    run_cli_sync("journal", "--config", str(config))
    assert run_cli_sync("backup", str(tmp_path / "good.db"), "--config", str(config)).code == 0
    broken = tmp_path / "broken.db"
    data = bytearray((tmp_path / "good.db").read_bytes())
    data[4096 * 3 : 4096 * 3 + 64] = b"\xff" * 64  # a page of the tables torn
    broken.write_bytes(bytes(data))
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, but long enough to be read as one" * 100)
    before = db.read_bytes()

    for src, why in [(broken, ""), (other, "not a Leadline database"), (text, "file is not a database")]:
        result = run_cli_sync("restore", str(src), "--config", str(config))
        assert result.code == EXIT_RUNTIME, result.output
        assert f"{src} cannot be restored: " in result.output and why in result.output
        assert "nothing was restored" in result.output
        assert db.read_bytes() == before


async def test_a_restore_names_the_people_erased_since_the_backup(start_server: StartServer, tmp_path: Path):
    srv = await start_server()
    resp = await srv.session.post(
        f"{srv.url}/hooks/form", params={"token": "form-token"}, data={"phone": "+7 916 123-45-67"}
    )
    assert resp.status == 200
    config = write_config(tmp_path, srv.config)
    assert (await run_cli("backup", str(tmp_path / "before.db"), "--config", str(config))).code == 0
    forgot = await run_cli("forget", "+7 916 123-45-67", "--yes", "--config", str(config))
    assert forgot.code == 0, forgot.output
    await srv.stop()

    result = await run_cli("restore", str(tmp_path / "before.db"), "--config", str(config))

    assert result.code == 0, result.output
    assert result.output.splitlines()[2:] == [
        "1 contact(s) erased after this backup was made are back: erase them again (docs/privacy.md):",
        "  leadline forget '#1'",
    ]
    assert (
        count(srv.config.database_path, "SELECT count(*) FROM identifiers WHERE value LIKE '%9161234567'")
        == 1
    )


async def test_a_backup_from_before_erasure_is_restored_and_names_the_people_erased_since(
    start_server: StartServer, tmp_path: Path
):
    """A backup of the first releases (m001–m003) has no ``erased_at``: every contact in it is back."""
    srv = await start_server()
    resp = await srv.session.post(
        f"{srv.url}/hooks/form", params={"token": "form-token"}, data={"phone": "+7 916 123-45-67"}
    )
    assert resp.status == 200
    config = write_config(tmp_path, srv.config)
    forgot = await run_cli("forget", "+7 916 123-45-67", "--yes", "--config", str(config))
    assert forgot.code == 0, forgot.output
    await srv.stop()
    old = Database(tmp_path / "old.db")
    first = Migrations("leadline")
    for migration in (schema.m001_core, schema.m002_nudge_tracking, schema.m003_report_indexes):
        first()(migration)
    first.apply(old)
    at = iso(now_utc())
    old["contacts"].insert({"id": 1, "name": "Ivan", "created_at": at, "updated_at": at})
    old.close()

    result = await run_cli("restore", str(tmp_path / "old.db"), "--config", str(config))

    assert result.code == 0, result.output
    assert "nothing was restored" not in result.output
    assert result.output.splitlines()[2:] == [
        "1 contact(s) erased after this backup was made are back: erase them again (docs/privacy.md):",
        "  leadline forget '#1'",
    ]


def test_what_a_killed_backup_left_is_taken_over_by_the_next_run(tmp_path: Path):
    """A run killed midway (a reboot, a timer's timeout) left its half-copy, people's data in it, for
    good: no later run or rotation removed it. The next run now takes it over."""
    config = tmp_path / "config.toml"
    config.write_text(f'[leadline]\ndatabase = "{tmp_path / "leadline.db"}"\n')
    run_cli_sync("journal", "--config", str(config))  # creates the database
    backups = tmp_path / "backups"
    backups.mkdir()
    left = [
        ".leadline.backup.partial",  # this release's name, as a killed run leaves it
        ".leadline.backup.partial-journal",  # which SQLite would replay into the next copy
        ".leadline-20261207T031500.073Z.db.partial",  # an older release's, named after its run
        ".leadline-20261207T031500.073Z.db.partial-journal",
    ]
    for name in left:
        (backups / name).write_bytes(b"half a copy of someone's data" * 100)
    (backups / ".other.backup.partial").write_bytes(b"another database's, not ours to remove")

    result = run_cli_sync("backup", f"{backups}/", "--keep", "1", "--config", str(config))

    assert result.code == 0, result.output
    names = sorted(p.name for p in backups.iterdir())
    assert names[0] == ".other.backup.partial" and len(names) == 2, names
    assert names[1].startswith("leadline-2") and names[1].endswith("Z.db")
    assert count(backups / names[1], "SELECT count(*) FROM _sqlite_migrations") > 20


def test_a_second_backup_while_one_is_written_is_refused(tmp_path: Path):
    """Two runs (the timer's and one typed by hand) would write the same temporary file."""
    import fcntl

    config = tmp_path / "config.toml"
    config.write_text(f'[leadline]\ndatabase = "{tmp_path / "leadline.db"}"\n')
    run_cli_sync("journal", "--config", str(config))
    partial = tmp_path / ".leadline.backup.partial"
    with partial.open("w") as running:
        fcntl.flock(running, fcntl.LOCK_EX)
        result = run_cli_sync("backup", f"{tmp_path}/", "--config", str(config))
    assert result.code == EXIT_RUNTIME, result.output
    [line] = result.output.splitlines()
    assert line.startswith(
        f"Another backup of {tmp_path / 'leadline.db'} is being written beside {tmp_path}/leadline-"
    )
    assert line.endswith("; nothing was backed up.")


def test_a_dry_run_copy_is_the_owner_s_alone_and_one_a_killed_run_left_goes_with_the_next(tmp_path: Path):
    """``replay --dry-run`` replays on a copy of the database (everyone's personal data) beside it."""
    config = tmp_path / "config.toml"
    config.write_text(f'[leadline]\ndatabase = "{tmp_path / "leadline.db"}"\n')
    run_cli_sync("journal", "--config", str(config))  # creates the database
    database = tmp_path / "leadline.db"
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys; from pathlib import Path; from storage.backup import Snapshot;"
            " Snapshot(Path(sys.argv[1])).take(); os.kill(os.getpid(), signal.SIGKILL)",
            str(database),
        ],
        cwd=ROOT,
    )
    assert killed.returncode == -signal.SIGKILL
    [left] = [p for p in tmp_path.iterdir() if ".snapshot-" in p.name]
    assert (left / "leadline.db").is_file()

    was = os.umask(0)  # the loosest shell or cron job
    try:
        running = Snapshot(database)
        running.take()
    finally:
        os.umask(was)
    try:
        assert not left.exists()
        assert stat.S_IMODE(running.path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(running.path.stat().st_mode) == 0o600
        assert count(running.path, "SELECT count(*) FROM _sqlite_migrations") > 20
        beside = Snapshot(database)  # a second dry run at the same time leaves the first one's alone
        beside.remove()
        assert running.path.is_file()
    finally:
        running.remove()
    assert not [p for p in tmp_path.iterdir() if ".snapshot-" in p.name]
