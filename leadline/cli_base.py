"""What every ``leadline`` command shares: the ``--config`` option, loading it, and the exit codes.

A leaf under the commands' modules, so that none of them imports another for these. The exit codes
are part of the interface (README, "Exit codes"): a script or systemd tells a typo in a command
from a broken config from a busy port by the code alone.
"""

from __future__ import annotations

import sys
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import click

from leadline.config import CONFIG_ENV, DEFAULT_CONFIG, Config, ConfigError
from leadline.load import load_config

#: Nothing matched (``contacts``, ``journal show``); also Python's own code for an unexpected error.
EXIT_NOT_FOUND = 1
#: A command line click refuses: an unknown command or option, a bad value.
EXIT_USAGE = 2
#: The config file is missing, unreadable or invalid; each problem is printed with its key path.
EXIT_CONFIG = 3
#: The machine refused: the port is in use, another ``leadline serve`` holds the database.
EXIT_RUNTIME = 4

#: ``-h`` as well as ``--help``, on the group and (inherited) on every command.
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Config file (default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG}).",
)


def load(config_path: Path | None) -> Config:
    """The config, or its problems on stderr and exit :data:`EXIT_CONFIG`."""
    try:
        return load_config(config_path)
    except ConfigError as exc:
        click.echo("The config has problems:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_CONFIG)


def parse_since(since: str | None, tz: tzinfo) -> datetime | None:
    """A time the owner typed means their local time, as everywhere else in Leadline."""
    if not since:
        return None
    try:
        parsed = datetime.fromisoformat(since)
    except ValueError:
        raise click.BadParameter(
            "use an ISO date or datetime, e.g. 2026-11-23 or 2026-11-23T09:00", param_hint="--since"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
