"""SendGrid Inbound Parse: multipart form data, one part per field, each in its own charset.

SendGrid sends each text field in the charset the mail used and lists them in the ``charsets``
part (``{"subject": "UTF-8", "text": "iso-8859-1"}``), so the parts are read as bytes and decoded
one by one (FORMATS §3.2). A field whose bytes do not fit its charset is read with replacement
characters rather than refused: one mis-declared part must not cost a lead. With "POST the raw,
full MIME message" on, the ``email`` part is the whole message and is parsed as such.

Inbound Parse signs nothing, so the source's ``token`` guards the URL (``?token=`` in the
destination URL). There is no Message-ID field; it is read from the ``headers`` part.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.parser import Parser
from email.policy import default as default_policy
from typing import Any

from capture.addresses import OurAddresses
from capture.forms import multipart_parts
from capture.mail import MailFields, decode_text, parse_message, source_event
from capture.providers.auth import check_token
from capture.providers.base import BadRequest, ParseResult, RawRequest, loads, quoted
from leadline.config import SourceConfig


@dataclass(frozen=True)
class SendGrid:
    methods: frozenset[str] = frozenset({"POST"})
    reads_mail: bool = True

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        check_token(raw, source)

    def parse(self, raw: RawRequest, source: SourceConfig, *, ours: OurAddresses) -> ParseResult:
        if raw.content_type != "multipart/form-data":
            raise BadRequest(
                f"expected multipart/form-data from Inbound Parse, got {quoted(raw.content_type) if raw.content_type else 'none'}"
            )
        parts = {
            name: (data, declared)
            for name, data, declared in multipart_parts(raw.body, raw.headers["Content-Type"])
        }
        charsets = _charsets(parts)

        def field(name: str) -> str | None:
            if name not in parts:
                return None
            data, declared = parts[name]
            return decode_text(data, charsets.get(name) or declared)

        envelope = _json_object(field("envelope"), "envelope")
        to_list = envelope.get("to")
        to_address = (
            ", ".join(str(t) for t in to_list) if isinstance(to_list, list) and to_list else field("to")
        )
        envelope_from = envelope.get("from") if isinstance(envelope.get("from"), str) else None
        if "email" in parts:
            mail = parse_message(parts["email"][0], to_address=to_address, envelope_from=envelope_from)
        else:
            if not field("from"):
                raise BadRequest("no 'from' part: is this an Inbound Parse POST?")
            headers = Parser(policy=default_policy).parsestr(field("headers") or "", headersonly=True)
            mail = MailFields(
                headers=[(k, str(v)) for k, v in headers.raw_items()],
                sender=field("from"),
                to_address=to_address,
                subject=field("subject"),
                text=field("text"),
                html=field("html"),
                envelope_from=envelope_from,
                spam_score=_float(field("spam_score")),
            )
        return ParseResult(events=[source_event(mail, source, ours)])


def _charsets(parts: dict[str, tuple[bytes, str | None]]) -> dict[str, str]:
    if "charsets" not in parts:
        return {}
    value = _json_object(parts["charsets"][0].decode("utf-8", "replace"), "charsets")
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str)}


def _json_object(value: str | None, what: str) -> dict[str, Any]:
    if not value or not value.strip():
        return {}
    data = loads(value, f"the {what} part")
    if not isinstance(data, dict):
        raise BadRequest(f"the {what} part must be a JSON object")
    return data


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


PROVIDER = SendGrid()
