"""Stored times: UTC text, one instant per text, whatever zone and fold a time came in."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from storage.db import iso


def test_the_two_half_past_twos_of_a_clock_turned_back_are_stored_an_hour_apart():
    """Equal as local times (Python compares a zone's times by the wall clock), an hour apart in
    fact: the second is after the clocks went back, which ``fold`` says."""
    berlin = ZoneInfo("Europe/Berlin")
    summer = datetime(2026, 10, 25, 2, 30, tzinfo=berlin)
    winter = summer.replace(fold=1)
    assert summer == winter
    assert [iso(summer), iso(winter), iso(summer)] == [
        "2026-10-25T00:30:00.000000+00:00",
        "2026-10-25T01:30:00.000000+00:00",
        "2026-10-25T00:30:00.000000+00:00",
    ]
    assert iso(datetime(2026, 10, 25, 1, 30, tzinfo=UTC)) == iso(winter)
