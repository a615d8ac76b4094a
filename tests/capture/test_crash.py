"""A ``leadline serve`` process killed with SIGKILL mid-stream loses nothing it acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3

import aiohttp
import pytest

from tests.cli import free_port, start_serve

CONFIG = """
[leadline]
database = "{db}"

[http]
host = "127.0.0.1"
port = {port}

[[sources]]
name = "form"
provider = "generic_form"
token = "crash-token"
"""


@pytest.mark.timeout(300)
async def test_sigkill_during_concurrent_requests_keeps_every_acknowledged_touch(tmp_path):
    port = free_port()
    db_path = tmp_path / "crash.db"
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(db=db_path, port=port))
    proc = await start_serve(config, port)
    acknowledged: set[str] = set()
    enough = asyncio.Event()

    async def client(n: int, session: aiohttp.ClientSession) -> None:
        for i in range(10_000):
            sid = f"{n}-{i}"
            try:
                async with session.post(
                    f"http://127.0.0.1:{port}/hooks/form?token=crash-token",
                    data={"phone": f"+7916{n:03d}{i % 10000:04d}", "submission_id": sid},
                ) as resp:
                    if resp.status == 200:
                        acknowledged.add(sid)
            except (TimeoutError, aiohttp.ClientError):
                return
            if len(acknowledged) >= 400:
                enough.set()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        clients = [asyncio.create_task(client(n, session)) for n in range(20)]
        await asyncio.wait_for(enough.wait(), timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        await asyncio.gather(*clients)

    proc = await start_serve(config, port)
    proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.wait(), timeout=30)

    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0].removeprefix("form:") for row in conn.execute("SELECT external_id FROM touches")}
        waiting = conn.execute(
            "SELECT COUNT(*) FROM journal WHERE status IN ('received', 'failed')"
        ).fetchone()[0]
    finally:
        conn.close()
    assert len(acknowledged) >= 400
    assert acknowledged <= stored, f"lost {len(acknowledged - stored)} acknowledged requests"
    assert waiting == 0
