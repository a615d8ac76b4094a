"""Mailgun Routes ``forward("https://…/hooks/<source>")``: parsed mail fields, or ``body-mime`` raw.

The signature is ``hex(HMAC-SHA256(webhook signing key, timestamp + token))`` (FORMATS §3.1). It
covers only the timestamp and the token, not the mail, so it proves the POST came from Mailgun and
when; what stops a captured POST being sent again is the token, used once (``replay_key``) and the
timestamp, accepted for five minutes either side of the server's clock. Mailgun signs each retry
afresh, so a retry of the same mail is recognised by its Message-Id instead.

Within those five minutes, a signed timestamp and token not yet used here (Mailgun signs every
webhook of the account with the same key) could carry any mail; the source's own ``token`` in the
route's URL, checked before ``verify`` (``capture.providers.auth.check_access``), closes that.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from multidict import MultiDict

from capture.addresses import OurAddresses
from capture.forms import multipart_parts, parse_form_body
from capture.mail import MailFields, decode_text, parse_message, source_event
from capture.providers.base import (
    BadRequest,
    MissingCredentials,
    ParseResult,
    RawRequest,
    Unauthorized,
    loads,
)
from leadline.config import SourceConfig

TOLERANCE = timedelta(minutes=5)
#: Fields that are Mailgun's own, not the message's (the message's headers are also posted as fields).
OWN_FIELDS = frozenset({"timestamp", "token", "signature"})


@dataclass(frozen=True)
class Mailgun:
    methods: frozenset[str] = frozenset({"POST"})
    reads_mail: bool = True

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        fields, _ = _form(raw)
        stamp, token, signature = (fields.get(k, "").strip() for k in ("timestamp", "token", "signature"))
        if not (stamp and token and signature):
            raise MissingCredentials("missing timestamp, token or signature field")
        try:
            sent_at = datetime.fromtimestamp(int(stamp), UTC)
        except (ValueError, OverflowError) as exc:
            raise Unauthorized("timestamp is not unix seconds") from exc
        if abs(now - sent_at) > TOLERANCE:
            raise Unauthorized("timestamp is outside the 5-minute window: a stale or replayed request")
        key = source.secret_value("webhook_signing_key").encode()
        expected = hmac.new(key, (stamp + token).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
            raise Unauthorized("signature does not match the webhook signing key")

    def replay_key(self, raw: RawRequest) -> str | None:
        return _form(raw)[0].get("token", "").strip() or None

    def parse(self, raw: RawRequest, source: SourceConfig, *, ours: OurAddresses) -> ParseResult:
        fields, mime = _form(raw)
        occurred = _timestamp(fields.get("timestamp", ""))
        recipient = fields.get("recipient") or fields.get("To") or None
        if mime:
            mail = parse_message(
                mime,
                to_address=recipient,
                envelope_from=fields.get("sender"),
                occurred_at=occurred,
            )
        else:
            if not fields.get("from") and not fields.get("From"):
                raise BadRequest("no 'from' field: is the route's action forward() to this URL?")
            mail = MailFields(
                headers=_message_headers(fields.get("message-headers", "")),
                sender=fields.get("from") or fields.get("From"),
                to_address=recipient,
                subject=fields.get("subject") or fields.get("Subject"),
                text=fields.get("body-plain"),
                html=fields.get("body-html"),
                reply_text=fields.get("stripped-text"),
                message_id=fields.get("Message-Id") or fields.get("Message-ID"),
                envelope_from=fields.get("sender"),
                occurred_at=occurred,
            )
        return ParseResult(events=[source_event(mail, source, ours)])


def _form(raw: RawRequest) -> tuple[MultiDict[str], bytes | None]:
    """The fields, and ``body-mime`` as the bytes it was sent as: a raw message in raw-MIME mode may
    carry 8-bit text in any charset, which must reach the mail parser undecoded."""
    return _parsed_form(raw.body, raw.headers.get("Content-Type", ""))


@lru_cache(maxsize=4)
def _parsed_form(body: bytes, content_type_header: str) -> tuple[MultiDict[str], bytes | None]:
    """Parsed once per request: the signature check, the replay key and the parser all read the form,
    and a megabyte of multipart costs milliseconds each time. Callers only read what it returns."""
    if content_type_header.split(";", 1)[0].strip().lower() != "multipart/form-data":
        fields = parse_form_body(body, content_type_header)
        text = fields.get("body-mime")
        return fields, text.encode("utf-8") if text else None
    parsed = MultiDict[str]()
    mime: bytes | None = None
    for name, data, charset in multipart_parts(body, content_type_header):
        if name == "body-mime":
            mime = data
        else:
            parsed.add(name, decode_text(data, charset))
    return parsed, mime


def _message_headers(value: str) -> list[tuple[str, str]]:
    """``message-headers``: a JSON list of ``[name, value]`` pairs in the message's order."""
    if not value.strip():
        return []
    pairs = loads(value, "message-headers")
    if not isinstance(pairs, list):
        raise BadRequest("message-headers must be a JSON list of [name, value] pairs")
    return [(str(p[0]), str(p[1])) for p in pairs if isinstance(p, list) and len(p) == 2]


def _timestamp(value: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError):
        return None


PROVIDER = Mailgun()
