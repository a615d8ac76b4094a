"""Nobody is asked to register or call back a person whose data was erased."""

from __future__ import annotations

from datetime import timedelta

from storage.erasure import Actor, forget
from tests.nudges.conftest import ANNA, BORIS, TUESDAY, Office, msk
from tests.nudges.test_follow_up import WEDNESDAY, _lead

CALLER = "+79161234567"


async def test_an_erased_callers_answered_and_missed_calls_nudge_nobody(office: Office) -> None:
    answered = await office.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True, extension="102")
    missed = await office.call("c2", CALLER, msk(TUESDAY, 10, 1), answered=False, extension="102")
    assert answered["contact_id"] == missed["contact_id"]
    erased = await forget(
        office.store, answered["contact_id"], at=msk(TUESDAY, 10, 5), actor=Actor("cli", "test")
    )
    assert erased is not None and erased.counts["identifiers"] == 1

    for hh, mm in ((10, 15), (10, 31), (11, 31), (12, 0)):  # past the register, call-back and escalation SLAs
        await office.sweep(msk(TUESDAY, hh, mm))
    assert office.nudges() == []
    assert office.messages(BORIS) == [] and office.messages(ANNA) == []


async def test_an_erased_persons_lead_asks_for_no_follow_up_and_goes_stale_unnoticed(office: Office) -> None:
    lead_id = await _lead(office, follow_up_on=WEDNESDAY)
    contact = office.srv.scalar("SELECT contact_id FROM leads WHERE id = ?", [lead_id])
    erased = await forget(office.store, contact, at=msk(TUESDAY, 11, 0), actor=Actor("cli", "test"))
    assert erased is not None

    week_later = WEDNESDAY + timedelta(days=7)  # unchanged for a week, the follow-up date long past
    for day, hh, mm in ((WEDNESDAY, 9, 0), (WEDNESDAY, 10, 1), (week_later, 10, 6), (week_later, 11, 7)):
        await office.sweep(msk(day, hh, mm))  # the follow-up day, the stale week, and their escalations
    assert office.nudges() == []
    assert office.messages(BORIS) == [] and office.messages(ANNA) == []
