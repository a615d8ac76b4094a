"""Creating or upgrading the database ahead of the store that will open it, on a thread of its own."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from storage.db import WriteLock, open_database

log = logging.getLogger("leadline.store")


def migrate_ahead(path: str | Path) -> threading.Thread:
    """Create or upgrade the database on a thread of its own, under the write lock; the thread,
    already started.

    For ``leadline serve``, which starts it before it imports the app: SQLite gives up the GIL while
    it builds the schema, so a new file's migrations run beside the imports on another core, and
    the :meth:`storage.db.Store.open` of the start-up finds nothing left to apply (it waits on the
    lock until this is done). A failure is only logged at debug level: that open meets it again and
    stops the start with it, as it did before (bench/idle.py: the open took 50-80 ms of a new
    file's start-up).
    """

    def run() -> None:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            lock = WriteLock(Path(path))
            try:
                with lock:
                    open_database(path).close()
            finally:
                lock.close()
        except Exception:
            log.debug(
                "the database could not be prepared ahead; the store's open will say why", exc_info=True
            )

    thread = threading.Thread(target=run, name="leadline-migrate", daemon=True)
    thread.start()
    return thread
