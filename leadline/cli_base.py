"""What every ``leadline`` command shares: the ``--config`` option, loading it, and the exit codes.

A leaf under the commands' modules, so that none of them imports another for these. The exit codes
are part of the interface (README, "Exit codes"): a script or systemd tells a typo in a command
from a broken config from a busy port by the code alone.
"""

from __future__ import annotations

import importlib
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


class LazyGroup(click.Group):
    """A group whose commands named in ``lazy_commands`` ("module:attribute") load when first used.

    Click's documented pattern for lazily loaded subcommands: listing and ``--help`` show them all,
    but a process that runs one command imports only that command's module.
    """

    def __init__(self, *args: Any, lazy_commands: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_commands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_commands:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = self.lazy_commands[cmd_name].split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy_commands[cmd_name]} is not a click command")
        return command


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
