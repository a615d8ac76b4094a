"""Call back: a missed call nobody called back within 30 working minutes is nudged, then escalated."""

from __future__ import annotations

from datetime import date, timedelta
from functools import partial
from pathlib import Path

from leadline import keys
from storage.contacts import block_contact
from storage.nudges.actions import cant_reach, mark_called_back
from tests.conftest import StartServer
from tests.nudges.conftest import ANNA, BORIS, TUESDAY, Clock, Office, buttons, msk, office_config
from tests.samples import sample

ZADARMA_SECRET = sample("zadarma_notify_end_missed.txt").secrets["api_secret"]

CALLER = "+79161234567"


async def test_a_missed_call_called_back_within_the_sla_gets_no_call_back_nudge(office: Office) -> None:
    missed = await office.call("m1", CALLER, msk(TUESDAY, 10, 0), answered=False)
    await office.call("out1", CALLER, msk(TUESDAY, 10, 10), answered=True, outbound=True)
    assert office.srv.scalar("SELECT called_back_at FROM touches WHERE id = ?", [missed["id"]]) is not None
    await office.register(missed["contact_id"], msk(TUESDAY, 10, 14), staff_id=office.staff_id("Boris"))

    for hh, mm in ((10, 30), (10, 31), (11, 0), (11, 30), (12, 0), (17, 0)):
        await office.sweep(msk(TUESDAY, hh, mm))
    assert office.nudges() == []
    assert office.messages(BORIS) == office.messages(ANNA) == []


async def test_a_called_back_but_unregistered_contact_is_asked_of_whoever_called_back(office: Office) -> None:
    missed = await office.call("m1", CALLER, msk(TUESDAY, 10, 0), answered=False, extension="101")
    await office.call("out1", CALLER, msk(TUESDAY, 10, 10), answered=True, outbound=True, extension="102")
    await office.sweep(msk(TUESDAY, 10, 24))
    assert office.nudges() == []
    await office.sweep(msk(TUESDAY, 10, 25))  # 15 working minutes after the call-back
    assert office.nudges("callback") == []
    [nudge] = office.nudges("register")
    assert (nudge["touch_id"], nudge["chat_id"]) == (missed["id"], BORIS)


async def test_a_missed_call_not_called_back_is_nudged_with_the_number_and_its_buttons(
    office: Office,
) -> None:
    missed = await office.call("m1", CALLER, msk(TUESDAY, 10, 0), answered=False, extension="102")
    await office.sweep(msk(TUESDAY, 10, 29))
    assert office.nudges() == []
    await office.sweep(msk(TUESDAY, 10, 30))
    [message] = office.messages(BORIS)
    assert CALLER in message["text"] and "пропущенный звонок 14 апр., 10:00" in message["text"]
    [nudge] = office.nudges("callback")
    assert nudge["touch_id"] == missed["id"]
    # Mango's key and salt also sign its API commands: the office line can call back.
    assert [b["callback_data"] for b in buttons(message)] == [
        f"d:{missed['id']}",
        f"n:called:{nudge['id']}:",
        f"n:cant:{nudge['id']}:",
    ]
    assert office.nudges("register") == []  # nobody talked to them yet: nothing to register


async def test_a_missed_call_of_a_source_without_api_keys_has_no_call_back_button(
    start_server: StartServer, tmp_path: Path
) -> None:
    zadarma = {"name": "zadarma", "provider": "zadarma", "api_secret": ZADARMA_SECRET}
    clock = Clock(msk(TUESDAY, 8, 0))
    office = Office(await start_server(office_config(tmp_path, sources=[zadarma]), clock=clock), clock)
    missed = sample("zadarma_notify_end_missed.txt")  # 2024-03-05 18:01 Moscow, to extension 101
    resp = await office.srv.session.post(
        f"{office.srv.url}{missed.path}", data=missed.body, headers=missed.headers
    )
    assert resp.status == 200
    await office.sweep(msk(date(2024, 3, 6), 9, 31))
    [message] = office.messages(ANNA)
    assert "+79160000013" in message["text"]
    [nudge] = office.nudges("callback")
    assert [b["callback_data"] for b in buttons(message)] == [
        f"n:called:{nudge['id']}:",
        f"n:cant:{nudge['id']}:",
    ]


async def test_called_back_button_closes_the_card_and_stops_the_escalation(office: Office) -> None:
    await office.call("m1", CALLER, msk(TUESDAY, 10, 0), answered=False, extension="102")
    await office.sweep(msk(TUESDAY, 10, 30))
    [nudge] = office.nudges("callback")
    boris = office.staff_id("Boris")
    acted = await office.store.write(
        lambda db: mark_called_back(db, nudge["id"], staff_id=boris, at=msk(TUESDAY, 10, 40))
    )
    assert acted.outcome == "called_back" and not acted.already
    again = await office.store.write(
        lambda db: mark_called_back(db, nudge["id"], staff_id=boris, at=msk(TUESDAY, 10, 41))
    )
    assert again.already

    await office.sweep(msk(TUESDAY, 11, 30))
    assert office.messages(ANNA) == []
    [closed] = office.nudges("callback")
    assert (closed["outcome"], closed["acted_by"], closed["acted_at"]) == (
        "called_back",
        boris,
        "2026-04-14T07:40:00.000000+00:00",
    )
    # Boris talked to them: registering is now his to do, from the moment he pressed the button.
    [register] = office.nudges("register")
    assert (register["chat_id"], register["due_at"]) == (BORIS, "2026-04-14T07:55:00.000000+00:00")


async def test_cant_reach_asks_again_later_up_to_the_tries_then_tells_the_managers(office: Office) -> None:
    await office.call("m1", CALLER, msk(TUESDAY, 10, 0), answered=False, extension="102")
    await office.sweep(msk(TUESDAY, 10, 30))
    [nudge] = office.nudges("callback")
    rules = office.srv.server.app[keys.SWEEPER].rules
    boris = office.staff_id("Boris")

    async def press(at_hh: int, at_mm: int) -> str:
        at = msk(TUESDAY, at_hh, at_mm)
        acted = await office.store.write(
            lambda db: cant_reach(db, nudge["id"], staff_id=boris, chat_id=BORIS, at=at, rules=rules)
        )
        return acted.outcome

    assert await press(10, 35) == "retry"
    await office.sweep(msk(TUESDAY, 11, 34))
    assert len(office.messages(BORIS)) == 1
    await office.sweep(msk(TUESDAY, 11, 35))  # an hour of working time later
    texts = office.texts(BORIS)
    assert len(texts) == 2 and "попытка 2 из 3" in texts[1]
    assert office.messages(ANNA) == []  # Boris is acting on it: no escalation

    assert await press(11, 40) == "retry"
    await office.sweep(msk(TUESDAY, 12, 40))
    assert "попытка 3 из 3" in office.texts(BORIS)[2]
    assert await press(12, 45) == "unreachable"
    await office.sweep(msk(TUESDAY, 12, 46))
    [escalation] = office.messages(ANNA)
    assert "Не дозвонились</b> — Boris, попыток: 3" in escalation["text"] and CALLER in escalation["text"]
    await office.sweep(msk(TUESDAY, 15, 0))
    assert len(office.texts(BORIS)) == 3 and len(office.messages(ANNA)) == 1


async def test_a_new_missed_call_after_a_call_back_given_up_is_asked_again(office: Office) -> None:
    """A card given up as unreachable stays open for "Called back", and used to swallow every later
    missed call of the same person: nobody was asked about them, ever."""
    await office.call("m1", CALLER, msk(TUESDAY, 10, 0), answered=False, extension="102")
    await office.sweep(msk(TUESDAY, 10, 30))
    [given_up] = office.nudges("callback")
    rules = office.srv.server.app[keys.SWEEPER].rules
    boris = office.staff_id("Boris")
    for hh, mm in ((10, 35), (11, 40), (12, 45)):
        at = msk(TUESDAY, hh, mm)
        await office.store.write(
            partial(cant_reach, nudge_id=given_up["id"], staff_id=boris, chat_id=BORIS, at=at, rules=rules)
        )
        await office.sweep(msk(TUESDAY, hh + 1, mm))
    assert len(office.messages(BORIS)) == 3 and len(office.messages(ANNA)) == 1  # "Could not be reached"

    # The next day the same person calls again, and nobody picks up.
    wednesday = TUESDAY + timedelta(days=1)
    second = await office.call("m2", CALLER, msk(wednesday, 10, 0), answered=False, extension="102")
    await office.sweep(msk(wednesday, 10, 30))
    card = office.messages(BORIS)[-1]
    assert len(office.messages(BORIS)) == 4
    assert "Перезвоните" in card["text"] and "пропущенный звонок 15 апр., 10:00" in card["text"]
    assert "14 апр." not in card["text"]  # the call given up is not asked again
    [new] = [n for n in office.nudges("callback") if n["touch_id"] == second["id"]]
    assert f"n:cant:{new['id']}:" in [b["callback_data"] for b in buttons(card)]
    # Its Can't reach is a first try of the new call; the card given up stays as it was.
    acted = await office.store.write(
        partial(
            cant_reach,
            nudge_id=new["id"],
            staff_id=boris,
            chat_id=BORIS,
            at=msk(wednesday, 10, 35),
            rules=rules,
        )
    )
    assert (acted.nudge_ids, acted.outcome, acted.tries) == ((new["id"],), "retry", 1)
    assert office.srv.rows("SELECT outcome, tries FROM nudges WHERE id = ?", [given_up["id"]]) == [
        {"outcome": "unreachable", "tries": 3}
    ]


async def test_tries_lowered_in_the_config_meanwhile_make_the_reminder_the_last_try(
    start_server: StartServer, tmp_path: Path
) -> None:
    clock = Clock(msk(TUESDAY, 8, 0))
    first = Office(await start_server(office_config(tmp_path), clock=clock), clock)
    await first.call("m1", CALLER, msk(TUESDAY, 10, 0), answered=False, extension="102")
    await first.sweep(msk(TUESDAY, 10, 30))
    [nudge] = first.nudges("callback")
    rules = first.srv.server.app[keys.SWEEPER].rules
    boris = first.staff_id("Boris")
    for hh, mm in ((10, 35), (11, 40)):  # two tries of three: the third is asked for at 12:40
        at = msk(TUESDAY, hh, mm)
        acted = await first.store.write(
            partial(cant_reach, nudge_id=nudge["id"], staff_id=boris, chat_id=BORIS, at=at, rules=rules)
        )
        assert acted.outcome == "retry"
        await first.sweep(msk(TUESDAY, hh + 1, mm - 5))
    assert len(first.messages(BORIS)) == 2
    await first.srv.stop()

    # The owner lowers [sla] callback_tries to 2 and restarts before the reminder.
    second = Office(
        await start_server(office_config(tmp_path, sla={"callback_tries": 2}), clock=clock), clock
    )
    await second.sweep(msk(TUESDAY, 12, 40))
    reminder = second.texts(BORIS)[-1]
    assert "попытка 3 из 3" in reminder and CALLER in reminder


async def test_an_ignored_missed_call_escalates_once(office: Office) -> None:
    await office.call("m1", CALLER, msk(TUESDAY, 10, 0), answered=False, extension="102")
    await office.call("m2", CALLER, msk(TUESDAY, 10, 3), answered=False, extension="102")
    await office.sweep(msk(TUESDAY, 10, 33))
    [card] = office.messages(BORIS)
    assert "пропущенный звонок 14 апр., 10:00 MSK, пропущенный звонок 14 апр., 10:03 MSK" in card["text"]
    await office.sweep(msk(TUESDAY, 11, 33))
    await office.sweep(msk(TUESDAY, 14, 0))
    assert len(office.messages(ANNA)) == 1
    assert [(n["level"], n["kind"]) for n in office.nudges()] == [
        (0, "callback"),
        (0, "callback"),
        (1, "callback"),
        (1, "callback"),
    ]
    # The caller gets through later: the open call-back questions close by themselves.
    await office.call("c3", CALLER, msk(TUESDAY, 15, 0), answered=True)
    await office.sweep(msk(TUESDAY, 15, 5))
    assert {n["outcome"] for n in office.nudges("callback")} == {"called_back"}


async def test_outside_hours_a_missed_call_waits_unless_callbacks_run_round_the_clock(
    start_server: StartServer, tmp_path: Path
) -> None:
    clock = Clock(msk(TUESDAY, 19, 0))
    srv = await start_server(office_config(tmp_path, sla={"callback_outside_hours": True}), clock=clock)
    office = Office(srv, clock)
    await office.call("m1", CALLER, msk(TUESDAY, 20, 0), answered=False, extension="102")
    await office.sweep(msk(TUESDAY, 20, 29))
    assert office.messages(BORIS) == []
    await office.sweep(msk(TUESDAY, 20, 30))
    assert len(office.messages(BORIS)) == 1
    await office.sweep(msk(TUESDAY, 23, 59) + timedelta(hours=9))  # the next morning: no escalation yet
    assert office.messages(ANNA) == []


async def test_outside_hours_a_missed_call_is_nudged_at_the_next_working_minutes(office: Office) -> None:
    await office.call("m1", CALLER, msk(TUESDAY, 20, 0), answered=False, extension="102")
    await office.sweep(msk(TUESDAY, 20, 30))
    await office.sweep(msk(TUESDAY + timedelta(days=1), 9, 29))
    assert office.messages(BORIS) == []
    await office.sweep(msk(TUESDAY + timedelta(days=1), 9, 30))
    assert len(office.messages(BORIS)) == 1


async def test_a_caller_blocked_as_spam_is_not_called_back(office: Office) -> None:
    first = await office.call("m1", CALLER, msk(TUESDAY, 10, 0), answered=False, extension="102")
    await office.sweep(msk(TUESDAY, 10, 30))
    [nudge] = office.nudges("callback")
    await office.store.write(
        lambda db: block_contact(db, first["contact_id"], staff_id=None, at=msk(TUESDAY, 10, 35))
    )
    await office.sweep(msk(TUESDAY, 11, 40))
    assert office.messages(ANNA) == []
    [closed] = office.nudges("callback")
    assert (closed["id"], closed["outcome"]) == (nudge["id"], "blocked")


async def test_an_ignored_reminder_after_cant_reach_escalates_once(office: Office) -> None:
    await office.call("m1", CALLER, msk(TUESDAY, 10, 0), answered=False, extension="102")
    await office.sweep(msk(TUESDAY, 10, 30))
    [nudge] = office.nudges("callback")
    rules = office.srv.server.app[keys.SWEEPER].rules
    boris = office.staff_id("Boris")
    acted = await office.store.write(
        lambda db: cant_reach(
            db, nudge["id"], staff_id=boris, chat_id=BORIS, at=msk(TUESDAY, 10, 35), rules=rules
        )
    )
    assert acted.outcome == "retry"
    await office.sweep(msk(TUESDAY, 11, 35))  # the reminder; Boris does nothing with it
    assert "попытка 2 из 3" in office.texts(BORIS)[1]
    await office.sweep(msk(TUESDAY, 12, 34))
    assert office.messages(ANNA) == []  # an hour of working time since the reminder: not yet
    await office.sweep(msk(TUESDAY, 12, 35))
    [escalation] = office.messages(ANNA)
    assert "Не перезвонили</b> — просили: Boris" in escalation["text"] and CALLER in escalation["text"]
    for hh in (13, 15, 17):
        await office.sweep(msk(TUESDAY, hh, 0))
    assert len(office.messages(ANNA)) == 1
    [level1] = [n for n in office.nudges("callback") if n["level"] == 1]
    assert level1["due_at"] == "2026-04-14T09:35:00.000000+00:00"


async def test_called_back_after_cant_reach_starts_the_registration_clock_at_the_call_back(
    office: Office,
) -> None:
    await office.call("m1", CALLER, msk(TUESDAY, 10, 0), answered=False, extension="102")
    await office.sweep(msk(TUESDAY, 10, 30))
    [nudge] = office.nudges("callback")
    rules = office.srv.server.app[keys.SWEEPER].rules
    boris = office.staff_id("Boris")
    await office.store.write(
        lambda db: cant_reach(
            db, nudge["id"], staff_id=boris, chat_id=BORIS, at=msk(TUESDAY, 10, 35), rules=rules
        )
    )
    await office.store.write(
        lambda db: mark_called_back(db, nudge["id"], staff_id=boris, at=msk(TUESDAY, 14, 0))
    )
    await office.sweep(msk(TUESDAY, 14, 1))
    await office.sweep(msk(TUESDAY, 14, 14))
    assert office.nudges("register") == []
    await office.sweep(msk(TUESDAY, 14, 15))  # 15 working minutes after the call-back
    [register] = office.nudges("register")
    assert (register["chat_id"], register["due_at"]) == (BORIS, "2026-04-14T11:15:00.000000+00:00")
