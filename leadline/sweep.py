"""One sweep: nudges and source health, derived from the database at one moment.

The scheduler calls :meth:`Sweeper.run` every ``[nudges] sweep_seconds``; tests call it with an
explicit ``now``. Reading what is due runs on a reader thread and only the recording holds the
single writer, so capture is not held up while a large base is scanned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from bot.nudge_texts import lay_out, render_source_alert
from capture.dial import dialable
from leadline.config import Config
from storage.db import Clock, Store
from storage.nudges.due import due_nudges
from storage.nudges.record import Recorded, plan_and_record
from storage.nudges.rules import NudgeRules
from storage.source_health import HealthRecorded, HealthRules, assess, record_findings

log = logging.getLogger("leadline.sweep")


@dataclass
class SweepResult:
    now: datetime
    due: int
    recorded: Recorded
    #: Outbox ids of source alerts and recovery notices.
    alerts: list[int] = field(default_factory=list)

    @property
    def queued(self) -> int:
        return len(self.recorded.outbox_ids) + len(self.alerts)


class Sweeper:
    """Runs one sweep at a time; ``wake`` tells the outbox sender that something was queued."""

    def __init__(
        self, config: Config, store: Store, clock: Clock, wake: Callable[[], None] | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.wake = wake
        self.rules = NudgeRules.from_config(config)
        self.health = HealthRules.from_config(config)
        #: Missed calls of these sources get ``📞 Call back`` on their nudges.
        self.render = partial(lay_out, dialable=dialable(config))
        self._lock = asyncio.Lock()

    async def run(self, now: datetime | None = None) -> SweepResult:
        async with self._lock:
            at = now or self.clock()
            due = await self.store.read(partial(due_nudges, now=at, rules=self.rules))
            recorded = await self.store.write(
                partial(plan_and_record, now=at, rules=self.rules, render=self.render, due=due)
            )
            findings = await self.store.read(partial(assess, now=at, rules=self.health))
            # An owner's language without a catalogue falls back to the office's, as nudges do.
            alert = partial(
                render_source_alert, tz=self.health.calendar.tz, office_language=self.health.language
            )
            health = await self.store.write(
                partial(record_findings, now=at, rules=self.health, findings=findings, render=alert)
            )
            _log_health(health)
            alerts = health.queued
            result = SweepResult(at, len(due), recorded, alerts)
            if result.queued and self.wake is not None:
                self.wake()
            if result.queued or recorded.closed:
                log.info(
                    "nudge sweep",
                    extra={
                        "fields": {
                            "due": len(due),
                            "messages": len(recorded.outbox_ids),
                            "nudges": recorded.nudges,
                            "deliveries": recorded.deliveries,
                            "closed": recorded.closed,
                            "held": recorded.held,
                            "source_alerts": len(alerts),
                        }
                    },
                )
            return result

    async def idle(self) -> None:
        """Wait for a sweep in progress to finish (at shutdown)."""
        async with self._lock:
            return


#: What of a finding's fields goes to the log: never its reason, which may quote what a sender sent.
_LOGGED = ("cause", "count", "since", "minutes", "usual")


def _log_health(health: HealthRecorded) -> None:
    """Each new problem and each recovery, whether or not anyone could be told in Telegram: without
    a bot or an owner the log is where the operator learns that leads may be lost."""
    for finding in health.opened:
        details = {k: finding.fields[k] for k in _LOGGED if k in finding.fields}
        log.warning(
            "a source looks broken: leads may be lost; `leadline journal` shows its requests",
            extra={"fields": {"source": finding.source, "problem": finding.problem, **details}},
        )
    for source, problem in health.recovered:
        log.warning("a source works again", extra={"fields": {"source": source, "problem": problem}})
    for source, problem in health.cleared:
        log.warning(
            "a source's problem is no longer seen, though no request was accepted since it began",
            extra={"fields": {"source": source, "problem": problem}},
        )
