"""A person's Telegram cards are shown in their export and erased with them, whether or not their
text can be searched."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from sqlite_utils import Database

from bot.arrival_texts import render_arrival
from storage.arrival_cards import ArrivalRules
from storage.arrivals import arrival_pass, switch
from storage.db import open_database
from storage.events import ContactEvent
from storage.staff import sync_staff
from storage.subject_export import export_subject
from tests.conftest import build_config
from tests.privacy.stored import AT, forget, store


def touch(db: Database, key: str, at: datetime, **fields: object) -> None:
    event = ContactEvent(channel="form", external_id=key, occurred_at=at, **fields)  # type: ignore[arg-type]
    store(db, event, source="form", at=at)


@pytest.mark.parametrize(
    ("who", "edits"),
    [
        ({"emails": ("o'brien.siobhan@example.org",), "name": "Siobhan", "message": "a private request"}, 1),
        # Never matched again (a typo must not join strangers): the second form is someone new's.
        ({"phones": ("12-34-5",), "name": "Kurt", "message": "a private request"}, 0),
    ],
    ids=["an address the card escapes", "a number too short to search for"],
)
def test_a_card_and_its_edits_are_blanked_when_their_person_is_forgotten(
    tmp_path: Path, who: dict[str, object], edits: int
) -> None:
    config = build_config(tmp_path, notify={"on_arrival": True})
    rules = ArrivalRules.from_config(config)
    render = partial(render_arrival, titles=config.campaign_titles())
    db = open_database(tmp_path / "leadline.db")
    with db.atomic():
        sync_staff(db, config.staff, AT)
        switch(db, AT - timedelta(minutes=1), True)
    touch(db, "first", AT, **who)
    with db.atomic():
        [card] = arrival_pass(db, AT + timedelta(seconds=5), rules, render, working=True).outbox_ids
        db.execute("UPDATE outbox SET status = 'sent', message_id = 42 WHERE id = ?", [card])
    touch(db, "again", AT + timedelta(minutes=2), **who)  # the same person: folded into the card, an edit
    with db.atomic():
        arrival_pass(db, AT + timedelta(minutes=2, seconds=5), rules, render, working=True)
    redrawn = [r[0] for r in db.execute("SELECT id FROM outbox WHERE method = 'editMessageText'")]
    assert len(redrawn) == edits
    [contact] = [r[0] for r in db.execute("SELECT contact_id FROM touches WHERE external_id = 'first'")]

    held = export_subject(db, contact)
    assert held is not None
    assert [(m["id"], m["method"]) for m in held["messages"]] == [(card, "sendMessage")] + [
        (n, "editMessageText") for n in redrawn
    ]
    assert all("a private request" in m["payload"]["text"] for m in held["messages"])

    forget(db, contact, AT + timedelta(days=1))
    left = {r[0]: r[1] for r in db.execute("SELECT id, payload FROM outbox")}
    assert [left[n] for n in (card, *redrawn)] == ["{}"] * (1 + edits)
