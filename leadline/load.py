"""The config as the composition root loads it: checked against capture's registry of providers
and against what only other modules can judge (the ``holidays`` package's countries, cost periods).

:mod:`leadline.config` is a leaf that imports nothing of Leadline's, so it takes the providers as an
argument; every command, the demo and the tests load the config here, where the one list comes in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from capture.providers import PROVIDERS
from leadline import config
from leadline.config import Config, ConfigError
from storage.costs import parse_span
from storage.worktime import WorkingCalendar


def parse_config(data: dict[str, Any], base_dir: Path = Path(".")) -> Config:
    return _checked(config.parse_config(data, base_dir, providers=PROVIDERS))


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate the config at ``path`` (else ``$LEADLINE_CONFIG``, else ./config.toml)."""
    return _checked(config.load_config(path, providers=PROVIDERS))


def _checked(loaded: Config) -> Config:
    """What only another module can judge, checked with the rest, so ``check-config`` finds it and
    ``serve`` stops with its key path and exit 3, not a traceback at start-up."""
    problems = _calendar_problems(loaded) + _cost_problems(loaded)
    if problems:
        raise ConfigError(problems)
    return loaded


def _calendar_problems(loaded: Config) -> list[str]:
    """The holidays country, which only the ``holidays`` package can judge."""
    try:
        WorkingCalendar.from_config(loaded.working_time, loaded.tz)
    except ValueError as exc:
        return [f"working_time.holidays: {exc}"]
    return []


def _cost_problems(loaded: Config) -> list[str]:
    """Cost periods as storage reads them at start-up: the config checks only their shape, so a
    ``2026-13`` or a period that ends before it starts stopped ``serve`` in ``sync_costs``."""
    problems: list[str] = []
    for i, campaign in enumerate(loaded.campaigns):
        for k, cost in enumerate(campaign.costs):
            try:
                parse_span(cost.period)
            except ValueError as exc:
                problems.append(f"campaigns[{i}].costs[{k}].period: {exc}")
    return problems
