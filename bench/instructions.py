"""Ingest cost in CPU instructions: Leadline's form path against the floor, counted by valgrind.

``bench/ingest.py`` measures time, and on a shared machine its figures move by a third from one
minute to the next. This counts the instructions each server executes for a request instead, which
do not depend on what else the machine runs: ``leadline serve`` (one worker) and ``bench/floor.py``
each run under valgrind's callgrind (every thread counted), take ``--small`` and then, started
afresh, ``--large`` requests of ``bench/mixes.py``'s form mix from an aiohttp client pool, and the
difference of the two counts over the difference of the requests is the cost of one request, with
start-up, shutdown and the idle timers taken out. Needs ``valgrind`` (``apt-get install valgrind``);
a run takes a few minutes, the servers being some fifty times slower under it.
Run: ``.venv/bin/python bench/instructions.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import free_port, serve_config, wait_healthy  # noqa: E402
from bench.mixes import MIXES  # noqa: E402

#: The mix both servers take (bench/mixes.py): generic form posts, each a new person.
MIX = MIXES["form"]()
#: Requests in flight at once, as a group commit under load sees them.
CONCURRENCY = 25
#: Form posts sent before counting starts: the server is up, its caches and imports warm.
WARM_UP = 20


async def send(port: int, first: int, count: int) -> int:
    """Post ``count`` forms, ``CONCURRENCY`` at a time; how many were not answered 200."""
    numbers = iter(range(first, first + count))
    failed = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:

        async def worker() -> None:
            nonlocal failed
            for n in numbers:
                method, path, headers, body = MIX.request(n)
                async with session.request(
                    method, f"http://127.0.0.1:{port}{path}", data=body, headers=headers
                ) as response:
                    await response.read()
                    failed += response.status != 200

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return failed


def count(server: str, requests: int, workdir: Path) -> int:
    """Instructions the server executed, all threads, from after its warm-up to after ``requests``."""
    port = free_port()
    db = workdir / f"{server}-{requests}.db"
    if server == "floor":
        command = [str(ROOT / "bench" / "floor.py"), str(port), str(db)]
    else:
        config = workdir / f"{server}-{requests}.toml"
        config.write_text(serve_config(MIX, db, port, workers=1))
        command = ["-m", "leadline", "serve", "--config", str(config)]
    out = workdir / f"{server}-{requests}.cg"
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", sys.executable, *command],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(port, timeout=600)  # some fifty times slower under valgrind
        if asyncio.run(send(port, 1_000_000, WARM_UP)):
            raise RuntimeError(f"{server}: a warm-up request was not answered 200")
        subprocess.run(["callgrind_control", "--zero", str(process.pid)], check=True, capture_output=True)
        failed = asyncio.run(send(port, 2_000_000, requests))
        subprocess.run(["callgrind_control", "--dump", str(process.pid)], check=True, capture_output=True)
        if failed:
            raise RuntimeError(f"{server}: {failed} of {requests} requests were not answered 200")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    dump = Path(f"{out}.{process.pid}.1")  # the part written by --dump: zeroing to the dump
    found = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"{server}: no total in {dump}")
    return int(found[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=300, help="requests of the first count")
    parser.add_argument("--large", type=int, default=900, help="requests of the second count")
    args = parser.parse_args()
    if subprocess.run(["which", "valgrind"], capture_output=True).returncode:
        sys.exit("valgrind is not installed: apt-get install valgrind")
    print(f"# instructions per form request: ({args.large} - {args.small} requests) / difference")
    per: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        workdir = Path(tmp)
        for server in ("floor", "leadline"):
            small = pool.submit(count, server, args.small, workdir)
            large = pool.submit(count, server, args.large, workdir)
            per[server] = (large.result() - small.result()) // (args.large - args.small)
            print(f"{server:10s} {per[server]:>12,} instructions per request")
    print(f"ratio leadline / floor: {per['leadline'] / per['floor']:.2f}")


if __name__ == "__main__":
    main()
