"""Postmark inbound webhooks: the parsed mail as JSON, guarded by basic auth in the webhook URL.

Postmark signs nothing; its documented protection is ``https://user:pass@host/hooks/<source>``,
which arrives as an ``Authorization: Basic`` header and is checked against the source's
``username`` and ``password`` (FORMATS §3.3). The idempotency key is Postmark's own ``MessageID``.
``MailboxHash`` is the plus-addressing tag of the inbound address (``abc123+campaign42@…``); the
recipient address keeps it, so attribution can read the campaign from it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from datetime import datetime
from email.utils import formataddr
from typing import Any

from capture.addresses import OurAddresses
from capture.mail import MailFields, source_event
from capture.providers.base import BadRequest, MissingCredentials, ParseResult, RawRequest, Unauthorized
from leadline.config import SourceConfig


@dataclass(frozen=True)
class Postmark:
    methods: frozenset[str] = frozenset({"POST"})
    reads_mail: bool = True

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        scheme, _, encoded = raw.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise MissingCredentials(
                "missing basic auth: put user:password in the webhook URL (https://user:pass@…)"
            )
        try:
            username, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Unauthorized("basic auth header is not valid base64 user:password") from exc
        user_ok = hmac.compare_digest(username.encode(), (source.username or "").encode())
        password_ok = hmac.compare_digest(password.encode(), source.secret_value("password").encode())
        if not (sep and user_ok and password_ok):
            raise Unauthorized("wrong username or password")

    def parse(self, raw: RawRequest, source: SourceConfig, *, ours: OurAddresses) -> ParseResult:
        body = raw.json()
        if not isinstance(body, dict) or not ("From" in body or "FromFull" in body):
            raise BadRequest("expected Postmark's inbound JSON object with From/FromFull")
        full = body.get("FromFull")
        sender: dict[str, Any] = full if isinstance(full, dict) else {}
        message_id = _text(body.get("MessageID"))
        # Postmark gives ReplyTo as a field of its own, never among Headers; it is where a form
        # mailer puts the address of the person who filled the form in.
        reply_to = _text(body.get("ReplyTo"))
        mail = MailFields(
            headers=[
                *_headers(body.get("Headers")),
                ("Date", _text(body.get("Date"))),
                *([("Reply-To", reply_to)] if reply_to else []),
            ],
            sender=_mailbox(
                _text(sender.get("Name")) or _text(body.get("FromName")),
                _text(sender.get("Email")) or _text(body.get("From")),
            ),
            # All of them: forwarded mail names Postmark's inbound address as the original recipient
            # and the user's own address (the one a campaign owns) in To or Cc.
            to_address=", ".join(
                a for a in (_text(body.get(k)) for k in ("OriginalRecipient", "To", "Cc")) if a
            )
            or None,
            subject=_text(body.get("Subject")),
            text=_text(body.get("TextBody")),
            html=_text(body.get("HtmlBody")),
            reply_text=_text(body.get("StrippedTextReply")),
            external_id=f"postmark:{message_id}" if message_id else None,
            extra={"mailbox_hash": _text(body.get("MailboxHash")), "postmark_id": message_id},
        )
        return ParseResult(events=[source_event(mail, source, ours)])


def _mailbox(name: str, address: str) -> str:
    """``Name <address>`` as formataddr writes it; formataddr refuses an address that is not ASCII
    (RFC 6531 allows one, and Postmark passes it on as sent), so that one is written as it came."""
    try:
        return formataddr((name, address))
    except UnicodeError:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{address}>' if name else address


def _headers(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        return []
    return [
        (str(h["Name"]), str(h.get("Value", "")))
        for h in value
        if isinstance(h, dict) and isinstance(h.get("Name"), str)
    ]


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


PROVIDER = Postmark()
