"""Mango Office VPBX (Realtime API): call, summary and recording notifications.

Mango POSTs form fields ``vpbx_api_key``, ``sign`` and ``json`` to ``<our url>/events/<kind>``.
The key must be the source's ``vpbx_api_key`` and ``sign`` must be
``hex(sha256(vpbx_api_key + json + vpbx_api_salt))`` over the ``json`` field exactly as received
(URL-decoded, never re-serialised), both compared in constant time. Mango reads nothing but the
status code from our answer, so every accepted request gets an empty 200.

* ``/events/call``: one call leg changed state. ``entry_id`` is the whole call (it survives
  transfers), so it is the touch; ``seq`` orders the notifications Mango sends in parallel.
* ``/events/summary``: the final record. Missed when ``entry_result == 0`` or ``talk_time == 0``
  (the PDF's own example shows ``entry_result: 1`` with ``talk_time: 0``); ``talk_time`` is the
  moment of answer, so the talk duration is ``end_time - talk_time``.
* ``/events/recording``: a finished recording's ``recording_id`` (Mango sends no URL; the id is
  what the API's download link needs).
* Anything else under ``/events/`` or ``/result/`` (dtmf, sms, command results) is accepted,
  journalled, and carries no event.

Hedges (FORMATS.md §1.1 marks these UNVERIFIED or unclear):

* Retry and timeout policy is undocumented; retries are harmless because every event has a key
  (``summary:{entry_id}``, ``call:{call_id}:{seq}``, ``recording:{recording_id}``).
* The PDF examples send ``timestamp``/``seq`` as strings and as numbers: both are accepted.
* Whether ``seq`` counts per call or per leg is not spelled out; the samples count per call, and
  the summary settles the outcome whatever any seq says, so a wrong guess can only cost an
  intermediate status, never the outcome.
* Newer API versions may add fields; unknown fields are kept in the touch's payload, not rejected.
* Direction of an ``events/call`` leg is inferred (an employee's ``from.extension`` means outbound,
  extensions on both ends mean internal); the summary's ``call_direction`` then settles it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from capture.providers.base import (
    BadRequest,
    CallEvent,
    MissingCredentials,
    ParseResult,
    RawRequest,
    Unauthorized,
    loads,
    quoted,
)
from leadline.config import SourceConfig
from storage.events import CallDirection, CallStatus
from storage.identifiers import international

_STATES: dict[str, CallStatus] = {
    "appeared": "ringing",
    "connected": "answered",
    "onhold": "answered",
    "disconnected": "ended",
}
_DIRECTIONS: dict[int, CallDirection] = {0: "internal", 1: "in", 2: "out"}


@dataclass(frozen=True)
class Mango:
    methods: frozenset[str] = frozenset({"POST"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        fields = _fields(raw)
        key, sign, payload = fields.get("vpbx_api_key", ""), fields.get("sign", ""), fields.get("json")
        if not key or not sign or payload is None:
            raise MissingCredentials("missing vpbx_api_key, sign or json form field")
        expected_key = source.secret_value("vpbx_api_key")
        if not hmac.compare_digest(key.encode(), expected_key.encode()):
            raise Unauthorized("vpbx_api_key is not this source's key")
        salt = source.secret_value("vpbx_api_salt")
        expected = hashlib.sha256((key + payload + salt).encode("utf-8")).hexdigest()
        if not hmac.compare_digest(sign.strip().lower().encode(), expected.encode()):
            raise Unauthorized("sign does not match sha256(vpbx_api_key + json + vpbx_api_salt)")

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        path = raw.path.rstrip("/")
        if path == "/events/call":
            return ParseResult(events=[_call_event(_payload(raw))])
        if path == "/events/summary":
            return ParseResult(events=[_summary_event(_payload(raw))])
        if path == "/events/recording":
            event = _recording_event(_payload(raw))
            if event is None:
                return ParseResult(note="recording not finished or not saved")
            return ParseResult(events=[event])
        if path.startswith(("/events/", "/result/")):
            return ParseResult(note=f"Mango {quoted(path)} carries no call event")
        raise BadRequest(
            f"unknown Mango path {quoted(raw.path or '/')}: point Mango at /hooks/{raw.source}, it adds /events/..."
        )


def _fields(raw: RawRequest) -> dict[str, str]:
    return dict(raw.form())


def _payload(raw: RawRequest) -> dict[str, Any]:
    text = _fields(raw).get("json")
    if text is None:
        raise BadRequest("no json form field")
    data = loads(text, "json field")
    if not isinstance(data, dict):
        raise BadRequest("json field must be a JSON object")
    if not _text(data.get("entry_id")):
        raise BadRequest("json has no entry_id")
    return data


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _int(value: object, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value))
    except ValueError as exc:
        raise BadRequest(f"{name} is not a whole number: {quoted(value)}") from exc


def _time(value: object, name: str) -> datetime | None:
    stamp = _int(value, name)
    try:
        return datetime.fromtimestamp(stamp, UTC) if stamp else None
    except (OverflowError, OSError, ValueError) as exc:  # a number no clock can show
        raise BadRequest(f"{name} is not a unix time: {str(stamp)[:24]}") from exc


def _party(data: dict[str, Any], side: str) -> dict[str, Any]:
    value = data.get(side)
    return value if isinstance(value, dict) else {}


def _leg_direction(data: dict[str, Any]) -> CallDirection:
    employee_calls = bool(_text(_party(data, "from").get("extension")))
    employee_called = bool(_text(_party(data, "to").get("extension")))
    if employee_calls and employee_called:
        return "internal"
    return "out" if employee_calls else "in"


def _tracking(data: dict[str, Any], line: str) -> str | None:
    dct = _party(data, "dct")
    return _text(dct.get("number")) or line or None


def _sides(data: dict[str, Any], direction: CallDirection) -> tuple[str, str | None, str]:
    """(outside party's number as written, our employee's extension, our line)."""
    caller, callee = _party(data, "from"), _party(data, "to")
    line = _text(data.get("line_number")) or _text(callee.get("line_number"))
    if direction == "out":
        return international(_text(callee.get("number"))), _text(caller.get("extension")) or None, line
    return international(_text(caller.get("number"))), _text(callee.get("extension")) or None, line


def _call_event(data: dict[str, Any]) -> CallEvent:
    state = _text(data.get("call_state")).lower()
    if state not in _STATES:
        raise BadRequest(f"unknown call_state {quoted(data.get('call_state'))}")
    seq = _int(data.get("seq"), "seq")
    leg = _text(data.get("call_id")) or _text(data["entry_id"])
    direction = _leg_direction(data)
    caller, extension, line = _sides(data, direction)
    return CallEvent(
        call_id=_text(data["entry_id"]),
        event_key=f"call:{leg}:{seq if seq is not None else state}",
        direction=direction,
        status=_STATES[state],
        caller=caller,
        occurred_at=_time(data.get("timestamp"), "timestamp"),
        seq=seq,
        answered=True if _STATES[state] == "answered" else None,
        extension=extension,
        tracking_number=_tracking(data, line) if direction == "in" else None,
        line=line or None,
        fields=data,
    )


def _summary_event(data: dict[str, Any]) -> CallEvent:
    # Mango signs the JSON, not the path it is posted to: a call event replayed to /events/summary
    # would end its call as missed, and the real summary, with the same key, be taken for a retry.
    if "call_state" in data or "entry_result" not in data:
        raise BadRequest("a summary has entry_result and no call_state: this JSON is not a call's summary")
    raw_direction = _int(data.get("call_direction"), "call_direction")
    direction = _DIRECTIONS.get(raw_direction) if raw_direction is not None else None
    direction = direction or _leg_direction(data)
    caller, extension, line = _sides(data, direction)
    talk_at = _int(data.get("talk_time"), "talk_time") or 0
    end_at = _int(data.get("end_time"), "end_time") or 0
    answered = _int(data.get("entry_result"), "entry_result") == 1 and talk_at > 0
    talk = max(end_at - talk_at, 0) if answered and end_at else 0
    return CallEvent(
        call_id=_text(data["entry_id"]),
        event_key=f"summary:{_text(data['entry_id'])}",
        direction=direction,
        status="answered" if answered else "missed",
        caller=caller,
        occurred_at=_time(data.get("end_time"), "end_time"),
        final=True,
        answered=answered,
        started_at=_time(data.get("create_time"), "create_time"),
        ended_at=_time(data.get("end_time"), "end_time"),
        duration_s=talk,
        talk_s=talk,
        extension=extension,
        tracking_number=_tracking(data, line) if direction == "in" else None,
        line=line or None,
        fields=data,
    )


def _recording_event(data: dict[str, Any]) -> CallEvent | None:
    """The finished recording's id; started, continuing or unsaved (too short) ones are only journalled."""
    recording_id = _text(data.get("recording_id"))
    state = _text(data.get("recording_state")).lower()
    code = _int(data.get("completion_code"), "completion_code")
    if not recording_id or state not in ("completed", "") or code not in (None, 1000):
        return None
    return CallEvent(
        call_id=_text(data["entry_id"]),
        event_key=f"recording:{recording_id}",
        direction="in",
        status="recording",
        occurred_at=_time(data.get("timestamp"), "timestamp"),
        seq=_int(data.get("seq"), "seq"),
        recording=recording_id,
        fields=data,
    )


PROVIDER = Mango()
