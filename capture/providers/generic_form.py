"""Any site form: urlencoded, multipart or JSON, with a field map and a token.

Such forms carry no id of their own, so a retry is recognised by an explicit id field or the
``Idempotency-Key`` header when the form sends one, else by the body's hash within the same day:
the office's day (the source's ``timezone``, which the pipeline fills with ``[leadline] timezone``),
since the same "call me back" sent on Monday evening and again on Tuesday is two requests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from capture.forms import form_fields, name_of, pick, utm_of
from capture.providers.auth import check_token
from capture.providers.base import BadRequest, ContactEvent, ParseResult, RawRequest
from leadline.config import SourceConfig
from storage.records import record

ID_FIELDS = ("submission_id", "request_id", "form_submission_id", "idempotency_key")


@dataclass(frozen=True)
class GenericForm:
    methods: frozenset[str] = frozenset({"POST"})
    #: The token is all this provider checks: ``verify`` does it, once, not ``check_access`` too.
    verifies_token: bool = True

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
        key = form_key(raw, fields, source.timezone)
        return ParseResult(
            events=[
                ContactEvent(
                    channel="form",
                    external_id=key.external_id("form"),
                    former_ids=key.former_ids("form"),
                    phones=tuple(phones),
                    emails=tuple(emails),
                    name=name_of(fields, extra.get("name", ())),
                    message="\n".join(messages) or None,
                    utm=utm_of(fields),
                    fields={k: v for k, v in fields.items() if k.lower() != "token"},
                )
            ]
        )


@record
class FormKey:
    """What makes a form's retry a no-op: ``value`` now, and the ``former`` values earlier releases
    stored the same submission under (keys are ``<provider>:<value>``)."""

    value: str
    former: tuple[str, ...] = ()

    def external_id(self, provider: str) -> str:
        return f"{provider}:{self.value}"

    def former_ids(self, provider: str) -> tuple[str, ...]:
        return tuple(f"{provider}:{value}" for value in self.former)


def form_key(raw: RawRequest, fields: object, zone: str | None, given: str = "") -> FormKey:
    """The submission's own id (``given``: Tilda's ``tranid``), else the ``Idempotency-Key`` header or
    an id field, else the body's hash on the day it came, on the office's clock (``zone``).

    The day is written with its zone (``2026-11-17@Europe/Moscow:<hash>``). Releases before took the
    UTC date (``2026-11-16:<hash>``): that key is a former one, so a provider's retry of a form
    stored before the upgrade stays a no-op, and never matches a key this release stores.
    """
    if given:
        return FormKey(given)
    explicit = raw.headers.get("Idempotency-Key")
    if explicit:
        return FormKey(explicit.strip())
    for name in ID_FIELDS:
        value = fields.get(name) if hasattr(fields, "get") else None
        if isinstance(value, str) and value.strip():
            return FormKey(value.strip())
    digest = hashlib.sha256(raw.body).hexdigest()[:32]
    received = raw.received_at if raw.received_at.tzinfo else raw.received_at.replace(tzinfo=UTC)
    zone = zone or "UTC"
    day = received.astimezone(ZoneInfo(zone)).date().isoformat()
    utc_day = received.astimezone(UTC).date().isoformat()
    return FormKey(f"{day}@{zone}:{digest}", former=(f"{utc_day}:{digest}",))


PROVIDER = GenericForm()
