"""The outbox sender inside the running app, against the fake Bot API: retries, restarts, the log."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlite_utils import Database

from bot.outbox import OutboxSender
from bot.transport import BotTransport
from leadline.config import ConfigError
from storage.db import Store, connect, now_utc
from storage.outbox import enqueue
from storage.outbox_sending import CANCELLED_AT_STOP, GAVE_UP, MAX_INTERRUPTED_ATTEMPTS
from tests.bot.conftest import ANNA, BotEnv, eventually
from tests.cli import free_port, start_serve
from tests.conftest import StartServer, build_config
from tests.fake_telegram import FakeTelegram


def queue_messages(texts: list[tuple[int, str]]) -> Callable[[Database], list[int]]:
    def write(db: Database) -> list[int]:
        return [int(enqueue(db, chat, {"text": text}, at=now_utc()) or 0) for chat, text in texts]

    return write


async def test_429_and_502_for_a_while_then_every_message_arrives_once(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    tg.fail_next("sendMessage", 3, status=429, retry_after=1)
    tg.fail_next("sendMessage", 3, status=502)  # a proxy's HTML page: aiogram cannot even decode it
    tg.fail_next("sendMessage", 1, status=502, html=False)
    tg.fail_next("sendMessage", 1, status=0)  # connection dropped
    texts = [(7000 + i % 4, f"message {i}") for i in range(12)]
    await bot_env.write(queue_messages(texts))
    bot_env.wake_outbox()
    await bot_env.delivered()

    delivered = Counter(p["text"] for p in tg.sent("sendMessage") if p["chat_id"] >= 7000)
    assert delivered == Counter(text for _, text in texts)  # each once, none lost
    statuses = Counter(r.status for r in tg.attempts("sendMessage"))
    assert statuses[429] == 3 and statuses[502] == 4 and statuses[0] == 1
    rows = srv.rows("SELECT status, attempts, message_id FROM outbox WHERE method = 'sendMessage'")
    assert {r["status"] for r in rows} == {"sent"}
    assert all(r["message_id"] for r in rows)
    assert sum(r["attempts"] for r in rows) == 12 + 8
    for chat in range(7000, 7004):  # one chat's messages keep their order through the retries
        mine = [p["text"] for p in tg.sent("sendMessage", chat_id=chat)]
        assert mine == [text for c, text in texts if c == chat]


async def test_a_restart_in_the_middle_of_a_batch_sends_again_only_what_telegram_never_confirmed(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="leadline.outbox")
    tg = bot_env.tg
    config = bot_env.config()
    srv = await bot_env.start(config)
    # A row a crashed process left 'sending': Telegram never confirmed it, so it must go again.
    crashed = await bot_env.write(
        lambda db: (
            db.execute(
                "INSERT INTO outbox (chat_id, payload, status, created_at, not_before, attempts)"
                " VALUES (6999, '{\"text\": \"maybe sent\"}', 'sending', '2026-01-01T00:00:00+00:00',"
                " '2026-01-01T00:00:00+00:00', 1)"
            ).lastrowid
        )
    )
    texts = [(8000 + i, f"batch {i}") for i in range(90)]
    await bot_env.write(queue_messages(texts))
    # a slow failure is in flight while the server stops: the shutdown waits for it, the row stays pending
    tg.fail_next("sendMessage", 1, status=502, delay=0.5)
    bot_env.wake_outbox()
    await tg.wait_for(lambda r: r.method == "sendMessage" and r.ok and r.params["chat_id"] >= 8000, count=20)
    await srv.stop()
    sent_before = len([p for p in tg.sent("sendMessage") if p["chat_id"] >= 8000])
    assert 20 <= sent_before < 90
    assert srv.scalar("SELECT COUNT(*) FROM outbox WHERE status = 'sending' AND chat_id >= 8000") == 0

    # The crashed process's row: still 'sending' until the next start decides about it.
    bot_env.srv = None
    srv2 = await bot_env.start(config)
    await bot_env.delivered()

    delivered = Counter(p["text"] for p in tg.sent("sendMessage") if p["chat_id"] >= 8000)
    assert delivered == Counter(text for _, text in texts)
    assert max(delivered.values()) == 1
    assert [p["text"] for p in tg.sent("sendMessage", chat_id=6999)] == ["maybe sent"]
    [interrupted] = srv2.rows("SELECT status, attempts FROM outbox WHERE chat_id = 6999")
    assert interrupted == {"status": "sent", "attempts": 2}  # the interrupted attempt counts
    [warning] = [r for r in caplog.records if "sent again" in r.getMessage()]
    assert warning.fields == {"rows": [crashed]}  # type: ignore[attr-defined]


async def test_a_row_interrupted_mid_send_at_every_start_is_given_up_not_sent_forever(
    bot_env: BotEnv,
) -> None:
    """At-least-once must not become a crash loop: a send that keeps dying with the process stops."""
    config = bot_env.config()
    first = await bot_env.start(config)
    poison = await bot_env.write(
        lambda db: (
            db.execute(
                "INSERT INTO outbox (chat_id, payload, status, created_at, not_before, attempts, interrupted)"
                " VALUES (6998, '{\"text\": \"poison\"}', 'sending', '2026-01-01T00:00:00+00:00',"
                " '2026-01-01T00:00:00+00:00', ?, ?)",
                [MAX_INTERRUPTED_ATTEMPTS, MAX_INTERRUPTED_ATTEMPTS - 1],  # cut off at each start before
            ).lastrowid
        )
    )
    await first.stop()  # as if the send had killed it again: the row is still 'sending'
    bot_env.srv = None
    srv = await bot_env.start(config)
    await bot_env.write(queue_messages([(6997, "after it")]))
    bot_env.wake_outbox()
    await bot_env.delivered()
    assert bot_env.tg.sent("sendMessage", chat_id=6998) == []
    assert [p["text"] for p in bot_env.tg.sent("sendMessage", chat_id=6997)] == ["after it"]
    [row] = srv.rows(f"SELECT status, last_error FROM outbox WHERE id = {poison}")
    assert row == {"status": "failed", "last_error": GAVE_UP}


#: ``leadline serve`` with a bot and cards on arrival, for a test that kills the process.
CRASH_CONFIG = """
[leadline]
database = "{db}"
timezone = "Europe/Moscow"
[http]
host = "127.0.0.1"
port = {port}
[telegram]
token = "{token}"
api_url = "{api}"
request_timeout_seconds = 30
stop_wait_seconds = 40
[notify]
on_arrival = true
outside_hours = "send"
[assign]
mode = "round_robin"
staff = ["Anna"]
[[staff]]
name = "Anna"
telegram_id = 111
role = "owner"
extensions = ["101"]
[[sources]]
name = "form"
provider = "generic_form"
token = "form-token"
"""


async def test_a_card_retried_through_an_outage_and_then_cut_off_by_a_crash_is_sent_after_the_restart(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    """Retries of an outage are not interruptions: only a send cut off by a crash counts toward giving up."""
    db = tmp_path / "leadline.db"
    config = tmp_path / "config.toml"

    def outbox() -> list[tuple[str, int, int]]:
        conn = connect(db)
        try:
            sql = "SELECT status, attempts, interrupted FROM outbox WHERE method = 'sendMessage'"
            return [(str(r[0]), int(r[1]), int(r[2])) for r in conn.execute(sql)]
        finally:
            conn.close()

    async def serve() -> tuple[asyncio.subprocess.Process, int]:
        port = free_port()
        config.write_text(CRASH_CONFIG.format(db=db, port=port, token=tg.token, api=tg.api_url))
        return await start_serve(config, port), port

    proc, port = await serve()
    try:
        tg.fail_next("sendMessage", 4, status=502, html=False)  # Telegram fails for a few seconds
        tg.fail_next("sendMessage", 1, status=502, html=False, delay=120)  # and the 5th try hangs
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/hooks/form?token=form-token"
            async with session.post(url, data={"name": "Ivan", "phone": "+79161234567"}) as resp:
                assert resp.status == 200
        await eventually(lambda: outbox() == [("sending", 5, 0)], seconds=60)
    finally:
        proc.send_signal(signal.SIGKILL)  # the crash: OOM killer, power loss, kill -9
        await proc.wait()

    proc, _ = await serve()
    try:
        await eventually(lambda: outbox()[0][0] in ("sent", "failed"), seconds=30)
        assert outbox() == [("sent", 6, 1)]  # the crash is its one interruption among six attempts
        [card] = tg.sent("sendMessage", chat_id=ANNA)
        assert "Ivan" in card["text"]
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=90)


async def test_a_stop_while_telegram_hangs_loses_nothing_and_sends_nothing_confirmed_twice(
    bot_env: BotEnv,
) -> None:
    tg = bot_env.tg
    config = bot_env.config(telegram={"request_timeout_seconds": 1, "stop_wait_seconds": 5})
    srv = await bot_env.start(config)
    confirmed = [(8100 + i, f"confirmed {i}") for i in range(5)]
    await bot_env.write(queue_messages(confirmed))
    bot_env.wake_outbox()
    await bot_env.delivered()
    tg.fail_next("sendMessage", 20, status=502, delay=60)  # Telegram hangs, longer than any stop waits
    in_flight = [(8200 + i, f"in flight {i}") for i in range(20)]
    await bot_env.write(queue_messages(in_flight))
    bot_env.wake_outbox()
    await eventually(lambda: srv.scalar("SELECT COUNT(*) FROM outbox WHERE status = 'sending'") == 20)

    await srv.stop()
    # Each send in flight timed out before the process exited; its row waits to go again.
    rows = srv.rows("SELECT status, last_error FROM outbox WHERE chat_id >= 8200")
    assert len(rows) == 20
    assert all(r["status"] == "pending" and "Request timeout" in r["last_error"] for r in rows), rows

    bot_env.srv = None
    srv2 = await bot_env.start(config)
    await bot_env.delivered()
    arrived = Counter(p["text"] for p in tg.sent("sendMessage"))
    assert arrived == Counter(text for _, text in confirmed + in_flight)  # every one, each once
    messages = "SELECT chat_id, attempts FROM outbox WHERE method = 'sendMessage'"  # not the staff's menus
    attempts = {r["chat_id"]: r["attempts"] for r in srv2.rows(messages)}
    assert attempts == {chat: 1 for chat, _ in confirmed} | {chat: 2 for chat, _ in in_flight}


async def test_a_send_still_unanswered_when_a_stop_stops_waiting_goes_again_at_the_next_start(
    tg: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever holds a send up past the stop's wait, its row is not left 'sending'."""
    caplog.set_level(logging.WARNING, logger="leadline.outbox")
    path = tmp_path / "leadline.db"
    store = await Store.open_async(path)

    def status() -> tuple[str, str | None]:
        db = connect(path)
        try:
            row = db.execute("SELECT status, last_error FROM outbox").fetchone()
        finally:
            db.close()
        return str(row[0]), row[1]

    async def run_sender(stop_after: Callable[[], Awaitable[object]], wait_s: float) -> None:
        session = AiohttpSession(api=TelegramAPIServer.from_base(tg.api_url), timeout=30)
        bot = Bot(tg.token, session=session)
        sender = OutboxSender(store, now_utc, BotTransport(bot))
        sender.start()
        try:
            await stop_after()
        finally:
            await sender.stop(wait_s)
            await session.close()

    try:
        await store.write(queue_messages([(8300, "slow")]))
        tg.fail_next("sendMessage", 1, status=502, delay=60)
        await run_sender(lambda: eventually(lambda: status()[0] == "sending"), wait_s=0.2)
        assert status() == ("pending", CANCELLED_AT_STOP)
        assert any("cancelled" in r.getMessage() for r in caplog.records)

        await run_sender(lambda: eventually(lambda: status()[0] == "sent"), wait_s=1)
        assert [p["text"] for p in tg.sent("sendMessage")] == ["slow"]
    finally:
        await store.close()


def test_a_request_timeout_that_outlasts_the_stop_wait_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(tmp_path, telegram={"request_timeout_seconds": 30, "stop_wait_seconds": 10})
    assert caught.value.problems == [
        "telegram: request_timeout_seconds must be shorter than stop_wait_seconds, or a stop cuts off"
        " sends Telegram may still be answering"
    ]


async def test_the_sender_keeps_under_telegrams_rate_limits(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    tg.set_rate_limits(per_chat=1, overall=30)  # the fake answers 429 beyond Telegram's limits
    await bot_env.start()
    texts = [(9000 + i % 40, f"r{i}") for i in range(80)] + [(-1009000, f"g{i}") for i in range(3)]
    await bot_env.write(queue_messages(texts))
    bot_env.wake_outbox()
    await bot_env.delivered()
    assert [r for r in tg.attempts("sendMessage") if r.status == 429] == []
    assert tg.max_rate_overall() <= 30
    assert tg.max_rate_per_chat() <= 1
    assert len(tg.sent("sendMessage")) == 83


async def test_a_blocked_user_fails_that_row_only(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    srv = await bot_env.start()
    tg.block_bot(7777)
    await bot_env.write(queue_messages([(7777, "to someone who left"), (7778, "to someone who stayed")]))
    bot_env.wake_outbox()
    await bot_env.delivered()
    rows = {r["chat_id"]: r for r in srv.rows("SELECT chat_id, status, last_error FROM outbox")}
    assert rows[7777]["status"] == "failed" and "blocked" in rows[7777]["last_error"]
    assert rows[7778]["status"] == "sent"


async def test_without_a_token_a_message_is_logged_as_what_it_is_not_what_it_says(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The text went to the log with its numbers masked, and with everything else a person wrote:
    names, words, an address with a typo, usernames (DESIGN.md: nothing personal in a log)."""
    caplog.set_level(logging.INFO, logger="leadline.outbox")
    srv = await start_server(build_config(tmp_path))
    from leadline import keys

    store = srv.server.app[keys.STORE]
    await store.write(
        lambda db: enqueue(
            db,
            111,
            {
                "text": "Missed call from +7 916 123-45-67 (ivan@example.com), Ivan Petrov, @ivan_p",
                "reply_markup": {"inline_keyboard": [[{"text": "Call +79161234567", "callback_data": "x"}]]},
            },
            at=now_utc(),
        )
    )
    srv.server.app[keys.OUTBOX].wake()
    await eventually(lambda: any(r.name == "leadline.outbox" for r in caplog.records))
    assert srv.scalar("SELECT status FROM outbox") == "sent"
    [record] = [r for r in caplog.records if r.name == "leadline.outbox"]
    assert record.getMessage() == "telegram message (no bot token: written to the log)"
    fields = record.fields  # type: ignore[attr-defined]
    assert fields == {"outbox_id": 1, "chat_id": 111, "method": "sendMessage", "buttons": 1}


async def test_without_a_token_a_card_and_its_nudge_name_their_kind_source_campaign_and_ids_and_no_one(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What the operator of a Leadline without a bot reads to see that it works and to act on it (the
    ids of the contact and touch to register), and nothing more."""
    from leadline import keys
    from tests.nudges.conftest import TUESDAY, Clock, msk

    caplog.set_level(logging.INFO, logger="leadline.outbox")
    clock = Clock(msk(TUESDAY, 10, 0))
    config = build_config(
        tmp_path, notify={"on_arrival": True}, assign={"mode": "round_robin", "staff": ["Anna", "Boris"]}
    )
    srv = await start_server(config, clock=clock)
    form = {
        "name": "Иван Петров",
        "phone": "+7 916 123-45-67",
        "email": "ivan.petrov@mail,ru",  # invalid, so kept as written
        "message": "Жена, Мария, просит перезвонить: 8 (926) 555–44–33, telegram @ivan_p",
        "utm_campaign": "brand_msk",
    }
    resp = await srv.session.post(f"{srv.url}/hooks/form?token=form-token", data=form)
    assert resp.status == 200

    def logged() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "leadline.outbox"]

    await eventually(lambda: len(logged()) == 1)
    clock.now = msk(TUESDAY, 10, 16)  # past the 15 working minutes to register it
    await srv.server.app[keys.SWEEPER].run()
    srv.server.app[keys.OUTBOX].wake()
    await eventually(lambda: len(logged()) == 2)

    card, nudge = (r.fields for r in logged())  # type: ignore[attr-defined]
    [touch] = srv.rows("SELECT id, contact_id FROM touches WHERE source = 'form'")
    touch_id, contact_id = touch["id"], touch["contact_id"]
    assert card == {
        "outbox_id": card["outbox_id"],
        "chat_id": 111,
        "method": "sendMessage",
        "kind": "card",
        "card": "register",
        "touches": 1,
        "source": "form",
        "campaign": "brand_msk",
        "contact_id": contact_id,
        "first_touch_id": touch_id,
        "last_touch_id": touch_id,
        "buttons": card["buttons"],
    }
    assert nudge == {
        "outbox_id": nudge["outbox_id"],
        "chat_id": 111,
        "method": "sendMessage",
        "kind": "nudge",
        "cards": 1,
        "nudges": {"register": 1},
        "sources": ["form"],
        "campaigns": ["brand_msk"],
        "touch_ids": [touch_id],
        "contact_ids": [contact_id],
        "buttons": nudge["buttons"],
    }
    line = json.dumps([r.getMessage() for r in logged()] + [card, nudge], ensure_ascii=False)
    for personal in ("Иван", "Петров", "Мария", "ivan", "mail,ru", "555", "916", "перезвонить"):
        assert personal not in line, (personal, line)
