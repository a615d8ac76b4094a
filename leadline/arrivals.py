"""The arrival pass inside ``leadline serve``: cards on arrival, within a moment of the touch's commit.

Capture calls :meth:`Arrivals.wake` after each commit that stored events; the pass also runs every
:data:`POLL_SECONDS`, which picks up what a worker process stored, a card held until working time,
and registrations made since. What to send is derived from the rows each time
(``storage/arrivals.py``), so a pass that fails is simply done again by the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial

from bot.arrival_texts import render_arrival, warm_up
from capture.dial import dialable
from leadline.config import Config
from storage.arrival_cards import ArrivalRules
from storage.arrivals import Passed, arrival_pass, arrivals_due, switch
from storage.db import Clock, Store

log = logging.getLogger("leadline.arrivals")

#: How often the pass looks without being woken (a worker's touches, held cards, registrations).
POLL_SECONDS = 1.0
#: After a pass that found work, how long the next waits for more: a lone touch's card goes at
#: once, while a flood is judged in batches instead of a pass (and a write) per commit.
BATCH_SECONDS = 0.05


class Arrivals:
    """One pass at a time; ``wake`` (capture, after a commit) starts the next at once."""

    def __init__(
        self, config: Config, store: Store, clock: Clock, wake_outbox: Callable[[], None] | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.wake_outbox = wake_outbox
        self.rules = replace(ArrivalRules.from_config(config), dialable=dialable(config))
        self.render = partial(render_arrival, titles=config.campaign_titles())
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def run(self, now: datetime | None = None) -> Passed:
        async with self._lock:
            at = now or self.clock()
            working = await asyncio.to_thread(self.rules.calendar.is_working_time, at)
            if not await self.store.read(partial(arrivals_due, now=at, rules=self.rules, working=working)):
                return Passed()
            passed = await self.store.write(
                partial(arrival_pass, now=at, rules=self.rules, render=self.render, working=working)
            )
            if passed.outbox_ids and self.wake_outbox is not None:
                self.wake_outbox()
            if passed.cards or passed.folded or passed.closed:
                log.info(
                    "cards on arrival",
                    extra={
                        "fields": {
                            "cards": passed.cards,
                            "folded": passed.folded,
                            "closed": passed.closed,
                            "held": passed.held,
                            "messages": len(passed.outbox_ids),
                        }
                    },
                )
            return passed

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        """Record whether cards on arrival are on (they start from now), and run the pass if they are."""
        await self.store.write(partial(switch, now=self.clock(), on=self.rules.on_arrival))
        if self.rules.on_arrival:
            self._task = asyncio.create_task(self._loop(), name="leadline-arrivals")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _loop(self) -> None:
        try:
            await asyncio.to_thread(warm_up, self.rules.language, self.rules.tz)
        except Exception:
            log.exception("the card texts could not be loaded ahead; the first card loads them")
        while not self._stopping:
            self._wake.clear()
            passed = Passed()
            try:
                passed = await self.run()
            except Exception:
                log.exception("the arrival pass failed; the next one will try again")
            if self._stopping:
                return
            if passed != Passed():
                await asyncio.sleep(BATCH_SECONDS)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wake.wait()
