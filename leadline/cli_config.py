"""How every ``leadline`` command gets its config: the ``--config`` option, and the config loaded or
its problems printed (exit 2). Apart from ``leadline/cli.py`` so that the modules that define
commands (``leadline/report_cli.py``) and the one that gathers them import it without importing
each other.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from leadline.config import CONFIG_ENV, DEFAULT_CONFIG, Config, ConfigError, load_config

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Config file (default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG}).",
)


def load(config_path: Path | None) -> Config:
    """The config, or the problems printed and exit 2, the same for every command."""
    try:
        return load_config(config_path)
    except ConfigError as exc:
        click.echo("The config has problems:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)
