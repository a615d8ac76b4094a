"""Ingest throughput: Leadline's durable path against a bare aiohttp server and a floor, in the same run.

Starts ``leadline serve`` on a temporary database, a bare aiohttp server whose handler only reads
the body and answers 200, and (for the ``form`` mix) ``bench/floor.py``, the same work written the
obvious way with the same libraries; all three on the event loop ``leadline serve`` runs on
(uvloop where installed, ``leadline.serve.event_loop``). It drives each with the same requests for a fixed time from
another process (``wrk`` with a Lua script when it is installed — ``apt-get install wrk`` — else
an aiohttp client pool), and prints requests per second, p50/p99 latency, the server's peak RSS,
its CPU per request (all processes; steadier than req/s on a shared machine), and the ratios
Leadline / bare and Leadline / floor. With ``--runs N`` each mix runs N times and the medians
(with the lowest and highest) close the output: on a shared machine compare ratios of one run.
Mixes: ``form`` (generic form posts, each a new contact), and whatever ``bench/mixes.py`` adds.
Run: ``.venv/bin/python bench/ingest.py --seconds 10 --concurrency 50 --workers 1 --runs 5``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.mixes import MIXES, Mix  # noqa: E402

#: On the event loop Leadline runs on (``leadline.serve.event_loop``), as the floor is: the three
#: servers differ in what they do with a request, not in the loop that carries it. Chosen here the
#: same way rather than imported: bench/idle.py starts this server too, and it must stay bare.
BARE_SERVER = """
import asyncio
import sys
from aiohttp import web

def event_loop():
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()

async def handle(request):
    await request.read()
    return web.Response(status=200)

app = web.Application()
app.router.add_route("*", "/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=event_loop())
"""


@dataclass
class Figures:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    peak_rss_mb: float
    #: Server CPU (user + system, every process) per answered request: steadier than req/s on a
    #: machine shared with other work.
    cpu_us: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(port: int, path: str = "/healthz", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
                if b" 200 " in s.recv(100):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not come up")


def wait_for_workers(log: Path, count: int, timeout: float = 30) -> None:
    """Until ``count`` workers say they listen: a run must not start before every process serves."""
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count('"worker listening"') < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} worker(s) did not start within {timeout:g} s; see {log}")
        time.sleep(0.05)


def peak_rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else float("nan")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Leadline's workers), from /proc."""
    pids = [pid]
    for parent in pids:
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        pids += [int(c) for c in children]
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes have used so far, from /proc."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_wrk(
    url: str, mix: Mix, seconds: int, concurrency: int, workdir: Path
) -> tuple[float, float, float, int]:
    script = workdir / f"{mix.name}.lua"
    script.write_text(mix.lua())
    out = subprocess.run(
        ["wrk", "-t2", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"50%\s+([\d.]+\w+)", out)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out)[1])  # type: ignore[index]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx[1]) if non2xx else 0
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    return rps, p50, p99, errors


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


async def _client_pool(url: str, mix: Mix, seconds: int, concurrency: int) -> tuple[float, float, float, int]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds
    counter = iter(range(10**9))

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < stop_at:
            method, path, headers, body = mix.request(next(counter))
            started = time.perf_counter()
            async with session.request(method, url + path, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status >= 300:
                    errors += 1
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    latencies.sort()
    return (
        len(latencies) / seconds,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
        errors,
    )


def drive(
    url: str, mix: Mix, seconds: int, concurrency: int, workdir: Path
) -> tuple[float, float, float, int]:
    if shutil.which("wrk") and mix.lua():
        return run_wrk(url, mix, seconds, concurrency, workdir)
    # The client runs in its own process so it does not share a core's event loop with the server.
    code = (
        f"import asyncio, json, sys; sys.path.insert(0, {str(ROOT)!r}); from bench.ingest import _client_pool;"
        " from bench.mixes import MIXES;"
        f" print(json.dumps(asyncio.run(_client_pool({url!r}, MIXES[{mix.name!r}](), {seconds}, {concurrency}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    rps, p50, p99, errors = json.loads(out)
    return rps, p50, p99, errors


def bench_bare(mix: Mix, seconds: int, concurrency: int, workdir: Path) -> Figures:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port)])
    try:
        wait_healthy(port, "/")
        before = cpu_seconds([proc.pid])
        rps, p50, p99, errors = drive(f"http://127.0.0.1:{port}", mix, seconds, concurrency, workdir)
        cpu = (cpu_seconds([proc.pid]) - before) / max(rps * seconds, 1) * 1e6
        return Figures("bare aiohttp", rps, p50, p99, errors, peak_rss_mb(proc.pid), cpu)
    finally:
        proc.terminate()
        proc.wait()


def bench_floor(mix: Mix, seconds: int, concurrency: int, workdir: Path) -> Figures:
    port = free_port()
    db = workdir / f"floor-{mix.name}.db"
    with (workdir / f"floor-{mix.name}.log").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "floor.py"), str(port), str(db)], stderr=stderr
        )
    try:
        wait_healthy(port, "/")
        before = cpu_seconds([proc.pid])
        rps, p50, p99, errors = drive(f"http://127.0.0.1:{port}", mix, seconds, concurrency, workdir)
        cpu = (cpu_seconds([proc.pid]) - before) / max(rps * seconds, 1) * 1e6
        return Figures("floor", rps, p50, p99, errors, peak_rss_mb(proc.pid), cpu)
    finally:
        proc.terminate()
        proc.wait()
        for path in workdir.glob(f"floor-{mix.name}.db*"):
            path.unlink()


def serve_config(mix: Mix, db: Path, port: int, workers: int) -> str:
    """The mix's config for ``leadline serve`` with ``[http] workers`` set."""
    text = mix.config(database=str(db), port=port)
    return re.sub(r"^(port = \d+)$", rf"\1\nworkers = {workers}", text, count=1, flags=re.M)


def bench_leadline(
    mix: Mix, seconds: int, concurrency: int, workdir: Path, workers: int
) -> tuple[Figures, dict[str, float]]:
    port = free_port()
    db = workdir / f"bench-{mix.name}.db"
    config = workdir / f"config-{mix.name}.toml"
    config.write_text(serve_config(mix, db, port, workers))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    log = workdir / f"serve-{mix.name}.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "leadline", "serve", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stderr=stderr,
        )
    try:
        wait_healthy(port)
        wait_for_workers(log, workers - 1)  # they start once the primary is up
        pids = process_tree(proc.pid)
        before = cpu_seconds(pids)
        rps, p50, p99, errors = drive(f"http://127.0.0.1:{port}", mix, seconds, concurrency, workdir)
        cpu = (cpu_seconds(pids) - before) / max(rps * seconds, 1) * 1e6
        rss = sum(peak_rss_mb(pid) for pid in pids)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
            metrics = resp.read().decode()
    finally:
        proc.terminate()
        proc.wait()
    import sqlite3

    conn = sqlite3.connect(db)
    counts: dict[str, float] = {
        "journal_rows": conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0],
        "touches": conn.execute("SELECT COUNT(*) FROM touches").fetchone()[0],
        "contacts": conn.execute("SELECT COUNT(*) FROM contacts").fetchone()[0],
        "not_processed": conn.execute("SELECT COUNT(*) FROM journal WHERE status != 'processed'").fetchone()[
            0
        ],
    }
    conn.close()
    commits = float(re.search(r"^leadline_writer_commits_total ([\d.e+]+)", metrics, re.M)[1])  # type: ignore[index]
    jobs = float(re.search(r"^leadline_writer_jobs_total ([\d.e+]+)", metrics, re.M)[1])  # type: ignore[index]
    counts["jobs_per_commit"] = round(jobs / commits, 1) if commits else 0
    for path in workdir.glob(f"bench-{mix.name}.db*"):  # the next run starts empty, as this one did
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return Figures("leadline", rps, p50, p99, errors, rss, cpu), counts


#: The floors: the mixes that bench/floor.py receives.
FLOOR_MIXES = {"form"}


def print_table(figures: list[Figures]) -> None:
    print(
        f"{'server':<14}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>9}{'peak RSS MB':>14}"
        f"{'CPU us/req':>12}"
    )
    for f in figures:
        print(
            f"{f.name:<14}{f.rps:>10.0f}{f.p50_ms:>10.2f}{f.p99_ms:>10.2f}{f.errors:>9}{f.peak_rss_mb:>14.1f}"
            f"{f.cpu_us:>12.0f}"
        )


def ratios(figures: dict[str, Figures]) -> dict[str, float]:
    """Ratios of figures measured in the same run (the machine's load is shared by all three)."""
    ours, bare = figures["leadline"], figures["bare aiohttp"]
    found = {"leadline / bare": ours.rps / bare.rps}
    floor = figures.get("floor")
    if floor is not None:
        found["floor / bare"] = floor.rps / bare.rps
        found["leadline / floor"] = ours.rps / floor.rps
        found["CPU/req leadline / floor"] = ours.cpu_us / floor.cpu_us
    return found


def spread(values: list[float], digits: int) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--mix", action="append", choices=sorted(MIXES), help="default: every mix")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="Leadline's [http] workers (default: cores)"
    )
    parser.add_argument("--runs", type=int, default=1, help="runs per mix; medians close the output")
    args = parser.parse_args()
    tool = "wrk" if shutil.which("wrk") else "aiohttp client pool (install wrk for higher baseline rates)"
    print(f"# ingest benchmark: {args.seconds}s per run, {args.concurrency} connections, load from {tool}")
    print(
        f"# leadline: [http] workers = {args.workers}; bare aiohttp and floor: one process;"
        " RSS is the sum of processes"
    )
    print(f"# machine: {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name in args.mix or sorted(MIXES):
            mix = MIXES[name]()
            mix.prepare(workdir)
            print(f"\n## mix: {name} — {mix.description}")
            runs: list[dict[str, Figures]] = []
            for run in range(args.runs):
                figures = {"bare aiohttp": bench_bare(mix, args.seconds, args.concurrency, workdir)}
                if name in FLOOR_MIXES:
                    figures["floor"] = bench_floor(mix, args.seconds, args.concurrency, workdir)
                ours, counts = bench_leadline(mix, args.seconds, args.concurrency, workdir, args.workers)
                figures["leadline"] = ours
                runs.append(figures)
                if args.runs > 1:
                    print(f"\n### run {run + 1}")
                print_table(list(figures.values()))
                print(", ".join(f"ratio {k}: {v:.2f}" for k, v in ratios(figures).items()))
                print("stored: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
                extra = mix.summary(ours.rps)
                if extra:
                    print(extra)
            if args.runs > 1:
                print(f"\n### {name}: median (lowest-highest) of {args.runs} runs")
                for server in runs[0]:
                    rps = spread([r[server].rps for r in runs], 0)
                    cpu = spread([r[server].cpu_us for r in runs], 0)
                    p99 = spread([r[server].p99_ms for r in runs], 1)
                    print(f"{server:<14} req/s {rps}   CPU us/req {cpu}   p99 ms {p99}")
                for key in ratios(runs[0]):
                    print(f"ratio {key}: {spread([ratios(r)[key] for r in runs], 2)}")


if __name__ == "__main__":
    main()
