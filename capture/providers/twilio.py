"""Twilio Programmable Voice: the voice webhook, status callbacks and the ``<Dial>`` action.

Every request is checked with the official ``twilio.request_validator.RequestValidator`` against
``X-Twilio-Signature``: Twilio signs the public URL it called (scheme, host, path and query; the
validator accepts it with and without the port) plus the sorted form parameters. ``raw.url`` is
that URL rebuilt from ``[http] public_url``, which is why the config must hold the address Twilio
sees.

* ``/voice`` (or the bare source URL): a call came in. It rings the call's touch, and the answer
  is TwiML that forwards the call to the source's ``forward_to`` with
  ``<Dial action="…/dial-action">``, so we hear how the forwarded leg ended. A source with a
  ``token`` gets it in the action's query too: Twilio requests the action URL exactly as written,
  and without the token that request would be refused and the call left looking answered.
* ``/dial-action``: ``DialCallStatus`` settles an inbound call: ``completed`` is answered,
  anything else (no-answer, busy, failed, canceled) is missed: the parent call itself was
  answered by our TwiML, so only the dialled leg says whether a person picked up. The answer is an
  empty ``<Response/>``, which ends the call. A ``📞 Call back`` (capture/dial/twilio.py) reports
  here too: its parent is the REST call to the staff member (``Direction=outbound-api``, ``To``
  their phone), and the action URL's ``callback_to`` names the client it dialled, so the touch is
  the office's outgoing call to the client, answered when the client's leg was.
* ``/status``: status callbacks. ``completed`` with ``CallDuration > 0`` is answered;
  ``no-answer``, ``busy``, ``failed``, ``canceled`` are missed; both are final. Earlier statuses
  move the call along. ``RecordingUrl`` becomes the touch's recording.

Which event decides: the dial action is given a seq above any status callback's
``SequenceNumber``, so under ``storage/calls.py``'s rules it corrects the parent call's
"completed" whichever arrives first, and the status callback then only fills blanks (duration,
recording).

``From`` is the outside party on inbound calls and ``To`` on outbound ones (``client:`` and
``sip:`` parties are hidden callers); ``To`` of an inbound call is our number, so it is the
tracking number. Event keys are ``{CallSid}:{CallStatus or DialCallStatus}:{path}``.

Hedges (FORMATS.md §1.3): the status-callback extras (``CallDuration``, ``Recording*``,
``Timestamp``, ``SequenceNumber``) are VERIFIED-2nd, ``DialCallSid``/``DialCallDuration`` were not
re-read; each is optional here (a missing ``Timestamp`` means "now"). Child legs of our own
``<Dial>`` (``Direction=outbound-dial`` with a ``ParentCallSid``) are not calls of their own:
they are journalled with a note. ``I-Twilio-Idempotency-Token`` is UNVERIFIED and not used; the
event key makes retries no-ops.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from multidict import MultiDict

from capture.providers.base import (
    BadRequest,
    CallEvent,
    MissingCredentials,
    ParseResult,
    RawRequest,
    Reply,
    Unauthorized,
    quoted,
)
from leadline.config import SourceConfig
from storage.events import CallDirection, CallStatus

if TYPE_CHECKING:  # the twilio package is imported where a request needs it, not by every process
    from twilio.twiml.voice_response import VoiceResponse

#: The query parameter of a call-back's dial action that names the client dialled (E.164 digits).
CALLBACK_TO = "callback_to"
#: The dial action outranks every status callback (their SequenceNumber counts from 0).
DIAL_ACTION_SEQ = 1_000_000
MISSED = frozenset({"no-answer", "busy", "failed", "canceled"})
PROGRESS: dict[str, CallStatus] = {
    "queued": "ringing",
    "initiated": "ringing",
    "ringing": "ringing",
    "in-progress": "answered",
}
VOICE_PATHS = ("", "/voice")


@dataclass(frozen=True)
class Twilio:
    methods: frozenset[str] = frozenset({"GET", "POST"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        from twilio.request_validator import RequestValidator

        signature = raw.headers.get("X-Twilio-Signature", "")
        if not signature:
            raise MissingCredentials("missing X-Twilio-Signature header")
        params = _body_params(raw)
        if not RequestValidator(source.secret_value("auth_token")).validate(raw.url, params, signature):
            raise Unauthorized(
                f"X-Twilio-Signature does not match {quoted(raw.url.split('?', 1)[0])}: check auth_token, and that"
                " [http] public_url is the address Twilio calls"
            )

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        params = _params(raw)
        path = raw.path.rstrip("/")
        call_sid = params.get("CallSid", "").strip()
        if not call_sid:
            raise BadRequest("no CallSid: this is not a Twilio voice request")
        if path in VOICE_PATHS:
            return ParseResult(
                events=[_voice(call_sid, params, path, raw, source)], reply=_forward(raw, source)
            )
        if path == "/dial-action":
            return ParseResult(events=[_dial_action(call_sid, params, path, raw, source)], reply=_twiml())
        if path == "/status":
            if params.get("Direction") == "outbound-dial" and params.get("ParentCallSid"):
                return ParseResult(note="a leg of a forwarded call; its parent call is the touch")
            return ParseResult(events=[_status(call_sid, params, path, raw, source)])
        raise BadRequest(f"unknown Twilio path {quoted(raw.path)}: use /voice, /status or /dial-action")


def _body_params(raw: RawRequest) -> MultiDict[str]:
    """What Twilio signs besides the URL: the POST form (a GET's parameters are in the URL)."""
    if raw.method == "GET" or not raw.body:
        return MultiDict()
    return raw.form()


def _params(raw: RawRequest) -> MultiDict[str]:
    return raw.query if raw.method == "GET" else _body_params(raw)


def _twiml(response: VoiceResponse | None = None) -> Reply:
    from twilio.twiml.voice_response import VoiceResponse

    return Reply(200, str(response or VoiceResponse()).encode("utf-8"), "text/xml")


def _forward(raw: RawRequest, source: SourceConfig) -> Reply:
    """TwiML that rings ``forward_to`` and reports the outcome to our dial action."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.dial(source.forward_to, action=dial_action_url(_base_url(raw), source), method="POST")
    return _twiml(response)


def dial_action_url(hooks_url: str, source: SourceConfig, **query: str) -> str:
    """``<hooks_url>/dial-action`` with ``query``, and the source's ``token`` when it has one: only
    that request says whether a person picked up, and a token source refuses it without the token."""
    token = source.secret_value("token")
    params = {**query, "token": token} if token else query
    return f"{hooks_url}/dial-action" + (f"?{urlencode(params)}" if params else "")


def _base_url(raw: RawRequest) -> str:
    """``<public_url>/hooks/<source>``: the request's public URL without its tail and query."""
    url = raw.url.split("?", 1)[0]
    return url[: len(url) - len(raw.path)] if raw.path and url.endswith(raw.path) else url


def _direction(params: MultiDict[str]) -> CallDirection:
    return "out" if params.get("Direction", "inbound").startswith("outbound") else "in"


def _base(
    call_sid: str, params: MultiDict[str], key: str, raw: RawRequest, source: SourceConfig
) -> CallEvent:
    direction = _direction(params)
    return CallEvent(
        call_id=call_sid,
        event_key=f"{call_sid}:{key}",
        direction=direction,
        status="ringing",
        caller=params.get("From" if direction == "in" else "To", ""),
        occurred_at=_timestamp(params.get("Timestamp", "")) or raw.received_at,
        tracking_number=(params.get("To") or None) if direction == "in" else None,
        line=params.get("To" if direction == "in" else "From") or None,
        region=source.region,
        fields=dict(params.items()),
    )


def _voice(
    call_sid: str, params: MultiDict[str], path: str, raw: RawRequest, source: SourceConfig
) -> CallEvent:
    status = params.get("CallStatus", "ringing")
    return _base(call_sid, params, f"{status}:{path or '/voice'}", raw, source)


def _dial_action(
    call_sid: str, params: MultiDict[str], path: str, raw: RawRequest, source: SourceConfig
) -> CallEvent:
    dial_status = params.get("DialCallStatus", "").strip()
    if not dial_status:
        raise BadRequest("dial action without DialCallStatus")
    answered = dial_status == "completed"
    talk = _seconds(params, "DialCallDuration")
    event = _base(call_sid, params, f"{dial_status}:{path}", raw, source)
    callback_to = raw.query.get(CALLBACK_TO, "").strip()
    if callback_to and event.direction == "out":
        # Our call-back: the REST call rang the staff member (``To``); the dialled leg was the client.
        if not callback_to.isdigit():
            raise BadRequest(f"{CALLBACK_TO} is not a number's digits: {quoted(callback_to)}")
        event = replace(event, caller=f"+{callback_to}")
    return replace(
        event,
        status="answered" if answered else "missed",
        final=True,
        answered=answered,
        seq=DIAL_ACTION_SEQ,
        duration_s=talk if talk is not None else (None if answered else 0),
        talk_s=talk if talk is not None else (None if answered else 0),
    )


def _status(
    call_sid: str, params: MultiDict[str], path: str, raw: RawRequest, source: SourceConfig
) -> CallEvent:
    status = params.get("CallStatus", "").strip()
    if not status:
        raise BadRequest("status callback without CallStatus")
    event = _base(call_sid, params, f"{status}:{path}", raw, source)
    seq = _seconds(params, "SequenceNumber")
    recording = params.get("RecordingUrl") or None
    duration = _seconds(params, "CallDuration")
    if status == "completed" or status in MISSED:
        answered = status == "completed" and (duration or 0) > 0
        return replace(
            event,
            status="answered" if answered else "missed",
            final=True,
            answered=answered,
            seq=seq,
            duration_s=duration if duration is not None else 0,
            recording=recording,
        )
    if status not in PROGRESS:
        raise BadRequest(f"unknown CallStatus {quoted(status)}")
    return replace(
        event,
        status=PROGRESS[status],
        seq=seq,
        recording=recording,
        answered=True if PROGRESS[status] == "answered" else None,
    )


def _seconds(params: MultiDict[str], name: str) -> int | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise BadRequest(f"{name} is not a whole number: {quoted(value)}") from exc


def _timestamp(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


PROVIDER = Twilio()
