"""Speed to lead: from the provider's 2xx to the card's ``sendMessage`` arriving at the fake Bot API.

Runs the real application (``leadline.app.init_app``: capture, the arrival pass, the outbox sender,
the bot on long polling) on 127.0.0.1 over a fresh SQLite file, against ``tests/fake_telegram.py``,
and posts generic-form webhooks from a client in the same process. For each form it takes the
moment the 2xx came back and the moment the fake recorded the ``sendMessage`` of its card (matched
by the contact's name), and prints p50 and p99 of the difference beside the fake's own round trip
(a bare ``sendMessage`` through aiogram's client, the floor under any card). Two scenarios:

* ``steady``: 2 events a second for 60 s, round robin over 10 assignees (target: p99 <= 1 s);
* ``burst``: 50 events in 5 s into one team chat (a group), where Telegram's limits (1 a second to a
  chat, 20 a minute to a group: ``bot/ratelimit.py``) set a floor; the time from the first 2xx to the
  last card against the least those limits allow for the same arrivals (target: within 10 %).

Run: ``.venv/bin/python bench/speed.py`` (about three and a half minutes), or ``--steady-seconds 10
--burst 20`` for a quick look. Working time is round the clock, so no card is held.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiogram import Bot  # noqa: E402
from aiogram.client.session.aiohttp import AiohttpSession  # noqa: E402
from aiogram.client.telegram import TelegramAPIServer  # noqa: E402
from aiohttp import web  # noqa: E402

from bot.ratelimit import Limits  # noqa: E402
from leadline.app import init_app  # noqa: E402
from leadline.load import parse_config  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402

TEAM_CHAT = -1001234567890
TOKEN = "bench-form-token"


def config(tmp: Path, tg: FakeTelegram, *, assignees: int, team: bool) -> Any:
    staff = [
        {"name": f"Staff{i}", "telegram_id": 5000 + i, "role": "owner" if i == 0 else "staff"}
        for i in range(assignees)
    ]
    return parse_config(
        {
            "leadline": {"database": str(tmp / "speed.db"), "timezone": "Europe/Moscow", "region": "RU"},
            "http": {"host": "127.0.0.1", "port": 0},
            "telegram": {"token": tg.token, "api_url": tg.api_url, "team_chat": TEAM_CHAT if team else 0},
            "working_time": {
                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "hours": "00:00-24:00",
                "holidays": "",
            },
            "notify": {"on_arrival": True, "outside_hours": "send"},
            "assign": {"mode": "team" if team else "round_robin", "staff": [s["name"] for s in staff]},
            "staff": staff,
            "sources": [{"name": "form", "provider": "generic_form", "token": TOKEN}],
        },
        tmp,
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


@dataclass
class Posted:
    name: str
    acked: float


async def post_forms(url: str, count: int, interval_s: float, offset: int) -> list[Posted]:
    """Forms from ``count`` different people, one every ``interval_s``; the time each 2xx came back."""
    posted: list[Posted] = []
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            name = f"Person{offset + i:05d}"
            phone = f"+7916{offset + i:07d}"
            async with session.post(
                f"{url}/hooks/form?token={TOKEN}", data={"name": name, "phone": phone}
            ) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"form {i}: HTTP {r.status}")
                posted.append(Posted(name, time.monotonic()))

        started = time.monotonic()
        tasks = []
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i * interval_s - time.monotonic()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return posted


async def card_times(tg: FakeTelegram, posted: list[Posted], timeout_s: float) -> dict[str, float]:
    """When the fake recorded each form's card (``CallRecord.at``), waiting up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found: dict[str, float] = {}
        for record in tg.attempts("sendMessage"):
            if record.ok:
                text = str(record.params.get("text", ""))
                for p in posted:
                    if p.name in text and p.name not in found:
                        found[p.name] = record.at
        if len(found) == len(posted) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def fake_round_trip(tg: FakeTelegram, count: int) -> list[float]:
    bot = Bot(tg.token, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.api_url)))
    times = []
    try:
        for i in range(count):
            started = time.monotonic()
            await bot.send_message(9_000_000 + i, "ping")
            times.append(time.monotonic() - started)
    finally:
        await bot.session.close()
    return times


async def serve(cfg: Any) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(init_app(cfg), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def least_drain(arrivals: list[float], limits: Limits) -> float:
    """The earliest the last of these cards can reach one group under Telegram's limits, from the first
    arrival: each send no sooner than its 2xx, a second after the previous one, and a minute after the
    one ``group_per_minute`` before it."""
    sends: list[float] = []
    for k, at in enumerate(sorted(arrivals)):
        s = at
        if sends:
            s = max(s, sends[-1] + limits.per_chat_interval_s)
        if k >= limits.group_per_minute:
            s = max(s, sends[k - limits.group_per_minute] + 60.0)
        sends.append(s)
    return sends[-1] - min(arrivals)


def report(title: str, posted: list[Posted], cards: dict[str, float], rtt: list[float]) -> list[float]:
    lag = [cards[p.name] - p.acked for p in posted if p.name in cards]
    print(f"{title}")
    print(f"  events            {len(posted)}, cards seen {len(cards)}")
    if lag:
        print(f"  2xx -> card p50   {statistics.median(lag) * 1000:.0f} ms")
        print(f"  2xx -> card p99   {percentile(lag, 99) * 1000:.0f} ms")
        print(f"  max               {max(lag) * 1000:.0f} ms")
    print(
        f"  fake round trip   p50 {statistics.median(rtt) * 1000:.1f} ms, p99 {percentile(rtt, 99) * 1000:.1f} ms"
    )
    return lag


async def steady(seconds: int, rate: float, assignees: int) -> None:
    async with FakeTelegram() as tg:
        with tempfile.TemporaryDirectory() as tmp:
            runner, url = await serve(config(Path(tmp), tg, assignees=assignees, team=False))
            try:
                await tg.wait_long_poll()
                rtt = await fake_round_trip(tg, 50)
                await asyncio.sleep(1.5)  # the pings out of the fake's one-second window
                tg.set_rate_limits(per_chat=1, overall=30)
                posted = await post_forms(url, int(seconds * rate), 1 / rate, 0)
                cards = await card_times(tg, posted, 30)
                lag = report(
                    f"steady: {rate:g} events/s for {seconds} s over {assignees} assignees",
                    posted,
                    cards,
                    rtt,
                )
                if lag:
                    ok = percentile(lag, 99) <= 1.0 and len(cards) == len(posted)
                    print("  target p99 <= 1 s " + ("met" if ok else "MISSED"))
            finally:
                await runner.cleanup()


async def burst(count: int, seconds: float) -> None:
    limits = Limits()
    async with FakeTelegram() as tg:
        tg.add_chat(TEAM_CHAT)
        with tempfile.TemporaryDirectory() as tmp:
            runner, url = await serve(config(Path(tmp), tg, assignees=2, team=True))
            try:
                await tg.wait_long_poll()
                rtt = await fake_round_trip(tg, 50)
                await asyncio.sleep(1.5)  # the pings out of the fake's one-second window
                tg.set_rate_limits(per_chat=1, overall=30)
                posted = await post_forms(url, count, seconds / count, 100_000)
                floor = least_drain([p.acked for p in posted], limits)
                cards = await card_times(tg, posted, floor * 1.5 + 30)
                report(f"burst: {count} events in {seconds:g} s into one team chat", posted, cards, rtt)
                if len(cards) == len(posted):
                    drain = max(cards.values()) - min(p.acked for p in posted)
                    print(f"  first 2xx -> last card {drain:.1f} s")
                    print(
                        f"  least the limits allow {floor:.1f} s (1/s to a chat, {limits.group_per_minute}/min to a group)"
                    )
                    print(f"  ratio             {drain / floor:.3f} x the minimum")
                    print("  target within 10 % " + ("met" if drain <= floor * 1.1 else "MISSED"))
            finally:
                await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steady-seconds", type=int, default=60)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--assignees", type=int, default=10)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--burst-seconds", type=float, default=5.0)
    parser.add_argument("--only", choices=["steady", "burst"])
    args = parser.parse_args()
    if args.only != "burst":
        asyncio.run(steady(args.steady_seconds, args.rate, args.assignees))
    if args.only != "steady":
        asyncio.run(burst(args.burst, args.burst_seconds))


if __name__ == "__main__":
    main()
