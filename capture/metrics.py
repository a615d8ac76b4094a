"""Prometheus figures for the capture path, kept in a registry of the app's own.

What a Prometheus user expects of an exporter: the process and platform collectors (CPU, memory,
open files, the Python version), counters named ``…_total``, and no ``…_created`` series, which
double the series of every counter and histogram and which nobody graphs.

With ``[http] workers`` above 1 every process counts into files under ``PROMETHEUS_MULTIPROC_DIR``
(prometheus-client's multiprocess mode, switched on by ``leadline serve`` before this module is
imported), and whichever process a scrape reaches answers for all of them. The process collector
is then left out: it would describe whichever process answered, a different one each scrape.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from prometheus_client import (
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    def __init__(self) -> None:
        # prometheus-client's switch is process-wide; Leadline's registries are the process's only ones.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        if multiprocess_dir() is None:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "leadline_requests_total",
            "Webhook requests by source and HTTP status",
            ["source", "status"],
            registry=self.registry,
        )
        self.touches = Counter(
            "leadline_touches_created_total", "New touches by channel", ["channel"], registry=self.registry
        )
        self.waiting = Gauge(
            "leadline_journal_waiting",
            "Journal rows received or failed but not yet processed",
            registry=self.registry,
            multiprocess_mode="mostrecent",  # set from the database by the process scraped
        )
        self.failed = Gauge(
            "leadline_journal_failed",
            "Journal rows whose events could not be stored: leadline replay lists them with their reasons",
            ["source"],
            registry=self.registry,
            multiprocess_mode="mostrecent",  # set from the database by the process scraped
        )
        self.webhooks = Gauge(
            "leadline_webhook_deliveries",
            "Deliveries to a CRM by status: pending (waiting for an attempt), delivered, failed"
            " (given up: leadline webhooks lists and requeues them)",
            ["status"],
            registry=self.registry,
            multiprocess_mode="mostrecent",  # set from the database by the process scraped
        )
        self.webhook_age = Gauge(
            "leadline_webhook_oldest_pending_seconds",
            "Age of the oldest delivery to a CRM still waiting (0 when none waits)",
            registry=self.registry,
            multiprocess_mode="mostrecent",  # set from the database by the process scraped
        )
        self._failed_sources: set[str] = set()
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._channels: dict[str, Counter] = {}
        self.latency = Histogram(
            "leadline_request_seconds",
            "Time from request to answer",
            ["source"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.commits = Counter(
            "leadline_writer_commits_total", "Transactions committed by the writers", registry=self.registry
        )
        self.jobs = Counter(
            "leadline_writer_jobs_total",
            "Write jobs committed; jobs / commits is the group-commit batch size",
            registry=self.registry,
        )

    def request(self, source: str, status: int, seconds: float) -> None:
        """One answered request: its count and its latency.

        The labelled children are kept: ``labels()`` takes a lock and builds its key on every call,
        two thirds of what counting a request cost.
        """
        key = (source, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(source, str(status)),
                self.latency.labels(source),
            )
        children[0].inc()
        children[1].observe(seconds)

    def touches_created(self, channels: Iterable[str]) -> None:
        """Capture's hook for a request's new touches: counted where they are stored, so a letter
        through SMTP counts as a form through HTTP does, and each once."""
        for channel in channels:
            counter = self._channels.get(channel)
            if counter is None:
                counter = self._channels[channel] = self.touches.labels(channel)
            counter.inc()

    def set_failed(self, failed: Mapping[str, int], sources: Iterable[str]) -> None:
        """Every configured source gets a value, 0 included, so an alert can tell none from unknown;
        a source that had failed rows keeps its label at 0 once they are finished."""
        self._failed_sources |= {*sources, *failed}
        for source in self._failed_sources:
            self.failed.labels(source).set(failed.get(source, 0))

    def set_webhooks(self, by_status: Mapping[str, int], oldest_pending: float) -> None:
        """The queue of deliveries to a CRM as the database has it now; every status gets a value."""
        for status, count in by_status.items():
            self.webhooks.labels(status).set(count)
        self.webhook_age.set(oldest_pending)

    def committed(self, jobs: int) -> None:
        """The store's commit hook: called by a writer after each commit."""
        self.commits.inc()
        self.jobs.inc(jobs)

    def render(self) -> bytes:
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        registry.register(PLATFORM_COLLECTOR)
        return generate_latest(registry)
