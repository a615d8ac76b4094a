"""Properties: no request to any HTTP provider, however hostile, breaks the capture invariant.

For each provider one real server on 127.0.0.1 takes every example: its samples with fields
replaced by hostile values (huge, lone surrogates, bad UTF-8, NUL, 5,000-deep nesting, 1e308, NaN,
1970 and 2100, hundreds of phones or emails, missing, of the wrong type), re-signed with the
provider's real scheme so that they reach its parser, and arbitrary bytes with and without a valid
signature. ``tests/capture/hostile_checks.py`` states the invariant. Examples are derandomized
(profile ``ci``); ``LEADLINE_HYPOTHESIS=fuzz`` runs many more, at random.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.capture.hostile import NOW, Case, cases
from tests.capture.hostile_checks import PROFILE, check_answer, last_journal_id, send
from tests.capture.hostile_providers import SPECS, Spec, build, build_bytes, sources
from tests.conftest import Running, StartServer, build_config


@pytest.fixture
async def server(start_server: StartServer, tmp_path: Path) -> Running:
    """One server for every example of a test: a source per HTTP provider, the clock stopped."""
    running: Running = await start_server(build_config(tmp_path, sources=sources()), clock=lambda: NOW)
    return running


@pytest.fixture
def numbers() -> Iterator[int]:
    """Each example's number, which its ids, tokens and webhook ids carry to be its own."""
    return itertools.count(1)


def _json_documents() -> st.SearchStrategy[bytes]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    values = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=12,
    )
    return values.map(lambda v: json.dumps(v).encode())


BODIES = st.one_of(st.binary(max_size=2048), st.text(max_size=400).map(str.encode), _json_documents())


async def _exchange(server: Running, spec: Spec, case: Case, n: int, caplog: Any) -> None:
    sent = build(spec, case, n)
    before = last_journal_id(server)
    caplog.clear()
    answer = await send(server, sent.wire)
    check_answer(server, before, answer, caplog.records, cut=sent.cut)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.provider)
@settings(PROFILE)
@given(data=st.data())
async def test_mutated_fields_keep_the_invariant(
    spec: Spec, server: Running, numbers: Iterator[int], caplog: Any, data: st.DataObject
) -> None:
    case = data.draw(cases(spec.http_samples(), spec.owned), label="case")
    await _exchange(server, spec, case, next(numbers), caplog)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.provider)
@settings(PROFILE, max_examples=max(PROFILE.max_examples // 2, 1))
@given(data=st.data())
async def test_mutated_transport_keeps_the_invariant(
    spec: Spec, server: Running, numbers: Iterator[int], caplog: Any, data: st.DataObject
) -> None:
    case = data.draw(cases(spec.http_samples(), spec.owned, around=True), label="case")
    await _exchange(server, spec, case, next(numbers), caplog)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.provider)
@settings(PROFILE)
@given(body=BODIES, signed=st.booleans(), data=st.data())
async def test_arbitrary_bytes_keep_the_invariant(
    spec: Spec,
    server: Running,
    numbers: Iterator[int],
    caplog: Any,
    body: bytes,
    signed: bool,
    data: st.DataObject,
) -> None:
    sample = data.draw(st.sampled_from(spec.http_samples()), label="url of")
    wire = build_bytes(spec, sample, body, signed, next(numbers))
    before = last_journal_id(server)
    caplog.clear()
    answer = await send(server, wire)
    check_answer(server, before, answer, caplog.records)
