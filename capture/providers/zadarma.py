"""Zadarma (and Novofon API v1, the same wire format): PBX call notifications.

Saving the notification URL in Zadarma sends ``?zd_echo=<random>``; the value goes back verbatim
as text (no signature: Zadarma sends none for it, and echoing it reveals nothing). Every other
request is a form POST whose ``event`` field names it, signed in the ``Signature`` header as
``base64(hex(HMAC-SHA1(api_secret, fields)))``: base64 of the 40-character hex digest, which is
what PHP's ``hash_hmac`` returns, not of the raw digest. The signed fields depend on the event
(``SIGNED_FIELDS``); the check is constant-time.

``pbx_call_id`` is the call's identity across its notifications (the touch). NOTIFY_START opens
an inbound call; NOTIFY_INTERNAL is that same inbound call being put through to extension
``internal`` (the official library's docblock: caller_id, called_did, extension), so it rings
the call and names the extension instead of being a call of its own; NOTIFY_ANSWER answers;
NOTIFY_END settles it (answered iff ``disposition == "answered"`` and ``duration`` is not 0:
FORMATS §1.2 counts a zero-second call as missed). NOTIFY_OUT_START and
NOTIFY_OUT_END are an outbound call, whose outside party is ``destination``. NOTIFY_RECORD brings
``call_id_with_rec``, the id the API downloads the recording by. ``called_did`` is the number
dialled, so it is the tracking number. The answer is an empty 200 for every event: a NOTIFY_START
reply may carry routing commands, and we route nothing.

Hedges (FORMATS.md §1.2 marks these UNVERIFIED):

* ``call_start`` is ``YYYY-MM-DD HH:MM:SS`` with no zone, and whether it is the account's zone or
  UTC is unverified. It is read in the source's ``timezone`` (default: ``[leadline] timezone``),
  the zone a Zadarma account is normally set to; a late or replayed notification therefore keeps
  its real start time. A wall time the zone shows twice (the hour repeated when the clocks go
  back) is the one nearest the request's arrival less ``duration``. Only without any zone is the
  offset inferred from when the request came (less ``duration`` for end events), to the nearest
  15 minutes.
* ``pbx_call_id`` shapes (``in_…``/``out_…``): used only to guess the direction of NOTIFY_ANSWER
  and NOTIFY_RECORD (``out_`` means outbound); the end events settle the direction anyway.
* ``duration`` on NOTIFY_END: whether it includes ringing is unknown, so ``talk_s`` is only set
  (to 0) for calls not answered.
* Retry policy is unknown; each event has a key (``{event}:{pbx_call_id}``, plus the extension
  for NOTIFY_INTERNAL/NOTIFY_ANSWER and the recording id for NOTIFY_RECORD), so retries are no-ops.
* Zadarma's signature covers only the fields above, not ``pbx_call_id``, ``disposition``,
  ``duration`` or ``internal``: a captured request could be altered in those and still verify.
  What the scheme allows is bound (``_bindings``): the signed fields belong to the first
  ``pbx_call_id`` they came with, so a captured notification cannot become a new call. A forged
  disposition for the same call is beyond the signature: the source's ``token`` and ``allow_ips``
  guard against that (the official example checks ``185.45.152.42``, UNVERIFIED as current).
* Novofon's newer "2.0" API is a different format (UNVERIFIED, not read): only API v1 is parsed.
* ``call_id_with_rec`` is stored as given; its shape in the samples is UNVERIFIED, and nothing
  here depends on it.
* Events this module does not know (NOTIFY_SMS, speech recognition…) have no documented signed
  string: they are journalled with a note and carry no event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from multidict import MultiDict

from capture.providers.base import (
    BadRequest,
    Binding,
    CallEvent,
    MissingCredentials,
    ParseResult,
    RawRequest,
    Reply,
    Unauthorized,
    quoted,
)
from leadline.config import SourceConfig
from storage.identifiers import international, is_hidden_caller, phone
from storage.local_time import instant_near

#: The fields each event's signature covers, concatenated in this order.
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "NOTIFY_START": ("caller_id", "called_did", "call_start"),
    "NOTIFY_INTERNAL": ("caller_id", "called_did", "call_start"),
    "NOTIFY_END": ("caller_id", "called_did", "call_start"),
    "NOTIFY_IVR": ("caller_id", "called_did", "call_start"),
    "NOTIFY_ANSWER": ("caller_id", "destination", "call_start"),
    "NOTIFY_OUT_START": ("internal", "destination", "call_start"),
    "NOTIFY_OUT_END": ("internal", "destination", "call_start"),
    "NOTIFY_RECORD": ("pbx_call_id", "call_id_with_rec"),
}

_OFFSET_STEP = timedelta(minutes=15)
_MIN_OFFSET, _MAX_OFFSET = timedelta(hours=-12), timedelta(hours=14)
_MATCH_WITHIN = timedelta(hours=1)


@dataclass(frozen=True)
class Zadarma:
    methods: frozenset[str] = frozenset({"GET", "POST"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        fields = _fields(raw)
        if _echo(raw, fields) is not None:
            return
        event = fields.get("event", "")
        signed = SIGNED_FIELDS.get(event)
        if signed is None:
            return  # parse journals it with a note and makes no event of it
        given = raw.headers.get("Signature", "").strip()
        if not given:
            raise MissingCredentials(
                "missing Signature header: set an API key and secret in the Zadarma account"
            )
        message = _signed_string(signed, fields)
        digest = hmac.new(source.secret_value("api_secret").encode(), message.encode("utf-8"), hashlib.sha1)
        expected = base64.b64encode(digest.hexdigest().encode())
        if not hmac.compare_digest(given.encode(), expected):
            raise Unauthorized(f"Signature does not match {event}'s fields ({' + '.join(signed)})")

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        fields = _fields(raw)
        echo = _echo(raw, fields)
        if echo is not None:
            return ParseResult(
                reply=Reply(200, echo.encode("utf-8"), "text/plain"), note="zd_echo URL check", unproven=True
            )
        event = fields.get("event", "")
        if not event:
            raise BadRequest("no event field: this is not a Zadarma notification")
        if event not in SIGNED_FIELDS:
            return ParseResult(
                note=f"Zadarma event {quoted(event)} carries no call Leadline records", unproven=True
            )
        call_id = fields.get("pbx_call_id", "").strip()
        if not call_id:
            raise BadRequest(f"{event} without pbx_call_id")
        call = _event(event, call_id, fields, raw.received_at, source)
        return ParseResult(events=[call], bindings=_bindings(event, call, fields))


def _fields(raw: RawRequest) -> MultiDict[str]:
    if raw.method == "GET" or not raw.body:
        return raw.query
    return raw.form()


def _signed_string(signed: tuple[str, ...], fields: MultiDict[str]) -> str:
    return "".join(fields.get(name, "") for name in signed)


def _bindings(event: str, call: CallEvent, fields: MultiDict[str]) -> tuple[Binding, ...]:
    """The signed string belongs to the first ``pbx_call_id`` it came with.

    A captured NOTIFY_START or NOTIFY_END sent again with a new ``pbx_call_id`` verifies, and
    would be a call that never was; so would one whose digits were moved from ``caller_id`` to
    ``called_did`` (the concatenation is what is signed, so the key is too). Only a withheld
    caller is not bound: two of them may ring the same number in the same second.
    """
    signed = SIGNED_FIELDS[event]
    if event != "NOTIFY_RECORD" and _withheld(call, fields):  # NOTIFY_RECORD signs pbx_call_id itself
        return ()
    digest = hashlib.sha256(_signed_string(signed, fields).encode("utf-8")).hexdigest()
    refusal = (
        f"{event}'s signed fields ({' + '.join(signed)}) already came with another pbx_call_id:"
        " a signed notification is not taken for a second call"
    )
    return (Binding(f"zadarma-signed:{digest}", call.call_id, refusal),)


def _withheld(call: CallEvent, fields: MultiDict[str]) -> bool:
    """A withheld caller as a word (``anonymous``), or as nothing beside a real dialled number.

    Moving digits between signed fields never makes a word, and an emptied ``caller_id`` leaves
    its digits in ``called_did``, which is then no valid number.
    """
    outside = call.caller or ""
    if not is_hidden_caller(outside):
        return False
    if outside.strip():
        return True
    dialled = phone(fields.get("called_did", ""), call.region or "")
    return dialled is not None and dialled.valid


def _echo(raw: RawRequest, fields: MultiDict[str]) -> str | None:
    return raw.query.get("zd_echo", fields.get("zd_echo"))


def _event(
    event: str, call_id: str, fields: MultiDict[str], received_at: datetime, source: SourceConfig
) -> CallEvent:
    def text(name: str) -> str:
        return fields.get(name, "").strip()

    def number(name: str) -> str:
        """An outside party: Zadarma writes international digits without their ``+`` (FORMATS §0.5)."""
        return international(text(name))

    internal = text("internal") or None
    did = text("called_did") or None
    duration = _seconds(text("duration"))
    started = (
        _call_start(text("call_start"), received_at, duration, source.timezone)
        if text("call_start")
        else None
    )
    base = CallEvent(
        call_id=call_id,
        event_key=f"{event}:{call_id}",
        direction="out" if call_id.startswith("out_") else "in",
        status="ringing",
        occurred_at=started or received_at,
        started_at=started,
        extension=internal,
        region=source.region,
        fields=dict(fields.items()),
    )
    if event in ("NOTIFY_START", "NOTIFY_IVR", "NOTIFY_INTERNAL"):
        key = f"{event}:{call_id}:{internal}" if event == "NOTIFY_INTERNAL" else base.event_key
        return replace(
            base, event_key=key, direction="in", caller=number("caller_id"), tracking_number=did, line=did
        )
    if event == "NOTIFY_ANSWER":
        outside = number("destination") if base.direction == "out" else number("caller_id")
        key = f"{event}:{call_id}:{text('destination')}"
        return replace(base, event_key=key, status="answered", answered=True, caller=outside)
    if event == "NOTIFY_OUT_START":
        return replace(base, direction="out", caller=number("destination"))
    if event in ("NOTIFY_END", "NOTIFY_OUT_END"):
        outbound = event == "NOTIFY_OUT_END"
        answered = text("disposition").lower() == "answered" and duration != 0
        recorded = text("is_recorded") == "1" and bool(text("call_id_with_rec"))
        return replace(
            base,
            direction="out" if outbound else "in",
            status="answered" if answered else "missed",
            final=True,
            answered=answered,
            caller=number("destination") if outbound else number("caller_id"),
            # ``duration`` is the talk alone (0 for a missed call): the call ended when Zadarma
            # said so, which is what the short-call rule measures (ringing included).
            ended_at=max(received_at, started + timedelta(seconds=duration or 0)) if started else None,
            duration_s=duration,
            talk_s=None if answered else 0,
            tracking_number=None if outbound else did,
            line=None if outbound else did,
            recording=text("call_id_with_rec") if recorded else None,
        )
    recording = text("call_id_with_rec")
    if not recording:
        raise BadRequest("NOTIFY_RECORD without call_id_with_rec")
    return replace(base, event_key=f"{event}:{call_id}:{recording}", status="recording", recording=recording)


def _seconds(value: str) -> int | None:
    if not value:
        return None
    try:
        return max(int(float(value)), 0)
    except ValueError as exc:
        raise BadRequest(f"duration is not a number of seconds: {quoted(value)}") from exc


def _call_start(value: str, received_at: datetime, duration: int | None, zone: str | None) -> datetime:
    """``call_start`` as an instant: local time of the account's zone, else a zone inferred."""
    try:
        wall = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise BadRequest(f"call_start is not YYYY-MM-DD HH:MM:SS: {quoted(value)}") from exc
    expected = received_at - timedelta(seconds=duration or 0)
    if zone:
        # The hour a clock turned back repeats: the call is the 02:30 nearest when it can have begun.
        return instant_near(wall, ZoneInfo(zone), expected)
    wall = wall.replace(tzinfo=UTC)
    offset = round((wall - expected) / _OFFSET_STEP) * _OFFSET_STEP
    if _MIN_OFFSET <= offset <= _MAX_OFFSET and abs(wall - offset - expected) <= _MATCH_WITHIN:
        return wall - offset
    return wall


PROVIDER = Zadarma()
