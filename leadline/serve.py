"""``leadline serve``: the primary process, or one of its workers (``[http] workers``).

The primary claims the database for as long as it runs, so a second ``leadline serve`` on the same
file stops with a message instead of running a second bot and scheduler beside the first (with
``SO_REUSEPORT`` it could otherwise even share the port). Workers are started by the primary with
its pid and the digest of the config file it read: a worker restarted after the file was edited
refuses to start rather than serve a config the other processes do not have.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import gc
import hashlib
import logging
import os
import shutil
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from leadline.cli_base import EXIT_CONFIG, EXIT_RUNTIME
from leadline.config import Config

log = logging.getLogger("leadline.workers")

#: Where prometheus-client's multiprocess mode keeps every process's counters. The same name as
#: ``capture.metrics.MULTIPROC_ENV``, spelled here because importing that module imports
#: prometheus-client, which reads the variable once, at import: it must be set before.
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True, slots=True)
class WorkerRole:
    slot: int
    primary_pid: int
    config_sha256: str


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def metrics_dir(database: Path) -> Path:
    return database.with_name(database.name + "-metrics")


def claim_database(database: Path) -> int | None:
    """An open lock held for the primary's lifetime, or None when another ``serve`` holds it."""
    database.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{database}.serve.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


#: ``gc.set_threshold``: young objects before a collection, then how many of each generation's
#: collections before the next generation's (CPython's default is 700, 10, 10).
GC_THRESHOLD = (20_000, 50, 100)


def collect_less() -> None:
    """Let the first generation grow to :data:`GC_THRESHOLD` objects before it is collected, instead
    of CPython's 700, from the moment a serve process starts.

    A request creates and frees thousands of objects, and a flood of them ran a collection several
    times per request (bench/ingest.py form mix, 1 worker, 3 runs each side in the same run: CPU per
    request 674 -> 619 us). Set before the app and its libraries are imported rather than once they
    have started: their objects all live on, and CPython's thresholds collected them some 160 times
    on the way, full collections included (bench/idle.py; callgrind, the main thread from exec to
    the first /healthz: 2.764 G -> 2.738 G instructions). :func:`freeze_heap` collects once at the end.
    """
    gc.set_threshold(*GC_THRESHOLD)


async def freeze_heap(app: object) -> None:
    """Move everything start-up allocated out of the garbage collector's sight (``gc.freeze``).

    aiogram, pydantic and the providers leave hundreds of thousands of long-lived objects; every
    full collection walked them all and stalled the event loop and the writer for ~100 ms, which was
    the whole tail of the ingest latency (bench/ingest.py form mix, 2 workers: p99 106-120 ms, frozen
    29-33 ms). An ``on_startup`` handler added after the app is built runs after every part started.
    A process decision, so it is made here and not in the app factory the tests also use; so is
    :func:`collect_less`, which each serve process calls first.
    """
    gc.collect()  # garbage still in cycles now would otherwise be frozen for good
    gc.freeze()


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (Linux and macOS), else asyncio's own.

    Every request passes through the loop several times (read, the writer's turn, the commit's
    hand-back, the answer), and uvloop does that work in C: bench/ingest.py, form mix, 1 worker,
    from ~640 to ~520 us of event loop CPU per request.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def stop_on_the_first_signal(loop: asyncio.AbstractEventLoop) -> None:
    """SIGTERM or SIGINT starts the drain; any that follow are ignored instead of ending it.

    aiohttp's own handler stays in place while it drains and raises again on a second signal, which
    cancels every request still waiting. A worker gets a second one on every stop: systemd and
    Ctrl+C signal the whole group, then the primary terminates it (and kills it if the drain outlasts
    ``leadline.workers.STOP_GRACE_SECONDS``, which still bounds the stop).
    """
    from aiohttp import web

    def ignore() -> None:
        return None

    def stop() -> None:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, ignore)
        raise web.GracefulExit

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop)


class CannotListen(Exception):
    """The address cannot be bound; the message names it and says what to do."""


def listen(host: str, port: int, *, reuse_port: bool, joining: bool = False) -> list[socket.socket]:
    """The server's listening sockets, bound before any part of Leadline starts.

    A port that is taken then stops the start before the bot, the scheduler or a mail source has
    done anything (a second bot polling, even for a moment, takes updates from the first), and it
    stops it with one line naming the port rather than a traceback from deep inside aiohttp.

    ``SO_REUSEPORT`` lets any process of the same user join a port's group, so a second ``serve``
    with ``[http] workers`` (another database, say) would take half the first one's webhooks. The
    primary therefore binds each address alone first and lets it go, which fails on a port anyone
    holds; only a worker (``joining``) binds straight into the group its primary made.
    """
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CannotListen(
            f"Cannot listen on {host}:{port}: {exc.strerror}; check [http] host or --host"
        ) from None
    bound: list[socket.socket] = []
    try:
        for family, address in dict.fromkeys((info[0], info[4]) for info in found):
            if not joining:
                socket.create_server(address, family=family, backlog=128).close()
            bound.append(socket.create_server(address, family=family, backlog=128, reuse_port=reuse_port))
    except OSError as exc:
        for sock in bound:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CannotListen(
                f"Port {port} on {host} is in use by another program: stop it, or choose another port"
                " with --port or [http] port."
            ) from None
        raise CannotListen(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
    return bound


def run_primary(
    config: Config, config_file: Path, host: str | None, port: int | None, log_level: str = "INFO"
) -> None:
    collect_less()
    database = config.database_path
    if claim_database(database) is None:
        click.echo(f"Another `leadline serve` is already running on {database}; stop it first.", err=True)
        sys.exit(EXIT_RUNTIME)
    shared = config.http.workers > 1
    host = host if host is not None else config.http.host
    port = port if port is not None else config.http.port
    try:
        sockets = listen(host, port, reuse_port=shared)
    except CannotListen as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_RUNTIME)
    metrics = metrics_dir(database)
    if shared:
        # Before prometheus-client is imported; counts left by a killed run must not add up.
        shutil.rmtree(metrics, ignore_errors=True)
        metrics.mkdir(parents=True)
        os.environ[METRICS_ENV] = str(metrics)
    from leadline.logs import setup_logging
    from storage.migrate_ahead import migrate_ahead

    setup_logging(log_level, secrets=config.secret_values(), background=True)
    migrate_ahead(database)  # a new file's schema is made while the app's modules load
    from aiohttp import web

    from capture.providers.base import SourceUnavailable
    from leadline.app import init_app
    from leadline.startup import start_lines

    command = [
        sys.executable, "-m", "leadline", "serve", "--config", str(config_file.resolve()),
        "--primary-pid", str(os.getpid()), "--config-sha256", file_sha256(config_file),
        "--host", host, "--port", str(port), "--log-level", log_level.lower(),
    ]  # fmt: skip
    app = init_app(config, worker_command=command)
    app.on_startup.append(freeze_heap)
    listening = [(str(a[0]), int(a[1])) for a in (sock.getsockname() for sock in sockets)]
    try:
        web.run_app(
            app,
            sock=sockets,
            access_log=None,
            # Called once every part has started and the sockets serve: the operator's summary.
            print=lambda _: click.echo(
                "\n".join(
                    start_lines(config, config_file, listening, log_level, terminal=sys.stdout.isatty())
                )
            ),
            handle_signals=True,
            loop=event_loop(),
        )
    except SourceUnavailable as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_RUNTIME)
    finally:
        if shared:
            shutil.rmtree(metrics, ignore_errors=True)


def run_worker(
    config: Config,
    config_file: Path,
    host: str | None,
    port: int | None,
    role: WorkerRole,
    log_level: str = "INFO",
) -> None:
    collect_less()
    os.environ[METRICS_ENV] = str(metrics_dir(config.database_path))
    from aiohttp import web

    from leadline.app import init_worker_app
    from leadline.logs import setup_logging

    setup_logging(log_level, secrets=config.secret_values(), background=True)
    if os.getppid() != role.primary_pid:
        log.warning("the primary process is gone; this worker does not start")
        sys.exit(EXIT_RUNTIME)
    if file_sha256(config_file) != role.config_sha256:
        log.error(
            "the config file changed after `leadline serve` started; restart it to apply the change",
            extra={"fields": {"worker": role.slot, "config": str(config_file)}},
        )
        sys.exit(EXIT_CONFIG)
    try:
        sockets = listen(
            host if host is not None else config.http.host,
            port if port is not None else config.http.port,
            reuse_port=True,
            joining=True,
        )
    except CannotListen as exc:
        log.error(str(exc), extra={"fields": {"worker": role.slot}})
        sys.exit(EXIT_RUNTIME)
    app = init_worker_app(config, primary_pid=role.primary_pid)
    app.on_startup.append(freeze_heap)
    loop = event_loop()
    stop_on_the_first_signal(loop)
    web.run_app(
        app,
        sock=sockets,
        access_log=None,
        print=lambda text: log.info("worker listening", extra={"fields": {"worker": role.slot}}),
        handle_signals=False,
        loop=loop,
    )
