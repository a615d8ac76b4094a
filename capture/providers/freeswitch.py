"""FreeSWITCH ``mod_json_cdr``: one JSON CDR per call leg, POSTed when the leg hangs up.

``mod_json_cdr`` authenticates with basic/digest auth or nothing, so the source's ``token`` (put it
in the URL as ``?token=``, or in ``X-Leadline-Token``) is what Leadline checks. Each CDR settles
its call: it is the last word FreeSWITCH says about that leg.

Hedged, because FORMATS.md marks the encodings UNVERIFIED (configure ``encode=false`` and
``encode-values=false`` if you can; all of these are accepted):

* the body is the JSON document itself, or a form whose ``cdr`` field holds it, either as JSON
  or base64 of JSON (``encode=true|base64``), or the whole body is base64 of JSON;
* with ``encode-values`` (the default) each value inside the JSON is URL-encoded, so every
  value read here is URL-decoded (``%2B`` → ``+``; a literal ``+`` is left alone).

How a CDR becomes a call (also hedged: FreeSWITCH dialplans differ):

* identity: ``variables.call_uuid``, else ``variables.uuid``; a B leg (one that carries
  ``originator`` or ``originating_leg_uuid``, sent with ``log-b-leg``) is journalled and skipped,
  because the A leg's CDR describes the same call;
* answered: by ``bridge_epoch`` when the CDR has it (a person took the call, not an IVR),
  else ``billsec > 0``; the call's duration is its talk time, ``billsec``, as every telephony
  source reports it (the whole length, ``duration``, stays in the fields);
* direction: FreeSWITCH's own ``direction`` says only which way the leg entered the switch,
  so it is decided from the numbers: a short all-digit number (up to 6 digits) is an internal
  extension; an extension dialling a public number (7+ digits) is outgoing, an extension
  dialling anything else (another extension, a feature code) is internal (not a touch), and
  anything else is incoming;
* the DID (``destination_number``) of an incoming call is its tracking number, and the
  extension that took it is read from ``dialed_user``, ``dialed_extension``,
  ``last_sent_callee_id_number``, ``callee_id_number`` or ``bridge_channel``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from yarl import query_to_pairs

from capture.providers.auth import check_token
from capture.providers.base import BadRequest, CallEvent, ParseResult, RawRequest, loads, quoted
from capture.settle import seconds
from leadline.config import SourceConfig
from storage.events import CallDirection

B_LEG_MARKERS = ("originator", "originating_leg_uuid")
EXTENSION_FIELDS = ("dialed_user", "dialed_extension", "last_sent_callee_id_number", "callee_id_number")
_EXTENSION = re.compile(r"\d{1,6}")
_OUTSIDE = re.compile(r"\+?[\d\s()-]+")
_CHANNEL_USER = re.compile(r"^[^/]+/[^/]+/(?:sip:)?([^@/]+)")


#: The channel variable that marks a call Leadline originated, a 📞 Call back (capture/dial/freeswitch.py).
CALLBACK_MARK = "leadline_callback"


@dataclass(frozen=True)
class FreeSwitch:
    methods: frozenset[str] = frozenset({"POST"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        check_token(raw, source)

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        cdr = _document(raw.body)
        variables = cdr.get("variables")
        if not isinstance(variables, Mapping):
            raise BadRequest("the CDR has no 'variables' object")
        var = {str(k): unquote(v) if isinstance(v, str) else v for k, v in variables.items()}
        uuid = _text(var.get("uuid"))
        call_id = _text(var.get("call_uuid")) or uuid
        if not call_id or not uuid:
            raise BadRequest("the CDR has no variables.uuid")
        if any(_text(var.get(k)) for k in B_LEG_MARKERS):
            return ParseResult(note="B leg of a bridged call: the A leg's CDR carries the call")
        caller = _text(var.get("caller_id_number"))
        dialled = _text(var.get("destination_number"))
        ours = _text(var.get(CALLBACK_MARK)) == "true"
        # Our own 📞 call-back rings the staff member with the client's number as its caller id:
        # an outgoing call of the office to ``dialled``, answered at the user it rang.
        direction = "out" if ours else _direction(caller, dialled)
        talk = _seconds(var, "billsec")
        bridged = _epoch(var, "bridge_epoch")
        answered = bridged is not None if "bridge_epoch" in var else bool(talk)
        return ParseResult(
            events=[
                CallEvent(
                    call_id=call_id,
                    event_key=f"freeswitch:{uuid}",
                    direction=direction,
                    status="answered" if answered else "missed",
                    caller=dialled if direction == "out" else caller,
                    occurred_at=_epoch(var, "start_epoch"),
                    final=True,
                    answered=answered,
                    started_at=_epoch(var, "start_epoch"),
                    ended_at=_epoch(var, "end_epoch"),
                    duration_s=talk,
                    talk_s=talk,
                    extension=(_text(var.get("dialed_user")) if ours else caller)
                    if direction == "out"
                    else _extension(var),
                    tracking_number=dialled if direction == "in" else None,
                    region=source.region,
                    fields={
                        "hangup_cause": var.get("hangup_cause"),
                        "duration": var.get("duration"),
                        "caller_id_name": var.get("caller_id_name"),
                        "fs_direction": var.get("direction"),
                        "switchname": cdr.get("switchname"),
                    },
                )
            ]
        )


def _document(body: bytes) -> dict[str, Any]:
    """The CDR from whichever of the encodings ``mod_json_cdr`` was configured to send."""
    text = _utf8(body).strip()
    if not text.startswith("{") and "=" in text[:64]:
        pairs = dict(query_to_pairs(text))
        if "cdr" not in pairs:
            raise BadRequest("form body without a 'cdr' field: expected a mod_json_cdr POST")
        text = pairs["cdr"].strip()
    if not text.startswith("{"):
        try:
            text = _utf8(base64.b64decode(text, validate=False))
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("the CDR is neither JSON nor base64 of JSON") from exc
    document = loads(text, "the CDR")
    if not isinstance(document, dict):
        raise BadRequest("the CDR must be a JSON object")
    return document


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not valid UTF-8 (byte {exc.start})") from exc


def is_extension(number: str | None) -> bool:
    return number is not None and _EXTENSION.fullmatch(number) is not None


def _direction(caller: str | None, dialled: str | None) -> CallDirection:
    if is_extension(caller):
        return "out" if _is_outside(dialled) else "internal"
    return "in"


def _is_outside(number: str | None) -> bool:
    """A number on the public network: 7+ digits and nothing but dialling punctuation."""
    return (
        number is not None and _OUTSIDE.fullmatch(number) is not None and len(re.sub(r"\D", "", number)) >= 7
    )


def _extension(var: Mapping[str, Any]) -> str | None:
    for key in EXTENSION_FIELDS:
        value = _text(var.get(key))
        if is_extension(value):
            return value
    match = _CHANNEL_USER.match(_text(var.get("bridge_channel")) or "")
    return match.group(1) if match and is_extension(match.group(1)) else None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _seconds(var: Mapping[str, Any], key: str) -> int | None:
    return seconds(_text(var.get(key)), f"variables.{key}")


def _epoch(var: Mapping[str, Any], key: str) -> datetime | None:
    """A unix time; FreeSWITCH writes 0 for a moment that never came (no answer, no bridge)."""
    text = _text(var.get(key))
    if text is None:
        return None
    try:
        stamp = int(float(text))
        return datetime.fromtimestamp(stamp, UTC) if stamp > 0 else None
    except (ValueError, OverflowError, OSError) as exc:  # not a number, or none a clock can show
        raise BadRequest(f"variables.{key} is not unix seconds: {quoted(text)}") from exc


PROVIDER = FreeSwitch()
