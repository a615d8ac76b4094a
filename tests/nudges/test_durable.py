"""Durable: what is due comes from the database, so restarts and a second process never send a nudge twice."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

from bot.nudge_texts import lay_out
from leadline import keys
from storage.nudges.actions import cant_reach, snooze
from storage.nudges.due import due_nudges
from storage.nudges.record import plan_and_record
from tests.conftest import BASE, StartServer
from tests.nudges.conftest import ANNA, BORIS, TUESDAY, Clock, Office, msk, office_config, until

CALLER = "+79161234567"


async def test_a_restart_between_due_and_sent_sends_exactly_one_nudge(
    start_server: StartServer, tmp_path: Path
) -> None:
    config = office_config(tmp_path)
    clock = Clock(msk(TUESDAY, 8, 0))
    first = Office(await start_server(config, clock=clock), clock)
    await first.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True)
    # The first process finds the nudge due, then dies before recording it.
    at = msk(TUESDAY, 10, 15)
    rules = first.srv.server.app[keys.SWEEPER].rules
    planned = await first.store.read(partial(due_nudges, now=at, rules=rules))
    assert [d.kind for d in planned] == ["register"]
    await first.srv.stop()

    second = Office(await start_server(config, clock=clock), clock)
    await second.sweep(msk(TUESDAY, 10, 16))
    assert len(second.messages(BORIS)) == 1
    # The dead process's plan, replayed late, and more sweeps: nothing more.
    late = await second.store.write(
        partial(plan_and_record, now=at, rules=rules, render=lay_out, due=planned)
    )
    assert late.outbox_ids == [] and late.nudges == 0
    for mm in (17, 30, 45):
        await second.sweep(msk(TUESDAY, 10, mm))
    assert len(second.messages(BORIS)) == 1
    assert second.srv.scalar("SELECT COUNT(*) FROM nudges") == 1


async def test_someone_taken_out_of_staff_gets_no_reminder_and_the_managers_are_told_at_once(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Boris put a card off and pressed Can't reach on another, then left: the reminders he was owed
    named clients and went to him anyway, and the call-back reached the managers only an hour after
    a reminder nobody could answer."""
    clock = Clock(msk(TUESDAY, 8, 0))
    first = Office(await start_server(office_config(tmp_path), clock=clock), clock)
    await first.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True, extension="102")
    await first.call("m1", "+79161112233", msk(TUESDAY, 10, 0), answered=False, extension="102")
    await first.sweep(msk(TUESDAY, 10, 30))
    [register], [callback] = first.nudges("register"), first.nudges("callback")
    rules = first.srv.server.app[keys.SWEEPER].rules
    boris, at = first.staff_id("Boris"), msk(TUESDAY, 10, 31)
    await first.store.write(
        partial(
            snooze,
            nudge_id=register["id"],
            staff_id=boris,
            chat_id=BORIS,
            at=at,
            until=rules.remind_at(at, 60),
        )
    )
    await first.store.write(
        partial(cant_reach, nudge_id=callback["id"], staff_id=boris, chat_id=BORIS, at=at, rules=rules)
    )
    assert len(first.messages(BORIS)) == 1
    await first.srv.stop()

    # Boris leaves: the owner takes him out of [[staff]] and restarts.
    anna_only = [s for s in BASE["staff"] if s["name"] == "Anna"]
    second = Office(await start_server(office_config(tmp_path, staff=anna_only), clock=clock), clock)
    await second.sweep(msk(TUESDAY, 10, 40))
    [told] = second.texts(ANNA)
    assert "Не перезвонили</b> — просили: Boris" in told and "+79161112233" in told
    assert "не зарегистрирован</b> — просили: Boris" in told and CALLER in told
    for hh, mm in ((11, 31), (11, 32), (12, 0), (15, 0)):
        await second.sweep(msk(TUESDAY, hh, mm))
    assert len(second.messages(BORIS)) == 1 and len(second.messages(ANNA)) == 1


async def test_two_processes_sweeping_the_same_database_send_one_nudge(
    start_server: StartServer, tmp_path: Path
) -> None:
    config = office_config(tmp_path)
    clock = Clock(msk(TUESDAY, 8, 0))
    one = Office(await start_server(config, clock=clock), clock)
    two = Office(await start_server(config, clock=clock), clock)
    await one.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True)
    await one.call("c2", "+79161112233", msk(TUESDAY, 10, 1), answered=False)
    clock.now = msk(TUESDAY, 10, 31)
    await asyncio.gather(one.srv.server.app[keys.SWEEPER].run(), two.srv.server.app[keys.SWEEPER].run())
    await asyncio.gather(one.srv.server.app[keys.SWEEPER].run(), two.srv.server.app[keys.SWEEPER].run())
    [message] = one.messages(BORIS)
    assert CALLER in message["text"] and "+79161112233" in message["text"]
    assert one.srv.scalar("SELECT COUNT(*) FROM nudges") == 2
    assert one.srv.scalar("SELECT COUNT(*) FROM nudge_deliveries WHERE message_id IS NOT NULL") == 2


async def test_a_process_down_for_hours_catches_up_with_one_message_per_person(office: Office) -> None:
    await office.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True)
    await office.call("m1", "+79161112233", msk(TUESDAY, 10, 1), answered=False)
    await office.sweep(msk(TUESDAY, 13, 0))  # the first sweep after three hours down
    [message] = office.messages(BORIS)
    assert CALLER in message["text"] and "+79161112233" in message["text"]
    levels = sorted((n["kind"], n["level"]) for n in office.nudges())
    assert levels == [("callback", 0), ("register", 0)]  # escalation counts from when Boris was asked
    await office.sweep(msk(TUESDAY, 14, 0))
    assert sorted((n["kind"], n["level"]) for n in office.nudges()) == [
        ("callback", 0), ("callback", 1), ("register", 0), ("register", 1)
    ]  # fmt: skip


async def test_sent_at_is_recorded_once_the_outbox_has_delivered(office: Office) -> None:
    await office.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True)
    await office.sweep(msk(TUESDAY, 10, 15))
    office.srv.server.app[keys.OUTBOX].wake()
    await until(lambda: office.srv.scalar("SELECT status FROM outbox") == "sent")  # the log sender (no token)
    await office.sweep(msk(TUESDAY, 10, 16))
    [nudge] = office.nudges()
    assert nudge["sent_at"] is not None
    assert nudge["sent_at"] == office.srv.scalar(
        "SELECT sent_at FROM outbox WHERE id = ?", [nudge["outbox_id"]]
    )
