"""Durable: what is due comes from the database, so restarts and a second process never send a nudge twice."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

from bot.nudge_texts import lay_out
from leadline import keys
from storage.nudges.due import due_nudges
from storage.nudges.record import plan_and_record
from tests.conftest import StartServer
from tests.nudges.conftest import BORIS, TUESDAY, Clock, Office, msk, office_config, until

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
