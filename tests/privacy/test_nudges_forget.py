"""Nobody is asked to register or call back a person whose data was erased."""

from __future__ import annotations

from storage.erasure import Actor, forget
from tests.nudges.conftest import ANNA, BORIS, TUESDAY, Office, msk

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
