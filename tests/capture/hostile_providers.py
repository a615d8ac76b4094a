"""Every HTTP provider as the property suite drives it: its source, its ids, its real signing scheme.

The signing is written here from FORMATS.md (and Twilio's own validator, as Twilio's docs say to
use it), not borrowed from the modules under test, so a request signed here is one the provider
itself would send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode

from multidict import MultiDict
from twilio.request_validator import RequestValidator

from tests.capture.hostile import (
    NOW,
    Case,
    Compress,
    ContentType,
    Doc,
    IdempotencyKey,
    Raw,
    Wire,
    compress,
    encode,
    fresh,
    load,
)
from tests.samples import PUBLIC_URL, Sample, by_provider

TOKEN = "hostile-token-0001"


def _secret(provider: str, key: str) -> str:
    return next(s.secrets[key] for s in by_provider(provider) if key in s.secrets)


MANGO_KEY, MANGO_SALT = _secret("mango", "vpbx_api_key"), _secret("mango", "vpbx_api_salt")
ZADARMA_SECRET = _secret("zadarma", "api_secret")
TWILIO_TOKEN = _secret("twilio", "auth_token")
TYPEFORM_SECRET = _secret("typeform", "secret")
WEBFLOW_SECRET = _secret("webflow", "secret")
STD_SECRET = _secret("standard_webhooks", "secret")
MAILGUN_KEY = _secret("mailgun", "webhook_signing_key")
WA_SECRET, WA_VERIFY = _secret("whatsapp", "app_secret"), _secret("whatsapp", "verify_token")
VK_SECRET, VK_CONFIRMATION = _secret("vk", "secret"), _secret("vk", "confirmation")

#: What each Zadarma event's signature covers (FORMATS.md §1.2).
ZADARMA_SIGNED = {
    "NOTIFY_START": ("caller_id", "called_did", "call_start"),
    "NOTIFY_INTERNAL": ("caller_id", "called_did", "call_start"),
    "NOTIFY_END": ("caller_id", "called_did", "call_start"),
    "NOTIFY_IVR": ("caller_id", "called_did", "call_start"),
    "NOTIFY_ANSWER": ("caller_id", "destination", "call_start"),
    "NOTIFY_OUT_START": ("internal", "destination", "call_start"),
    "NOTIFY_OUT_END": ("internal", "destination", "call_start"),
    "NOTIFY_RECORD": ("pbx_call_id", "call_id_with_rec"),
}

Headers = dict[str, str]


def _hmac(key: bytes, message: bytes, digest: str = "sha256") -> hmac.HMAC:
    return hmac.new(key, message, digest)


def token_headers(wire: Wire, n: int) -> Headers:
    return {"X-Leadline-Token": TOKEN}


def typeform_headers(wire: Wire, n: int) -> Headers:
    digest = _hmac(TYPEFORM_SECRET.encode(), wire.body).digest()
    return {"Typeform-Signature": "sha256=" + base64.b64encode(digest).decode()}


def webflow_headers(wire: Wire, n: int) -> Headers:
    stamp = str(int(NOW.timestamp() * 1000))
    signature = _hmac(WEBFLOW_SECRET.encode(), stamp.encode() + b":" + wire.body).hexdigest()
    return {"x-webflow-timestamp": stamp, "x-webflow-signature": signature}


def standard_headers(wire: Wire, n: int) -> Headers:
    msg_id, stamp = f"msg_hostile_{n}", str(int(NOW.timestamp()))
    key = base64.b64decode(STD_SECRET.removeprefix("whsec_"))
    signature = base64.b64encode(_hmac(key, f"{msg_id}.{stamp}.".encode() + wire.body).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": f"v1,{signature}"}


def _fields(body: bytes) -> MultiDict[str]:
    """The form as the server reads it (bad bytes as U+FFFD: then it refuses the body anyway)."""
    return MultiDict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def twilio_headers(wire: Wire, n: int) -> Headers:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(
        f"{PUBLIC_URL}{wire.path}", _fields(wire.body)
    )
    return {"X-Twilio-Signature": signature}


def zadarma_headers(wire: Wire, n: int) -> Headers:
    fields = _fields(wire.body)
    signed = ZADARMA_SIGNED.get(fields.get("event", ""))
    if signed is None:
        return {}  # Zadarma signs only the events it documents
    message = "".join(fields.get(name, "") for name in signed).encode()
    return {
        "Signature": base64.b64encode(
            _hmac(ZADARMA_SECRET.encode(), message, "sha1").hexdigest().encode()
        ).decode()
    }


def whatsapp_headers(wire: Wire, n: int) -> Headers:
    """Meta's ``X-Hub-Signature-256``: hex HMAC-SHA256 of the raw body with the app secret (§8.2)."""
    return {"X-Hub-Signature-256": "sha256=" + _hmac(WA_SECRET.encode(), wire.body).hexdigest()}


def vk_sign(doc: Doc, n: int) -> None:
    """VK's "signature" is the community's secret in the body itself (§8.3)."""
    doc.set(("secret",), VK_SECRET)


def postmark_headers(wire: Wire, n: int) -> Headers:
    return {"Authorization": "Basic " + base64.b64encode(b"user:pass").decode()}


def no_headers(wire: Wire, n: int) -> Headers:
    return {}


def mango_sign(doc: Doc, n: int) -> None:
    """``sign = sha256(key + json + salt)`` over the ``json`` field as the server will decode it."""
    body, _ = encode(doc)
    text = _fields(body).getall("json", [""])[-1]
    doc.set(("sign",), hashlib.sha256((MANGO_KEY + text + MANGO_SALT).encode()).hexdigest())


def mango_wrap(body: bytes, n: int) -> bytes:
    """Arbitrary bytes as Mango's signed ``json`` field: the only place Mango puts content."""
    text = body.decode("utf-8", "replace")
    sign = hashlib.sha256((MANGO_KEY + text + MANGO_SALT).encode()).hexdigest()
    return (
        urlencode({"vpbx_api_key": MANGO_KEY}).encode()
        + f"&sign={sign}&json=".encode()
        + quote_plus(body).encode()
    )


def _mailgun_fields(n: int) -> list[tuple[str, str]]:
    stamp, token = str(int(NOW.timestamp())), f"hostile{n:043d}"
    signature = _hmac(MAILGUN_KEY.encode(), (stamp + token).encode()).hexdigest()
    return [("timestamp", stamp), ("token", token), ("signature", signature)]


def mailgun_sign(doc: Doc, n: int) -> None:
    """A fresh token (Mailgun's are single-use) and the timestamp of the server's clock, signed."""
    for key, value in _mailgun_fields(n):
        doc.set((key,), value)


def mailgun_wrap(body: bytes, n: int) -> bytes:
    return urlencode(_mailgun_fields(n)).encode() + b"&" + body


@dataclass(frozen=True)
class Spec:
    """One provider as the suite sends to it."""

    provider: str
    source: dict[str, Any]
    headers: Callable[[Wire, int], Headers] = token_headers
    #: Signatures carried in the body itself, set on the document after it is mutated.
    sign_doc: Callable[[Doc, int], None] | None = None
    #: The same for arbitrary bytes: put them where the provider signs them.
    wrap: Callable[[bytes, int], bytes] | None = None
    #: Fields the signature covers or the signer writes: mutating them tests the signature only.
    owned: frozenset[str] = frozenset()
    #: Keys whose values identify the event: made unique per example, so no example is a retry.
    ids: frozenset[str] = frozenset()
    #: For providers whose id is in free text (a Message-ID header line).
    id_pattern: re.Pattern[str] | None = None
    #: Fields added to the sample, e.g. an id for forms that have none.
    extra: tuple[tuple[str, str], ...] = ()

    def http_samples(self) -> tuple[Sample, ...]:
        return tuple(s for s in by_provider(self.provider) if s.entry.get("method") == "POST")

    def content_type(self, sample: Sample) -> str:
        return (
            "multipart/form-data; boundary=xYzZY" if load(sample).kind == "parts" else encode(load(sample))[1]
        )


_MESSAGE_ID = re.compile(r"(Message-ID:\s*<)([^>@]+)", re.IGNORECASE)

SPECS: tuple[Spec, ...] = (
    Spec(
        "generic_form",
        {"name": "form", "token": TOKEN},
        ids=frozenset({"submission_id"}),
        extra=(("submission_id", "h"),),
    ),
    Spec("standard_webhooks", {"name": "std", "secret": STD_SECRET}, standard_headers),
    Spec(
        "mango",
        {"name": "mango", "vpbx_api_key": MANGO_KEY, "vpbx_api_salt": MANGO_SALT},
        no_headers,
        mango_sign,
        mango_wrap,
        owned=frozenset({"vpbx_api_key", "sign"}),
        ids=frozenset({"entry_id", "call_id", "recording_id"}),
    ),
    Spec(
        "zadarma",
        {"name": "zadarma", "api_secret": ZADARMA_SECRET},
        zadarma_headers,
        ids=frozenset({"pbx_call_id", "call_id_with_rec"}),
    ),
    Spec(
        "twilio",
        {"name": "twilio", "auth_token": TWILIO_TOKEN, "forward_to": "+74951112233"},
        twilio_headers,
        ids=frozenset({"CallSid"}),
    ),
    Spec(
        "uis_comagic", {"name": "uis", "token": TOKEN}, ids=frozenset({"call_session_id", "communication_id"})
    ),
    Spec(
        "binotel",
        {"name": "binotel", "token": TOKEN, "region": "UA"},
        ids=frozenset({"generalCallID", "callDetails[generalCallID]"}),
    ),
    Spec("freeswitch", {"name": "fs", "token": TOKEN}, ids=frozenset({"uuid", "call_uuid"})),
    Spec("tilda", {"name": "tilda", "token": TOKEN}, ids=frozenset({"tranid"})),
    Spec(
        "typeform",
        {"name": "typeform", "secret": TYPEFORM_SECRET},
        typeform_headers,
        ids=frozenset({"event_id", "token"}),
    ),
    Spec("jotform", {"name": "jotform", "token": TOKEN}, ids=frozenset({"submissionID"})),
    Spec(
        "webflow",
        {"name": "webflow", "secret": WEBFLOW_SECRET, "token": TOKEN},
        webflow_headers,
        ids=frozenset({"id", "_id"}),
    ),
    Spec("google_forms", {"name": "gforms", "token": TOKEN}, ids=frozenset({"response_id"})),
    Spec(
        "elementor",
        {"name": "elementor", "token": TOKEN},
        ids=frozenset({"submission_id"}),
        extra=(("submission_id", "h"),),
    ),
    Spec(
        "mailgun",
        {"name": "mailgun", "webhook_signing_key": MAILGUN_KEY},
        no_headers,
        mailgun_sign,
        mailgun_wrap,
        owned=frozenset({"timestamp", "token", "signature"}),
        ids=frozenset({"Message-Id"}),
    ),
    Spec("sendgrid", {"name": "sendgrid", "token": TOKEN}, id_pattern=_MESSAGE_ID),
    Spec(
        "postmark",
        {"name": "postmark", "username": "user", "password": "pass"},
        postmark_headers,
        ids=frozenset({"MessageID"}),
    ),
    Spec(
        "whatsapp",
        {"name": "whatsapp", "app_secret": WA_SECRET, "verify_token": WA_VERIFY},
        whatsapp_headers,
        ids=frozenset({"id"}),
    ),
    Spec(
        "vk",
        {"name": "vk", "secret": VK_SECRET, "confirmation": VK_CONFIRMATION},
        no_headers,
        vk_sign,
        owned=frozenset({"secret"}),
        ids=frozenset({"event_id"}),
    ),
    Spec("avito", {"name": "avito", "token": TOKEN}, ids=frozenset({"id"})),
)


def sources() -> list[dict[str, Any]]:
    return [{**spec.source, "provider": spec.provider} for spec in SPECS]


def prepared(spec: Spec, sample: Sample, n: int) -> Doc:
    """The sample with its ids made unique to example ``n``: a new event, not a provider's retry."""
    doc = load(sample)
    if doc.kind != "json":
        doc.root += [[k, v] for k, v in spec.extra]
    for path, value in list(doc.leaves()):
        if str(path[-1]) in spec.ids:
            doc.set(path, fresh(value, n))
        elif spec.id_pattern is not None and isinstance(value, str):
            doc.set(path, spec.id_pattern.sub(lambda m: f"{m[1]}{m[2]}-h{n}", value))
    return doc


@dataclass(frozen=True)
class Sent:
    """A request and what the suite knows about it beyond what the server answers."""

    wire: Wire
    #: The body was compressed and cut off: only a refusal is right.
    cut: bool = False


def build(spec: Spec, case: Case, n: int) -> Sent:
    """The case's request: mutated, signed as the provider signs it, then compressed if asked."""
    doc = prepared(spec, case.sample, n)
    for op in case.fields:
        try:
            op.apply(doc, n)
        except (LookupError, TypeError):
            continue  # an earlier mutation took the field away
    if spec.sign_doc is not None:
        spec.sign_doc(doc, n)
    body, content_type = encode(doc)
    wire = Wire("POST", case.sample.path, body, {"Content-Type": content_type})
    wire.headers.update(spec.headers(wire, n))
    for key in (op for op in case.around if isinstance(op, IdempotencyKey)):
        # the example's number keeps it unique: a repeated key is a retry, a no-op by design
        wire.headers["Idempotency-Key"] = f"{header_value(key.value.as_form())} h{n}"
    for parameter in (op for op in case.around if isinstance(op, ContentType)):
        wire.headers["Content-Type"] += f"; charset={header_value(parameter.value.as_form())}"
    how = next((op.how for op in case.around if isinstance(op, Compress)), None)
    if how is not None:
        wire.body, wire.headers["Content-Encoding"] = compress(wire.body, how)
    return Sent(wire, cut=how is not None and "cut" in how)


def header_value(value: object) -> str:
    """What an HTTP client can put in a header: printable, at most 4,000 characters (else the
    server's HTTP parser refuses the request before Leadline sees it)."""
    text = value.data.decode("latin-1") if isinstance(value, Raw) else str(value)
    return "".join(c for c in text if c.isprintable())[:4000] or "-"


def build_bytes(spec: Spec, sample: Sample, body: bytes, signed: bool, n: int) -> Wire:
    """Arbitrary bytes as the body of a request to ``sample``'s URL, signed as the provider would, or not."""
    if signed and spec.wrap is not None:
        body = spec.wrap(body, n)
    content_type = spec.content_type(sample)
    wire = Wire("POST", sample.path, body, {"Content-Type": content_type})
    if signed:
        wire.headers.update(spec.headers(wire, n))
    return wire
