"""Any site form: urlencoded, multipart or JSON, with a field map and a token.

Such forms carry no id of their own, so a retry is recognised by an explicit id field or the
``Idempotency-Key`` header when the form sends one, else by the body's hash within the same day.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from capture.forms import form_fields, name_of, pick, utm_of
from capture.providers.auth import check_token
from capture.providers.base import BadRequest, ContactEvent, ParseResult, RawRequest
from leadline.config import SourceConfig

ID_FIELDS = ("submission_id", "request_id", "form_submission_id", "idempotency_key")


@dataclass(frozen=True)
class GenericForm:
    methods: frozenset[str] = frozenset({"POST"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        check_token(raw, source)

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        fields = form_fields(raw)
        extra = source.field_map
        phones = pick(fields, "phone", extra.get("phone", ()))
        emails = pick(fields, "email", extra.get("email", ()))
        if not phones and not emails:
            raise BadRequest(
                "no phone or email in the form: name the field phone/tel/телефон or email/e-mail,"
                " or map it with field_map in the source's config"
            )
        messages = pick(fields, "message", extra.get("message", ()))
        return ParseResult(
            events=[
                ContactEvent(
                    channel="form",
                    external_id=f"form:{submission_id(raw, fields)}",
                    phones=tuple(phones),
                    emails=tuple(emails),
                    name=name_of(fields, extra.get("name", ())),
                    message="\n".join(messages) or None,
                    utm=utm_of(fields),
                    fields={k: v for k, v in fields.items() if k.lower() != "token"},
                )
            ]
        )


def submission_id(raw: RawRequest, fields: object) -> str:
    explicit = raw.headers.get("Idempotency-Key")
    if explicit:
        return explicit.strip()
    for key in ID_FIELDS:
        value = fields.get(key) if hasattr(fields, "get") else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    digest = hashlib.sha256(raw.body).hexdigest()[:32]
    return f"{raw.received_at.date().isoformat()}:{digest}"


PROVIDER = GenericForm()
