"""End to end: a Mango call, the sweep, the outbox and the fake Telegram Bot API, across a restart."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from aiogram.filters.callback_data import CallbackData

from leadline import keys
from tests.conftest import StartServer
from tests.fake_telegram import FakeTelegram
from tests.nudges.conftest import ANNA, BORIS, TUESDAY, Clock, Office, msk, office_config, until

CALLER = "+79161234567"


class NudgeCB(CallbackData, prefix="n"):
    """The factory the bot uses for nudge buttons (see bot/nudge_texts.py)."""

    act: str
    nudge: int
    v: str = ""


async def test_a_nudge_recorded_but_not_sent_before_a_restart_reaches_telegram_once(
    tg: FakeTelegram, start_server: StartServer, tmp_path: Path
) -> None:
    config = office_config(tmp_path, telegram={"token": tg.token, "api_url": tg.api_url})
    clock = Clock(msk(TUESDAY, 8, 0))
    first = Office(await start_server(config, clock=clock), clock)
    await tg.wait_long_poll()
    await first.call("m1", CALLER, msk(TUESDAY, 10, 0), answered=False, extension="102")
    # The sweep records the nudge for 10:30 while the sender's clock still reads 10:29:59, so the
    # message is queued and not yet due; then the process stops.
    clock.now = msk(TUESDAY, 10, 29, 59)
    result = await first.srv.server.app[keys.SWEEPER].run(msk(TUESDAY, 10, 30))
    assert len(result.recorded.outbox_ids) == 1
    await first.srv.stop()
    assert tg.sent("sendMessage", chat_id=BORIS) == []

    clock.now = msk(TUESDAY, 10, 35)
    second = Office(await start_server(config, clock=clock), clock)
    message = await tg.wait_for("sendMessage", chat_id=BORIS)
    assert CALLER in message.params["text"]
    [nudge] = second.nudges("callback")
    markup = message.params["reply_markup"]["inline_keyboard"]
    dial, *packed = [b["callback_data"] for row in markup for b in row]
    assert dial == f"d:{nudge['touch_id']}"
    assert [NudgeCB.unpack(p) for p in packed] == [
        NudgeCB(act="called", nudge=nudge["id"]),
        NudgeCB(act="cant", nudge=nudge["id"]),
    ]

    messages = "FROM outbox WHERE method = 'sendMessage'"  # not the staff's command menus
    await until(lambda: second.srv.scalar(f"SELECT status {messages}") == "sent")
    for mm in (36, 40, 45):
        await second.sweep(msk(TUESDAY, 10, mm))
    assert second.srv.scalar(f"SELECT COUNT(*) {messages}") == 1
    assert len(tg.sent("sendMessage", chat_id=BORIS)) == 1
    assert tg.sent("sendMessage", chat_id=ANNA) == []
    [nudge] = second.nudges("callback")
    assert nudge["sent_at"] is not None


async def test_escalation_reaches_the_manager_in_telegram(
    tg: FakeTelegram, start_server: StartServer, tmp_path: Path
) -> None:
    config = office_config(tmp_path, telegram={"token": tg.token, "api_url": tg.api_url})
    clock = Clock(msk(TUESDAY, 8, 0))
    office = Office(await start_server(config, clock=clock), clock)
    await tg.wait_long_poll()
    await office.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True)
    await office.sweep(msk(TUESDAY, 10, 15))
    await tg.wait_for("sendMessage", chat_id=BORIS)
    await office.sweep(msk(TUESDAY, 10, 15) + timedelta(hours=1))
    escalation = await tg.wait_for("sendMessage", chat_id=ANNA)
    assert "Boris" in escalation.params["text"] and CALLER in escalation.params["text"]


async def test_a_follow_up_to_an_owner_who_blocked_the_bot_goes_to_the_manager_at_once(
    tg: FakeTelegram, start_server: StartServer, tmp_path: Path
) -> None:
    config = office_config(tmp_path, telegram={"token": tg.token, "api_url": tg.api_url})
    clock = Clock(msk(TUESDAY, 8, 0))
    office = Office(await start_server(config, clock=clock), clock)
    await tg.wait_long_poll()
    wednesday = TUESDAY + timedelta(days=1)
    touch = await office.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True)
    boris = office.staff_id("Boris")
    await office.register(
        touch["contact_id"], msk(TUESDAY, 10, 5), staff_id=boris, temperature="cold",
        follow_up_on=wednesday, need="a quote",
    )  # fmt: skip
    tg.block_bot(BORIS)
    clock.now = msk(wednesday, 9, 0)
    await office.sweep(msk(wednesday, 9, 0))
    await until(
        lambda: office.srv.scalar("SELECT COUNT(*) FROM unreachable_chats WHERE chat_id = ?", [BORIS]) == 1
    )

    clock.now = msk(wednesday, 9, 1)
    await office.sweep(msk(wednesday, 9, 1))  # the next sweep, not escalation_minutes later
    escalation = await tg.wait_for("sendMessage", chat_id=ANNA)
    assert "Boris" in escalation.params["text"] and CALLER in escalation.params["text"]


async def test_a_stale_lead_of_an_owner_who_blocked_the_bot_goes_to_the_manager_at_once(
    tg: FakeTelegram, start_server: StartServer, tmp_path: Path
) -> None:
    config = office_config(tmp_path, telegram={"token": tg.token, "api_url": tg.api_url})
    clock = Clock(msk(TUESDAY, 8, 0))
    office = Office(await start_server(config, clock=clock), clock)
    await tg.wait_long_poll()
    touch = await office.call("c1", CALLER, msk(TUESDAY, 10, 0), answered=True)
    boris = office.staff_id("Boris")
    await office.register(
        touch["contact_id"], msk(TUESDAY, 10, 5), staff_id=boris, temperature="warm", need="a quote"
    )
    tg.block_bot(BORIS)
    week_later = TUESDAY + timedelta(days=7)
    clock.now = msk(week_later, 10, 5)  # unchanged for 7 days: stale
    await office.sweep(msk(week_later, 10, 5))
    await until(
        lambda: office.srv.scalar("SELECT COUNT(*) FROM unreachable_chats WHERE chat_id = ?", [BORIS]) == 1
    )

    clock.now = msk(week_later, 10, 6)
    await office.sweep(msk(week_later, 10, 6))  # the next sweep, not escalation_minutes later
    escalation = await tg.wait_for("sendMessage", chat_id=ANNA)
    assert "Boris" in escalation.params["text"] and CALLER in escalation.params["text"]
    assert "7 дней" in escalation.params["text"]
