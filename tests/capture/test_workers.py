"""``[http] workers = 2``: two processes on one port, one deduplicated base, one set of figures."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import signal
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from leadline.config import ConfigError
from leadline.load import parse_config
from tests.capture.form_checks import SPELLINGS
from tests.cli import free_port, run_cli, start_serve

CONFIG = """
[leadline]
database = "{db}"

[http]
host = "127.0.0.1"
port = {port}
workers = 2

[[sources]]
name = "form"
provider = "generic_form"
token = "workers-token"
"""


def log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:]


async def wait_for_line(path: Path, predicate: Any, within: float = 90) -> dict[str, Any]:
    """The first log line ``predicate`` accepts, polling the file for up to ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        for line in log_lines(path):
            if predicate(line):
                return line
        await asyncio.sleep(0.1)
    raise AssertionError(f"no such log line in {path.name}: {tail(path)}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").exists() and "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()


async def wait_gone(pid: int, within: float = 30) -> bool:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if not alive(pid):
            return True
        await asyncio.sleep(0.1)
    return False


async def start(tmp_path: Path) -> tuple[asyncio.subprocess.Process, int, Path, Path, int]:
    port = free_port()
    db = tmp_path / "workers.db"
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(db=db, port=port))
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        proc = await start_serve(config, port, stderr=stderr)
    ready = await wait_for_line(log, lambda line: line.get("msg") == "worker listening")
    return proc, port, db, log, int(ready["pid"])


async def post_forms(port: int, people: int) -> list[int]:
    """Each person five times, in the five spellings, twenty at a time."""
    requests = [
        (n, spelling.format(a="123", b=f"{n // 100:02d}", c=f"{n % 100:02d}"))
        for n in range(people)
        for spelling in SPELLINGS
    ]
    statuses: list[int] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=20, force_close=True)) as session:

        async def one(i: int, n: int, number: str) -> None:
            async with session.post(
                f"http://127.0.0.1:{port}/hooks/form?token=workers-token",
                data={"phone": number, "name": f"Person {n}", "submission_id": f"s-{i}"},
            ) as resp:
                statuses.append(resp.status)

        await asyncio.gather(*(one(i, n, number) for i, (n, number) in enumerate(requests)))
    return statuses


def connections_held(pid: int, port: int) -> int:
    """How many connections to ``port`` the process has accepted and not yet closed."""
    established = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
            established.add(f"socket:[{fields[9]}]")
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # an fd closed while we look
            held += os.readlink(fd) in established
    return held


def unread(port: int) -> int:
    """How many accepted connections to ``port`` hold bytes their server has not read yet."""
    waiting = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
            waiting += int(fields[4].split(":")[1], 16) > 0  # rx_queue
    return waiting


def requests_counted(metrics: str) -> float:
    match = re.search(r'^leadline_requests_total\{source="form",status="200"\} ([\d.]+)', metrics, re.M)
    assert match, metrics
    return float(match[1])


@pytest.mark.timeout(300)
async def test_two_processes_share_the_port_the_contacts_and_the_figures(tmp_path):
    proc, port, db, log, worker_pid = await start(tmp_path)
    try:
        assert worker_pid != proc.pid
        statuses = await post_forms(port, people=40)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            scraped, texts = [], []
            for _ in range(6):  # new connections: the kernel picks a process for each
                async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    texts.append(await resp.text())
                    scraped.append(requests_counted(texts[-1]))
        assert (tmp_path / "workers.db-metrics").is_dir()
        # SO_REUSEPORT would let a second serve share the port: the database says no.
        second = await run_cli("serve", "--config", str(tmp_path / "config.toml"))
        assert second.code == 4  # runtime: README, "Exit codes"
        assert "already running" in second.output
    finally:
        # What systemd and Ctrl-C do: the signal reaches every process of the group at once.
        os.kill(worker_pid, signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=90)

    assert statuses == [200] * 200
    served_by = {line["pid"] for line in log_lines(log) if line.get("msg") == "request"}
    assert served_by == {proc.pid, worker_pid}
    assert scraped == [200.0] * 6  # whichever process answers counts both
    for text in texts:  # the writers' figures summed as counters; no process figures of one of them
        assert "# TYPE leadline_writer_commits_total counter" in text
        assert "# TYPE python_info gauge" in text and "process_cpu_seconds_total" not in text
        # Set from the database by whichever process answers, as the journal's gauges are.
        assert 'leadline_webhook_deliveries{status="failed"} 0.0' in text
        assert "leadline_webhook_oldest_pending_seconds 0.0" in text
    assert await wait_gone(worker_pid), "SIGTERM left the worker running"
    assert not [
        line
        for line in log_lines(log)
        if line.get("msg") == "worker started" and line["worker_pid"] != worker_pid
    ], "a worker stopped by the shutdown signal was started again"
    assert not (tmp_path / "workers.db-metrics").exists()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM touches").fetchone()[0] == 200
        # Five spellings of forty numbers, spread over two writers: forty people.
        assert conn.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] == 40
        assert conn.execute("SELECT COUNT(*) FROM journal WHERE status != 'processed'").fetchone()[0] == 0
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


@pytest.mark.timeout(300)
async def test_a_second_serve_on_another_database_cannot_take_the_port(tmp_path):
    proc, port, db, _log, worker_pid = await start(tmp_path)
    try:
        # A staging copy of the config: its own database, the same port, workers of its own too.
        other = tmp_path / "other"
        other.mkdir()
        (other / "config.toml").write_text(CONFIG.format(db=other / "other.db", port=port))
        second = await run_cli("serve", "--config", str(other / "config.toml"))
        assert second.code == 4  # runtime: README, "Exit codes"
        assert f"Port {port} on 127.0.0.1 is in use" in second.output
        assert len(second.output.strip().splitlines()) == 1, second.output
        statuses = await post_forms(port, people=4)
    finally:
        os.kill(worker_pid, signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=90)
    assert statuses == [200] * 20
    conn = sqlite3.connect(db)
    try:  # every webhook reached the one serve that owns the port
        assert conn.execute("SELECT COUNT(*) FROM touches").fetchone()[0] == 20
    finally:
        conn.close()
    assert not (other / "other.db").exists()


@pytest.mark.timeout(300)
async def test_a_stopping_worker_answers_what_it_holds_whatever_signals_follow(tmp_path):
    proc, port, db, _log, worker_pid = await start(tmp_path)
    lock = os.open(f"{db}.lock", os.O_RDWR)
    try:
        # A long transaction elsewhere (a replay, an erasure) holds the write lock: requests wait.
        fcntl.flock(lock, fcntl.LOCK_EX)
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))

        async def post(n: int) -> int | str:
            try:
                async with session.post(
                    f"http://127.0.0.1:{port}/hooks/form?token=workers-token",
                    data={"phone": f"+7916300{n:04d}", "submission_id": f"stop-{n}"},
                ) as resp:
                    return resp.status
            except aiohttp.ClientError as exc:
                return type(exc).__name__

        async with session:
            posts = [asyncio.create_task(post(n)) for n in range(16)]
            deadline = asyncio.get_running_loop().time() + 60
            while connections_held(proc.pid, port) + connections_held(worker_pid, port) < 16:
                assert asyncio.get_running_loop().time() < deadline, "the requests were not all accepted"
                await asyncio.sleep(0.05)
            waiting_in_worker = connections_held(worker_pid, port)
            assert waiting_in_worker > 0  # the kernel gave the worker some of the sixteen
            while unread(port):  # accepted connections become requests waiting for the lock
                assert asyncio.get_running_loop().time() < deadline, "the requests were not all read"
                await asyncio.sleep(0.05)
            # systemd's stop or Ctrl+C signals the worker, then its primary terminates it again.
            os.kill(worker_pid, signal.SIGTERM)
            await asyncio.sleep(0.2)
            os.kill(worker_pid, signal.SIGTERM)
            os.kill(worker_pid, signal.SIGINT)
            await asyncio.sleep(0.2)
            fcntl.flock(lock, fcntl.LOCK_UN)
            answers = await asyncio.wait_for(asyncio.gather(*posts), timeout=90)
        assert await wait_gone(worker_pid, within=90), "the worker did not stop after its drain"
    finally:
        os.close(lock)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=90)
    assert answers == [200] * 16
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM journal WHERE status = 'processed'").fetchone()[0] == 16
        assert conn.execute("SELECT COUNT(*) FROM touches").fetchone()[0] == 16
    finally:
        conn.close()


@pytest.mark.timeout(300)
async def test_a_dead_worker_is_started_again_and_dies_with_its_primary(tmp_path):
    proc, port, db, log, first = await start(tmp_path)
    try:
        os.kill(first, signal.SIGKILL)
        await wait_for_line(log, lambda line: line.get("msg") == "worker exited; starting it again")
        second = int(
            (
                await wait_for_line(
                    log, lambda line: line.get("msg") == "worker listening" and line["pid"] != first
                )
            )["pid"]
        )
        statuses = await post_forms(port, people=4)
        assert statuses == [200] * 20
        # A primary killed outright cannot stop its workers; each notices and stops by itself.
        proc.kill()
        await proc.wait()
        assert await wait_gone(second), "a worker kept serving after its primary was killed"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] == 4
    finally:
        conn.close()


@pytest.mark.timeout(300)
async def test_a_worker_restarted_after_the_config_was_edited_refuses_to_start(tmp_path):
    proc, port, _db, log, worker_pid = await start(tmp_path)
    try:
        config = tmp_path / "config.toml"
        config.write_text(config.read_text().replace("workers-token", "a-new-token"))
        os.kill(worker_pid, signal.SIGKILL)
        refused = await wait_for_line(
            log, lambda line: str(line.get("msg", "")).startswith("the config file changed")
        )
        assert refused["pid"] != proc.pid
        # The primary still answers with the config it read: one token for every request.
        statuses = await post_forms(port, people=2)
        assert statuses == [200] * 10
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=90)


def test_workers_need_the_bot_on_long_polling():
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "http": {"workers": 2},
                "telegram": {"token": "123:abc", "webhook_url": "https://bot.example.com/telegram"},
            }
        )
    assert any(p.startswith("http.workers") or "http.workers" in p for p in caught.value.problems)
    with pytest.raises(ConfigError) as caught:
        parse_config({"http": {"workers": 2, "port": 0}})
    assert any("http.port must be a fixed port" in p for p in caught.value.problems)


async def test_check_config_shows_the_workers(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(db=tmp_path / "x.db", port=8080))
    result = await run_cli("check-config", "--config", str(config))
    assert result.code == 0, result.output
    assert "workers: 2" in result.output


async def test_port_0_on_the_command_line_is_refused_with_workers_as_in_the_config(tmp_path):
    """``serve --port 0`` with ``workers = 2`` got past the config's check: the primary and its worker
    each listened on a random port of its own, and the worker got nothing."""
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(db=tmp_path / "x.db", port=free_port()))
    result = await run_cli("serve", "--config", str(config), "--port", "0")
    assert result.code == 2, result.output  # usage: README, "Exit codes"
    assert "workers share one port, so http.port must be a fixed port, not 0" in result.output
    assert not (tmp_path / "x.db").exists()


@pytest.mark.timeout(300)
async def test_a_second_serve_reaching_the_database_through_a_link_is_refused(tmp_path):
    """Its locks were named after the link (``alias.db.serve.lock``, ``alias.db.lock``): it started a
    second bot, scheduler and arrival pass, and its writer no longer took turns with the first's."""
    proc, port, db, _log, worker_pid = await start(tmp_path)
    try:
        other = tmp_path / "other"
        other.mkdir()
        (other / "alias.db").symlink_to(db)
        (other / "config.toml").write_text(CONFIG.format(db=other / "alias.db", port=free_port()))
        second = await run_cli("serve", "--config", str(other / "config.toml"))
        assert second.code == 4, second.output  # runtime: README, "Exit codes"
        assert f"Another `leadline serve` is already running on {db}; stop it first." in second.output
        statuses = await post_forms(port, people=2)
    finally:
        os.kill(worker_pid, signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=90)
    assert statuses == [200] * 10
    assert sorted(p.name for p in other.iterdir()) == ["alias.db", "config.toml"]
