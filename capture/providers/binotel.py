"""Binotel (UA) call webhooks: PHP-style nested form fields, or the same structure as JSON.

Binotel signs nothing (it publishes an allow-list of its IPs), so the source's ``token`` in the
webhook URL authenticates it. Numbers arrive in Ukrainian national format (``0440000012``), so
they are read in the source's ``region`` (set ``region = "UA"``), else the config's.

What is settled by which request (FORMATS.md §1.5): ``receivedTheCall`` rings,
``answeredTheCall`` answers, ``hangupTheCall`` and ``apiCallCompleted`` settle the call by
``disposition`` (``ANSWER`` answered; ``TRANSFER``, a call answered and then put through, too).
``apiCallSettings`` (Binotel asking the CRM about a caller) and ``transferredTheCall`` carry no
call outcome: they are journalled with a note. The idempotency key is
``binotel:{requestType}:{generalCallID}``, so a re-delivery changes nothing. A call's duration
is its talk time (``billsec``), as every telephony source reports it; the wait stays in the fields.

Hedged, because FORMATS.md marks them UNVERIFIED or the sources conflict:

* the reply: ``{"status": "success"}`` as JSON (the Laravel library answers ``{}``);
* ``callType``: ``0`` incoming, ``1`` outgoing (also ``incoming``/``outgoing`` spelled out);
* the ``apiCallCompleted`` body: ``billsec`` or ``callDuration`` for the talk time, ``waitsec``
  or ``waitingTime`` for the wait, ``linkToCallRecordInMyBusiness`` (or
  ``linkToCallRecordOverlayInMyBusiness``) for the recording, each optional;
* the tracking number: ``pbxNumberData.number``, else ``pbxNumber``, ``didNumber`` or ``did``;
  only an incoming call was dialled on it (an outgoing call's is our own caller-ID line, kept as
  the touch's ``line`` and never a campaign's);
* the top-level ``attemptsCounter`` is ignored (retries are recognised by the key above).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from capture.forms import form_fields
from capture.providers.auth import check_token
from capture.providers.base import MAX_DEPTH, BadRequest, CallEvent, ParseResult, RawRequest, Reply, quoted
from capture.settle import seconds
from leadline.config import SourceConfig
from storage.events import CallDirection

SUCCESS = Reply(200, b'{"status":"success"}', "application/json")
ANSWERED_DISPOSITIONS = frozenset({"ANSWER", "TRANSFER"})
#: Each request's rank among a call's notifications, given to storage as ``seq``: the fuller
#: ``apiCallCompleted`` outranks ``hangupTheCall`` whichever of the two arrives first.
RANK = {"receivedTheCall": 1, "answeredTheCall": 2, "hangupTheCall": 3, "apiCallCompleted": 4}
NO_OUTCOME = {
    "apiCallSettings": "Binotel asked for CRM data about a caller: no call outcome in it",
    "transferredTheCall": "a transfer between extensions: no call outcome in it",
}
_KEY_PART = re.compile(r"\[([^\]]*)\]")


@dataclass(frozen=True)
class Binotel:
    methods: frozenset[str] = frozenset({"POST"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        check_token(raw, source)

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        data = _body(raw)
        kind = _text(data.get("requestType"))
        if kind is None:
            raise BadRequest("no requestType: this is not a Binotel webhook")
        if kind in NO_OUTCOME:
            return ParseResult(reply=SUCCESS, note=NO_OUTCOME[kind])
        if kind == "apiCallCompleted":
            details = data.get("callDetails")
            if not isinstance(details, Mapping):
                raise BadRequest("apiCallCompleted without callDetails")
            return ParseResult(events=[_completed(details, source, data)], reply=SUCCESS)
        if kind in ("receivedTheCall", "answeredTheCall", "hangupTheCall"):
            return ParseResult(events=[_progress(kind, data, source)], reply=SUCCESS)
        return ParseResult(
            reply=SUCCESS, note=f"requestType {quoted(kind)} is not a call event Leadline reads"
        )


def _completed(details: Mapping[str, Any], source: SourceConfig, data: Mapping[str, Any]) -> CallEvent:
    call_id = _call_id(details)
    disposition = (_text(details.get("disposition")) or "").upper()
    talk = _seconds(details, "billsec", "callDuration")
    wait = _seconds(details, "waitsec", "waitingTime")
    started = _epoch(details.get("startTime"))
    # Without the ringing time the end is unknown (the talk alone would make every missed call
    # "short"), and a call with no end is never blocked by the short-call rule.
    ended = started + timedelta(seconds=wait + (talk or 0)) if started and wait is not None else None
    answered = disposition in ANSWERED_DISPOSITIONS
    numbers = details.get("pbxNumberData")
    tracking = _text(numbers.get("number")) if isinstance(numbers, Mapping) else None
    tracking = tracking or _tracking(details)
    direction = _direction(details.get("callType"))
    return CallEvent(
        call_id=call_id,
        event_key=f"binotel:apiCallCompleted:{call_id}",
        seq=RANK["apiCallCompleted"],
        direction=direction,
        status="answered" if answered else "missed",
        caller=_text(details.get("externalNumber")),
        occurred_at=started,
        final=True,
        answered=answered,
        started_at=started,
        ended_at=ended,
        duration_s=talk,
        talk_s=talk,
        extension=_text(details.get("internalNumber")),
        tracking_number=tracking if direction == "in" else None,
        line=tracking,
        recording=_text(details.get("linkToCallRecordInMyBusiness"))
        or _text(details.get("linkToCallRecordOverlayInMyBusiness")),
        region=source.region,
        fields=data,
    )


def _progress(kind: str, data: Mapping[str, Any], source: SourceConfig) -> CallEvent:
    call_id = _call_id(data)
    if kind == "hangupTheCall":
        answered = (_text(data.get("disposition")) or "").upper() in ANSWERED_DISPOSITIONS
        return CallEvent(
            call_id=call_id,
            event_key=f"binotel:{kind}:{call_id}",
            seq=RANK[kind],
            direction=_direction(data.get("callType")),
            direction_stated=data.get("callType") is not None,  # FORMATS §1.5 lists none
            status="answered" if answered else "missed",
            caller=_text(data.get("externalNumber")),
            final=True,
            answered=answered,
            duration_s=_seconds(data, "billsec"),
            talk_s=_seconds(data, "billsec"),
            region=source.region,
            fields=data,
        )
    direction = _direction(data.get("callType"))
    return CallEvent(
        call_id=call_id,
        event_key=f"binotel:{kind}:{call_id}",
        seq=RANK[kind],
        direction=direction,
        status="answered" if kind == "answeredTheCall" else "ringing",
        caller=_text(data.get("externalNumber")),
        extension=_text(data.get("internalNumber")),
        tracking_number=_tracking(data) if direction == "in" else None,
        line=_tracking(data),
        region=source.region,
        fields=data,
    )


def _body(raw: RawRequest) -> dict[str, Any]:
    """The request as one nested mapping, whether it came as JSON or as PHP-style form keys."""
    if raw.body.lstrip()[:1] == b"{":
        data = raw.json()
        if not isinstance(data, dict):
            raise BadRequest("the JSON body must be an object")
        return data
    return nest(form_fields(raw).items())


def nest(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``callDetails[pbxNumberData][number]=…`` as PHP's ``parse_str`` builds it: nested dicts."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        # Up to the last "]" only: no "[" after it closes, and findall would scan to the end from
        # each of them (a key of 100,000 "[" cost minutes).
        brackets = "[" + rest
        path = [head, *_KEY_PART.findall(brackets[: brackets.rfind("]") + 1])] if rest else [head]
        if len(path) > MAX_DEPTH:
            raise BadRequest(f"form key {quoted(head)}[…] is nested deeper than {MAX_DEPTH} levels")
        node = root
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        last = path[-1] if path[-1] else str(len(node))
        node[last] = value
    return root


def _call_id(data: Mapping[str, Any]) -> str:
    call_id = _text(data.get("generalCallID"))
    if call_id is None:
        raise BadRequest("no generalCallID: Binotel's identity of the call is missing")
    return call_id


def _tracking(data: Mapping[str, Any]) -> str | None:
    return next((v for k in ("pbxNumber", "didNumber", "did") if (v := _text(data.get(k)))), None)


def _direction(call_type: Any) -> CallDirection:
    text = (_text(call_type) or "0").lower()
    return "out" if text in ("1", "out", "outgoing") else "in"


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, Mapping | list):
        return None
    text = (value if isinstance(value, str) else json.dumps(value)).strip()
    return text or None


def _seconds(data: Mapping[str, Any], *keys: str) -> int | None:
    return next((seconds(text, key) for key in keys if (text := _text(data.get(key))) is not None), None)


def _epoch(value: Any) -> datetime | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return datetime.fromtimestamp(int(float(text)), UTC)
    except (ValueError, OverflowError, OSError) as exc:  # OSError: past what time_t holds
        raise BadRequest(f"startTime is not unix seconds: {quoted(text)}") from exc


PROVIDER = Binotel()
