"""The bot as in production: the real app on 127.0.0.1, its real aiogram polling a fake Bot API.

``bot_env`` sets up the fake Telegram before the app and tears it down after, so the bot never
talks to a server that is gone while it shuts down.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from leadline import keys
from leadline.config import Config
from storage.db import Store, now_utc
from tests.conftest import BASE, Running, StartServer, build_config
from tests.fake_telegram import CallRecord, FakeTelegram

ANNA = 111  # owner
BORIS = 222  # staff


def button_data(tg: FakeTelegram, chat_id: int, message_id: int, text_part: str) -> str:
    """The callback data of the button whose text contains ``text_part`` (what the person taps)."""
    for b in tg.buttons(chat_id, message_id):
        if text_part in b["text"]:
            return str(b["callback_data"])
    texts = [b["text"] for b in tg.buttons(chat_id, message_id)]
    raise AssertionError(f"no button with {text_part!r} on message {message_id}: {texts}")


async def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for a condition on the database file, as a person looking at it would."""
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 - a database file announces nothing to wait on
            await asyncio.sleep(0.02)


@dataclass
class BotEnv:
    tg: FakeTelegram
    tmp_path: Path
    start_server: StartServer
    srv: Running | None = None

    def config(self, **overrides: Any) -> Config:
        telegram = {"token": self.tg.token, "api_url": self.tg.api_url, **overrides.pop("telegram", {})}
        return build_config(self.tmp_path, telegram=telegram, **overrides)

    async def start(
        self, config: Config | None = None, clock: Callable[[], datetime] = now_utc, **overrides: Any
    ) -> Running:
        self.srv = await self.start_server(config or self.config(**overrides), clock=clock)
        await self.tg.wait_long_poll()
        return self.srv

    @property
    def store(self) -> Store:
        assert self.srv is not None
        return self.srv.server.app[keys.STORE]

    async def write(self, fn: Callable[[Database], Any]) -> Any:
        return await self.store.write(fn)

    def wake_outbox(self) -> None:
        assert self.srv is not None
        self.srv.server.app[keys.OUTBOX].wake()

    async def delivered(self, chat_id: int | None = None) -> None:
        """Wait until everything queued (for ``chat_id``, or for anyone) has left the outbox."""
        srv = self.srv
        assert srv is not None
        where = "status IN ('pending', 'sending')" + (
            "" if chat_id is None else f" AND chat_id = {int(chat_id)}"
        )
        await eventually(lambda: not srv.scalar(f"SELECT COUNT(*) FROM outbox WHERE {where}"), seconds=30)

    async def says(self, user: int, text: str, *, language: str | None = "ru") -> CallRecord:
        """The person types ``text``; returns the bot's first message to them in answer."""
        await self.delivered(user)
        before = len(self.tg.sent("sendMessage", chat_id=user))
        self.tg.user_sends_text(user, text, language_code=language)
        return await self.tg.wait_for("sendMessage", chat_id=user, count=before + 1)

    async def taps(self, user: int, message_id: int, text_part: str) -> None:
        """The person taps the button whose label contains ``text_part``."""
        await self.press(user, message_id, button_data(self.tg, user, message_id, text_part))

    async def press(self, user: int, message_id: int, data: str, *, forged: bool = False) -> dict[str, Any]:
        """The person taps the button with this callback data (it must be on the message, unless the
        data is ``forged``: sent by a client of their own); returns the callback answer once the bot
        has handled the tap."""
        update_id = self.tg.user_presses_button(user, message_id, data, strict=not forged)
        await self.tg.wait_until_confirmed(update_id)
        query_id = next(u["callback_query"]["id"] for u in self.tg.updates if u["update_id"] == update_id)
        return self.tg.callback_answers.get(query_id, {})

    async def types(self, user: int, text: str, *, language: str | None = "ru") -> None:
        """The person types ``text``; returns once the bot has handled it (replies may still be queued)."""
        update_id = self.tg.user_sends_text(user, text, language_code=language)
        await self.tg.wait_until_confirmed(update_id)
        await self.delivered(user)

    def text(self, user: int, message_id: int) -> str:
        msg = self.tg.message(user, message_id)
        assert msg is not None
        return str(msg.get("text", ""))


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot_env(tg: FakeTelegram, start_server: StartServer, tmp_path: Path) -> BotEnv:
    return BotEnv(tg, tmp_path, start_server)


def staff_with_languages(ru: int = ANNA, en: int = BORIS) -> list[dict[str, Any]]:
    staff: list[dict[str, Any]] = copy.deepcopy(BASE["staff"])
    for person in staff:
        if person["telegram_id"] == ru:
            person["language"] = "ru"
        if person["telegram_id"] == en:
            person["language"] = "en"
    return staff
