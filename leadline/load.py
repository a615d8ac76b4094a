"""The config as the composition root loads it: checked against capture's registry of providers.

:mod:`leadline.config` is a leaf that imports nothing of Leadline's, so it takes the providers as an
argument; every command, the demo and the tests load the config here, where the one list comes in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from capture.providers import PROVIDERS
from leadline import config
from leadline.config import Config


def parse_config(data: dict[str, Any], base_dir: Path = Path(".")) -> Config:
    return config.parse_config(data, base_dir, providers=PROVIDERS)


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate the config at ``path`` (else ``$LEADLINE_CONFIG``, else ./config.toml)."""
    return config.load_config(path, providers=PROVIDERS)
