"""The generic form source through a running server: tokens, encodings, dedup and bad input."""

from __future__ import annotations

import hashlib
import sys
import unicodedata
from datetime import UTC, datetime
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from capture.forms import parse_form_body
from storage.identifiers import find_phones, phone
from storage.journal import redact_query
from tests.capture.test_calls import Clock
from tests.conftest import build_config
from tests.samples import sample

FORM = sample("generic_html_form_post.txt")
URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}
NEW_YORK = ZoneInfo("America/New_York")
MOSCOW = ZoneInfo("Europe/Moscow")


async def test_sample_form_post_becomes_a_touch_on_a_contact(start_server):
    srv = await start_server()
    resp = await srv.session.post(
        f"{srv.url}/hooks/form?token=form-token", data=FORM.body, headers=FORM.headers
    )
    assert resp.status == 200
    [touch] = srv.rows("SELECT * FROM touches")
    expected = FORM.expected
    assert touch["channel"] == expected["channel"]
    assert touch["name"] == expected["name"]
    assert touch["message"] == expected["message"]
    assert touch["campaign"] == "vk_ads"  # utm_source=vk
    idents = {
        r["kind"]: r["value"]
        for r in srv.rows("SELECT kind, value FROM identifiers WHERE contact_id = ?", [touch["contact_id"]])
    }
    assert idents == {"phone": expected["phone"], "email": expected["email"]}
    [row] = srv.rows("SELECT status, http_status, body FROM journal")
    assert (row["status"], row["http_status"], row["body"]) == ("processed", 200, FORM.body)


async def test_a_name_split_into_first_and_last_name_fields_is_stored_whole(start_server):
    srv = await start_server()
    for body in (
        {"first_name": "Иван", "last_name": "Петров", "phone": "+7 916 123-45-67"},
        {"Имя": "Пётр", "Фамилия": "Сидоров", "Телефон": "+7 916 765-43-21"},
    ):
        resp = await srv.session.post(f"{srv.url}/hooks/form?token=form-token", data=body)
        assert resp.status == 200
    touches = srv.rows("SELECT name FROM touches ORDER BY id")
    assert [t["name"] for t in touches] == ["Иван Петров", "Пётр Сидоров"]
    contacts = srv.rows("SELECT name FROM contacts ORDER BY id")
    assert [c["name"] for c in contacts] == ["Иван Петров", "Пётр Сидоров"]


async def test_an_address_typed_into_the_phone_field_is_the_contacts_email(start_server):
    """A person who types their email into "Телефон" is a contact to answer, not a hidden caller;
    other text with an ``@`` is kept as written and flagged, never matched."""
    srv = await start_server()
    for body in (
        {"Имя": "Иван", "Телефон": "Ivan.Petrov@Mail.ru"},
        {"email": "ivan.petrov@mail.ru", "message": "Это снова я"},
        {"Имя": "Олег", "Телефон": "oleg@"},
        {"Имя": "Ольга", "Телефон": "oleg@"},
    ):
        resp = await srv.session.post(f"{srv.url}/hooks/form?token=form-token", data=body)
        assert resp.status == 200, await resp.text()
    touches = srv.rows("SELECT contact_id, hidden_caller, phone_raw FROM touches ORDER BY id")
    assert None not in [t["contact_id"] for t in touches]
    assert [t["hidden_caller"] for t in touches] == [0, 0, 0, 0]
    ivan, again, oleg, olga = (t["contact_id"] for t in touches)
    assert again == ivan
    assert srv.rows("SELECT kind, value, raw, valid FROM identifiers WHERE contact_id = ?", [ivan]) == [
        {"kind": "email", "value": "ivan.petrov@mail.ru", "raw": "Ivan.Petrov@Mail.ru", "valid": 1}
    ]
    assert oleg != olga
    assert srv.rows("SELECT kind, value, valid FROM identifiers WHERE contact_id = ?", [oleg]) == [
        {"kind": "phone", "value": "oleg@", "valid": 0}
    ]


async def test_a_number_pasted_with_typographic_spaces_is_the_same_number(start_server):
    """Thin (U+2009), narrow no-break (U+202F) and figure (U+2007) spaces between the groups made the
    number invalid: one person's three forms were three contacts with no number to call back."""
    srv = await start_server()
    for gap in ("\u2009", "\u202f", "\u2007", " "):
        body = {"Имя": "Иван", "Телефон": gap.join(["+7", "916", "123", "45", "67"])}
        resp = await srv.session.post(f"{srv.url}/hooks/form?token=form-token", data=body)
        assert resp.status == 200, await resp.text()
    assert srv.rows("SELECT kind, value, valid FROM identifiers") == [
        {"kind": "phone", "value": "+79161234567", "valid": 1}
    ]
    assert {t["contact_id"] for t in srv.rows("SELECT contact_id FROM touches")} == {1}


async def test_a_phone_field_with_more_than_a_number_names_the_numbers_in_it(start_server):
    """ "89161234567 WhatsApp" or two numbers in one field were one invalid identifier: the person's
    next form was a second contact, and /find by the number found nobody."""
    srv = await start_server()
    for phone_field in (
        "89161234567 WhatsApp",
        "8 916 123-45-67",
        "+7 916 765 43 21, +7 916 000 00 01",
        "89160000001 (Telegram)",
        "позвоните вечером",
    ):
        resp = await srv.session.post(
            f"{srv.url}/hooks/form?token=form-token", data={"Имя": "Иван", "Телефон": phone_field}
        )
        assert resp.status == 200, await resp.text()
    rows = srv.rows("SELECT contact_id, value, valid FROM identifiers ORDER BY contact_id, id")
    assert rows == [
        {"contact_id": 1, "value": "+79161234567", "valid": 1},
        {"contact_id": 2, "value": "+79167654321", "valid": 1},
        {"contact_id": 2, "value": "+79160000001", "valid": 1},
        {"contact_id": 3, "value": "позвоните вечером", "valid": 0},
    ]
    assert [t["contact_id"] for t in srv.rows("SELECT contact_id FROM touches ORDER BY id")] == [
        1,
        1,
        2,
        2,
        3,
    ]


def test_a_phone_field_is_searched_for_numbers_no_further_than_any_person_writes() -> None:
    """The matcher costs microseconds a character: a 64 KB field held the event loop for a third of
    a second. Numbers in its first MAX_PHONE_FIELD_CHARS are read; the rest is junk."""
    from storage.touches import MAX_PHONE_FIELD_CHARS, identifiers_of

    near = "WhatsApp: 8 916 123-45-67, " + "." * 900
    far = "." * MAX_PHONE_FIELD_CHARS + " 8 916 765-43-21"
    assert [i.value for i in identifiers_of((near,), (), "RU")] == ["+79161234567"]
    [kept] = identifiers_of((far,), (), "RU")
    assert (kept.value, kept.valid) == (far.strip(), False)


@given(st.sampled_from([chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Zs"]))
def test_every_space_separator_is_a_gap_in_a_number_alone_and_in_text(gap: str) -> None:
    number = gap.join(["8", "916", "123", "45", "67"])
    found = phone(number, "RU")
    assert found is not None and found.value == "+79161234567"
    assert find_phones(f"Звоните:{gap}{number}{gap}после обеда", "RU") == [number]


async def test_a_phone_under_a_label_that_names_it_is_found_when_no_field_is_named_phone(start_server):
    """ "Ваш телефон", "Номер телефона", Contact Form 7's tel-123: the contact is called back on them.
    Only when no field has a usual name, and only a value that looks the part."""
    srv = await start_server()
    forms = (
        {"Ваш телефон": "+7 916 123-45-67", "Email": "a@b.ru"},
        {
            "Номер телефона": "8 916 111-11-11",
            "Дополнительный телефон": "8 926 222-22-22",
            "Ваша почта": "c@d.ru",
        },
        {"your-name": "Ян", "tel-123": "8 916 333-33-33", "hotel-name": "Гранд 12345"},
        {"phone": "8 916 444-44-44", "phone2": "8 916 555-55-55", "Почтовый индекс": "101000"},
    )
    for body in forms:
        resp = await srv.session.post(f"{srv.url}/hooks/form?token=form-token", data=body)
        assert resp.status == 200, await resp.text()
    touches = srv.rows("SELECT contact_id, phone_raw, email_raw FROM touches ORDER BY id")
    assert [(t["phone_raw"], t["email_raw"]) for t in touches] == [
        ("+7 916 123-45-67", "a@b.ru"),
        ("8 916 111-11-11", "c@d.ru"),
        ("8 916 333-33-33", None),
        ("8 916 444-44-44", None),
    ]
    held = [
        [
            (r["kind"], r["value"])
            for r in srv.rows(
                "SELECT kind, value FROM identifiers WHERE contact_id = ? ORDER BY id", [t["contact_id"]]
            )
        ]
        for t in touches
    ]
    assert held == [
        [("phone", "+79161234567"), ("email", "a@b.ru")],
        [("phone", "+79161111111"), ("phone", "+79262222222"), ("email", "c@d.ru")],
        [("phone", "+79163333333")],
        [("phone", "+79164444444")],  # phone2 is not read beside a field named phone
    ]


#: What urlencoded text is made of, well and badly formed: escapes of Cyrillic, of a byte that is no
#: UTF-8, cut off and not hex, separators, and letters as they come.
URLENCODED_PIECES = st.sampled_from(
    [
        "a",
        "Ж",
        " ",
        "=",
        "&",
        "+",
        ";",
        "%",
        "%D0",
        "%98",
        "%D0%98",
        "%FF",
        "%zz",
        "%2B",
        "%26",
        "%3D",
        "%00",
        "%25",
    ]
)


@given(st.lists(URLENCODED_PIECES, max_size=40).map("".join))
def test_an_urlencoded_body_reads_as_the_standard_library_reads_it(text: str) -> None:
    fields = parse_form_body(text.encode(), "application/x-www-form-urlencoded")
    assert list(fields.items()) == parse_qsl(text, keep_blank_values=True)


def test_the_journal_hides_a_token_in_the_query_and_keeps_every_other_byte_as_sent() -> None:
    assert redact_query("utm_source=%D1%8F&token=s3cr%2Bt&x=a+b&&Api_Key=k") == (
        "utm_source=%D1%8F&token=%5Bredacted%5D&x=a+b&&Api_Key=%5Bredacted%5D"
    )
    assert redact_query("%74oken=secret") == "%74oken=%5Bredacted%5D"
    assert redact_query("page=2") == "page=2"


async def post_at(srv, clock: Clock, moment: datetime, body: bytes) -> int:
    clock.now = moment.astimezone(UTC)  # the server's clock is UTC, as production's is
    resp = await srv.session.post(f"{srv.url}/hooks/form?token=form-token", data=body, headers=URLENCODED)
    return resp.status


def created(srv) -> list[int]:
    """How many touches each journalled request made, in order."""
    return [r["touches_created"] for r in srv.rows("SELECT touches_created FROM journal ORDER BY id")]


async def test_the_same_form_on_two_office_days_is_two_touches(start_server, tmp_path):
    """A form with no id of its own is a retry only on the same day, and that is the office's day:
    a UTC date made Monday evening's and Tuesday afternoon's "call me back" in New York one touch
    (Tuesday had no card, no nudge, no place in its report), and so Moscow's 23:30 and 02:30."""
    config = build_config(tmp_path, leadline={"timezone": "America/New_York", "region": "US"})
    clock = Clock(datetime(2026, 11, 16, 12, tzinfo=UTC))
    srv = await start_server(config, clock=clock)
    body = b"phone=%2B12125550123&message=please+call+me+back"
    assert await post_at(srv, clock, datetime(2026, 11, 16, 20, 0, tzinfo=NEW_YORK), body) == 200  # Mon
    assert await post_at(srv, clock, datetime(2026, 11, 17, 15, 0, tzinfo=NEW_YORK), body) == 200  # Tue
    assert await post_at(srv, clock, datetime(2026, 11, 17, 15, 1, tzinfo=NEW_YORK), body) == 200  # retry
    occurred = [r["occurred_at"] for r in srv.rows("SELECT occurred_at FROM touches ORDER BY id")]
    assert [datetime.fromisoformat(o).astimezone(NEW_YORK).day for o in occurred] == [16, 17]
    assert created(srv) == [1, 1, 0]


async def test_in_moscow_a_form_late_on_monday_and_again_after_midnight_is_two_touches(start_server):
    """23:30 and 02:30 are both Monday in UTC; the second is Tuesday on the office's clock, so it is a
    touch of its own. 02:30 and 10:30 on Tuesday (Monday and Tuesday in UTC) are one office day: one."""
    clock = Clock(datetime(2026, 11, 16, 12, tzinfo=UTC))
    srv = await start_server(clock=clock)  # Europe/Moscow, the example's zone
    body = b"phone=8+916+123-45-67&message=call+me"
    for hour, day in ((23, 16), (2, 17), (10, 17)):
        assert await post_at(srv, clock, datetime(2026, 11, day, hour, 30, tzinfo=MOSCOW), body) == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 2
    assert created(srv) == [1, 1, 0]


async def test_a_retry_of_a_form_stored_by_an_earlier_release_under_its_utc_day_is_a_no_op(start_server):
    """Earlier releases keyed a form with no id by its UTC date; a retry after the upgrade, on another
    office day than that date (01:00 Tuesday in Moscow is Monday in UTC), must not make a second touch."""
    clock = Clock(datetime(2026, 11, 16, 12, tzinfo=UTC))
    srv = await start_server(clock=clock)
    body = b"phone=8+916+765-43-21&message=call+me"
    first = datetime(2026, 11, 17, 1, 0, tzinfo=MOSCOW)
    assert await post_at(srv, clock, first, body) == 200
    db = srv.db()  # the row as the earlier release wrote it
    utc_key = f"form:2026-11-16:{hashlib.sha256(body).hexdigest()[:32]}"
    with db.conn:
        db.execute("UPDATE touches SET external_id = ?", [utc_key])
    db.close()
    assert await post_at(srv, clock, datetime(2026, 11, 17, 1, 1, tzinfo=MOSCOW), body) == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert created(srv) == [1, 0]
