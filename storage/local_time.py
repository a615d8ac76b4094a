"""Times as the office reads them: in the configured zone, and saying which zone that is.

Everything is stored in UTC; a bare ``19:59`` on a screen in Moscow reads as the wrong hour. Every
time a person reads (the CLI, the bot, exports) goes through here, so each carries its zone's
abbreviation (``MSK``, ``CET``) or, for a zone that has none, its offset (``+04:00``).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

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


def instant_near(wall: datetime, tz: tzinfo, near: datetime) -> datetime:
    """A naive wall time on ``tz``'s clock as a UTC instant: of the two a clock turned back shows
    twice (``fold`` 0 and 1), the one nearest ``near``, an aware moment it is known to be close to.

    ``replace(tzinfo=…)`` alone always takes the first, so a call at the second 02:30 of a Berlin
    October night was stored an hour before it happened. A wall time that a clock turned forward
    skips gets the same choice between its two readings; any other has one instant.
    """
    first, second = (wall.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1))
    return min((first, second), key=lambda moment: abs(moment - near))
