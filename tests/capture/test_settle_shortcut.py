"""The shortcut that keeps an event as sent never keeps one that settling would change.

``capture.settle`` answers most events with one look at the whole event (``_as_sent``) and settles
the rest field by field (``_event``). Both must agree: whatever the shortcut keeps, the long way
keeps too, unchanged and without a note. The events here are mostly near the shortcut's edges: text
with NUL or a lone surrogate, names and messages at their limits, repeated or overlong
identifiers, times out of range, lists where tuples go.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from capture.providers.base import ContactEvent
from capture.settle import MAX_IDENTIFIER_CHARS, MAX_NAME_CHARS, _as_sent, _event
from storage.touches import MAX_TEXT_CHARS

RECEIVED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

plain = st.text(alphabet="ab9+@.я ", max_size=8)
base = st.builds(
    ContactEvent,
    channel=st.sampled_from(["form", "chat"]),
    external_id=plain,
    occurred_at=st.one_of(st.none(), st.just(RECEIVED)),
    phones=st.lists(
        st.sampled_from(["+79161234567", "+79160000000", "8 916 123"]), max_size=3, unique=True
    ).map(tuple),
    emails=st.lists(st.sampled_from(["a@b.ru", "ivan@example.com"]), max_size=2, unique=True).map(tuple),
    name=st.one_of(st.none(), plain),
    message=st.one_of(st.none(), plain),
    utm=st.dictionaries(plain, plain, max_size=2),
    fields=st.dictionaries(plain, plain, max_size=3),
    former_ids=st.lists(plain, max_size=2).map(tuple),
)

#: One thing each that settling changes or must look at closely, put into an otherwise plain event.
EDGES: list[dict[str, object]] = [
    {},
    {"name": "Иван\x00"},
    {"name": "Иван\ud800"},
    {"message": "a\x00"},
    {"external_id": "form:\ud800"},
    {"tracking_number": "\x00"},
    {"dropped": "spam\ud800"},
    {"conversation": "\x00"},
    {"region": "R\x00"},
    {"name": "я" * MAX_NAME_CHARS},
    {"name": "я" * (MAX_NAME_CHARS + 1)},
    {"message": "a" * MAX_TEXT_CHARS},
    {"message": "a" * (MAX_TEXT_CHARS + 1)},
    {"tracking_number": "9" * (MAX_TEXT_CHARS + 1)},
    {"phones": ("+79161234567", "+79161234567")},
    {"emails": ("a@b.ru", "a@b.ru")},
    {"phones": ["+79161234567"]},
    {"emails": ["a@b.ru"]},
    {"former_ids": ["form:1"]},
    {"phones": ("9" * MAX_IDENTIFIER_CHARS,)},
    {"phones": ("9" * (MAX_IDENTIFIER_CHARS + 1),)},
    {"emails": ("a" * (MAX_IDENTIFIER_CHARS + 1),)},
    {"phones": tuple(f"+7916000{n:04d}" for n in range(21))},
    {"phones": ("+7\x00916",)},
    {"emails": ("a\ud800@b.ru",)},
    {"former_ids": ("form:\x00",)},
    {"phones": (79161234567,)},
    {"occurred_at": datetime(1999, 12, 31, tzinfo=UTC)},
    {"occurred_at": datetime(2026, 11, 25, tzinfo=UTC)},
    {"occurred_at": datetime(2026, 11, 23, 12, 0)},
    {"occurred_at": "2026-11-23"},
    {"utm": {"utm_source": "\x00"}},
    {"utm": {"utm_source": 1}},
    {"fields": {"comment": "a" * (MAX_TEXT_CHARS + 1)}},
    {"fields": {"comment": "\ud800"}},
    {"fields": {"\x00": "a"}},
    {"fields": {"answers": ["a\x00"]}},
    {"fields": {"answers": {"q": "a"}}},
    {"fields": {"n": float("inf")}},
    {"to_address": "a@b.ru"},
    {"to_address": "(" * 5000 + "a@b.ru"},
    {"to_address": ""},
    {"handles": []},
    {"handles": (("telegram_id", "1"),)},
    {"campaign_ref": ("avito_item", "\x00")},
    {"campaign_ref": ("avito_item", "1")},
]
events = st.tuples(base, st.sampled_from(EDGES)).map(lambda pair: replace(pair[0], **pair[1]))


@settings(max_examples=2000)
@given(events)
def test_an_event_the_shortcut_keeps_is_one_settling_keeps_unchanged_and_unflagged(
    event: ContactEvent,
) -> None:
    if not _as_sent(event, RECEIVED):
        return
    notes: list[str] = []
    assert _event(event, RECEIVED, notes) is event
    assert notes == []


def test_a_usual_form_is_kept_by_the_shortcut() -> None:
    form = ContactEvent(
        "form",
        "form:m-1",
        phones=("+79161234567",),
        emails=("ivan@example.com",),
        name="Иван Петров",
        message="Перезвоните, пожалуйста",
        utm={"utm_source": "yandex"},
        fields={"name": "Иван Петров", "phone": "+79161234567", "submission_id": "m-1"},
    )
    assert _as_sent(form, RECEIVED)
    assert not _as_sent(ContactEvent("form", "form:m-2", name="Иван\x00"), RECEIVED)
