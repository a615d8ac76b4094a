"""SMTP intake: messages per second through Leadline's built-in server, against a bare aiosmtpd.

Starts ``leadline serve`` with an ``smtp`` source on a temporary database and, in the same run, a
bare aiosmtpd server whose handler accepts and drops every message. A separate client process
sends the same messages over real SMTP (``smtplib``, one connection per client thread, many
messages per connection) for a fixed time, and the script prints messages per second, p50/p99
latency per message (MAIL FROM to the 250 after DATA), the server's peak RSS and the ratio.
Run: ``.venv/bin/python bench/smtp.py --seconds 10 --clients 8``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import free_port, peak_rss_mb, wait_healthy  # noqa: E402

BARE_SERVER = """
import asyncio, sys
from aiosmtpd.smtp import SMTP

class Drop:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Drop(), hostname="bare", loop=loop), "127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()

asyncio.run(main())
"""

CLIENT = """
import json, smtplib, sys, threading, time
from email.message import EmailMessage

port, seconds, clients = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
latencies, errors, lock = [], [0], threading.Lock()
stop_at = time.monotonic() + seconds

def message(n):
    msg = EmailMessage()
    msg["From"] = f"Иван Петров <lead{n}@example.com>"
    msg["To"] = "sales@example.com"
    msg["Subject"] = "Заявка с сайта"
    msg["Message-ID"] = f"<bench-{n}@example.com>"
    msg.set_content(f"Здравствуйте! Перезвоните мне: +7 916 {n % 1000:03d}-{n // 1000 % 100:02d}-00. Иван")
    return msg

def worker(k):
    n = k * 10_000_000
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        while time.monotonic() < stop_at:
            n += 1
            started = time.perf_counter()
            try:
                smtp.send_message(message(n))
            except smtplib.SMTPException:
                with lock:
                    errors[0] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
latencies.sort()
print(json.dumps([len(latencies) / seconds, latencies[len(latencies) // 2] * 1000,
                  latencies[int(len(latencies) * 0.99)] * 1000, errors[0]]))
"""

CONFIG = """
[leadline]
database = "{database}"

[http]
host = "127.0.0.1"
port = {http_port}

[[sources]]
name = "mail"
provider = "smtp"
host = "127.0.0.1"
port = {smtp_port}
addresses = ["sales@example.com"]
"""


def drive(port: int, seconds: int, clients: int) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-c", CLIENT, str(port), str(seconds), str(clients)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return list(json.loads(out))


def wait_port(port: int, timeout: float = 20) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                if s.recv(100).startswith(b"220"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no SMTP server on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    print(
        f"# SMTP benchmark: {args.seconds}s per run, {args.clients} client connections, {os.cpu_count()} cores"
    )
    rows = []
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port)])
    try:
        wait_port(port)
        rows.append(("bare aiosmtpd", *drive(port, args.seconds, args.clients), peak_rss_mb(bare.pid)))
    finally:
        bare.terminate()
        bare.wait()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "smtp.db"
        config = Path(tmp) / "config.toml"
        http_port, smtp_port = free_port(), free_port()
        config.write_text(CONFIG.format(database=db, http_port=http_port, smtp_port=smtp_port))
        proc = subprocess.Popen(
            [sys.executable, "-m", "leadline", "serve", "--config", str(config)],
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_healthy(http_port)
            wait_port(smtp_port)
            rows.append(("leadline", *drive(smtp_port, args.seconds, args.clients), peak_rss_mb(proc.pid)))
        finally:
            proc.terminate()
            proc.wait()
        conn = sqlite3.connect(db)
        touches = conn.execute("SELECT COUNT(*) FROM touches").fetchone()[0]
        journal = conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        conn.close()
    print(f"{'server':<15}{'msg/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'peak RSS MB':>13}")
    for name, rate, p50, p99, errors, rss in rows:
        print(f"{name:<15}{rate:>9.0f}{p50:>9.2f}{p99:>9.2f}{errors:>8.0f}{rss:>13.1f}")
    print(f"ratio leadline / bare: {rows[1][1] / rows[0][1]:.2f}")
    print(f"stored: journal_rows={journal}, touches={touches}")


if __name__ == "__main__":
    main()
