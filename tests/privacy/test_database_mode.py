"""The database file and its WAL and SHM hold everything (people, raw requests with providers' keys):
readable by Leadline's user only, whatever the umask of the shell that started it."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Running, StartServer

EMAIL = "ivan.petrov@example.com"


@pytest.fixture
def shell_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # a shell's usual umask: new files readable by everyone
    try:
        yield
    finally:
        os.umask(previous)


def modes(database: Path) -> dict[str, int]:
    files = (database, Path(f"{database}-wal"), Path(f"{database}-shm"))
    return {path.name: stat.S_IMODE(path.stat().st_mode) for path in files}


def made_private(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "owner-only" in r.getMessage()]


async def post_a_form(srv: Running) -> None:
    resp = await srv.session.post(
        f"{srv.url}/hooks/form", params={"token": "form-token"}, data={"email": EMAIL}
    )
    assert resp.status == 200


async def test_a_new_database_its_wal_and_shm_are_the_owners_only(
    start_server: StartServer, shell_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    srv = await start_server()
    await post_a_form(srv)
    assert modes(srv.config.database_path) == {
        "leadline.db": 0o600,
        "leadline.db-wal": 0o600,
        "leadline.db-shm": 0o600,
    }
    assert made_private(caplog) == []  # nothing was ever open to others


async def test_an_existing_database_readable_by_others_is_made_the_owners_only_and_said_once(
    start_server: StartServer, shell_umask: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    database = tmp_path / "leadline.db"
    # An older Leadline made it under the shell's umask, and a sqlite3 shell still holds it open.
    other = sqlite3.connect(database)
    other.execute("PRAGMA journal_mode = WAL")
    other.execute("CREATE TABLE notes (x)")
    other.commit()
    try:
        assert set(modes(database).values()) == {0o644}
        srv = await start_server()
        await post_a_form(srv)
        assert set(modes(database).values()) == {0o600}
    finally:
        other.close()
    [line] = made_private(caplog)
    assert line.levelno == logging.WARNING
    assert line.fields == {"files": [str(database), f"{database}-wal", f"{database}-shm"]}  # type: ignore[attr-defined]
