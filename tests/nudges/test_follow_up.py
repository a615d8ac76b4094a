"""Follow up: a lead's follow-up date nudges its owner once; a lead left alone for a week is stale."""

from __future__ import annotations

from datetime import date, timedelta

from leadline import keys
from storage.nudges.actions import follow_up_done, follow_up_later, follow_up_lost
from storage.registrations import change_lead
from tests.nudges.conftest import ANNA, BORIS, TUESDAY, Office, buttons, msk

CALLER = "+79161234567"
WEDNESDAY = TUESDAY + timedelta(days=1)


async def _lead(office: Office, *, follow_up_on: date | None, temperature: str = "cold") -> int:
    touch = await office.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True)
    registered = await office.register(
        touch["contact_id"], msk(TUESDAY, 10, 5), staff_id=office.staff_id("Boris"),
        temperature=temperature, follow_up_on=follow_up_on, need="a quote",
    )  # fmt: skip
    assert registered.lead_id is not None
    return registered.lead_id


async def test_a_follow_up_date_nudges_the_owner_once(office: Office) -> None:
    lead_id = await _lead(office, follow_up_on=WEDNESDAY)
    await office.sweep(msk(TUESDAY, 17, 59))
    await office.sweep(msk(WEDNESDAY, 8, 59))
    assert office.messages(BORIS) == []

    await office.sweep(msk(WEDNESDAY, 9, 0))
    [message] = office.messages(BORIS)
    assert "Сегодня" in message["text"] and CALLER in message["text"] and "холодный" in message["text"]
    [nudge] = office.nudges("follow_up")
    boris = office.staff_id("Boris")
    assert (nudge["lead_id"], nudge["subject"]) == (
        lead_id,
        f"lead:{lead_id}:{WEDNESDAY.isoformat()}:{boris}",
    )
    assert [b["callback_data"] for b in buttons(message)] == [
        f"n:done:{nudge['id']}:", f"o:lead:{lead_id}", f"n:later:{nudge['id']}:1", f"n:later:{nudge['id']}:7",
        f"n:lost:{nudge['id']}:",
    ]  # fmt: skip

    for moment in (msk(WEDNESDAY, 9, 30), msk(WEDNESDAY, 17, 0), msk(WEDNESDAY + timedelta(days=1), 9, 0)):
        await office.sweep(moment)
    assert len(office.messages(BORIS)) == 1
    # ignored for escalation_minutes: the manager is told once, naming who was asked
    [escalation] = office.messages(ANNA)
    assert "Boris" in escalation["text"] and CALLER in escalation["text"]


async def test_a_follow_up_nobody_answers_escalates_after_the_sla(office: Office) -> None:
    await _lead(office, follow_up_on=WEDNESDAY)
    await office.sweep(msk(WEDNESDAY, 9, 0))
    await office.sweep(msk(WEDNESDAY, 9, 59))
    assert office.messages(ANNA) == []
    await office.sweep(msk(WEDNESDAY, 10, 0))  # escalation_minutes (60) of working time
    [escalation] = office.messages(ANNA)
    assert "Следующий контакт не состоялся" in escalation["text"]
    assert "Boris" in escalation["text"] and CALLER in escalation["text"]
    assert [(n["level"], n["staff_id"]) for n in office.nudges("follow_up")] == [
        (0, office.staff_id("Boris")),
        (1, None),
    ]


async def test_a_lead_given_to_someone_else_on_its_day_asks_the_new_owner_once(office: Office) -> None:
    lead_id = await _lead(office, follow_up_on=WEDNESDAY)
    await office.sweep(msk(WEDNESDAY, 9, 0))
    assert len(office.messages(BORIS)) == 1
    anna = office.staff_id("Anna")
    await office.store.write(
        lambda db: change_lead(db, lead_id, at=msk(WEDNESDAY, 9, 30), staff_id=anna, owner_id=anna)
    )

    for moment in (msk(WEDNESDAY, 10, 0), msk(WEDNESDAY, 12, 0), msk(WEDNESDAY + timedelta(days=1), 9, 0)):
        await office.sweep(moment)
    [message] = office.messages(ANNA)
    assert "Сегодня" in message["text"] and CALLER in message["text"]
    assert len(office.messages(BORIS)) == 1
    [old, new] = office.nudges("follow_up")
    assert (old["staff_id"], old["outcome"]) == (office.staff_id("Boris"), "changed")
    assert (new["staff_id"], new["closed_at"]) == (anna, None)


async def test_done_clears_the_date_and_records_who(office: Office) -> None:
    lead_id = await _lead(office, follow_up_on=WEDNESDAY)
    await office.sweep(msk(WEDNESDAY, 9, 0))
    [nudge] = office.nudges("follow_up")
    boris = office.staff_id("Boris")
    acted = await office.store.write(
        lambda db: follow_up_done(db, nudge["id"], staff_id=boris, at=msk(WEDNESDAY, 9, 20))
    )
    assert acted.outcome == "done"
    assert office.srv.scalar("SELECT follow_up_on FROM leads WHERE id = ?", [lead_id]) is None
    [change] = office.srv.rows(
        "SELECT field, old, new, staff_id FROM lead_changes WHERE field = 'follow_up_on'"
    )
    assert change == {"field": "follow_up_on", "old": WEDNESDAY.isoformat(), "new": None, "staff_id": boris}
    [closed] = office.nudges("follow_up")
    assert (closed["outcome"], closed["acted_by"]) == ("done", boris)


async def test_snooze_a_week_moves_the_date_and_nudges_again_then(office: Office) -> None:
    lead_id = await _lead(office, follow_up_on=WEDNESDAY)
    await office.sweep(msk(WEDNESDAY, 9, 0))
    [nudge] = office.nudges("follow_up")
    tz = office.srv.server.app[keys.SWEEPER].rules.tz
    await office.store.write(
        lambda db: follow_up_later(db, nudge["id"], staff_id=None, at=msk(WEDNESDAY, 9, 10), days=7, tz=tz)
    )
    week_later = WEDNESDAY + timedelta(days=7)
    assert (
        office.srv.scalar("SELECT follow_up_on FROM leads WHERE id = ?", [lead_id]) == week_later.isoformat()
    )
    await office.sweep(msk(WEDNESDAY + timedelta(days=6), 12, 0))
    assert len(office.messages(BORIS)) == 1
    await office.sweep(msk(week_later, 9, 0))
    assert len(office.messages(BORIS)) == 2
    assert [n["outcome"] for n in office.nudges("follow_up")] == ["later", None]


async def test_lost_closes_the_lead_with_the_reason(office: Office) -> None:
    lead_id = await _lead(office, follow_up_on=WEDNESDAY)
    await office.sweep(msk(WEDNESDAY, 9, 0))
    [nudge] = office.nudges("follow_up")
    await office.store.write(
        lambda db: follow_up_lost(
            db, nudge["id"], staff_id=None, at=msk(WEDNESDAY, 9, 10), reason="went elsewhere"
        )
    )
    [lead] = office.srv.rows("SELECT stage, lost_reason FROM leads WHERE id = ?", [lead_id])
    assert lead == {"stage": "lost", "lost_reason": "went elsewhere"}


async def test_a_lead_unchanged_for_a_week_nudges_its_owner_then_the_managers(office: Office) -> None:
    await _lead(office, follow_up_on=None, temperature="warm")
    week_later = TUESDAY + timedelta(days=7)
    await office.sweep(msk(week_later, 10, 4))
    assert office.nudges("stale") == []
    await office.sweep(msk(week_later, 10, 5))
    [card] = office.messages(BORIS)
    assert "Без изменений 7 дней" in card["text"]
    await office.sweep(msk(week_later, 11, 5))
    [escalation] = office.messages(ANNA)
    assert "Boris" in escalation["text"] and "7" in escalation["text"]
    await office.sweep(msk(week_later, 15, 0))
    assert len(office.messages(ANNA)) == 1 and len(office.messages(BORIS)) == 1


async def test_a_change_to_the_lead_ends_the_stale_question(office: Office) -> None:
    lead_id = await _lead(office, follow_up_on=None, temperature="warm")
    week_later = TUESDAY + timedelta(days=7)
    await office.sweep(msk(week_later, 10, 5))
    [nudge] = office.nudges("stale")
    tz = office.srv.server.app[keys.SWEEPER].rules.tz
    await office.store.write(
        lambda db: follow_up_later(db, nudge["id"], staff_id=None, at=msk(week_later, 10, 30), days=1, tz=tz)
    )
    await office.sweep(msk(week_later, 11, 30))
    assert office.messages(ANNA) == []
    assert [n["outcome"] for n in office.nudges("stale")] == ["later"]
    assert (
        office.srv.scalar("SELECT follow_up_on FROM leads WHERE id = ?", [lead_id])
        == (week_later + timedelta(days=1)).isoformat()
    )
