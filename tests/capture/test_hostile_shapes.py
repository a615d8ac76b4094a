"""Hostile shapes cost their size: answers nested in lists (Google Forms, Jotform), a sender header
of 40,000 dots, a multipart part's header of 100 KB; comments nested past the recursion limit get a
reason, not a traceback."""

from __future__ import annotations

import json
from typing import Any

import pytest

from capture.addresses import OurAddresses
from capture.mail import mail_event
from capture.providers import google_forms, jotform
from capture.providers.base import BadRequest
from tests.capture.form_checks import config_with, only_touch, source_for
from tests.multipart import build_multipart
from tests.samples import sample

GOOGLE = sample("google_forms_apps_script.json")
JOTFORM = sample("jotform_submission.json")
#: Deep enough that reading each level twice would take 2**18 reads of one number.
DEPTH = 18


def nested(value: Any, depth: int = DEPTH) -> Any:
    for _ in range(depth):
        value = [value]
    return value


def counted(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[int]:
    """How many times ``module._text`` reads a value, its own reads of nested values included."""
    reads, read = [0], module._text

    def counting(value: Any) -> str:
        reads[0] += 1
        return str(read(value))

    monkeypatch.setattr(module, "_text", counting)
    return reads


async def test_a_google_forms_phone_nested_in_lists_is_read_once_per_level(
    start_server, tmp_path, monkeypatch
):
    srv = await start_server(config_with(tmp_path, source_for(GOOGLE)))
    reads = counted(monkeypatch, google_forms)
    body = json.loads(GOOGLE.body)
    body["answers"]["Телефон"] = nested("89160000015")
    resp = await srv.session.post(f"{srv.url}{GOOGLE.path}", data=json.dumps(body), headers=GOOGLE.headers)
    assert resp.status == 200
    assert only_touch(srv)["phone_raw"] == "89160000015"
    assert reads[0] <= 2 * (DEPTH + len(body["answers"]) + 1)


async def test_a_jotform_answer_nested_in_lists_is_read_once_per_level(start_server, tmp_path, monkeypatch):
    srv = await start_server(
        config_with(
            tmp_path, {"name": JOTFORM.source_name, "provider": "jotform", "token": "jotform-token-0001"}
        )
    )
    reads = counted(monkeypatch, jotform)
    parts: dict[str, str] = json.loads(JOTFORM.body)["parts"]
    answers = json.loads(parts["rawRequest"])
    answers["q6_message"] = nested("Hello from Jotform")
    body, content_type = build_multipart({**parts, "rawRequest": json.dumps(answers)})
    resp = await srv.session.post(
        f"{srv.url}{JOTFORM.path}",
        params={"token": "jotform-token-0001"},
        data=body,
        headers={"Content-Type": content_type},
    )
    assert resp.status == 200
    assert only_touch(srv)["message"] == "Hello from Jotform"
    assert reads[0] <= 2 * (DEPTH + 4 * len(answers))


def test_a_sender_header_is_read_no_further_than_any_sender_needs() -> None:
    """The stdlib's address parser is quadratic in a header's length: a sender is read from its
    first 2,048 characters, where any real name and address fit."""
    from capture.mail import MAX_ADDRESS_CHARS, _decoded_address, _first_address

    header = "Иван Петров <ivan@example.org>, " + "a" + "." * 40_000 + "@example.com"
    assert _first_address(header) == ("Иван Петров", "ivan@example.org")
    assert len(_decoded_address(header) or "") <= MAX_ADDRESS_CHARS


async def post_unsigned_to_mailgun(start_server: Any, tmp_path: Any, body: bytes) -> Any:
    """Mailgun reads its signature from the multipart body, so anyone's body is parsed first."""
    key = sample("mailgun_route_forward.txt").secrets["webhook_signing_key"]
    srv = await start_server(
        config_with(tmp_path, {"name": "mailgun", "provider": "mailgun", "webhook_signing_key": key})
    )
    return await srv.session.post(
        f"{srv.url}/hooks/mailgun/inbound",
        data=body,
        headers={"Content-Type": "multipart/form-data; boundary=B"},
    )


async def test_a_multipart_part_with_a_100_kb_header_is_refused_before_its_parameters_are_parsed(
    start_server, tmp_path
):
    """Mailgun reads its signature from the multipart body, so the body is parsed before anything
    is checked; a part's parameters cost the stdlib quadratic time (100 KB: 2 s, unsigned)."""
    disposition = 'form-data; name="subject"' + "; a=b" * 20_000
    body = f"--B\r\nContent-Disposition: {disposition}\r\n\r\nhello\r\n--B--\r\n".encode()
    resp = await post_unsigned_to_mailgun(start_server, tmp_path, body)
    assert resp.status == 401
    assert "'Content-Disposition' header is 100025 characters, over the 4096" in await resp.text()


async def test_many_parts_with_long_headers_are_refused_before_any_is_parsed(start_server, tmp_path):
    """Each under the limit of one part, 250 of them in one megabyte: 21 s before the total counted."""
    part = '--B\r\nContent-Disposition: form-data; name="f"' + ";" * 3_900 + "\r\n\r\nx\r\n"
    body = (part * 250 + "--B--\r\n").encode()
    resp = await post_unsigned_to_mailgun(start_server, tmp_path, body)
    assert resp.status == 401
    assert "the parts' headers come to" in await resp.text()


#: Comments nested past Python's recursion limit: the stdlib's header parser recurses once a level.
NESTED = "(" * 1500


async def test_a_multipart_header_nesting_comments_is_refused_with_its_reason(start_server, tmp_path):
    srv = await start_server(config_with(tmp_path))
    body = (
        f'--B\r\nContent-Disposition: form-data; name="phone"{NESTED}\r\n\r\n+79161234567\r\n--B--\r\n'
    ).encode()
    resp = await srv.session.post(
        f"{srv.url}/hooks/form?token=form-token",
        data=body,
        headers={"Content-Type": "multipart/form-data; boundary=B"},
    )
    assert resp.status == 400
    reason = "a multipart header nests more parentheses (comments) than any form needs"
    assert reason in await resp.text()
    [row] = srv.rows("SELECT status, reason FROM journal")
    assert (row["status"], row["reason"]) == ("rejected", reason)


def nested_mail(**headers: str) -> bytes:
    fields = {
        "From": "Ivan Petrov <ivan@example.org>",
        "Reply-To": "Ivan Petrov <ivan@example.org>",
        "To": "sales@example.com",
        "Subject": "Call me back",
        "Message-ID": "<m1@example.org>",
        "Content-Type": "multipart/mixed; boundary=B",
        **headers,
    }
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return (
        f"{head}\r\n--B\r\nContent-Type: text/plain\r\n\r\nCall me on +79161234567\r\n"
        f"--B\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename={NESTED}\r\n\r\nx\r\n"
        "--B--\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("header", "value"),
    [("From", NESTED + "ivan@example.org"), ("To", NESTED), ("Message-ID", NESTED), ("X-Nothing", "")],
)
def test_a_mail_header_nesting_comments_is_taken_as_absent_and_the_rest_is_read(header, value):
    """The attachment's Content-Disposition nests too, in every case: the text part is still read."""
    event = mail_event(nested_mail(**{header: value}), region="RU", spam_threshold=5.0, ours=OurAddresses())
    assert event.emails == ("ivan@example.org",)  # from Reply-To when From cannot be read
    assert event.phones == ("+79161234567",)
    assert event.message == "Call me on +79161234567"
    assert event.to_address == (None if header == "To" else "sales@example.com")
    assert event.external_id == "email:" + (NESTED if header == "Message-ID" else "<m1@example.org>")


def test_a_mail_whose_content_type_nests_comments_is_refused_with_its_reason():
    with pytest.raises(BadRequest, match=r"a Content-Type header nests more '\(' than any mail needs"):
        mail_event(
            nested_mail(**{"Content-Type": f"text/plain; charset={NESTED}"}),
            region="RU",
            spam_threshold=5,
            ours=OurAddresses(),
        )


#: 4,000 encoded words: 84 KB of header, which the stdlib's header parser reads in a time
#: quadratic in the words (30,000 of them, 500 KB: over a minute).
WORDS = " ".join(["=?utf-8?b?0JDQkdCS?="] * 4000)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Subject", WORDS),
        ("To", f"{WORDS} <sales@example.com>"),
        ("Content-Type", f'multipart/mixed; boundary=B; name="{WORDS}"'),
    ],
)
def test_a_mail_header_is_parsed_no_further_than_any_mail_needs(monkeypatch, header, value):
    """Every read of a header (the subject, the recipients, a part's Content-Type and boundary, an
    attachment's Content-Disposition) takes its first MAX_HEADER_CHARS; the rest of the mail is read."""
    from email.headerregistry import HeaderRegistry

    from storage.mime import MAX_HEADER_CHARS

    parsed: list[int] = []
    parse = HeaderRegistry.__call__

    def measured(self: HeaderRegistry, name: str, text: str) -> Any:
        parsed.append(len(text))
        return parse(self, name, text)

    monkeypatch.setattr(HeaderRegistry, "__call__", measured)
    mail = nested_mail(**{header: value}).replace(
        b"filename=" + NESTED.encode(), f'filename="{WORDS}"'.encode()
    )

    event = mail_event(mail, region="RU", spam_threshold=5.0, ours=OurAddresses())

    assert event.phones == ("+79161234567",)
    assert event.message == "Call me on +79161234567"
    assert parsed and max(parsed) <= MAX_HEADER_CHARS
