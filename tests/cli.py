"""Running the ``leadline`` command as a user would: a separate process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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
