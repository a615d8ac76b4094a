"""Which days the owner's digest has covered, so the next one starts the day after (``bot/digest.py``).

Kept in the ``meta`` table; a base from before that key is read from the digest's outbox rows,
whose dedupe keys are ``digest:<last day>:<chat>:<part>``.
"""

from __future__ import annotations

from datetime import date

from sqlite_utils import Database

from storage import meta

#: The last day a digest covered (ISO date), in the ``meta`` table.
LAST_DAY_KEY = "digest_last_day"


def last_digested(db: Database) -> date | None:
    """The last day the newest digest covered: the ``meta`` key, else (a base from before the key)
    the newest ``digest:<day>:<chat>:text`` outbox row (its day is the period's last)."""
    value = meta.get(db, LAST_DAY_KEY)
    if not value:
        value = db.execute(
            "SELECT MAX(substr(dedupe_key, 8, 10)) FROM outbox WHERE dedupe_key LIKE 'digest:%:text'"
        ).fetchone()[0]
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def mark_digested(db: Database, day: date) -> None:
    """``day`` is covered; a later day is never moved back by an earlier one written after it."""
    meta.raise_to(db, LAST_DAY_KEY, day.isoformat())
