"""The scheduler inside ``leadline serve``: the nudge sweep every minute, the owner's digest and the
daily retention pass.

APScheduler only says *when*; *what* is derived from the database by each run, so a missed run
(the process was down, the clock jumped) is caught up by the next one and nothing is kept in
memory between runs. Jobs never raise into the scheduler: a failing sweep is logged and the next
one tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, time, timedelta

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from leadline import keys
from leadline.config import Config
from leadline.sweep import Sweeper
from storage.db import Clock, Store
from storage.digests import last_digested
from storage.retention_runs import last_pass
from storage.worktime import WorkingCalendar

log = logging.getLogger("leadline.scheduler")


def _waker(app: web.Application) -> Callable[[], None]:
    def wake() -> None:
        sender = app.get(keys.OUTBOX)
        if sender is not None:
            sender.wake()

    return wake


async def sweep_job(sweeper: Sweeper) -> None:
    try:
        await sweeper.run()
    except Exception:
        log.exception("the nudge sweep failed; the next one will try again")


async def digest_job(
    config: Config, store: Store, clock: Clock, wake: Callable[[], None], *, only_catch_up: bool = False
) -> None:
    """On working days, the digest owed since the last one sent (:func:`bot.digest.send_due_digests`):
    one message covering every day since (Friday to Sunday on a Monday, a holiday with the weekend
    around it, days the process was down).

    ``only_catch_up`` is the run at start-up: it sends nothing for a base that never had a digest.
    """
    now = clock()
    day = now.astimezone(config.tz).date()
    # A base that never had a digest (a fresh one, a test) gets its first at the digest time, not
    # whenever the process starts; asked first, so such a start-up loads neither the public
    # holidays nor the digest.
    if only_catch_up and await store.read(last_digested) is None:
        log.info("no digest owed", extra={"fields": {"day": day.isoformat(), "start_up": True}})
        return
    calendar = WorkingCalendar.from_config(config.working_time, config.tz)
    if not calendar.is_working_day(day):
        log.info("no digest today: not a working day", extra={"fields": {"day": day.isoformat()}})
        return
    # Imported at the digest, not at start: it brings the report engine and babel's dates, which a
    # process that has only started does not need yet (bench/idle.py).
    from bot.digest import send_due_digests

    try:
        sent = await send_due_digests(config, store, now=now)
    except Exception:
        log.exception("the digest failed")
        return
    if not sent:
        log.info("no digest owed", extra={"fields": {"day": day.isoformat(), "start_up": only_catch_up}})
        return
    wake()


async def retention_job(config: Config, store: Store, clock: Clock, *, only_if_owed: bool = False) -> None:
    """The daily retention pass (``[retention]``, storage/retention.py); a failure waits for tomorrow's.

    ``only_if_owed`` is the run at start-up: the pass runs only when the last one (or, with none
    recorded, the base's first request) is older than the last ``[retention] time``, so that a
    process that was down then still keeps data no longer than the config says.
    """
    now = clock()
    try:
        if only_if_owed:
            due = retention_due(config, now)
            last = await store.read(last_pass)
            if last is None or last >= due:
                log.info(
                    "no retention pass owed", extra={"fields": {"due": due.isoformat(), "start_up": True}}
                )
                return
            log.info("catching up the retention pass missed", extra={"fields": {"due": due.isoformat()}})
        from storage.retention import run_pass  # with erasure, loaded by the daily pass, not at start

        await run_pass(store, config.retention, now)
    except Exception:
        log.exception("the retention pass failed; the next one will try again")


def digest_time_passed(config: Config, now: datetime) -> bool:
    """Whether today's digest time is behind ``now`` (local time), so a process starting now has missed it."""
    at = time.fromisoformat(config.digest.time.zfill(5))
    return now.astimezone(config.tz).time() >= at


def retention_due(config: Config, now: datetime) -> datetime:
    """The last ``[retention] time`` (local) at or before ``now``: when the latest pass was due."""
    at = time.fromisoformat(config.retention.time.zfill(5))
    local = now.astimezone(config.tz)
    due = datetime.combine(local.date(), at, tzinfo=config.tz)
    return due if due <= local else datetime.combine(local.date() - timedelta(days=1), at, tzinfo=config.tz)


def build_scheduler(
    config: Config, sweeper: Sweeper, store: Store, clock: Clock, wake: Callable[[], None]
) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=config.tz, event_loop=asyncio.get_running_loop())
    scheduler.add_job(
        sweep_job,
        IntervalTrigger(seconds=config.nudges.sweep_seconds, timezone=config.tz),
        args=[sweeper],
        id="nudge-sweep",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    at = time.fromisoformat(config.digest.time.zfill(5))
    scheduler.add_job(
        digest_job,
        CronTrigger(hour=at.hour, minute=at.minute, timezone=config.tz),
        args=[config, store, clock, wake],
        id="digest",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=3600,
    )
    keep = time.fromisoformat(config.retention.time.zfill(5))
    scheduler.add_job(
        retention_job,
        CronTrigger(hour=keep.hour, minute=keep.minute, timezone=config.tz),
        args=[config, store, clock],
        id="retention",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=3600,
    )
    return scheduler


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    config, store, clock = app[keys.CONFIG], app[keys.STORE], app[keys.CLOCK]
    wake = _waker(app)
    sweeper = Sweeper(config, store, clock, wake)
    app[keys.SWEEPER] = sweeper
    scheduler = build_scheduler(config, sweeper, store, clock, wake)
    scheduler.start()
    if digest_time_passed(config, clock()):
        # The cron job fires only at the digest time: a process started later would lose the day's digest.
        scheduler.add_job(
            digest_job,
            args=[config, store, clock, wake],
            kwargs={"only_catch_up": True},
            id="digest-catch-up",
        )
    # Likewise the retention pass, which the job itself finds owed or not (a read, at start).
    scheduler.add_job(
        retention_job, args=[config, store, clock], kwargs={"only_if_owed": True}, id="retention-catch-up"
    )
    try:
        yield
    finally:
        scheduler.pause()
        await sweeper.idle()
        scheduler.shutdown(wait=False)
