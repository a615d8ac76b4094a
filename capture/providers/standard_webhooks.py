"""Signed JSON per the Standard Webhooks spec, verified with the ``standardwebhooks`` package.

The package signs with the secret; the time window is checked here against the server's clock
(passed in, so tests can freeze it), and any signature in the space-separated list may match,
which is how the sender rotates keys.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from standardwebhooks.webhooks import Webhook

from capture.forms import time_of
from capture.providers.base import (
    BadRequest,
    ContactEvent,
    MissingCredentials,
    ParseResult,
    RawRequest,
    Unauthorized,
)
from leadline.config import SourceConfig

TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class StandardWebhooks:
    methods: frozenset[str] = frozenset({"POST"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        msg_id = raw.headers.get("webhook-id", "")
        stamp = raw.headers.get("webhook-timestamp", "")
        signatures = raw.headers.get("webhook-signature", "")
        if not (msg_id and stamp and signatures):
            raise MissingCredentials("missing webhook-id, webhook-timestamp or webhook-signature header")
        try:
            sent_at = datetime.fromtimestamp(int(stamp), UTC)
        except (ValueError, OverflowError) as exc:
            raise Unauthorized("webhook-timestamp is not unix seconds") from exc
        if abs(now - sent_at) > TOLERANCE:
            raise Unauthorized("webhook-timestamp is outside the 5-minute window")
        try:
            expected = Webhook(source.secret_value("secret")).sign(msg_id, sent_at, raw.text())
        except BadRequest as exc:
            raise Unauthorized(exc.reason) from exc
        expected_sig = expected.split(",", 1)[1].encode()
        for candidate in signatures.split(" "):
            version, _, sig = candidate.partition(",")
            if version == "v1" and hmac.compare_digest(sig.encode(), expected_sig):
                return
        raise Unauthorized("no webhook-signature matches")

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        body = raw.json()
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise BadRequest("expected a JSON object with a 'data' object")
        data: dict[str, Any] = body["data"]
        phones = tuple(str(data[k]) for k in ("phone", "phone_number", "mobile") if data.get(k))
        emails = tuple(str(data[k]) for k in ("email",) if data.get(k))
        if not phones and not emails:
            raise BadRequest("data has neither 'phone' nor 'email'")
        occurred = time_of(body.get("timestamp"), "timestamp")
        utm = {k: str(v) for k, v in data.items() if k.startswith("utm_") and v}
        return ParseResult(
            events=[
                ContactEvent(
                    channel=_channel(body.get("type")),
                    external_id=raw.headers.get("webhook-id", ""),
                    occurred_at=occurred,
                    phones=phones,
                    emails=emails,
                    name=str(data["name"]) if data.get("name") else None,
                    message=str(data["message"]) if data.get("message") else None,
                    utm=utm,
                    fields={"type": body.get("type"), **data},
                )
            ]
        )


def _channel(event_type: object) -> Any:
    text = str(event_type or "")
    if text.startswith("email"):
        return "email"
    return "form"


PROVIDER = StandardWebhooks()
