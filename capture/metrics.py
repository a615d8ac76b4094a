"""Prometheus figures for the capture path, kept in a registry of the app's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "leadline_requests",
            "Webhook requests by source and HTTP status",
            ["source", "status"],
            registry=self.registry,
        )
        self.touches = Counter(
            "leadline_touches_created", "New touches by channel", ["channel"], registry=self.registry
        )
        self.waiting = Gauge(
            "leadline_journal_waiting",
            "Journal rows received or failed but not yet processed",
            registry=self.registry,
        )
        self.latency = Histogram(
            "leadline_request_seconds",
            "Time from request to answer",
            ["source"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

        self.commits = Gauge(
            "leadline_writer_commits", "Transactions committed by the single writer", registry=self.registry
        )
        self.jobs = Gauge(
            "leadline_writer_jobs", "Write jobs committed; jobs / commits is the group-commit batch size",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
