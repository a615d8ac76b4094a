"""The config as the composition root loads it: checked against capture's registry of providers
and the ``holidays`` package's countries.

:mod:`leadline.config` is a leaf that imports nothing of Leadline's, so it takes the providers as an
argument; every command, the demo and the tests load the config here, where the one list comes in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from capture.providers import PROVIDERS
from leadline import config
from leadline.config import Config, ConfigError
from storage.worktime import WorkingCalendar


def parse_config(data: dict[str, Any], base_dir: Path = Path(".")) -> Config:
    return _calendar_checked(config.parse_config(data, base_dir, providers=PROVIDERS))


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate the config at ``path`` (else ``$LEADLINE_CONFIG``, else ./config.toml)."""
    return _calendar_checked(config.load_config(path, providers=PROVIDERS))


def _calendar_checked(loaded: Config) -> Config:
    """The holidays country, which only the ``holidays`` package can judge: checked with the rest,
    so ``check-config`` finds a wrong one and ``serve`` stops with its key path, not a traceback."""
    try:
        WorkingCalendar.from_config(loaded.working_time, loaded.tz)
    except ValueError as exc:
        raise ConfigError([f"working_time.holidays: {exc}"]) from None
    return loaded
