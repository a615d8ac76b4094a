"""Speed to lead as a rule over facts: what must hold for any first touches and answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

from hypothesis import given
from hypothesis import strategies as st

from storage.db import iso
from storage.reports.response import (
    Answer,
    Responder,
    first_answer,
    nearest_rank,
    response_figures,
    response_minutes,
    responses,
)

START = datetime(2026, 11, 16, 6, 0, tzinfo=UTC)
HOWS: tuple[Answer, ...] = get_args(Answer)


def at(minutes: int) -> str:
    return iso(START + timedelta(minutes=minutes))


#: Minutes of one morning: answers land near first touches, around the 5 and 60 minute marks.
minutes = st.integers(min_value=0, max_value=180)
answer = st.tuples(minutes, st.sampled_from(HOWS))
#: A contact: the minute of its first touch and its answers (any time, before it too).
contact = st.tuples(minutes, st.lists(answer, max_size=5))
day = st.lists(contact, min_size=1, max_size=30)


def facts(people: list[tuple[int, list[tuple[int, Answer]]]]) -> tuple[dict[int, str], dict[int, list]]:
    first_at = {cid: at(first) for cid, (first, _) in enumerate(people)}
    answers = {cid: sorted(at(m) for m, _ in found) for cid, (_, found) in enumerate(people)}
    return first_at, answers


def figures(people: list[tuple[int, list[tuple[int, Answer]]]]) -> dict:
    first_at, answers = facts(people)
    return response_figures(responses(first_at, answers).values())


@given(st.lists(contact, min_size=1, max_size=4), st.integers(min_value=0, max_value=3), answer)
def test_a_later_answer_never_makes_the_response_worse(people, who, extra):
    """Adding an answer never lowers a share within 5 or 60 min nor adds to those not answered."""
    before = figures(people)
    who %= len(people)
    first, found = people[who]
    people[who] = (first, [*found, extra])
    after = figures(people)
    assert after["responded_within_5_min"] >= before["responded_within_5_min"]
    assert after["responded_within_60_min"] >= before["responded_within_60_min"]
    assert after["not_responded"] <= before["not_responded"]


@given(minutes, st.lists(answer, max_size=5), st.sampled_from(HOWS))
def test_an_answer_at_the_first_touch_is_a_response_of_0(first, found, how):
    """An answered inbound call is an answer at its own start: its contact waited 0 minutes."""
    answers = sorted([*((at(m), h) for m, h in found), (at(first), how)])
    assert response_minutes(at(first), [when for when, _ in answers]) == 0
    assert first_answer(at(first), answers) == (at(first), min(h for m, h in answers if m == at(first)))


@given(minutes, st.lists(answer, max_size=5))
def test_the_response_is_the_first_answer_at_or_after_the_first_touch(first, found):
    answers = sorted((at(m), how) for m, how in found)
    later = [m for m, _ in found if m >= first]
    waited = response_minutes(at(first), [when for when, _ in answers])
    assert waited == (min(later) - first if later else None)
    assert (first_answer(at(first), answers) is None) == (not later)


@given(day)
def test_the_figures_add_up(people):
    result = figures(people)
    n = len(people)
    answered = n - result["not_responded"]
    assert (
        0 <= result["responded_within_5_min"] <= result["responded_within_60_min"] <= round(answered / n, 4)
    )
    if answered:
        assert result["response_p50_min"] <= result["response_p90_min"]
    else:
        assert result["response_p50_min"] is None and result["response_p90_min"] is None


def test_nearest_rank_and_no_data():
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 0.9) == 4.0
    assert nearest_rank([7.0], 0.9) == 7.0
    assert nearest_rank([], 0.5) is None
    assert response_figures([]) == {
        "response_p50_min": None,
        "response_p90_min": None,
        "responded_within_5_min": None,
        "responded_within_60_min": None,
        "not_responded": 0,
    }


@given(day, st.lists(st.booleans(), min_size=150, max_size=150), st.lists(minutes, min_size=30, max_size=30))
def test_the_reports_responder_agrees_with_the_rule(people, sides, later):
    """The report's fast path (answers in two parts, the total's responses reused in the groups)
    gives what :func:`responses` gives, for the total and for a group with later first touches."""
    first_at, answers = facts(people)
    seen: dict[int, list[str]] = {}
    other: dict[int, list[str]] = {}
    flips = iter(sides)
    for cid, times in answers.items():
        for when in times:
            (seen if next(flips) else other).setdefault(cid, []).append(when)
    joined = {cid: ",".join(reversed(times)) for cid, times in other.items()}
    responder = Responder(first_at, lambda: (seen, joined))
    assert responder.minutes(first_at) == list(responses(first_at, answers).values())
    group = {cid: max(first, at(m)) for (cid, first), m in zip(first_at.items(), later, strict=False)}
    assert responder.minutes(group) == list(responses(group, answers).values())
