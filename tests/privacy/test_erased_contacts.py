"""An erased contact is nobody: staff cannot merge a living person into it, nor register it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from capture.pipeline import store_events
from storage.attribution import CampaignIndex
from storage.db import open_database
from storage.errors import ContactGone, NoContact
from storage.events import CallEvent, ContactEvent
from storage.merges import merge_by_staff, undo_merge_by_staff
from storage.register import Card, register
from storage.registrations import Draft
from storage.reports.report import build_report
from storage.reports.scope import Period, Rules, Scope
from storage.staff import sync_staff
from storage.touches import EventContext
from tests.conftest import build_config
from tests.privacy.stored import AT, forget, store


@pytest.mark.parametrize("erased_first", [True, False], ids=["into the erased", "the erased into"])
def test_merging_with_an_erased_contact_is_refused_and_leaves_both_as_they_were(
    tmp_path: Path, erased_first: bool
) -> None:
    db = open_database(tmp_path / "leadline.db")
    with db.atomic():
        manager = sync_staff(db, build_config(tmp_path).staff, AT)["Anna"]
    for key, phone, name in [
        ("gone", "+79161111111", "Erased Person"),
        ("live", "+79162222222", "Live Person"),
    ]:
        event = ContactEvent(channel="form", external_id=key, occurred_at=AT, phones=(phone,), name=name)
        store(db, event)
    gone, live = (
        db.execute("SELECT contact_id FROM touches WHERE external_id = ?", [k]).fetchone()[0]
        for k in ("gone", "live")
    )
    forget(db, gone, AT + timedelta(hours=1))
    a, b = (live, gone) if erased_first else (gone, live)
    with pytest.raises(ContactGone), db.atomic():
        merge_by_staff(db, a, b, staff_id=manager, at=AT + timedelta(hours=2))
    contacts = {r[0]: r[1:] for r in db.execute("SELECT id, name, merged_into FROM contacts")}
    assert contacts == {gone: (None, None), live: ("Live Person", None)}
    assert db.execute("SELECT COUNT(*) FROM identifiers WHERE contact_id = ?", [gone]).fetchone()[0] == 0


def test_the_undo_of_an_erased_persons_merge_is_refused_and_the_past_report_stays(tmp_path: Path) -> None:
    """Ann's two contacts merged, then Ann erased: the old "Undo merge" is refused, since split she
    would be two inbound contacts in a month her erasure left at one."""
    db = open_database(tmp_path / "leadline.db")
    config = build_config(tmp_path)
    with db.atomic():
        manager = sync_staff(db, config.staff, AT)["Anna"]
    store(db, ContactEvent(channel="form", external_id="phone", occurred_at=AT, phones=("+79161111111",)))
    store(db, ContactEvent(channel="form", external_id="mail", occurred_at=AT, emails=("ann@example.com",)))
    by_phone, by_mail = (r[0] for r in db.execute("SELECT id FROM contacts ORDER BY id"))
    with db.atomic():
        merge_id, _, _ = merge_by_staff(db, by_phone, by_mail, staff_id=manager, at=AT + timedelta(hours=1))
    forget(db, by_phone, AT + timedelta(hours=2))

    def inbound_contacts() -> int:
        scope = Scope(Period.day(AT.date(), config.tz), as_of=AT + timedelta(days=1))
        return int(build_report(db, scope, Rules.from_config(config))["inbound_contacts"])

    assert inbound_contacts() == 1
    with pytest.raises(ContactGone), db.atomic():
        undo_merge_by_staff(db, merge_id, staff_id=manager, at=AT + timedelta(hours=3))
    assert inbound_contacts() == 1  # before: the undo went through, and that day had 2
    assert db.execute("SELECT merged_into FROM contacts WHERE id = ?", [by_mail]).fetchone()[0] == by_phone
    assert db.execute("SELECT undone_at FROM merges").fetchall() == [(None,)]


def test_a_card_drawn_before_the_erasure_registers_nobody_and_writes_no_name_back(tmp_path: Path) -> None:
    """A Save whose card was checked just before an owner erased the person: it used to register a
    lead on the erased contact and write back the name and need the erasure had blanked."""
    db = open_database(tmp_path / "leadline.db")
    with db.atomic():
        manager = sync_staff(db, build_config(tmp_path).staff, AT)["Anna"]
    event = ContactEvent(
        channel="form", external_id="f1", occurred_at=AT, phones=("+79161234567",), name="Ivan Petrov"
    )
    store(db, event)
    touch, contact = db.execute("SELECT id, contact_id FROM touches").fetchone()
    forget(db, contact, AT + timedelta(minutes=1))
    draft = Draft("lead", temperature="hot", name="Ivan Petrov", need="a quote for Ivan's kitchen")
    with pytest.raises(NoContact), db.atomic():
        register(db, Card(touch, contact), draft, at=AT + timedelta(minutes=2), staff_id=manager)
    assert db.execute("SELECT name, erased_at IS NOT NULL FROM contacts").fetchall() == [(None, 1)]
    assert db.execute("SELECT COUNT(*) FROM registrations").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM leads").fetchone()[0] == 0


def test_a_calls_last_notification_after_the_erasure_is_stored_and_registers_nobody(tmp_path: Path) -> None:
    """A source that registers every touch: the call ends, in a notification that does not repeat the
    caller, after the caller was erased; the erased contact stays unregistered and the call is stored."""
    db = open_database(tmp_path / "leadline.db")
    context = EventContext(
        source="pbx",
        received_at=AT,
        region="RU",
        campaigns=CampaignIndex.build([], "RU"),
        registers=Draft("not_a_lead", reason="existing_client"),
    )
    ringing = CallEvent("c1", "c1-1", "in", "ringing", caller="+79161234567", occurred_at=AT, seq=1)
    with db.atomic():
        store_events(db, [([ringing], context)])
    [contact] = [r[0] for r in db.execute("SELECT contact_id FROM touches")]
    forget(db, contact, AT + timedelta(seconds=30))
    over = replace(ringing, caller=None, event_key="c1-2", status="missed", seq=2, final=True, answered=False)
    with db.atomic():
        store_events(db, [([over], replace(context, received_at=AT + timedelta(minutes=1)))])
    assert db.execute("SELECT contact_id, call_final FROM touches").fetchall() == [(contact, 1)]
    assert db.execute("SELECT COUNT(*) FROM registrations").fetchone()[0] == 0
