"""Running the ``leadline`` command as a user would: a separate process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Result:
    code: int
    output: str


def run_cli_sync(*args: str, env: dict[str, str] | None = None) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "leadline", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout + proc.stderr)


async def run_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return await asyncio.to_thread(run_cli_sync, *args, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_serve(
    config: Path,
    port: int,
    stderr: IO[Any] | int = subprocess.DEVNULL,
    stdout: IO[Any] | int = subprocess.DEVNULL,
    args: tuple[str, ...] = (),
) -> asyncio.subprocess.Process:
    """``leadline serve`` as a child process, returned once ``/healthz`` answers 200."""
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "leadline", "serve", "--config", str(config), *args],
        cwd=ROOT,
        stdout=stdout,
        stderr=stderr,
    )
    # Start-up takes seconds on a loaded machine: wait for the server to answer, or for the
    # process to die, rather than for a fixed time.
    deadline = asyncio.get_running_loop().time() + 90
    async with aiohttp.ClientSession() as session:
        while asyncio.get_running_loop().time() < deadline and proc.returncode is None:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    if proc.returncode is None:
        proc.kill()
    raise AssertionError(f"leadline serve did not become healthy (exit code {proc.returncode})")


@contextlib.contextmanager
def terminal() -> Iterator[tuple[int, Callable[[], str]]]:
    """A pseudo-terminal to give a child as its stdout, as a person's shell does, and a function
    that returns what the child has printed to it so far (call it once the child has exited)."""
    reader, child_end = pty.openpty()
    os.set_blocking(reader, False)
    printed: list[bytes] = []

    def read() -> str:
        while True:
            try:
                chunk = os.read(reader, 65536)
            except (BlockingIOError, OSError):  # nothing more (EAGAIN), or every writer is gone (EIO)
                break
            if not chunk:
                break
            printed.append(chunk)
        # The terminal turns each newline into CR LF, as it does for a person.
        return b"".join(printed).decode().replace("\r\n", "\n")

    try:
        yield child_end, read
    finally:
        os.close(child_end)
        os.close(reader)
