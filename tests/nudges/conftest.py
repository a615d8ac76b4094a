"""A small office on a test clock: Mango calls and form posts through the real server, sweeps at chosen moments.

Anna (owner, extension 101, chat 111) and Boris (staff, extension 102, chat 222), as in tests/conftest.py;
working time is Mon–Fri 09:00–18:00 Moscow with Russian public holidays; SLAs are the defaults
(register 15, call back 30, escalate 60 working minutes), messages batched per 5 minutes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from leadline import keys
from leadline.config import Config
from leadline.sweep import SweepResult
from storage.db import Store
from storage.registrations import Registered
from storage.registrations import record_registration as register
from tests.capture.test_mango import MANGO_SOURCE, post_mango, signed_mango, summary
from tests.conftest import BASE, Running, StartServer, build_config
from tests.fake_telegram import FakeTelegram

MSK = ZoneInfo("Europe/Moscow")
ANNA, BORIS = 111, 222
#: A Tuesday that is no Russian holiday.
TUESDAY = date(2026, 4, 14)


def msk(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=MSK)


class Clock:
    """The server's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def office_config(tmp_path: Path, **overrides: Any) -> Config:
    sources = [
        *BASE["sources"],
        MANGO_SOURCE,
        {"name": "site", "provider": "generic_form", "token": "site-token", "owner": "Anna"},
    ]
    return build_config(tmp_path, sources=overrides.pop("sources", sources), **overrides)


@dataclass
class Office:
    srv: Running
    clock: Clock

    @property
    def store(self) -> Store:
        return self.srv.server.app[keys.STORE]

    async def sweep(self, at: datetime) -> SweepResult:
        """Run the app's own sweep with the clock at ``at``."""
        self.clock.now = at
        return await self.srv.server.app[keys.SWEEPER].run()

    async def call(
        self,
        entry_id: str,
        number: str,
        start: datetime,
        *,
        answered: bool,
        extension: str = "102",
        outbound: bool = False,
    ) -> dict[str, Any]:
        """Mango posts the summary of a call that started at ``start``, a minute after it ended."""
        self.clock.now = start + timedelta(minutes=2)
        payload = summary(
            entry_id, number, start=int(start.timestamp()), answered=answered, direction=2 if outbound else 1,
            extension=extension,
        )  # fmt: skip
        resp = await post_mango(self.srv, "/events/summary", signed_mango(payload))
        assert resp.status == 200, await resp.text()
        [touch] = self.srv.rows("SELECT * FROM touches WHERE external_id = ?", [entry_id])
        return touch

    async def form(self, at: datetime, **fields: str) -> dict[str, Any]:
        self.clock.now = at
        resp = await self.srv.session.post(f"{self.srv.url}/hooks/site?token=site-token", data=fields)
        assert resp.status == 200, await resp.text()
        [touch] = self.srv.rows("SELECT * FROM touches WHERE source = 'site' ORDER BY id DESC LIMIT 1")
        return touch

    async def register(
        self, contact_id: int, at: datetime, *, staff_id: int | None = None, **kwargs: Any
    ) -> Registered:
        self.clock.now = at
        kwargs.setdefault("temperature", "warm")
        return await self.store.write(
            lambda db: register(
                db, contact_id, kwargs.pop("disposition", "lead"), at=at, staff_id=staff_id, **kwargs
            )
        )

    def messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The nudge messages queued for a chat (whether or not the sender has taken them yet)."""
        rows = self.srv.rows(
            "SELECT o.payload FROM outbox o JOIN nudge_messages m ON m.outbox_id = o.id WHERE o.chat_id = ? ORDER BY o.id",
            [chat_id],
        )
        return [json.loads(r["payload"]) for r in rows]

    def texts(self, chat_id: int) -> list[str]:
        return [str(m["text"]) for m in self.messages(chat_id)]

    def nudges(self, kind: str | None = None) -> list[dict[str, Any]]:
        if kind is None:
            return self.srv.rows("SELECT * FROM nudges ORDER BY id")
        return self.srv.rows("SELECT * FROM nudges WHERE kind = ? ORDER BY id", [kind])

    def staff_id(self, name: str) -> int:
        return int(self.srv.scalar("SELECT id FROM staff WHERE name = ?", [name]))


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    """Wait for something a background task does (the outbox sender, the scheduler)."""
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


def buttons(message: dict[str, Any]) -> list[dict[str, str]]:
    return [b for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


@pytest.fixture
async def office(start_server: StartServer, tmp_path: Path) -> Office:
    """The office on a Tuesday morning, before anyone called."""
    clock = Clock(msk(TUESDAY, 8, 0))
    srv = await start_server(office_config(tmp_path), clock=clock)
    return Office(srv, clock)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake
