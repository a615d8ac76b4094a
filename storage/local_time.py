"""Times as the office reads them: in the configured zone, and saying which zone that is.

Everything is stored in UTC; a bare ``19:59`` on a screen in Moscow reads as the wrong hour. Every
time a person reads (the CLI, the bot, exports) goes through here, so each carries its zone's
abbreviation (``MSK``, ``CET``) or, for a zone that has none, its offset (``+04:00``).
"""

from __future__ import annotations

from datetime import datetime, tzinfo

#: Day and minute: what a person compares with the office clock.
MINUTES = "%Y-%m-%d %H:%M"
SECONDS = "%Y-%m-%d %H:%M:%S"


def zone_label(moment: datetime) -> str:
    """``MSK`` for an aware local time; ``+04:00`` where the zone's name is only a number."""
    name = moment.strftime("%Z")
    return name if name[:1].isalpha() else moment.isoformat()[-6:]


def local_text(moment: datetime | str | None, tz: tzinfo, fmt: str = MINUTES) -> str:
    """A stored or aware time in the office's zone, labelled: ``2026-11-23 22:59 MSK``."""
    if moment is None or moment == "":
        return "-"
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    local = when.astimezone(tz)
    return f"{local.strftime(fmt)} {zone_label(local)}"
