"""UIS / CoMagic call notifications: a body built from the template the account owner configured.

UIS signs nothing, so the source's ``token`` (in the URL the template posts to) authenticates it.
The body is whatever template was set up in the UIS account, so it is read as JSON when it looks
like JSON (whatever the Content-Type says) and as a form otherwise; the keys are UIS's
``{{variable}}`` names (FORMATS.md §1.4).

A call's duration is its talk time (``talk_time_duration``), as every telephony source reports
it; the whole length (``total_time_duration``) stays in the fields.

Hedged, because FORMATS.md marks them UNVERIFIED:

* value types: ``call_session_id`` and durations may be numbers or strings, ``is_lost`` a JSON
  boolean or ``true``/``false``/``1``/``0``; all are accepted.
* ``direction`` values: ``in``/``out`` as in the sample, and also ``incoming``/``outgoing``,
  ``inbound``/``outbound``; ``is_internal`` true makes the call internal (not a touch).
* notification mnemonics: a notification whose ``is_lost`` is filled in (or whose mnemonic
  names an end or a lost call) settles the call; any other one (a call start) is a ringing
  event, or an answered one when its mnemonic names an answer or a talk.
* times: ``start_time`` and ``notification_time`` are local times without a zone in an unknown
  time zone, so the call's start is taken as the receipt time minus the time between them (or
  minus ``total_time_duration``); the written values stay in the event's fields.
* the recording link has no known variable name: ``recording_url``, ``record_url``,
  ``call_records`` and ``file_link`` are tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from multidict import MultiDict

from capture.forms import form_fields, parse_form_body
from capture.providers.auth import check_token
from capture.providers.base import BadRequest, CallEvent, ParseResult, RawRequest, quoted
from capture.settle import seconds
from leadline.config import SourceConfig
from storage.events import CallDirection, CallStatus
from storage.identifiers import international

END_WORDS = ("end", "lost", "finish", "complete", "hangup")
ANSWER_WORDS = ("answer", "talk")
RECORDING_FIELDS = ("recording_url", "record_url", "call_records", "file_link")
_DIRECTIONS: dict[str, CallDirection] = {
    "in": "in",
    "incoming": "in",
    "inbound": "in",
    "out": "out",
    "outgoing": "out",
    "outbound": "out",
    "internal": "internal",
}
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


@dataclass(frozen=True)
class UisComagic:
    methods: frozenset[str] = frozenset({"POST", "GET"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        check_token(raw, source)

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        fields = _fields(raw)
        session = _text(fields, "call_session_id") or _text(fields, "communication_id")
        if not session:
            raise BadRequest("no call_session_id: add {{call_session_id}} to the notification template")
        mnemonic = _text(fields, "notification_mnemonic") or "call"
        lost = _flag(fields, "is_lost")
        talk = _seconds(fields, "talk_time_duration")
        total = _seconds(fields, "total_time_duration")
        final = lost is not None or any(word in mnemonic.lower() for word in END_WORDS)
        answered = (not lost if lost is not None else bool(talk)) if final else None
        direction = _direction(fields)
        started = _started_at(raw.received_at, fields, total)
        return ParseResult(
            events=[
                CallEvent(
                    call_id=session,
                    event_key=f"uis:{mnemonic}:{session}",
                    direction=direction,
                    status=_status(final, answered, mnemonic),
                    caller=_caller(fields, direction),
                    occurred_at=started,
                    final=final,
                    answered=answered,
                    started_at=started,
                    ended_at=started + timedelta(seconds=total) if final and total is not None else None,
                    duration_s=talk,
                    talk_s=talk,
                    # an outgoing call's virtual number is the line we called from, no campaign's
                    tracking_number=_text(fields, "virtual_phone_number") if direction == "in" else None,
                    line=_text(fields, "virtual_phone_number"),
                    recording=next((v for k in RECORDING_FIELDS if (v := _text(fields, k))), None),
                    region=source.region,
                    fields=dict(fields.items()),
                )
            ]
        )


def _fields(raw: RawRequest) -> MultiDict[str]:
    """The template's variables; a JSON-looking body is JSON whatever its Content-Type claims."""
    if raw.body.lstrip()[:1] == b"{":
        return parse_form_body(raw.body, "application/json")
    fields = form_fields(raw)
    if not fields and raw.query:
        # a GET notification carries the variables in the query string
        return MultiDict((k, v) for k, v in raw.query.items() if k != "token")
    return fields


def _text(fields: MultiDict[str], key: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    text = str(value).strip().strip('"')
    return None if text.lower() in ("", "null") else text


def _seconds(fields: MultiDict[str], key: str) -> int | None:
    return seconds(_text(fields, key), key)


def _flag(fields: MultiDict[str], key: str) -> bool | None:
    """True or False when the variable says so; None when it is absent or left empty."""
    text = (_text(fields, key) or "").lower()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadRequest(f"{key} is not true or false: {quoted(text)}")


def _direction(fields: MultiDict[str]) -> CallDirection:
    if _flag(fields, "is_internal"):
        return "internal"
    text = (_text(fields, "direction") or "in").lower()
    return _DIRECTIONS.get(text, "in")


def _caller(fields: MultiDict[str], direction: CallDirection) -> str | None:
    """The outside party: the contact's number, else whichever end of the call is not ours, with the
    ``+`` UIS leaves off international digits (``74950000012`` in FORMATS §1.4's sample)."""
    fallback = "called_phone_number" if direction == "out" else "calling_phone_number"
    number = _text(fields, "contact_phone_number") or _text(fields, fallback)
    return None if number is None else international(number)


def _status(final: bool, answered: bool | None, mnemonic: str) -> CallStatus:
    if final:
        return "answered" if answered else "missed"
    return "answered" if any(word in mnemonic.lower() for word in ANSWER_WORDS) else "ringing"


def _started_at(received_at: datetime, fields: MultiDict[str], total: int | None) -> datetime:
    """When the call began, measured back from receipt: UIS's own times carry no zone."""
    start, sent = _local(fields, "start_time"), _local(fields, "notification_time")
    if start is not None and sent is not None and sent >= start:
        return received_at - (sent - start)
    if total is not None:
        return received_at - timedelta(seconds=total)
    return received_at


def _local(fields: MultiDict[str], key: str) -> datetime | None:
    text = _text(fields, key)
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        return None


PROVIDER = UisComagic()
