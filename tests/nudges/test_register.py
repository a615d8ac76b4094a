"""Register it: the person who took the call is asked after 15 working minutes, managers an hour later."""

from __future__ import annotations

from datetime import date

from leadline import keys
from storage.nudges.actions import snooze
from tests.nudges.conftest import ANNA, BORIS, TUESDAY, Office, buttons, msk

CALLER = "+79161234567"


async def test_a_call_not_registered_in_15_working_minutes_nudges_the_person_who_answered(
    office: Office,
) -> None:
    touch = await office.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True, extension="102")
    assert touch["staff_id"] == office.staff_id("Boris")

    await office.sweep(msk(TUESDAY, 10, 14, 59))
    assert office.messages(BORIS) == []

    await office.sweep(msk(TUESDAY, 10, 15))
    [message] = office.messages(BORIS)
    assert "Зарегистрируйте" in message["text"] and CALLER in message["text"]
    assert [b["callback_data"] for b in buttons(message)] == [
        f"o:touch:{touch['id']}",
        f"n:snooze:{office.nudges()[0]['id']}:60",
    ]
    assert office.messages(ANNA) == []
    [nudge] = office.nudges("register")
    assert (nudge["level"], nudge["staff_id"], nudge["chat_id"], nudge["touch_id"]) == (
        0, office.staff_id("Boris"), BORIS, touch["id"]
    )  # fmt: skip
    assert nudge["due_at"] == "2026-04-14T07:15:00.000000+00:00"


async def test_registering_stops_the_escalation(office: Office) -> None:
    touch = await office.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True)
    await office.sweep(msk(TUESDAY, 10, 15))
    await office.register(touch["contact_id"], msk(TUESDAY, 10, 40), staff_id=office.staff_id("Boris"))

    for hh, mm in ((11, 15), (11, 16), (12, 0), (17, 0)):
        await office.sweep(msk(TUESDAY, hh, mm))
    assert office.messages(ANNA) == []
    assert len(office.messages(BORIS)) == 1
    [nudge] = office.nudges()
    assert (nudge["outcome"], nudge["acted_by"]) == ("registered", office.staff_id("Boris"))
    assert nudge["acted_at"] == nudge["closed_at"] == "2026-04-14T07:40:00.000000+00:00"


async def test_ignoring_it_escalates_once_to_the_manager_naming_who_was_asked(office: Office) -> None:
    touch = await office.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True)
    await office.sweep(msk(TUESDAY, 10, 15))
    await office.sweep(msk(TUESDAY, 11, 14, 59))
    assert office.messages(ANNA) == []

    await office.sweep(msk(TUESDAY, 11, 15))
    [escalation] = office.messages(ANNA)
    assert "Boris" in escalation["text"] and CALLER in escalation["text"]
    assert [b["callback_data"] for b in buttons(escalation)] == [f"o:touch:{touch['id']}"]

    for hh in (12, 13, 15, 17):
        await office.sweep(msk(TUESDAY, hh, 30))
    await office.sweep(msk(date(2026, 4, 15), 10, 0))
    assert len(office.messages(ANNA)) == 1
    assert len(office.messages(BORIS)) == 1
    assert [(n["level"], n["staff_id"], n["chat_id"]) for n in office.nudges()] == [
        (0, office.staff_id("Boris"), BORIS), (1, None, None)
    ]  # fmt: skip


async def test_a_touch_nobody_handled_is_asked_of_the_managers_once(office: Office) -> None:
    """No team chat, and the call reached an extension that is nobody's: the managers are asked at
    once, and used to be told an hour later that "nobody in particular was asked"."""
    await office.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True, extension="199")
    await office.sweep(msk(TUESDAY, 10, 15))
    [asked] = office.texts(ANNA)
    assert "Зарегистрируйте контакт" in asked and CALLER in asked
    for hh, mm in ((11, 15), (12, 0), (17, 0)):
        await office.sweep(msk(TUESDAY, hh, mm))
    assert office.texts(ANNA) == [asked]
    assert [(n["level"], n["staff_id"], n["chat_id"]) for n in office.nudges()] == [(0, None, None)]


async def test_a_call_at_1855_on_friday_is_nudged_on_monday_at_0915(office: Office) -> None:
    friday, monday = date(2026, 4, 17), date(2026, 4, 20)
    await office.call("c1", CALLER, msk(friday, 18, 55), answered=True)
    for moment in (msk(friday, 19, 10), msk(friday, 23, 0), msk(date(2026, 4, 18), 12, 0),
                   msk(date(2026, 4, 19), 9, 15), msk(monday, 9, 0), msk(monday, 9, 14, 59)):  # fmt: skip
        await office.sweep(moment)
    assert office.messages(BORIS) == []

    await office.sweep(msk(monday, 9, 15))
    assert len(office.messages(BORIS)) == 1
    [nudge] = office.nudges()
    assert nudge["created_at"] == nudge["due_at"] == "2026-04-20T06:15:00.000000+00:00"


async def test_a_public_holiday_is_skipped(office: Office) -> None:
    """Tuesday 3 November 2026, 18:55; Wednesday the 4th is Unity Day; Thursday 09:15 is the deadline."""
    await office.call("c1", CALLER, msk(date(2026, 11, 3), 18, 55), answered=True)
    for moment in (
        msk(date(2026, 11, 4), 9, 15),
        msk(date(2026, 11, 4), 15, 0),
        msk(date(2026, 11, 5), 9, 14),
    ):
        await office.sweep(moment)
    assert office.messages(BORIS) == []

    await office.sweep(msk(date(2026, 11, 5), 9, 15))
    assert len(office.messages(BORIS)) == 1


async def test_a_contact_with_several_new_touches_gets_one_card(office: Office) -> None:
    first = await office.form(msk(TUESDAY, 10, 0), name="Ivan", phone="8 916 123-45-67")
    second = await office.call("c1", CALLER, msk(TUESDAY, 10, 5), answered=True)
    third = await office.call("c2", CALLER, msk(TUESDAY, 10, 7), answered=True)
    assert first["contact_id"] == second["contact_id"] == third["contact_id"]

    await office.sweep(msk(TUESDAY, 10, 15))  # only the form is due: its card goes to the form's owner, Anna
    await office.sweep(msk(TUESDAY, 10, 25))  # the calls are due now, folded into the open card
    await office.sweep(msk(TUESDAY, 10, 40))
    assert len(office.messages(ANNA)) == 1
    assert office.messages(BORIS) == []
    assert [n["touch_id"] for n in office.nudges()] == [first["id"]]


async def test_touches_due_together_are_one_card_listing_them_all(office: Office) -> None:
    await office.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True)
    await office.call("c2", CALLER, msk(TUESDAY, 10, 2), answered=True)
    await office.sweep(msk(TUESDAY, 10, 20))
    [message] = office.messages(BORIS)
    assert message["text"].count(CALLER) == 1
    assert "звонок 14 апр., 10:00 MSK, звонок 14 апр., 10:02 MSK" in message["text"]
    assert len(office.nudges()) == 2


async def test_one_message_per_person_per_batch_listing_what_is_due(office: Office) -> None:
    await office.call("c1", "+79161110001", msk(TUESDAY, 10, 0), answered=True)
    await office.call("c2", "+79161110002", msk(TUESDAY, 10, 1), answered=True)
    await office.call("c3", "+79161110003", msk(TUESDAY, 10, 1, 30), answered=True)
    await office.sweep(msk(TUESDAY, 10, 15))
    await office.sweep(msk(TUESDAY, 10, 16))  # two more are due, but Boris had a message a minute ago
    assert len(office.messages(BORIS)) == 1
    await office.sweep(msk(TUESDAY, 10, 20))
    texts = office.texts(BORIS)
    assert len(texts) == 2
    assert "+79161110002" in texts[1] and "+79161110003" in texts[1] and texts[1].startswith("🔔")
    assert len(office.messages(BORIS)[1]["reply_markup"]["inline_keyboard"]) == 2


async def test_snoozing_a_card_shows_it_again_later_in_the_same_chat(office: Office) -> None:
    await office.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True)
    await office.sweep(msk(TUESDAY, 10, 15))
    [nudge] = office.nudges()
    rules = office.srv.server.app[keys.SWEEPER].rules
    until = rules.remind_at(msk(TUESDAY, 10, 16), 60)
    acted = await office.store.write(
        lambda db: snooze(
            db,
            nudge["id"],
            staff_id=office.staff_id("Boris"),
            chat_id=BORIS,
            at=msk(TUESDAY, 10, 16),
            until=until,
        )
    )
    assert acted.outcome == "snoozed" and acted.remind_at == until
    await office.sweep(msk(TUESDAY, 11, 15))
    assert len(office.messages(BORIS)) == 1
    await office.sweep(msk(TUESDAY, 11, 16))
    texts = office.texts(BORIS)
    assert len(texts) == 2 and texts[1].startswith("🔁")
    asked, escalated = office.nudges("register")
    assert (asked["round"], asked["acted_at"], asked["outcome"]) == (
        1,
        "2026-04-14T07:16:00.000000+00:00",
        "snoozed",
    )
    assert escalated["level"] == 1  # a snooze does not stop the escalation: only registering does
    assert len(office.messages(ANNA)) == 1
