"""Idle cost: start-up time and resident memory of ``leadline serve`` without a Telegram token.

Starts, in the same run and one after the other, a bare aiohttp app and ``leadline serve`` on the
example config with the token unset and one worker, each several times. For each it prints the time
from ``exec`` to the first answered ``/healthz`` (start-up) and the RSS of the whole process tree once
it has sat idle for a moment, with the ratio Leadline / bare.

Both run from compiled bytecode, as a deployed install does: aiohttp's came with its wheel and
``pip install .`` compiles Leadline's, but an editable checkout under ``PYTHONDONTWRITEBYTECODE``
never caches it and would compile ~200 modules on every start. So the project's packages are
compiled (``compileall``) before the first run, and the figure is start-up, not compilation.

Run: ``.venv/bin/python bench/idle.py --runs 5``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import BARE_SERVER, free_port, process_tree, wait_healthy  # noqa: E402

IDLE_SECONDS = 2.0
#: Leadline's packages, compiled before the runs (see above).
PACKAGES = ("leadline", "bot", "capture", "storage")


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        total += int(match[1]) if match else 0
    return total / 1024


def measure(cmd: list[str], port: int, env: dict[str, str]) -> tuple[float, float]:
    """Seconds to the first 200 from /healthz, and idle RSS in MB of the process tree."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(port, timeout=60)
        startup = time.perf_counter() - started
        time.sleep(IDLE_SECONDS)
        return startup, rss_mb(process_tree(proc.pid))
    finally:
        proc.terminate()
        proc.wait(30)


def leadline_config(workdir: Path, port: int) -> Path:
    text = (ROOT / "config.example.toml").read_text()
    text = re.sub(r"^port = \d+", f"port = {port}", text, count=1, flags=re.M)
    text = re.sub(r'^database = ".*"', f'database = "{workdir / "idle.db"}"', text, count=1, flags=re.M)
    text = re.sub(r"^workers = \d+", "workers = 1", text, count=1, flags=re.M)
    path = workdir / "config.toml"
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "LEADLINE_TELEGRAM_TOKEN"}
    packages = [str(ROOT / p) for p in PACKAGES]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *packages], check=True, stdout=subprocess.DEVNULL
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bare_file = workdir / "bare.py"
        bare_file.write_text(BARE_SERVER)
        bare: list[tuple[float, float]] = []
        lead: list[tuple[float, float]] = []
        for _ in range(args.runs):
            port = free_port()
            bare.append(measure([sys.executable, str(bare_file), str(port)], port, env))
            port = free_port()
            config = leadline_config(workdir, port)
            (workdir / "idle.db").unlink(missing_ok=True)
            lead.append(
                measure([sys.executable, "-m", "leadline", "serve", "--config", str(config)], port, env)
            )
    b_start = statistics.median(s for s, _ in bare)
    b_rss = statistics.median(r for _, r in bare)
    l_start = statistics.median(s for s, _ in lead)
    l_rss = statistics.median(r for _, r in lead)
    print(f"{'server':<22}{'start-up s (median)':>22}{'idle RSS MB (median)':>24}")
    print(f"{'bare aiohttp':<22}{b_start:>22.2f}{b_rss:>24.1f}")
    print(f"{'leadline, no token':<22}{l_start:>22.2f}{l_rss:>24.1f}")
    print(f"{'leadline / bare':<22}{l_start / b_start:>21.1f}x{l_rss / b_rss:>23.1f}x")
    print(
        f"runs: {args.runs}; start-up range leadline {min(s for s, _ in lead):.2f}-{max(s for s, _ in lead):.2f} s"
    )


if __name__ == "__main__":
    main()
