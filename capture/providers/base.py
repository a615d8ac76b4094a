"""The contract between the webhook server and one provider's module.

A provider module (``capture/providers/<provider>.py``) exposes ``PROVIDER``, an object with
``verify`` and ``parse``. Both work on a :class:`RawRequest`, which is exactly what the journal
keeps, so a rejected request can be parsed again by ``leadline replay`` once the parser is fixed.
Parsing is pure: it turns bytes into events and the provider's required answer, and never touches
the database; storing the events is the capture pipeline's job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict
from yarl import query_to_pairs

from storage.events import CallEvent, ContactEvent, Event, ReplyEvent
from storage.records import record

if TYPE_CHECKING:
    from capture.addresses import OurAddresses
    from leadline.config import SourceConfig

__all__ = [
    "MAX_DEPTH",
    "BadRequest",
    "Binding",
    "CallEvent",
    "ContactEvent",
    "Event",
    "Forbidden",
    "MissingCredentials",
    "ParseResult",
    "Provider",
    "ProviderError",
    "RawRequest",
    "ReadsMail",
    "Reply",
    "ReplyEvent",
    "Unauthorized",
    "loads",
    "make_headers",
    "quoted",
]

#: JSON (or a form's bracketed keys) nested deeper than this is refused: no provider nests past a
#: handful of levels, and deeper input only exhausts the recursion of the parser or the encoder.
MAX_DEPTH = 32

#: How much of a sender's value a rejection reason quotes: enough to recognise it, and no more,
#: since the reason is sent back, journalled and logged.
QUOTE_CHARS = 200


class ProviderError(Exception):
    """A request the provider module refuses; the message is sent back to the caller."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadRequest(ProviderError):
    """The body cannot be parsed or lacks a required field (HTTP 400, journalled as rejected)."""

    status = 400


def quoted(value: object, limit: int = QUOTE_CHARS) -> str:
    """A sender's value as a reason quotes it: ``'+7 916…'``, cut to ``limit`` characters, with its length.

    A 40 000-letter field must not become a 40 000-letter reason in the response, the journal and
    the log; the length says how much was sent.
    """
    if not isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"
    return repr(value) if len(value) <= limit else f"{value[:limit] + '…'!r} ({len(value)} characters)"


class Unauthorized(ProviderError):
    """The signature, token or key is missing or wrong (HTTP 401, journalled as rejected)."""

    status = 401


class MissingCredentials(Unauthorized):
    """None of the token, signature or key the source expects is there (HTTP 401).

    Anyone who knows the URL can send such a request, so it says nothing about whether the source's
    provider is set up right: source health does not count it as a failure (storage/source_health.py).
    """


class SourceUnavailable(Exception):
    """A source that listens by itself (SMTP) cannot start; the message names it and what to do.

    ``leadline serve`` prints it as one line and exits 4, as for its own HTTP port."""


class Forbidden(ProviderError):
    """The request came from an address the source does not take requests from (HTTP 403)."""

    status = 403


@record
class RawRequest:
    """One inbound request as the journal keeps it.

    ``path`` is what follows ``/hooks/<source>`` (``/events/summary`` for Mango, ``""`` for most).
    ``url`` is the public URL the provider called (``[http] public_url`` + path + query), which
    Twilio signs. Headers that carry secrets are redacted before the journal stores them, so
    ``verify`` runs on the live request and ``parse`` must not need those headers.
    """

    source: str
    method: str
    path: str
    query_string: str
    headers: CIMultiDictProxy[str]
    body: bytes
    received_at: datetime
    url: str = ""
    remote: str | None = None

    @property
    def query(self) -> MultiDict[str]:
        return MultiDict(query_to_pairs(self.query_string))

    def form(self) -> MultiDict[str]:
        """The body's urlencoded fields."""
        return MultiDict(query_to_pairs(self.text()))

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    def text(self) -> str:
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(f"body is not valid UTF-8 (byte {exc.start})") from exc

    def json(self) -> Any:
        """The body as JSON; a body that is not JSON is the sender's error, not ours."""
        return loads(self.body)


def loads(data: bytes | str, what: str = "body") -> Any:
    """JSON a sender wrote; not JSON, or nested deeper than :data:`MAX_DEPTH`, is their error."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise BadRequest(f"{what} is JSON nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}") from exc
    if _deeper_than(value, MAX_DEPTH):
        raise BadRequest(f"{what} is JSON nested deeper than {MAX_DEPTH} levels")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Level by level rather than recursively, so that measuring costs no stack."""
    level, depth = [value], 0
    while level:
        containers = [v for v in level if isinstance(v, dict | list)]
        if not containers:
            return False
        depth += 1
        if depth > limit:
            return True
        level = [child for c in containers for child in (c.values() if isinstance(c, dict) else c)]
    return False


def make_headers(pairs: Mapping[str, str] | Sequence[tuple[str, str]]) -> CIMultiDictProxy[str]:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return CIMultiDictProxy(CIMultiDict(items))


@record
class Reply:
    """What the provider must get back once the request is journalled."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


@dataclass(frozen=True, slots=True)
class Binding:
    """What a signature that covers only some fields cannot prove: which event the signed fields
    belong to. The first processed request of a source binds ``key`` to ``value``; a later one
    that brings the same key with another value is refused with ``refusal`` (HTTP 401).
    """

    key: str
    value: str
    refusal: str


@record
class ParseResult:
    """The events a request carries and the answer the provider expects.

    ``note`` says why a request carries no event (``"test ping"``), for the journal and replay.
    ``bindings`` tie a weak signature to the event it came with (Zadarma's to its ``pbx_call_id``).
    ``unproven`` marks an answer given to a request that proved nothing about its sender (Zadarma's
    URL check, an event no signature covers): it carries no event, and the journal keeps only the
    start of its body, as for a refused one, so that anyone's megabytes do not fill the disk.
    """

    events: Sequence[Event] = ()
    reply: Reply = Reply()
    note: str | None = None
    bindings: Sequence[Binding] = ()
    unproven: bool = False


class Provider(Protocol):
    """What every module under ``capture/providers/`` exposes as ``PROVIDER``.

    A source's ``token`` and ``allow_ips`` are checked before ``verify``
    (``capture.providers.auth.check_access``), except the token of a provider that sets
    ``verifies_token = True`` because it reads the token in its own way (an alternative to it, or
    only for unsigned requests).
    """

    #: HTTP methods the provider uses; any other gets 405.
    methods: frozenset[str]

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        """Raise :class:`Unauthorized` unless the request carries a valid signature or secret."""

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        """Turn the request into events, or raise :class:`BadRequest` saying what is wrong."""


class ReadsMail(Protocol):
    """A provider whose requests are mail, marked ``reads_mail = True``.

    Whether a mail is from a customer or from the business itself depends on the business's own
    addresses, which only the whole config knows; the pipeline passes them to ``parse``.
    """

    reads_mail: bool

    def parse(self, raw: RawRequest, source: SourceConfig, *, ours: OurAddresses) -> ParseResult:
        """:meth:`Provider.parse`, knowing which senders are the business itself."""


class ReplayGuarded(Protocol):
    """A provider whose signature includes a one-time token that must not be accepted twice."""

    def replay_key(self, raw: RawRequest) -> str | None:
        """The token that a second request must not reuse (Mailgun's ``token``)."""


class AccountBound(Protocol):
    """A provider whose requests come through a connection some account made (Telegram Business):
    the pipeline takes them only from the staff's accounts or the source's ``accounts`` (HTTP 403
    otherwise), whatever the body parses to, live or replayed."""

    def account(self, raw: RawRequest) -> int | None:
        """The account the request came through; None when nothing says (then it is not judged)."""
