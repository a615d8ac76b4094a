"""A person's events stored and erased straight through storage, as the pipeline and `forget` do,
for the tests that build a base without a server."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlite_utils import Database

from capture.pipeline import store_events
from storage.attribution import CampaignIndex
from storage.erasure import Actor, Erased, erase
from storage.events import ContactEvent
from storage.subject_scans import scan
from storage.subjects import subject_of
from storage.touches import EventContext

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def store(
    db: Database,
    event: ContactEvent,
    *,
    source: str = "site",
    at: datetime = AT,
    journal_id: int | None = None,
) -> None:
    """One event stored as capture stores it, in a transaction of its own."""
    context = EventContext(
        source=source,
        received_at=at,
        region="RU",
        campaigns=CampaignIndex.build([], "RU"),
        journal_id=journal_id,
    )
    with db.atomic():
        store_events(db, [([event], context)])


def forget(db: Database, contact_id: int, at: datetime) -> Erased:
    """The person erased as `leadline forget` erases them, in one transaction."""
    with db.atomic():
        subject = subject_of(db, contact_id)
        assert subject is not None
        return erase(db, subject, scan(db, subject), at=at, actor=Actor("cli", "test"))
