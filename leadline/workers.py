"""More than one process on the webhook port: ``[http] workers``.

One Python process answers a couple of thousand webhooks a second before the interpreter lock, not
the disk, limits it. With ``workers = N`` the process ``leadline serve`` started (the primary) binds
the port with ``SO_REUSEPORT`` and starts N - 1 workers that bind the same port; the kernel spreads
connections between them. Each process journals and stores through its own writers, and the
database's write lock (``storage/db.py``) keeps their transactions one at a time, so deduplication
always sees one consistent base. Only the primary runs the bot, the scheduler, the outbox, the
outgoing webhooks, start-up replay and the mail and AMI sources: each of those must run once.

The primary restarts a worker that dies; a worker whose primary died stops itself. Linux only:
``SO_REUSEPORT`` spreads connections there, and a pidfd tells a worker its primary is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from capture.metrics import multiprocess_dir

log = logging.getLogger("leadline.workers")

#: How long a stopping worker may take to finish its requests before it is killed (aiohttp's own
#: drain is 60 s).
STOP_GRACE_SECONDS = 65.0
#: Longest pause before a worker that keeps dying is started again.
MAX_RESTART_DELAY = 30.0


class Supervisor:
    """Starts the workers and keeps them running until the primary stops."""

    def __init__(self, command: Sequence[str], count: int) -> None:
        self.command = list(command)
        self.count = count
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._keep(slot)) for slot in range(1, self.count + 1)]

    async def _keep(self, slot: int) -> None:
        loop = asyncio.get_running_loop()
        delay = 1.0
        while not self.stopping:
            started = loop.time()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.command, "--worker", str(slot), stdin=subprocess.DEVNULL
                )
            except OSError as exc:
                log.error(
                    "worker could not be started",
                    extra={"fields": {"worker": slot, "error": str(exc), "in_seconds": delay}},
                )
            else:
                self.processes[slot] = proc
                log.info("worker started", extra={"fields": {"worker": slot, "worker_pid": proc.pid}})
                code = await proc.wait()
                _forget_metrics(proc.pid)
                if self.stopping:
                    return
                if loop.time() - started > MAX_RESTART_DELAY:
                    delay = 1.0
                log.warning(
                    "worker exited; starting it again",
                    extra={
                        "fields": {"worker": slot, "worker_pid": proc.pid, "code": code, "in_seconds": delay}
                    },
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)

    async def stop_restarting(self, app: web.Application | None = None) -> None:
        """From ``on_shutdown``: a worker stopped by the same signal as the primary stays stopped."""
        self.stopping = True

    async def stop(self) -> None:
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        running = [p for p in self.processes.values() if p.returncode is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)), STOP_GRACE_SECONDS)
        except TimeoutError:
            for proc in running:
                if proc.returncode is None:
                    log.warning(
                        "worker did not stop in time; killing it", extra={"fields": {"worker_pid": proc.pid}}
                    )
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*(p.wait() for p in running))
        for proc in running:
            _forget_metrics(proc.pid)


def _forget_metrics(pid: int) -> None:
    directory = multiprocess_dir()
    if directory is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


async def supervisor_ctx(command: Sequence[str], count: int, app: web.Application) -> AsyncIterator[None]:
    """The primary's workers, started last and stopped first (an ``app.cleanup_ctx``)."""
    supervisor = Supervisor(command, count)
    app.on_shutdown.append(supervisor.stop_restarting)
    supervisor.start()
    yield
    await supervisor.stop()


async def orphan_watch_ctx(primary_pid: int, app: web.Application) -> AsyncIterator[None]:
    """A worker stops itself when its primary is gone (killed, say), instead of serving on alone.

    A pidfd becomes readable the moment the process it names exits: no polling. The pid was checked
    against the worker's parent at start-up, so it cannot name a stranger.
    """
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()
    fd: int | None = None
    try:
        fd = os.pidfd_open(primary_pid)
    except ProcessLookupError:
        gone.set()
    else:
        loop.add_reader(fd, gone.set)

    async def watch() -> None:
        await gone.wait()
        log.warning("the primary process is gone; this worker stops")
        os.kill(os.getpid(), signal.SIGTERM)  # run_app turns it into a graceful shutdown

    task = asyncio.create_task(watch())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if fd is not None:
        loop.remove_reader(fd)
        os.close(fd)
