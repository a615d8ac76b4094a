"""Webflow's ``form_submission`` webhook, in the current (v2) envelope and the legacy v1 shape.

Signed requests carry ``x-webflow-timestamp`` (milliseconds) and ``x-webflow-signature``, the hex
HMAC-SHA256 of ``"<timestamp>:<raw body>"`` with the source's ``secret`` (FORMATS §2.4; the recipe
is VERIFIED-2nd). A signature older or newer than 5 minutes is refused, so a captured request
cannot be replayed later.

Webflow signs only webhooks created through its API or an OAuth app; those added in site settings,
and the legacy v1 ones (the v1 sample carries no signature header), come unsigned. An unsigned
request is therefore not refused outright but must carry the source's ``token`` (``?token=`` in
the webhook URL, or ``X-Leadline-Token``), like every builder that signs nothing. A request that
has a signature header is judged by the signature alone, so dropping the header from a forged
request gains nothing without the token.

Field names are the form's labels, so they are read with the usual field names (``First Name`` and
``Last Name`` are joined). Webflow's own example sends the phone as a JSON number, which cannot
hold a ``+``: such a number of 11 digits or more is read as international when it is a valid
number that way (``12025550177`` → ``+12025550177``) and is otherwise left to the source's region
(``89160000013``, ``4959000012``).
The idempotency key is ``webflow:{payload.id}`` (``_id`` in v1).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from multidict import MultiDict

from capture.forms import name_of, pick, time_of, utm_of
from capture.providers.auth import check_token
from capture.providers.base import BadRequest, ContactEvent, ParseResult, RawRequest, Unauthorized, quoted
from leadline.config import SourceConfig
from storage.identifiers import international

TOLERANCE = timedelta(minutes=5)
SIGNATURE_HEADER = "x-webflow-signature"
TIMESTAMP_HEADER = "x-webflow-timestamp"


@dataclass(frozen=True)
class Webflow:
    methods: frozenset[str] = frozenset({"POST"})
    #: The token guards unsigned requests only: ``verify`` checks it itself.
    verifies_token: bool = True

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        signature = raw.headers.get(SIGNATURE_HEADER, "").strip().lower()
        # Without a configured secret a signature proves nothing (anyone can sign with an empty
        # key): such a source accepts only requests that carry its token.
        if not signature or not source.secret_value("secret").strip():
            try:
                check_token(raw, source)
            except Unauthorized as exc:
                raise type(exc)(  # no token at all stays MissingCredentials
                    f"unsigned Webflow request (no {SIGNATURE_HEADER}): webhooks made in site settings"
                    f" must carry the source's token; {exc.reason}"
                ) from None
            return
        stamp = raw.headers.get(TIMESTAMP_HEADER, "").strip()
        try:
            sent_at = datetime.fromtimestamp(int(stamp) / 1000, UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise Unauthorized(f"{TIMESTAMP_HEADER} is missing or not unix milliseconds") from exc
        secret = source.secret_value("secret").encode()
        expected = hmac.new(secret, stamp.encode() + b":" + raw.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise Unauthorized(f"{SIGNATURE_HEADER} does not match the body and the source's secret")
        if abs(now - sent_at) > TOLERANCE:
            raise Unauthorized(f"{TIMESTAMP_HEADER} is more than 5 minutes away from the server's clock")

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        body = raw.json()
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object")
        if "triggerType" in body or "payload" in body:
            trigger = body.get("triggerType")
            if trigger not in (None, "form_submission"):
                return ParseResult(
                    note=f"ignored triggerType {quoted(trigger)}: only form_submission makes a touch"
                )
            payload = body.get("payload")
            if not isinstance(payload, dict):
                raise BadRequest("expected a 'payload' object")
            submission_id, submitted_at = payload.get("id"), payload.get("submittedAt")
            meta = {
                "form": payload.get("name"),
                "site_id": payload.get("siteId"),
                "form_id": payload.get("formId"),
            }
        else:  # legacy v1: {name, site, data, d, _id}
            payload = body
            submission_id, submitted_at = body.get("_id"), body.get("d")
            meta = {"form": body.get("name"), "site_id": body.get("site")}
        data = payload.get("data")
        if not isinstance(data, dict):
            raise BadRequest("expected a 'data' object with the form's fields")
        if not submission_id:
            raise BadRequest("the submission has no id ('payload.id', or '_id' in v1)")
        fields: MultiDict[str] = MultiDict((str(k), _text(v)) for k, v in data.items())
        extra = source.field_map
        numbers = {_text(v): _from_number(v) for v in data.values() if _is_number(v)}
        phones = [numbers.get(p, p) for p in pick(fields, "phone", extra.get("phone", ()))]
        emails = pick(fields, "email", extra.get("email", ()))
        if not phones and not emails:
            raise BadRequest(
                "no phone or email in the form data: label the inputs Phone/Email,"
                " or map the labels with field_map in the source's config"
            )
        messages = pick(fields, "message", extra.get("message", ()))
        return ParseResult(
            events=[
                ContactEvent(
                    channel="form",
                    external_id=f"webflow:{submission_id}",
                    occurred_at=time_of(submitted_at, "submittedAt"),
                    phones=tuple(phones),
                    emails=tuple(emails),
                    name=name_of(fields, extra.get("name", ())),
                    message="\n".join(messages) or None,
                    utm=utm_of(fields),
                    fields={**{k: v for k, v in meta.items() if v}, **data},
                )
            ]
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _from_number(value: int | float) -> str:
    """A phone sent as a JSON number lost its ``+``: put back only for 11 digits or more, where a
    national number is unlikely."""
    return international(_text(value), min_digits=11)


PROVIDER = Webflow()
