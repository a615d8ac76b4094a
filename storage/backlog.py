"""Journal rows that have not become touches yet: what ``/metrics`` and ``leadline replay`` report.

A row is ``received`` while its request is being stored and ``failed`` when storing its events
raised. Start-up and ``leadline replay`` finish them once the cause is gone; until then whoever
runs Leadline must be able to see them (an alert on the metric, a list with reasons), not dig
them out of a log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from storage.db import chunks, parse_iso


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    source: str
    received_at: datetime
    status: str


@dataclass(frozen=True, slots=True)
class Backlog:
    #: Rows received or failed, not processed.
    waiting: int
    #: Failed rows by source (sources without any are absent).
    failed: dict[str, int]


def backlog(db: Database) -> Backlog:
    waiting = int(
        db.execute("SELECT COUNT(*) FROM journal WHERE status IN ('received', 'failed')").fetchone()[0]
    )
    rows = db.execute("SELECT source, COUNT(*) FROM journal WHERE status = 'failed' GROUP BY source")
    return Backlog(waiting, {str(source): int(count) for source, count in rows})


def rows(db: Database, ids: Sequence[int]) -> list[Row]:
    """Where and when these rows came from, oldest first: what a person needs to find the request."""
    found: list[Row] = []
    for chunk in chunks(sorted(ids)):
        marks = ",".join("?" * len(chunk))
        cursor = db.execute(
            f"SELECT id, source, received_at, status FROM journal WHERE id IN ({marks}) ORDER BY id",
            list(chunk),
        )
        found += [Row(int(i), str(s), parse_iso(str(at)), str(status)) for i, s, at, status in cursor]
    return found
