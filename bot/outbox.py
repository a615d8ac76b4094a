"""The outbox sender: the one place that delivers queued rows to Telegram, or to the log without a token.

Delivery is at least once, because Telegram has no idempotency key and a lost message is worse than
a repeated one. A row is marked ``sending`` in a committed write before the Bot API is called and
``sent`` once Telegram confirms it; a confirmed row is never sent again. Everything unconfirmed is
sent again:

* Within a running process, a 429 (Telegram refused the call), a 5xx or a proxy's error page (the
  call never reached the Bot API) and a network error or timeout are retried later, so an outage
  delays messages and loses none.
* A stop waits for the sends in flight (``[telegram] stop_wait_seconds``), and every Bot API call
  times out sooner (``request_timeout_seconds``, on the bot's session), so each send in flight is
  answered or times out and is settled before the process exits; one still unsettled when the wait
  runs out is cancelled and put back to ``pending``.
* A row a previous process left ``sending`` (a crash) is put back to ``pending`` at start-up and
  sent again, its attempt counted.

So a message can reach a chat twice only when Telegram accepted it and its answer never came back
(a timeout, a dropped connection, a crash or a stop mid-call).

Rate limits are kept locally (:mod:`bot.ratelimit`), one chat's messages go out in order, and one
chat never has two messages in flight. Telegram is reached through a :class:`Transport`: aiogram's, in
:mod:`bot.transport`, only when there is a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from sqlite_utils import Database

from bot.ratelimit import Limits, RateLimiter
from storage import outbox_sending as rows
from storage.db import Clock, Store, parse_iso
from storage.outbox_sending import OutboxRow
from storage.unreachable import refused_for_good

log = logging.getLogger("leadline.outbox")

#: Payload fields that may name a local file as ``file:///path`` (a digest's chart).
FILE_FIELDS = ("photo", "document", "audio", "video", "animation", "voice")


# ---------------------------------------------------------------------- what one attempt came to


@dataclass(frozen=True, slots=True)
class Delivered:
    message_id: int | None


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """Telegram refused the call and said when to come back: nothing reached the chat."""

    seconds: float
    error: str


@dataclass(frozen=True, slots=True)
class Transient:
    """Telegram or the way to it is failing: back off for everyone and try again."""

    error: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The call can never succeed as it is (blocked by the user, bad payload): give up on the row."""

    error: str
    #: The chat itself is gone (blocked, kicked, never started, not found), not just this message:
    #: nothing new should go to it until it writes to the bot again.
    chat_gone: bool = False


@dataclass(frozen=True, slots=True)
class Moved:
    chat_id: int


Attempt = Delivered | RetryAfter | Transient | Failed | Moved


class Transport(Protocol):
    async def deliver(self, row: OutboxRow) -> Attempt: ...


#: What to do, in one write, with a row whose chat is gone: (db, row_id, chat_id, error, at) → the
#: outbox rows it queued instead (``storage.card_moves.chat_refused``, with the arrival rules bound).
ChatRefused = Callable[[Database, int, int, str, datetime], list[int]]


def _refused_for_good(db: Database, row_id: int, chat_id: int, error: str, at: datetime) -> list[int]:
    """Without cards on arrival there is nothing to give away: the row fails, the chat is marked."""
    refused_for_good(db, row_id, chat_id, error, at)
    return []


# ---------------------------------------------------------------------- logging without a token


def loggable(row: OutboxRow, about: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The log's line for a row that has no bot to go to: what it is (``about``, from
    :func:`storage.outbox_sending.described`), never what it says. Its text, caption and buttons
    carry people's names, words, identifiers and usernames, and DESIGN.md has nothing personal
    written to a log."""
    payload = row.payload
    fields: dict[str, Any] = {"outbox_id": row.id, "chat_id": row.chat_id, "method": row.method}
    fields.update(about or {})
    for key in FILE_FIELDS:  # the digest's chart, a file Leadline wrote: where to find it
        if isinstance(payload.get(key), str):
            fields[key] = payload[key]
    markup = payload.get("reply_markup")
    if isinstance(markup, dict) and isinstance(markup.get("inline_keyboard"), list):
        fields["buttons"] = sum(len(line) for line in markup["inline_keyboard"] if isinstance(line, list))
    return fields


# ---------------------------------------------------------------------- the sender


class OutboxSender:
    """A long-lived task: ``start()`` at start-up, ``await stop()`` at shutdown, ``wake()`` after enqueuing.

    With ``transport=None`` (no bot token) each due row is written to the log and marked sent.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        transport: Transport | None,
        *,
        limits: Limits | None = None,
        poll_s: float = 0.5,
        backoff_min_s: float = 0.25,
        backoff_max_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.clock = clock
        self.transport = transport
        self.limiter = RateLimiter(limits if limits is not None else Limits())
        self.poll_s = poll_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.monotonic = monotonic
        self.sent = 0
        #: Set by the composition root once cards on arrival run: it gives a gone chat's cards away.
        self.on_chat_refused: ChatRefused | None = None
        #: Rows the last run left ``sending``, put back to ``pending`` at start-up.
        self.requeued: list[int] = []
        self._backoff_s = 0.0
        self._backoff_until = 0.0
        self._wake = asyncio.Event()
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="leadline-outbox")

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self, wait_s: float) -> None:
        """Stop taking rows and let the sends in flight settle, for up to ``wait_s``.

        A send still unsettled then is cancelled and its row put back to ``pending``: Telegram never
        confirmed it, so the next start sends it again.
        """
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if not self._inflight:
            return
        _, pending = await asyncio.wait(self._inflight, timeout=wait_s)
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending)
        try:
            ids = await self.store.write(partial(rows.requeue_unconfirmed, reason=rows.CANCELLED_AT_STOP))
        except Exception:
            log.exception("could not put back the outbox rows whose sends were cancelled at shutdown")
            return
        log.warning(
            "outbox sends unanswered at shutdown were cancelled; they go again at the next start",
            extra={"fields": {"rows": ids, "wait_s": wait_s}},
        )

    async def _run(self) -> None:
        try:
            self.requeued = await self.store.write(partial(rows.requeue_unconfirmed, reason=rows.INTERRUPTED))
        except Exception:
            log.exception("could not check the outbox for rows interrupted by the last run")
        if self.requeued:
            log.warning(
                "outbox rows interrupted mid-send by the last run are sent again",
                extra={"fields": {"rows": self.requeued}},
            )
        failures = 0
        while not self._stopping:
            self._wake.clear()  # a wake() from here on (a send settling, a new row) cuts the next sleep short
            try:
                delay = await self._log_due() if self.transport is None else await self._start_due()
                failures = 0
            except Exception:
                # A database hiccup must not stop delivery for good: log it, wait, look again.
                failures += 1
                delay = min(self.backoff_max_s, self.poll_s * 2**failures)
                log.exception(
                    "the outbox sender could not read its queue", extra={"fields": {"retry_s": delay}}
                )
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, delay)):
                await self._wake.wait()

    # -------------------------------------------------------------- without a token

    async def _log_due(self) -> float:
        now = self.clock()

        def take(db: Database) -> tuple[list[OutboxRow], dict[int, dict[str, Any]]]:
            taken = rows.take_due_for_log(db, now)
            return taken, rows.described(db, [row.id for row in taken])

        taken, about = await self.store.write(take)
        for row in taken:
            log.info(
                "telegram message (no bot token: written to the log)",
                extra={"fields": loggable(row, about.get(row.id))},
            )
        self.sent += len(taken)
        return 0.0 if len(taken) >= 500 else self.poll_s

    # -------------------------------------------------------------- with a token

    async def _start_due(self) -> float:
        """Start every send the limits allow now; returns how long to sleep before looking again."""
        heads = await self.store.read(partial(rows.due_heads, now=self.clock()))
        delay = self.poll_s
        now = self.monotonic()
        for row in heads:
            if self._stopping:
                break
            overall = self.limiter.overall_wait(now)
            if overall > 0:
                delay = min(delay, overall)
                break
            wait = self.limiter.wait(row.chat_id, now)
            if wait > 0:
                delay = min(delay, wait)
                continue
            self.limiter.begin(row.chat_id)
            task = asyncio.create_task(self._send(row))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        if len(heads) < 500:
            delay = min(delay, await self._until_next_due())
        return delay

    async def _until_next_due(self) -> float:
        earliest = await self.store.read(partial(rows.next_due, after=self.clock()))
        if earliest is None:
            return self.poll_s
        return max(0.0, (parse_iso(earliest) - self.clock()).total_seconds())

    async def _send(self, row: OutboxRow) -> None:
        ended = False
        try:
            if not await self.store.write(partial(rows.claim, row_id=row.id)):
                return
            assert self.transport is not None
            attempt = await self.transport.deliver(row)
            self.limiter.end(row.chat_id, self.monotonic())
            ended = True
            await self._settle(row, attempt)
        except Exception:
            log.exception("outbox row could not be settled", extra={"fields": {"outbox_id": row.id}})
        finally:
            if not ended:
                self.limiter.end(row.chat_id, self.monotonic())
            self._wake.set()

    async def _settle(self, row: OutboxRow, attempt: Attempt) -> None:
        now = self.clock()
        mono = self.monotonic()
        write: Callable[..., Awaitable[Any]] = self.store.write
        if isinstance(attempt, Delivered):
            self._backoff_s = 0.0
            self.sent += 1
            await write(partial(rows.mark_sent, row_id=row.id, at=now, message_id=attempt.message_id))
        elif isinstance(attempt, RetryAfter):
            self.limiter.pause_chat(row.chat_id, mono + attempt.seconds)
            not_before = now + timedelta(seconds=attempt.seconds)
            await write(partial(rows.mark_retry, row_id=row.id, not_before=not_before, error=attempt.error))
            log.info(
                "telegram asked to wait", extra={"fields": {"outbox_id": row.id, "seconds": attempt.seconds}}
            )
        elif isinstance(attempt, Transient):
            delay = self._next_backoff(mono)
            self.limiter.pause_all(mono + delay)
            not_before = now + timedelta(seconds=delay)
            await write(partial(rows.mark_retry, row_id=row.id, not_before=not_before, error=attempt.error))
            log.warning(
                "telegram unreachable; backing off",
                extra={"fields": {"outbox_id": row.id, "seconds": delay, "error": attempt.error}},
            )
        elif isinstance(attempt, Moved):
            learnt = await write(
                partial(rows.move_chat, row_id=row.id, old_chat=row.chat_id, new_chat=attempt.chat_id, at=now)
            )
            if learnt:
                log.warning(
                    "a Telegram group became a supergroup with a new chat id; the bot follows it, but"
                    " where the config names the old id ([telegram] team_chat), write the new one",
                    extra={"fields": {"old_chat": row.chat_id, "new_chat": attempt.chat_id}},
                )
        elif attempt.chat_gone:
            refused: ChatRefused = self.on_chat_refused or _refused_for_good
            error = attempt.error
            await write(lambda db: refused(db, row.id, row.chat_id, error, now))
            log.warning(
                "telegram refused a chat for good; its new cards go to others until it writes",
                extra={"fields": {"outbox_id": row.id, "error": attempt.error}},
            )
        else:
            await write(partial(rows.mark_failed, row_id=row.id, error=attempt.error))
            log.warning(
                "telegram refused a message for good",
                extra={"fields": {"outbox_id": row.id, "error": attempt.error}},
            )

    def _next_backoff(self, mono: float) -> float:
        """Doubles on each failed round, from ``backoff_min_s`` up to ``backoff_max_s``; sends that were
        already in flight when the outage began fail in the same round and do not double it again."""
        if mono < self._backoff_until:
            return self._backoff_until - mono
        self._backoff_s = min(self.backoff_max_s, max(self.backoff_min_s, self._backoff_s * 2))
        self._backoff_until = mono + self._backoff_s
        return self._backoff_s
