"""Fixtures: a real Leadline server on 127.0.0.1 over a real SQLite file, per test."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlite_utils import Database

from leadline.app import init_app
from leadline.config import Config
from leadline.load import parse_config
from storage.db import connect, now_utc

BASE: dict[str, Any] = {
    "leadline": {"timezone": "Europe/Moscow", "region": "RU"},
    # Cards on arrival are on by default; the tests of other features count messages without them
    # (tests/bot/test_arrival.py switches them on).
    "notify": {"on_arrival": False},
    "http": {"public_url": "https://hooks.example.com"},
    "staff": [
        {"name": "Anna", "telegram_id": 111, "role": "owner", "extensions": ["101"]},
        {"name": "Boris", "telegram_id": 222, "role": "staff", "extensions": ["102"]},
    ],
    "campaigns": [
        {
            "name": "brand_msk",
            "tracking_numbers": ["+74950000055"],
            "utm_campaign": ["brand_msk"],
            "emails": ["sales@example.com"],
        },
        {"name": "vk_ads", "utm_source": ["vk"]},
    ],
    "sources": [
        {"name": "form", "provider": "generic_form", "token": "form-token"},
        {
            "name": "std",
            "provider": "standard_webhooks",
            "secret": "whsec_dGVzdC1zdGFuZGFyZC13ZWJob29rcy1zZWNyZXQtMzJi",
        },
    ],
}


def build_config(tmp_path: Path, **overrides: Any) -> Config:
    """The test config: BASE with top-level sections replaced by ``overrides``."""
    data = copy.deepcopy(BASE)
    data.update(overrides)
    data.setdefault("leadline", {})["database"] = str(tmp_path / "leadline.db")
    return parse_config(data, tmp_path)


@dataclass
class Running:
    url: str
    config: Config
    session: aiohttp.ClientSession
    server: TestServer

    def db(self) -> Database:
        """A separate connection to the same file, as a person inspecting it would open."""
        return connect(self.config.database_path)

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        db = self.db()
        try:
            cursor = db.execute(sql, params or [])
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            db.close()

    async def stop(self) -> None:
        """Stop serving, as a process shutting down would; safe to call twice."""
        if not self.session.closed:
            await self.session.close()
        await self.server.close()

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        rows = self.rows(sql, params)
        return next(iter(rows[0].values())) if rows else None


StartServer = Callable[..., Any]


@pytest.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """``await start_server(config=None, clock=None)`` → :class:`Running`; stopped after the test."""
    started: list[Running] = []

    async def start(config: Config | None = None, clock: Callable[[], datetime] = now_utc) -> Running:
        config = config or build_config(tmp_path)
        server = TestServer(init_app(config, clock=clock), host="127.0.0.1", port=0)
        await server.start_server()
        session = aiohttp.ClientSession()
        running = Running(str(server.make_url("")).rstrip("/"), config, session, server)
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        await running.stop()
