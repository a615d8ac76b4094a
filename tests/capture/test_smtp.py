"""The built-in SMTP server, spoken to by a real ``smtplib`` client while ``leadline serve`` runs."""

from __future__ import annotations

import asyncio
import base64
import json
import smtplib
from email.message import EmailMessage
from typing import Any

import pytest

from tests.capture.form_checks import identifiers
from tests.conftest import BASE, build_config
from tests.dovecot import free_port
from tests.samples import sample

SAMPLES = [sample("smtp_html_only.eml"), sample("smtp_plain_base64_cyrillic.eml")]


def smtp_config(tmp_path: Any, **overrides: Any) -> Any:
    source = {
        "name": "mx",
        "provider": "smtp",
        "host": "127.0.0.1",
        "port": free_port(),
        "addresses": ["leads@mx.example.com", "sales@example.com"],
        "campaign": "vk_ads",
    }
    return build_config(tmp_path, sources=[*BASE["sources"], source], **overrides)


def wire(message: bytes) -> bytes:
    """The samples are stored with LF line ends; SMTP carries CRLF."""
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


async def send(
    srv: Any, message: bytes, to: str = "leads@mx.example.com", sender: str = "client@example.com"
) -> Any:
    """Send with smtplib in a thread (the server runs on this test's event loop); returns sendmail's refusals."""
    port = srv.config.source("mx").port

    def deliver() -> Any:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            return client.sendmail(sender, [to], wire(message))

    return await asyncio.to_thread(deliver)


def auto_reply(sender: str, message_id: str) -> bytes:
    """An out-of-office answer (``Auto-Submitted``) to the leads address, with a number in its text."""
    reply = EmailMessage()
    reply["From"] = sender
    reply["To"] = "leads@mx.example.com"
    reply["Subject"] = "Out of office"
    reply["Message-ID"] = message_id
    reply["Auto-Submitted"] = "auto-replied"
    reply.set_content("I am away until Monday. Call +7 916 000-00-77.")
    return reply.as_bytes()


def touches(srv: Any) -> list[dict[str, Any]]:
    rows = srv.rows("SELECT * FROM touches ORDER BY id")
    for row in rows:
        row["payload"] = json.loads(row["payload"])
    return rows


async def test_both_eml_samples_become_touches_on_the_right_contacts(start_server, tmp_path):
    srv = await start_server(smtp_config(tmp_path))
    for s in SAMPLES:
        assert await send(srv, s.body) == {}
    rows = touches(srv)
    assert len(rows) == 2
    for row, s in zip(rows, SAMPLES, strict=True):
        expected = s.expected
        assert row["channel"] == "email"
        assert row["external_id"] == f"email:{expected['external_id']}"
        assert row["name"] == expected["name"]  # the Cyrillic names intact, RFC 2047 or raw UTF-8
        assert identifiers(srv, row["contact_id"]) == {"phone": expected["phone"], "email": expected["email"]}
        assert row["campaign"] == "vk_ads"  # the source's default: leads@ is no campaign's address
        assert row["to_address"] == "leads@mx.example.com"
        if "subject" in expected:
            assert row["payload"]["subject"] == expected["subject"]
    [contact] = srv.rows("SELECT name FROM contacts WHERE id = ?", [rows[1]["contact_id"]])
    assert contact["name"] == "Светлана"
    journal = srv.rows("SELECT method, status, body FROM journal ORDER BY id")
    assert [(r["method"], r["status"]) for r in journal] == [("SMTP", "processed")] * 2
    assert journal[1]["body"] == wire(SAMPLES[1].body)


async def test_a_letter_is_counted_in_metrics_as_a_new_email_touch(start_server, tmp_path):
    srv = await start_server(smtp_config(tmp_path))
    assert await send(srv, SAMPLES[0].body) == {}
    assert await send(srv, SAMPLES[0].body) == {}  # the sender's retry: the same Message-ID, no new touch
    text = await (await srv.session.get(f"{srv.url}/metrics")).text()
    assert srv.scalar("SELECT COUNT(*) FROM touches WHERE channel = 'email'") == 1
    assert 'leadline_touches_created_total{channel="email"} 1.0' in text


async def test_unknown_recipient_gets_550_and_nothing_is_stored(start_server, tmp_path):
    srv = await start_server(smtp_config(tmp_path))
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await send(srv, SAMPLES[0].body, to="someone@mx.example.com")
    [(code, _)] = refused.value.recipients.values()
    assert code == 550
    assert srv.rows("SELECT COUNT(*) AS n FROM journal")[0]["n"] == 0


async def test_auto_reply_and_bounce_are_journalled_but_are_no_touch_on_a_contact(start_server, tmp_path):
    srv = await start_server(smtp_config(tmp_path))
    assert await send(srv, auto_reply("Ivan <ivan@example.com>", "<ooo-7@example.com>")) == {}
    bounce = EmailMessage()
    bounce["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.net>"
    bounce["To"] = "leads@mx.example.com"
    bounce["Subject"] = "Undelivered Mail Returned to Sender"
    bounce.set_content("The mail system could not deliver your message.")
    assert await send(srv, bounce.as_bytes(), sender="<>") == {}
    rows = touches(srv)
    assert [r["dropped"] for r in rows] == [
        "auto-reply: Auto-Submitted: 'auto-replied'",
        "bounce: delivery status notification (empty envelope sender)",
    ]
    assert [r["contact_id"] for r in rows] == [None, None]
    assert srv.rows("SELECT COUNT(*) AS n FROM contacts")[0]["n"] == 0


async def test_451_while_the_journal_cannot_be_written_then_the_retry_is_stored(start_server, tmp_path):
    srv = await start_server(smtp_config(tmp_path))
    db = srv.db()
    db.execute(
        "CREATE TRIGGER no_journal BEFORE INSERT ON journal BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    db.close()
    with pytest.raises(smtplib.SMTPDataError) as failed:
        await send(srv, SAMPLES[1].body)
    assert failed.value.smtp_code == 451
    assert srv.rows("SELECT COUNT(*) AS n FROM touches")[0]["n"] == 0
    db = srv.db()
    db.execute("DROP TRIGGER no_journal")
    db.close()
    assert await send(srv, SAMPLES[1].body) == {}  # the sending server's retry
    assert [r["name"] for r in touches(srv)] == ["Светлана"]


async def test_attribution_by_the_address_the_mail_was_sent_to(start_server, tmp_path):
    srv = await start_server(smtp_config(tmp_path))
    message = EmailMessage()
    message["From"] = "Pyotr <pyotr@example.com>"
    message["To"] = "sales@example.com"
    message["Subject"] = "Price list"
    message["Message-ID"] = "<price-1@example.com>"
    message.set_content("Please call me back on +7 916 000-00-41")
    assert await send(srv, message.as_bytes(), to="sales@example.com") == {}
    # a plus tag naming a campaign, on an address the source serves
    message.replace_header("Message-ID", "<price-2@example.com>")
    assert await send(srv, message.as_bytes(), to="leads+brand_msk@mx.example.com") == {}
    # the retry of a mail already stored is a no-op
    assert await send(srv, message.as_bytes(), to="leads+brand_msk@mx.example.com") == {}
    rows = touches(srv)
    assert [(r["campaign"], r["to_address"]) for r in rows] == [
        ("brand_msk", "sales@example.com"),
        ("brand_msk", "leads+brand_msk@mx.example.com"),
    ]
    assert len({r["contact_id"] for r in rows}) == 1


async def test_a_reply_without_message_id_keeps_our_quoted_number_out_and_is_stored_once(
    start_server, tmp_path
):
    srv = await start_server(smtp_config(tmp_path))
    message = (
        b"From: Nina <nina@example.com>\r\n"
        b"To: leads@mx.example.com\r\n"
        b"Subject: Re: your offer\r\n"
        b"\r\n"
        b"Yes, interested. My mobile: 8 916 000-00-61\r\n"
        b"\r\n"
        b"On Mon, 2 Mar 2026 at 10:00, Sales <sales@example.com> wrote:\r\n"
        b"> Call us on +7 495 000-00-55\r\n"
    )
    assert await send(srv, message) == {}
    assert await send(srv, message) == {}  # the same bytes again: the same mail
    [touch] = touches(srv)
    assert touch["external_id"].startswith("email:sha256:")
    assert touch["message"] == "Yes, interested. My mobile: 8 916 000-00-61"
    assert identifiers(srv, touch["contact_id"]) == {"phone": "+79160000061", "email": "nina@example.com"}


async def test_our_tracking_number_and_an_outlook_quote_do_not_join_two_customers(start_server, tmp_path):
    """Two people who both mention the company's number are two contacts, not one."""
    srv = await start_server(smtp_config(tmp_path))
    for sender, name in (("ivan@example.net", "Ivan"), ("olga@example.net", "Olga")):
        message = (
            f"From: {name} <{sender}>\r\nTo: leads@mx.example.com\r\nSubject: Re: offer\r\n"
            f"Message-ID: <{name}@example.net>\r\n\r\n"
            f"Hello, please call me back. I called you on +7 495 000-00-55 yesterday.\r\n{name}\r\n\r\n"
            "From: Sales <sales@example.com>\r\nSent: Monday, 23 November 2026 10:00\r\nTo: me\r\n"
            "Our office: +7 495 000-00-77\r\n"
        ).encode()
        assert await send(srv, message, sender=sender) == {}
    assert srv.scalar("SELECT COUNT(DISTINCT contact_id) FROM touches") == 2
    assert srv.rows("SELECT value FROM identifiers WHERE kind = 'phone'") == []
    assert all("000-00-77" not in (t["message"] or "") for t in touches(srv))


async def test_form_notifications_sent_from_our_own_address_are_two_people(start_server, tmp_path):
    """A site mails its form notifications from our own sales@ (SPF leaves it no other address),
    with the person in Reply-To: every lead was merged into one contact, 'Сайт example.com'."""
    srv = await start_server(smtp_config(tmp_path))
    for n, (person, phone) in enumerate(
        [("Олег <oleg@mail.ru>", "+7 916 000-00-81"), ("Мария <maria@yandex.ru>", "+7 916 000-00-82")]
    ):
        message = EmailMessage()
        message["From"] = "Сайт example.com <sales@example.com>"
        message["To"] = "sales@example.com"
        message["Reply-To"] = person
        message["Subject"] = "Заявка с сайта"
        message["Message-ID"] = f"<form-{n}@example.com>"
        message.set_content(f"Новая заявка с сайта.\nПерезвоните мне: {phone}\n")
        assert await send(srv, message.as_bytes(), to="sales@example.com", sender="sales@example.com") == {}
    rows = touches(srv)
    assert [r["name"] for r in rows] == ["Олег", "Мария"]
    assert [identifiers(srv, r["contact_id"]) for r in rows] == [
        {"phone": "+79160000081", "email": "oleg@mail.ru"},
        {"phone": "+79160000082", "email": "maria@yandex.ru"},
    ]
    assert srv.scalar("SELECT COUNT(*) FROM identifiers WHERE value = 'sales@example.com'") == 0


async def test_a_staff_members_mail_is_no_contact_of_their_own(start_server, tmp_path):
    """Boris forwarding a client's letter (the client cut off with the quote) became a lead named
    Boris Petrov <boris@example.com>, with a card and nudges; now it is kept, dropped. A note of his
    that names a person still makes that person's touch, never his."""
    boris = {**BASE["staff"][1], "name": "Boris Petrov", "emails": ["Boris@example.com"]}
    srv = await start_server(smtp_config(tmp_path, staff=[BASE["staff"][0], boris]))
    forward = EmailMessage()
    forward["From"] = "Boris Petrov <boris@example.com>"
    forward["To"] = "leads@mx.example.com"
    forward["Subject"] = "Fwd: вопрос по доставке"
    forward["Message-ID"] = "<fwd-1@example.com>"
    forward.set_content(
        "Заведите, пожалуйста.\n\n---------- Forwarded message ---------\n"
        "From: Клиент <client@mail.ru>\nSubject: вопрос по доставке\n\nМой телефон 8 916 000-00-84\n"
    )
    note = EmailMessage()
    note["From"] = "Boris Petrov <boris@example.com>"
    note["To"] = "leads@mx.example.com"
    note["Subject"] = "Новый клиент"
    note["Message-ID"] = "<note-1@example.com>"
    note.set_content("Имя: Иван\nТелефон: 8 916 000-00-83\n")
    for message in (forward, note):
        assert await send(srv, message.as_bytes(), sender="boris@example.com") == {}
    kept, named = touches(srv)
    assert (kept["dropped"], kept["contact_id"], kept["name"]) == (
        "staff mail: sent by boris@example.com",
        None,
        None,
    )
    assert (named["dropped"], named["name"]) == (None, "Иван")
    assert identifiers(srv, named["contact_id"]) == {"phone": "+79160000083"}
    assert srv.rows("SELECT name FROM contacts") == [{"name": "Иван"}]
    assert srv.scalar("SELECT COUNT(*) FROM identifiers WHERE value = 'boris@example.com'") == 0


async def test_a_staff_members_own_number_in_their_signature_names_nobody(start_server, tmp_path):
    """A copy of Boris's own reply, signed with his mobile, became an inbound touch of a contact
    holding his number, which every later copy of his replies joined (the review)."""
    boris = {
        **BASE["staff"][1],
        "name": "Boris Petrov",
        "emails": ["boris@example.com"],
        "phone": "+79165551234",
    }
    srv = await start_server(smtp_config(tmp_path, staff=[BASE["staff"][0], boris]))
    reply = EmailMessage()
    reply["From"] = "Boris Petrov <boris@example.com>"
    reply["To"] = "leads@mx.example.com"
    reply["Subject"] = "Re: доставка"
    reply["Message-ID"] = "<reply-1@example.com>"
    reply.set_content("Добрый день! Доставим в пятницу.\n\n--\nБорис Петров\n+7 916 555-12-34\n")
    assert await send(srv, reply.as_bytes(), sender="boris@example.com") == {}

    [kept] = touches(srv)
    assert (kept["dropped"], kept["contact_id"]) == ("staff mail: sent by boris@example.com", None)
    assert srv.scalar("SELECT COUNT(*) FROM identifiers WHERE value = '+79165551234'") == 0
    assert srv.scalar("SELECT COUNT(*) FROM contacts") == 0


@pytest.mark.parametrize("charset", ["utf-8", "cp1251"])
async def test_a_form_script_mail_with_no_declared_charset_is_read(start_server, tmp_path, charset):
    """PHP's mail() sends 8-bit text with no MIME headers at all: the body was read as ASCII, the
    name was lost and the message was a row of U+FFFD."""
    srv = await start_server(smtp_config(tmp_path))
    head = b"From: noreply@site.ru\r\nTo: leads@mx.example.com\r\nSubject: Form\r\nMessage-ID: <php-1@site.ru>\r\n"
    body = "Имя: Иван Петров\r\nТелефон: 8 916 000-00-85\r\nСообщение: Нужна кухня 3 метра\r\n"
    assert await send(srv, head + b"\r\n" + body.encode(charset), sender="www-data@site.ru") == {}
    [touch] = touches(srv)
    assert (touch["name"], touch["message"]) == ("Иван Петров", "Нужна кухня 3 метра")
    assert identifiers(srv, touch["contact_id"]) == {"phone": "+79160000085"}


async def test_a_name_split_mid_character_between_encoded_words_is_read_whole(start_server, tmp_path):
    """Some mailers cut a UTF-8 character between two encoded words: the card showed
    'Але� �сандр Сергеевич'. Adjacent words of one charset are joined first, as mail clients do."""
    name = "Александр Сергеевич".encode()  # its first 7 bytes end inside "к"
    words = " ".join(f"=?UTF-8?B?{base64.b64encode(half).decode()}?=" for half in (name[:7], name[7:]))
    message = (
        f"From: {words} <alex@mail.ru>\r\nTo: leads@mx.example.com\r\n"
        "Subject: Price\r\nMessage-ID: <split-1@mail.ru>\r\n\r\n"
        "Перезвоните мне: 8 916 000-00-86\r\n"
    ).encode()
    srv = await start_server(smtp_config(tmp_path))
    assert await send(srv, message, sender="alex@mail.ru") == {}
    [touch] = touches(srv)
    assert touch["name"] == "Александр Сергеевич"
    assert touch["payload"]["from"] == "Александр Сергеевич <alex@mail.ru>"
    assert srv.rows("SELECT name FROM contacts") == [{"name": "Александр Сергеевич"}]


async def test_webhooks_are_answered_while_a_large_mail_is_read(start_server, tmp_path, monkeypatch):
    """A mail of 32 MB takes seconds to parse: it is read on a thread, as a large HTTP body is, and
    the forms that arrive meanwhile are answered at once."""
    import threading

    from capture.providers import smtp

    reading, form_answered = threading.Event(), threading.Event()
    answered_first: list[bool] = []
    parse = smtp.parse_message

    def slow(raw: bytes, **kwargs: Any) -> Any:
        reading.set()
        # Read on the event loop, the form could not be answered before this gave up.
        answered_first.append(form_answered.wait(10))
        return parse(raw, **kwargs)

    monkeypatch.setattr(smtp, "parse_message", slow)
    srv = await start_server(smtp_config(tmp_path))
    mail = EmailMessage()
    mail["From"] = "Ivan <ivan@example.org>"
    mail["To"] = "leads@mx.example.com"
    mail["Subject"] = "Price list attached"
    mail.set_content("Call me on +7 916 123-45-67")
    mail.add_attachment(b"x" * 200_000, maintype="application", subtype="octet-stream", filename="list.bin")
    sent = asyncio.create_task(send(srv, mail.as_bytes()))
    assert await asyncio.to_thread(reading.wait, 10)

    form = await srv.session.post(
        f"{srv.url}/hooks/form", params={"token": "form-token"}, data={"phone": "+79035550011"}
    )
    form_answered.set()

    assert form.status == 200
    assert await sent == {}
    assert answered_first == [True]
    assert sorted(row["channel"] for row in touches(srv)) == ["email", "form"]
