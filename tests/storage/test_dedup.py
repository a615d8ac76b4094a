"""One dedup rule: a burst stored at once leaves exactly the rows its events leave one by one.

Every write path (a burst of webhooks, a single form, a call's caller, a hand-entered contact)
resolves contacts through ``storage.dedup.resolve_contacts``; the writer hands it a burst,
everything else a batch of one. Hypothesis draws the events: one person's phone in its spellings,
emails in mixed case and spaces, people who give one record's phone and another's email, typos,
retries, auto-replies, a blocked caller, calls whose caller is someone a form named, two people a
manager split after a merge, whom a touch naming both must not join again, and chat messages: chat
ids of several kinds that share their digits (never one person for that), usernames with and
without ``@``, conversations that go on or pause, and a phone shared in a chat.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from capture.pipeline import store_events
from storage.attribution import CampaignIndex
from storage.contacts import search_contacts
from storage.db import connect, open_database
from storage.events import CallEvent, ContactEvent, Event
from storage.merges import merge_by_staff, undo_merge
from storage.touches import EventContext
from tests.capture.form_checks import SPELLINGS

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PEOPLE = 6
BLOCKED_PERSON = 3
#: One known by phone, the other by email: a form naming both merged them, and a manager split them.
SPLIT_PHONE, SPLIT_EMAIL = 4, 5
TABLES = ("contacts", "identifiers", "touches", "merges", "call_events", "merge_exceptions", "chat_messages")


def _number(person: int) -> str:
    return f"+7916{person:07d}"


def _phone(person: int, spelling: int) -> str:
    digits = f"{person:07d}"
    return SPELLINGS[spelling].format(a=digits[:3], b=digits[3:5], c=digits[5:])


def _email(person: int, variant: int) -> str:
    return [f"lead{person}@example.com", f"Lead{person}@Example.COM", f"  lead{person}@example.com "][variant]


phones = st.one_of(
    st.builds(_phone, st.integers(0, PEOPLE - 1), st.integers(0, len(SPELLINGS) - 1)),
    st.sampled_from(["12345", "8 (916) 00", "+7 000 000-00-00"]),  # typos: kept, never matched
)
emails = st.one_of(
    st.builds(_email, st.integers(0, PEOPLE - 1), st.integers(0, 2)),
    st.sampled_from(["lead@@example.com", "no-at-sign"]),
)


#: One id in every chat kind, a username in its spellings, and ids that are no ids (kept, never matched).
handles = st.one_of(
    st.tuples(
        st.sampled_from(["telegram_id", "vk_id", "avito_id"]), st.sampled_from(["300000001", "300000002"])
    ),
    st.tuples(st.just("telegram_username"), st.sampled_from(["test_alex_k", "@Test_Alex_K", "x"])),
    st.tuples(st.just("whatsapp_id"), st.sampled_from(["RU.1000000000000000001", "ru.bad"])),
)


@st.composite
def contact_events(draw: st.DrawFn) -> ContactEvent:
    return ContactEvent(
        channel=draw(st.sampled_from(["form", "email", "manual"])),
        external_id=f"e{draw(st.integers(0, 30))}",  # a small pool: providers' retries
        occurred_at=START + timedelta(minutes=draw(st.integers(0, 600))),
        # Two phones or emails of different people bridge two records into one.
        phones=tuple(draw(st.lists(phones, max_size=2))),
        emails=tuple(draw(st.lists(emails, max_size=2))),
        name=draw(st.sampled_from([None, "", "Иван", "Anna"])),
        dropped=draw(st.sampled_from([None, None, None, None, "auto-reply"])),
        handles=tuple(draw(st.lists(handles, max_size=1))),
    )


@st.composite
def chat_events(draw: st.DrawFn) -> ContactEvent:
    """A chat message: a conversation from a small pool, its sender's ids, now and then a phone."""
    return ContactEvent(
        channel="chat",
        external_id=f"m{draw(st.integers(0, 30))}",
        occurred_at=START + timedelta(hours=draw(st.integers(0, 60))),
        phones=tuple(draw(st.lists(phones, max_size=1))),
        name=draw(st.sampled_from([None, "Алекс"])),
        message=draw(st.sampled_from([None, "", "Здравствуйте", "ещё вопрос"])),
        handles=tuple(draw(st.lists(handles, min_size=1, max_size=2))),
        conversation=f"chat:{draw(st.integers(0, 3))}",
    )


@st.composite
def call_events(draw: st.DrawFn) -> CallEvent:
    call = draw(st.integers(0, 10))
    return CallEvent(
        call_id=f"c{call}",
        event_key=f"c{call}:{draw(st.integers(0, 2))}",
        direction="in",
        status=draw(st.sampled_from(["ringing", "missed"])),
        final=draw(st.booleans()),
        caller=draw(st.one_of(phones, st.sampled_from(["anonymous", None]))),
        occurred_at=START + timedelta(minutes=draw(st.integers(0, 600))),
    )


requests = st.lists(
    st.tuples(
        st.sampled_from(["site", "mail"]),
        st.lists(
            st.one_of(contact_events(), contact_events(), call_events(), chat_events()),
            min_size=1,
            max_size=3,
        ),
    ),
    min_size=1,
    max_size=25,
)


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    """A migrated database with a blocked caller and two people already known, copied per example."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "template.db"
        db = open_database(path)
        db.execute(
            "INSERT INTO blocklist (kind, value, reason, at) VALUES ('phone', ?, 'spam', ?)",
            [_number(BLOCKED_PERSON), START.isoformat()],
        )
        seed: list[Event] = [
            ContactEvent(channel="form", external_id="seed0", occurred_at=START, phones=(_phone(0, 0),)),
            ContactEvent(channel="form", external_id="seed1", occurred_at=START, emails=(_email(1, 0),)),
            ContactEvent(
                channel="form", external_id="seed2", occurred_at=START, emails=(_email(SPLIT_EMAIL, 0),)
            ),
            ContactEvent(
                channel="form", external_id="seed3", occurred_at=START, phones=(_phone(SPLIT_PHONE, 0),)
            ),
            ContactEvent(
                channel="form",
                external_id="seed4",
                occurred_at=START,
                phones=(_phone(SPLIT_PHONE, 1),),
                emails=(_email(SPLIT_EMAIL, 1),),
            ),
        ]
        with db.atomic():
            store_events(db, [(seed, _ctx("site"))])
            undo_merge(db, 1, at=START)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        yield path


def _ctx(source: str) -> EventContext:
    return EventContext(
        source=source,
        received_at=START + timedelta(hours=12),
        region="RU",
        campaigns=CampaignIndex.build([], "RU"),
    )


def _rows(db: Database) -> dict[str, list[tuple[object, ...]]]:
    return {table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in TABLES}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests)
def test_a_burst_resolves_contacts_as_its_events_one_by_one(
    template: Path, requests: list[tuple[str, list[Event]]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / "together.db", Path(tmp) / "one_by_one.db"]
        for path in paths:
            shutil.copy(template, path)
        together, one_by_one = (connect(path) for path in paths)
        try:
            with together.atomic():
                burst = store_events(together, [(events, _ctx(source)) for source, events in requests])
            singles: list[list[str]] = []
            with one_by_one.atomic():
                for source, events in requests:
                    made: list[str] = []
                    for event in events:
                        made += store_events(one_by_one, [([event], _ctx(source))])[0]
                    singles.append(made)
            assert burst == singles  # the new touches each request made, by channel
            assert _rows(together) == _rows(one_by_one)
        finally:
            together.close()
            one_by_one.close()


def test_a_burst_that_bridges_two_people_merges_them_once_and_moves_what_came_before(
    template: Path, tmp_path: Path
) -> None:
    """The cases the property must reach, spelled out: a merge inside a burst, after touches of the
    merged contact in the same burst, and a blocked caller's touch."""
    path = tmp_path / "burst.db"
    shutil.copy(template, path)
    db = connect(path)
    try:
        events: list[Event] = [
            ContactEvent(channel="form", external_id="a", occurred_at=START, emails=(_email(2, 1),)),
            ContactEvent(channel="form", external_id="b", occurred_at=START, phones=(_phone(2, 3),)),
            ContactEvent(
                channel="form",
                external_id="c",
                occurred_at=START,
                phones=(_phone(2, 1),),
                emails=(_email(2, 2),),
            ),
            ContactEvent(
                channel="form", external_id="d", occurred_at=START, phones=(_phone(BLOCKED_PERSON, 2),)
            ),
        ]
        with db.atomic():
            store_events(db, [(events, _ctx("site"))])
        merges = db.execute(
            "SELECT survivor_id, merged_id, moved FROM merges WHERE undone_at IS NULL"
        ).fetchall()
        touches = db.execute("SELECT external_id, contact_id, blocked FROM touches ORDER BY id").fetchall()
    finally:
        db.close()
    assert [(s, m) for s, m, _ in merges] == [(5, 6)]
    assert '"touches": [7]' in merges[0][2]  # b's touch moved with its contact, so an undo gives it back
    assert touches[5:] == [("a", 5, 0), ("b", 5, 0), ("c", 5, 0), ("d", 7, 1)]


def test_a_touch_naming_two_people_a_manager_split_goes_to_the_phones_contact(
    template: Path, tmp_path: Path
) -> None:
    """The template's split pair (contacts 3, known by email, and 4, by phone): a form naming both
    stays with the phone's contact and joins nobody; the email stays the other's."""
    path = tmp_path / "split.db"
    shutil.copy(template, path)
    db = connect(path)
    try:
        both = ContactEvent(
            channel="form",
            external_id="both",
            occurred_at=START,
            phones=(_phone(SPLIT_PHONE, 2),),
            emails=(_email(SPLIT_EMAIL, 2),),
        )
        with db.atomic():
            store_events(db, [([both], _ctx("site"))])
        merges = db.execute("SELECT COUNT(*) FROM merges WHERE undone_at IS NULL").fetchone()[0]
        touch = db.execute("SELECT contact_id FROM touches WHERE external_id = 'both'").fetchone()[0]
        email_owner = db.execute(
            "SELECT contact_id FROM identifiers WHERE value = ?", [_email(SPLIT_EMAIL, 0)]
        ).fetchall()
    finally:
        db.close()
    assert (merges, touch, email_owner) == (0, 4, [(3,)])


def test_the_same_id_in_two_chat_kinds_is_two_people_and_a_username_is_found_but_never_matched(
    template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "kinds.db"
    shutil.copy(template, path)
    db = connect(path)
    try:
        events: list[Event] = [
            ContactEvent(channel="chat", external_id="t", handles=(("telegram_id", "300000001"),)),
            ContactEvent(channel="chat", external_id="v", handles=(("vk_id", "300000001"),)),
            ContactEvent(channel="chat", external_id="a", handles=(("telegram_username", "test_alex_k"),)),
            ContactEvent(channel="chat", external_id="b", handles=(("telegram_username", "@Test_Alex_K"),)),
        ]
        with db.atomic():
            store_events(db, [(events, _ctx("chat"))])
        owners = dict(
            db.execute("SELECT external_id, contact_id FROM touches WHERE source = 'chat'").fetchall()
        )
        found = search_contacts(db, "@TEST_alex_k", "RU")
    finally:
        db.close()
    assert owners["t"] != owners["v"]
    # A username passes from one person to another: one held by two touches joins nobody, and a
    # search in any spelling finds everyone who held it.
    assert owners["a"] != owners["b"]
    assert found == sorted([owners["a"], owners["b"]])


@pytest.mark.parametrize("renamed", [None, "Anna"], ids=["left as merged", "renamed by staff meanwhile"])
def test_an_undone_merge_gives_a_nameless_contact_its_namelessness_back(
    tmp_path: Path, renamed: str | None
) -> None:
    """A nameless contact merged with a named one takes the name; the undo takes it back, unless
    the name was changed meanwhile."""
    db = open_database(tmp_path / "undo.db")
    forms = [
        ContactEvent(channel="form", external_id="a", occurred_at=START, phones=(_phone(1, 0),)),
        ContactEvent(
            channel="form", external_id="b", occurred_at=START, emails=(_email(2, 0),), name="Bertha"
        ),
        ContactEvent(
            channel="form",
            external_id="ab",
            occurred_at=START,
            phones=(_phone(1, 0),),
            emails=(_email(2, 0),),
        ),
    ]
    for event in forms:
        with db.atomic():
            store_events(db, [([event], _ctx("site"))])
    [(merge, survivor, merged)] = db.execute("SELECT id, survivor_id, merged_id FROM merges").fetchall()
    assert db.execute("SELECT name FROM contacts WHERE id = ?", [survivor]).fetchone()[0] == "Bertha"
    if renamed:
        db.execute("UPDATE contacts SET name = ? WHERE id = ?", [renamed, survivor])
    with db.atomic():
        undo_merge(db, merge, at=START + timedelta(minutes=5))
    names = dict(db.execute("SELECT id, name FROM contacts").fetchall())
    assert (names[survivor], names[merged]) == (renamed, "Bertha")


def test_usernames_stored_before_they_became_search_only_are_search_only_too(tmp_path: Path) -> None:
    """m019: a username kept as a match key by an older release reads as one no more."""
    from storage.schema import migrate

    db = open_database(tmp_path / "old.db")
    contact = db.execute("INSERT INTO contacts (created_at, updated_at) VALUES ('', '')").lastrowid
    for kind, value in (
        ("telegram_username", "test_alex_k"),
        ("whatsapp_username", "sveta"),
        ("phone", "+79161234567"),
    ):
        db.execute(
            "INSERT INTO identifiers (contact_id, kind, value, raw, valid, created_at) VALUES (?, ?, ?, ?, 1, '')",
            [contact, kind, value, value],
        )
    db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm019_usernames_search_only'")
    migrate(db)
    assert dict(db.execute("SELECT kind, valid FROM identifiers").fetchall()) == {
        "telegram_username": 0,
        "whatsapp_username": 0,
        "phone": 1,
    }
    db.close()


def _form(external_id: str, *, phone: int | None = None, email: int | None = None) -> ContactEvent:
    return ContactEvent(
        channel="form",
        external_id=external_id,
        occurred_at=START,
        phones=(_phone(phone, 0),) if phone is not None else (),
        emails=(_email(email, 0),) if email is not None else (),
    )


def _store(db: Database, *events: ContactEvent) -> None:
    for event in events:
        with db.atomic():
            store_events(db, [([event], _ctx("site"))])


def test_undoing_a_merge_whose_survivor_was_merged_on_gives_back_what_moved(tmp_path: Path) -> None:
    """Bob merged into Ann by a touch, Ann then into the older Zoe by a manager: undoing Bob's merge
    takes his own rows back from Zoe, who holds them now, and keeps Bob apart from her."""
    db = open_database(tmp_path / "chain.db")
    _store(
        db,
        _form("zoe", phone=9),
        _form("ann", phone=1),
        _form("bob", email=2),
        _form("ann+bob", phone=1, email=2),
    )
    [(bob_merge, ann, bob)] = db.execute("SELECT id, survivor_id, merged_id FROM merges").fetchall()
    zoe = db.execute("SELECT contact_id FROM touches WHERE external_id = 'zoe'").fetchone()[0]
    with db.atomic():
        merge_by_staff(db, zoe, ann, staff_id=None, at=START + timedelta(minutes=1))  # type: ignore[arg-type]
    with db.atomic():
        undo_merge(db, bob_merge, at=START + timedelta(minutes=2))
    kinds = [r[0] for r in db.execute("SELECT kind FROM identifiers WHERE contact_id = ?", [bob])]
    assert kinds == ["email"]  # before: it stayed on Zoe, and Bob came back empty
    assert db.execute("SELECT external_id FROM touches WHERE contact_id = ?", [bob]).fetchall() == [("bob",)]
    assert (min(zoe, bob), max(zoe, bob)) in db.execute(
        "SELECT low_id, high_id FROM merge_exceptions"
    ).fetchall()


def test_a_merge_keeps_do_not_contact_and_an_undo_gives_back_a_block_and_the_mark(tmp_path: Path) -> None:
    """What was said of either of two contacts holds for the one person: a spammer's block and a "do
    not contact" go to the survivor with the rest, and come off it when the merge is undone."""
    db = open_database(tmp_path / "flags.db")
    _store(db, _form("cat", phone=1), _form("spam", email=2))
    cat, spam = (r[0] for r in db.execute("SELECT id FROM contacts ORDER BY id"))
    db.execute(
        "UPDATE contacts SET blocked = 1, do_not_contact = 1, do_not_contact_at = ? WHERE id = ?", ["x", spam]
    )
    _store(db, _form("both", phone=1, email=2))
    flags = "SELECT blocked, do_not_contact FROM contacts WHERE id = ?"
    assert db.execute(flags, [cat]).fetchone() == (1, 1)  # before: (1, 0), the mark was dropped
    [merge] = db.execute("SELECT id FROM merges").fetchone()
    with db.atomic():
        undo_merge(db, merge, at=START + timedelta(minutes=5))
    assert db.execute(flags, [cat]).fetchone() == (0, 0)  # before: still blocked for good
    assert db.execute(flags, [spam]).fetchone() == (1, 1)


def test_a_chain_undone_from_its_first_merge_keeps_each_pair_apart(tmp_path: Path) -> None:
    """Bob merged into Ann by a touch, Ann into Zoe by a manager; Bob's merge undone first, then
    Ann's: the touch that joined Ann and Bob, coming again, joins nobody."""
    db = open_database(tmp_path / "chain.db")
    _store(db, _form("zoe", phone=9), _form("ann", phone=1), _form("bob", email=2))
    _store(db, _form("ann+bob", phone=1, email=2))
    [(bob_merge, ann, bob)] = db.execute("SELECT id, survivor_id, merged_id FROM merges").fetchall()
    zoe = db.execute("SELECT contact_id FROM touches WHERE external_id = 'zoe'").fetchone()[0]
    with db.atomic():
        ann_merge, _, _ = merge_by_staff(db, zoe, ann, staff_id=None, at=START + timedelta(minutes=1))  # type: ignore[arg-type]
    with db.atomic():
        undo_merge(db, bob_merge, at=START + timedelta(minutes=2))
    with db.atomic():
        undo_merge(db, ann_merge, at=START + timedelta(minutes=3))
    _store(db, _form("ann+bob again", phone=1, email=2))
    assert db.execute("SELECT COUNT(*) FROM merges WHERE undone_at IS NULL").fetchone()[0] == 0
    owners = dict(db.execute("SELECT external_id, contact_id FROM touches").fetchall())
    assert (owners["ann+bob again"], owners["bob"], owners["zoe"]) == (ann, bob, zoe)


@pytest.mark.parametrize("zoe_name", [None, "Bob"], ids=["nameless Zoe", "Zoe named Bob herself"])
def test_an_undone_merge_takes_the_name_back_from_whoever_it_went_on_to(
    tmp_path: Path, zoe_name: str | None
) -> None:
    """Nameless Ann takes Bob's name when Bob is merged into her, and passes it on to Zoe, merged into
    her next: undoing Bob's merge takes his name off both, though not a name Zoe had of her own."""
    db = open_database(tmp_path / "names.db")
    zoe_form = ContactEvent(
        channel="form", external_id="zoe", occurred_at=START, phones=(_phone(9, 0),), name=zoe_name
    )
    bob_form = ContactEvent(
        channel="form", external_id="bob", occurred_at=START, emails=(_email(2, 0),), name="Bob"
    )
    _store(db, zoe_form, _form("ann", phone=1), bob_form, _form("ann+bob", phone=1, email=2))
    [(bob_merge, ann, bob)] = db.execute("SELECT id, survivor_id, merged_id FROM merges").fetchall()
    zoe = db.execute("SELECT contact_id FROM touches WHERE external_id = 'zoe'").fetchone()[0]
    with db.atomic():
        merge_by_staff(db, zoe, ann, staff_id=None, at=START + timedelta(minutes=1))  # type: ignore[arg-type]
    assert db.execute("SELECT name FROM contacts WHERE id = ?", [zoe]).fetchone()[0] == "Bob"
    with db.atomic():
        undo_merge(db, bob_merge, at=START + timedelta(minutes=2))
    names = dict(db.execute("SELECT id, name FROM contacts").fetchall())
    assert (names[zoe], names[ann], names[bob]) == (zoe_name, None, "Bob")  # before: Zoe stayed "Bob"
