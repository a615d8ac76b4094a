"""Outbox drain: 10 000 queued messages to 100 chats through the fake Bot API, under Telegram's limits.

Queues the messages in a fresh SQLite file, runs the real sender (``bot/outbox.py``, aiogram's real
client) against ``tests/fake_telegram.py`` with the fake enforcing Telegram's limits (a send beyond
1 a second to one chat or 30 a second overall is answered 429), and prints messages per second, the
highest per-chat and overall rates the fake saw, how many 429s it had to give, and the drain time
against the theoretical minimum those limits allow: max(messages / 30, messages per chat / 1) s.
Run: ``.venv/bin/python bench/outbox.py`` (about six minutes), or ``--messages 1000`` for a quick look.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiogram import Bot  # noqa: E402
from aiogram.client.session.aiohttp import AiohttpSession  # noqa: E402
from aiogram.client.telegram import TelegramAPIServer  # noqa: E402
from sqlite_utils import Database  # noqa: E402

from bot.outbox import OutboxSender  # noqa: E402
from bot.ratelimit import Limits  # noqa: E402
from bot.transport import BotTransport  # noqa: E402
from leadline.config import TelegramSection  # noqa: E402
from storage.db import Store, now_utc  # noqa: E402
from storage.outbox import enqueue  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402


async def run(messages: int, chats: int) -> None:
    limits = Limits()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "bench.db")
        at = now_utc()

        def fill(db: Database) -> None:
            for i in range(messages):
                enqueue(db, 10_000 + i % chats, {"text": f"message {i}"}, at=at)

        await store.write(fill)
        async with FakeTelegram() as tg:
            tg.set_rate_limits(per_chat=1, overall=limits.overall)
            bot = Bot(tg.token, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.api_url)))
            sender = OutboxSender(store, now_utc, BotTransport(bot), limits=limits)
            started = time.monotonic()
            sender.start()
            while len(tg.sent("sendMessage")) < messages:
                await asyncio.sleep(0.5)
                done = len(tg.sent("sendMessage"))
                print(f"\r  sent {done}/{messages}", end="", file=sys.stderr, flush=True)
            elapsed = time.monotonic() - started
            print(file=sys.stderr)
            await sender.stop(TelegramSection().stop_wait_seconds)
            await bot.session.close()
            refused = sum(1 for r in tg.attempts("sendMessage") if r.status == 429)
            per_chat = tg.max_rate_per_chat()
            overall = tg.max_rate_overall()
        await store.close()
    per_chat_count = -(-messages // chats)
    minimum = max(messages / limits.overall, per_chat_count / 1.0)
    print(f"messages          {messages} to {chats} chats")
    print(f"drain time        {elapsed:.1f} s")
    print(f"messages/s        {messages / elapsed:.1f}")
    print(f"max per chat      {per_chat:.0f} msg in any 1 s window (limit 1)")
    print(f"max overall       {overall:.0f} msg in any 1 s window (limit {limits.overall})")
    print(f"429 answers       {refused}")
    print(f"theoretical min   {minimum:.1f} s (limits allow at most {messages / minimum:.1f} msg/s)")
    print(f"ratio             {elapsed / minimum:.3f} x the minimum")
    within = per_chat <= 1 and overall <= limits.overall and refused == 0
    print("within limits     " + ("yes" if within else "NO"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--chats", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(run(args.messages, args.chats))


if __name__ == "__main__":
    main()
