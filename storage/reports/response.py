"""Speed to lead (DESIGN.md, "response time"): how long each inbound contact waited for a person.

Plain functions over loaded facts, so the rule is the same for the total, each group and the tests:

* A contact's answers are the moments a person answered it: an answered call with it (inbound or
  outbound, at the call's start), a ``Called back`` press, a registration by a person (any origin
  but ``system``), the business's reply in a chat conversation it wrote in (never a touch itself).
  Its response is the first answer at or after its first touch in the period
  (within the group), in real minutes: the customer's clock, not the working calendar. An answered
  inbound call is itself an answer at its own start, so a contact whose first touch is one is
  answered at once (0).
* The percentiles are nearest-rank over the contacts that were answered; the shares within 5 and
  within 60 minutes are of all the group's inbound contacts, so a contact nobody answered counts
  against them; ``not_responded`` counts those. No contacts: the shares are null; nobody answered:
  the percentiles are null.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any, Literal

from storage.db import parse_iso

#: How a contact was answered: a call answered (either direction), the ``Called back`` button, a
#: registration by a person, the business's reply in a chat.
Answer = Literal["call", "called_back", "registration", "reply"]
#: ``(stored time, how)``, kept sorted by time (stored times sort as text).
Answers = Sequence[tuple[str, Answer]]

_MINUTE = timedelta(minutes=1)


def first_answer(first_at: str, answers: Answers) -> tuple[str, Answer] | None:
    """The first answer at or after the first touch; one before it answered an earlier touch."""
    found = bisect_left(answers, (first_at,))
    return answers[found] if found < len(answers) else None


def response_minutes(first_at: str, answered_at: Sequence[str]) -> float | None:
    """Real minutes from the first touch to the first answer at or after it (``answered_at``: the
    contact's answer times in order); None: nobody answered yet."""
    found = bisect_left(answered_at, first_at)
    if found == len(answered_at):
        return None
    answer = answered_at[found]
    if answer == first_at:  # an answered call first, the commonest case: no need to read times
        return 0.0
    return (parse_iso(answer) - parse_iso(first_at)) / _MINUTE


def responses(
    first_at: Mapping[int, str], answered_at: Mapping[int, Sequence[str]]
) -> dict[int, float | None]:
    """Each contact's response, from its first touch and its answer times."""
    return {cid: response_minutes(at, answered_at.get(cid, ())) for cid, at in first_at.items()}


def nearest_rank(ordered: Sequence[float], q: float) -> float | None:
    """The smallest value with at least ``q`` of the values at or below it (no interpolation)."""
    if not ordered:
        return None
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def response_figures(minutes: Iterable[float | None]) -> dict[str, Any]:
    """The response figures of one group under their JSON keys, rounded for reading."""
    values = list(minutes)
    answered = sorted(m for m in values if m is not None)
    contacts = len(values)

    def share(limit: float) -> float | None:
        if not contacts:
            return None
        return round(bisect_right(answered, limit) / contacts, 4)

    p50, p90 = nearest_rank(answered, 0.5), nearest_rank(answered, 0.9)
    return {
        "response_p50_min": None if p50 is None else round(p50, 1),
        "response_p90_min": None if p90 is None else round(p90, 1),
        "responded_within_5_min": share(5),
        "responded_within_60_min": share(60),
        "not_responded": contacts - len(answered),
    }


#: Each contact's answer times in two parts: those the scan of the period's touches saw, in order,
#: and the others joined by commas (see :func:`storage.reports.loaders.load_other_answers`).
AnswerParts = tuple[Mapping[int, Sequence[str]], Mapping[int, str]]


class Responder:
    """The responses of a report's groups, each contact's worked out once.

    A year's report asks for some 800 000 responses over its four groupings, but in most groups a
    contact's first touch is its first touch in the whole period, whose response the total already
    has: those are looked up, and only the others measured.
    """

    def __init__(self, total_first: Mapping[int, str], answers: Callable[[], AnswerParts]) -> None:
        self.total_first = total_first
        #: Read on the first question: a report whose figures nobody reads needs no answers.
        self.load = answers

    @cached_property
    def parts(self) -> AnswerParts:
        parts = self.load()
        del self.load  # it reads the report's facts, which hold this: no cycle left for the collector
        return parts

    @cached_property
    def total(self) -> dict[int, float | None]:
        measure = self._measure
        return {cid: measure(cid, at) for cid, at in self.total_first.items()}

    def minutes(self, first_at: Mapping[int, str]) -> list[float | None]:
        """The response of each contact of ``first_at`` from its first touch there."""
        total, total_first, measure = self.total, self.total_first, self._measure
        if first_at is total_first:
            return list(total.values())
        return [total[cid] if total_first[cid] == at else measure(cid, at) for cid, at in first_at.items()]

    @cached_property
    def _measure(self) -> Callable[[int, str], float | None]:
        """:func:`response_minutes` written out over the two parts, neither merged nor copied: it runs
        500 000 times in a year's report, and mostly stops at an answered call at the first touch."""
        seen, joined = self.parts
        #: A contact's other answers split and sorted the first time they are asked for (none: empty).
        split: dict[int, Sequence[str]] = {}

        def measure(contact_id: int, first_at: str) -> float | None:
            best = None
            times: Sequence[str] | None = seen.get(contact_id)
            if times:
                found = bisect_left(times, first_at)
                if found < len(times):
                    best = times[found]
                    if best == first_at:
                        return 0.0
            times = split.get(contact_id)
            if times is None:
                text = joined.get(contact_id)
                times = split[contact_id] = () if text is None else sorted(text.split(","))
            if times:
                found = bisect_left(times, first_at)
                if found < len(times) and (best is None or times[found] < best):
                    best = times[found]
            if best is None:
                return None
            return (parse_iso(best) - parse_iso(first_at)) / _MINUTE

        return measure
