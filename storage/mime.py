"""Reading mail that anyone may have written: the stdlib's parser with its headers clipped.

Capture reads an inbound mail with it (capture/mail.py), and the search for a person's raw
requests (storage/subject_scans.py) reads the text a mail sent base64 or quoted-printable, as capture
did: both must see the same words, and neither may be stalled by a hostile header.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesParser
from email.policy import EmailPolicy
from typing import Any
from urllib.parse import parse_qsl

#: Characters of a header that the stdlib's header parser reads. It is quadratic in a header's
#: encoded words and parameters (a 340 KB Content-Type of 16 000 words: 54 s; a 500 KB Subject:
#: over a minute), and no header a mail client writes comes near this. The journal keeps it whole.
MAX_HEADER_CHARS = 8192


class _ClippedPolicy(EmailPolicy):
    """The stdlib's default policy, reading each header from its first :data:`MAX_HEADER_CHARS`:
    every way a header is read (a subject, the recipients, a part's Content-Type or its boundary)
    goes through here, so no read of one costs more than that."""

    def header_fetch_parse(self, name: str, value: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_HEADER_CHARS:
            value = value[:MAX_HEADER_CHARS]
        return super().header_fetch_parse(name, value)


MAIL_POLICY = _ClippedPolicy()

#: A body that holds no such header has no part sent base64 or quoted-printable: one linear search
#: spares the parse. Its spelling in a urlencoded form (``Content-Transfer-Encoding%3A``) matches too.
_TRANSFER_ENCODING = re.compile(rb"content-transfer-encoding", re.IGNORECASE)
_ENCODED = ("base64", "quoted-printable")


def encoded_texts(body: bytes, content_type: str) -> list[str]:
    """The text of each part of the mail in ``body`` that was sent base64 or quoted-printable,
    decoded: a raw message (SMTP, IMAP), or one inside a form's field (SendGrid's ``email``,
    Mailgun's ``body-mime``). Its bytes as they were stored hide the words (a phone number) that
    capture read from them.

    Each byte is parsed at most twice (the form, then the message in its field) and each part
    decoded once, without looking inside what decoding gives: linear in the body's size.
    """
    if not _TRANSFER_ENCODING.search(body):
        return []
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        header = b"Content-Type: " + content_type.encode("utf-8", "surrogateescape") + b"\r\n\r\n"
        form = _parse(header + body)
        fields = [_payload(part) for part in _leaves(form)]
        messages = [form, *(_parse(f) for f in fields if _TRANSFER_ENCODING.search(f))]
    elif kind == "application/x-www-form-urlencoded":
        values = [v.encode("utf-8") for _, v in parse_qsl(body.decode("utf-8", "replace"))]
        messages = [_parse(v) for v in values if _TRANSFER_ENCODING.search(v)]
    else:
        messages = [_parse(body)]
    return [text for message in messages for part in _leaves(message) if (text := _decoded(part))]


def _parse(data: bytes) -> Message | None:
    """``data`` as a message; None when a header nests comments past Python's recursion limit
    (the parser reads a Content-Type's boundary, and recurses once per nested comment)."""
    try:
        return BytesParser(policy=MAIL_POLICY).parsebytes(data)
    except RecursionError:
        return None


def _leaves(message: Message | None) -> list[Message]:
    """Every part that holds a payload of its own."""
    return [] if message is None else [part for part in message.walk() if not part.is_multipart()]


def _payload(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _decoded(part: Message) -> str | None:
    """The part's text as capture read it, when it was sent in a transfer encoding; else None."""
    try:
        encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if encoding not in _ENCODED:
            return None
        charset = part.get_content_charset() or "utf-8"
    except RecursionError:
        return None
    data = _payload(part)
    try:
        return data.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")
