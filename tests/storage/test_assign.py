"""The assignment rule: fair by count within a day, never to someone off shift, a source's owner first."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from leadline.config import HoursSection
from storage.assign import Candidate, assign, on_shift, present

MSK = ZoneInfo("Europe/Moscow")


@given(
    shifts=st.lists(st.lists(st.booleans(), min_size=1, max_size=40), min_size=1, max_size=8),
    touches=st.integers(min_value=0, max_value=40),
)
def test_round_robin_keeps_the_counts_of_people_on_shift_within_one(
    shifts: list[list[bool]], touches: int
) -> None:
    """Whoever is on shift at each touch, a person is only given one when nobody present has fewer,
    so among the people present the counts never drift more than one apart."""
    taken = [0] * len(shifts)
    for n in range(touches):
        present = [s[n % len(s)] for s in shifts]
        candidates = [Candidate(i, present[i], taken[i]) for i in range(len(shifts))]
        chosen = assign("round_robin", candidates, None, None)
        if not any(present):
            assert chosen.staff_id is None and chosen.why == "team"
            continue
        assert chosen.staff_id is not None and present[chosen.staff_id]
        assert taken[chosen.staff_id] == min(taken[i] for i in range(len(shifts)) if present[i])
        taken[chosen.staff_id] += 1


@given(people=st.integers(min_value=1, max_value=10), touches=st.integers(min_value=0, max_value=100))
def test_with_everyone_on_shift_a_day_is_shared_evenly(people: int, touches: int) -> None:
    taken = [0] * people
    for _ in range(touches):
        chosen = assign("round_robin", [Candidate(i, True, taken[i]) for i in range(people)], None, None)
        assert chosen.staff_id is not None
        taken[chosen.staff_id] += 1
    assert max(taken) - min(taken) <= 1


def test_a_sources_owner_wins_over_every_mode() -> None:
    everyone = [Candidate(1, True, 0), Candidate(2, True, 0)]
    for mode in ("round_robin", "owner", "team"):
        assert assign(mode, everyone, 7, 1).staff_id == 7  # type: ignore[arg-type]
    assert assign("owner", everyone, None, 1).staff_id == 1
    assert assign("team", everyone, None, 1).staff_id is None


def test_shifts_by_day_and_hour() -> None:
    day = HoursSection(days=["mon", "tue", "wed", "thu", "fri"], hours="09:00-18:00")
    tuesday = datetime(2026, 4, 14, 9, 0, tzinfo=MSK)
    assert on_shift(day, tuesday)
    assert not on_shift(day, tuesday.replace(hour=18))
    assert not on_shift(day, datetime(2026, 4, 18, 10, 0, tzinfo=MSK))  # Saturday
    evening = HoursSection(days=["fri"], hours="18:00-24:00")
    assert on_shift(evening, datetime(2026, 4, 17, 23, 59, tzinfo=MSK))
    assert not on_shift(evening, datetime(2026, 4, 18, 0, 0, tzinfo=MSK))
    assert on_shift(None, tuesday.replace(hour=3))


def test_without_a_shift_a_person_is_on_only_while_the_office_works_and_nobody_on_a_holiday() -> None:
    day = HoursSection(days=["tue"], hours="09:00-18:00")
    tuesday = datetime(2026, 4, 14, 10, 0, tzinfo=MSK)
    assert present(None, tuesday, working=True, holiday=False)
    assert not present(None, tuesday.replace(hour=23), working=False, holiday=False)
    assert present(day, tuesday, working=True, holiday=False)
    assert not present(day, tuesday, working=False, holiday=True)
