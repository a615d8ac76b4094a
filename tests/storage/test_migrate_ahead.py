"""``leadline serve`` makes or upgrades the database on a thread while it loads the app
(storage/migrate_ahead.py); the store's own open at start-up then finds nothing to apply."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from storage.db import Store, connect
from storage.migrate_ahead import migrate_ahead
from storage.schema import migrations


async def test_a_new_file_gets_its_schema_ahead_and_the_store_opens_it_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "data" / "leadline.db"
    migrate_ahead(path).join(timeout=60)
    db = connect(path)
    assert migrations.pending(db) == []
    applied = [m.applied_at for m in migrations.applied(db)]
    db.close()
    store = await Store.open_async(path)
    await store.close()
    db = connect(path)
    assert [m.applied_at for m in migrations.applied(db)] == applied
    db.close()


def test_a_failure_ahead_is_left_to_the_stores_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    raised: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))
    blocker = tmp_path / "a file"
    blocker.write_text("")
    with caplog.at_level(logging.DEBUG, logger="leadline.store"):
        migrate_ahead(blocker / "leadline.db").join(timeout=60)
    assert raised == []
    assert "could not be prepared ahead" in caplog.text
    with pytest.raises(OSError):
        Store.open(blocker / "leadline.db")
