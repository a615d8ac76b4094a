"""Asterisk over AMI: Leadline logs in to the PBX and reads its call events as they happen.

Nothing comes over HTTP. :func:`background` keeps one AMI session open for the source (``host``,
``port`` default 5038, ``username``, ``secret``), and hands every ``Cdr``, ``Newchannel`` and
``Hangup`` message to the capture pipeline as a :class:`RawRequest` whose body is the message's
bytes, so it is journalled, processed and replayable like any webhook. The manager user needs
``read = call,cdr`` in ``manager.conf``; the login asks for just those two event classes. AMI
never re-sends an event, so a message that cannot be journalled (the database is down) is
logged and lost.

How messages become calls (FORMATS.md §1.7):

* ``Cdr`` (needs ``cdr_manager``) settles a call: ``Disposition: ANSWERED`` with billable
  seconds is answered, anything else missed; the call's duration is ``BillableSeconds`` (talk
  time, as every telephony source reports it). The call is its ``Linkedid`` when cdr_manager adds
  one, else its ``UniqueID`` (the first channel's, which is every channel's ``Linkedid``).
* Without CDR events (hedged): the first channel's ``Newchannel`` rings and its ``Hangup`` ends
  the call (status ``ended``), answered when that channel was ``Up`` at hang-up (an IVR that
  answers counts as answered) and taken by the ``ConnectedLineNum`` extension. Later legs of
  the same call are journalled and skipped. With CDR events on as well, the ``Cdr`` that follows
  the ``Hangup`` has the last word.
* A channel ``SIP/101-…``, ``PJSIP/101-…``, ``IAX2/101-…`` or ``Local/101@…`` (a peer named by up
  to 6 digits) is an internal extension: extension to extension is an internal call (not a
  touch), extension to a public number (7+ digits) outgoing, anything else incoming.
* The DID (a ``DID`` field that cdr_manager may add, else the dialled ``Destination``/``Exten``
  when it is a public number) is the tracking number.
* Times: ``StartTime``/``EndTime`` are the PBX's local time in an unknown zone (UNVERIFIED
  format), so a CDR's call is taken to have ended when it was received and begun ``Duration``
  seconds before; the written times stay in the event's fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from capture.ami_protocol import MessageReader, ProtocolError, action, parse_message, read_banner
from capture.providers.base import (
    BadRequest,
    CallEvent,
    ParseResult,
    RawRequest,
    Unauthorized,
    make_headers,
    quoted,
)
from capture.settle import seconds
from leadline.config import SourceConfig
from storage.events import CallDirection

if TYPE_CHECKING:
    from capture.pipeline import Capture

log = logging.getLogger("leadline.ami")

DEFAULT_PORT = 5038
CONTENT_TYPE = "text/x-ami"
#: The events Leadline journals; the rest of AMI's chatter (Newexten, VarSet…) is not kept.
CALL_EVENTS = frozenset({"Cdr", "Newchannel", "Hangup"})
#: Each message's rank as evidence about a call, given to storage as ``seq``: a Cdr outranks the
#: Hangup before it, and an answered Cdr outranks an unanswered one for the same call (a ring
#: group gives one Cdr per extension rung, in no promised order).
RANK = {"Newchannel": 1, "Hangup": 2, "Cdr": 3, "Cdr answered": 4}
_PEER = re.compile(r"^(?:SIP|PJSIP|IAX2|Local)/(\d{1,6})(?:[-@;].*)?$", re.IGNORECASE)
_PUBLIC = re.compile(r"\+?\d{7,}")


@dataclass(frozen=True)
class AsteriskAmi:
    methods: frozenset[str] = frozenset()

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        raise Unauthorized("Asterisk events are read by Leadline over AMI; nothing is taken over HTTP")

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        message = parse_message(raw.body)
        name = message.get("Event")
        if name == "Cdr":
            return ParseResult(events=[_cdr(message, raw, source)])
        if name in ("Newchannel", "Hangup"):
            uniqueid = message.get("Uniqueid") or ""
            if not uniqueid:
                raise BadRequest(f"{name} without Uniqueid")
            if message.get("Linkedid", uniqueid) != uniqueid:
                return ParseResult(
                    note=f"{name} of a later leg of call {quoted(message['Linkedid'])}: the first leg's counts"
                )
            return ParseResult(events=[_channel_event(name, message, raw, source)])
        return ParseResult(note=f"AMI event {quoted(name) if name else '(none)'} is not a call event")


def _cdr(message: Mapping[str, str], raw: RawRequest, source: SourceConfig) -> CallEvent:
    uniqueid = message.get("UniqueID") or message.get("Uniqueid") or ""
    if not uniqueid:
        raise BadRequest("Cdr without UniqueID")
    call_id = message.get("Linkedid") or message.get("LinkedID") or uniqueid
    from_ext = extension_of(message.get("Channel"))
    to_ext = extension_of(message.get("DestinationChannel"))
    destination = message.get("Destination") or None
    direction = _direction(from_ext, to_ext or destination)
    billable = _seconds(message, "BillableSeconds")
    total = _seconds(message, "Duration")
    answered = message.get("Disposition", "").upper() == "ANSWERED" and bool(billable)
    started = raw.received_at - timedelta(seconds=total or 0)
    digest = hashlib.sha256(raw.body.replace(b"\r", b"")).hexdigest()[:16]
    return CallEvent(
        call_id=call_id,
        event_key=f"ami:Cdr:{uniqueid}:{digest}",
        seq=RANK["Cdr answered" if answered else "Cdr"],
        direction=direction,
        status="answered" if answered else "missed",
        caller=destination if direction == "out" else (message.get("Source") or None),
        occurred_at=started,
        final=True,
        answered=answered,
        started_at=started,
        ended_at=raw.received_at,
        duration_s=billable,
        talk_s=billable,
        extension=from_ext if direction == "out" else to_ext,
        tracking_number=_tracking(message.get("DID") or destination) if direction == "in" else None,
        region=source.region,
        fields=dict(message),
    )


def _channel_event(name: str, message: Mapping[str, str], raw: RawRequest, source: SourceConfig) -> CallEvent:
    uniqueid = message["Uniqueid"]
    from_ext = extension_of(message.get("Channel"))
    exten = message.get("Exten") or None
    connected = message.get("ConnectedLineNum") or None
    direction = _direction(from_ext, exten)
    caller = message.get("CallerIDNum") or None
    if direction == "out":
        caller = exten if _tracking(exten) else connected
    ending = name == "Hangup"
    up = message.get("ChannelStateDesc", "").lower() == "up" or message.get("ChannelState") == "6"
    return CallEvent(
        call_id=uniqueid,
        event_key=f"ami:{name}:{uniqueid}",
        seq=RANK[name],
        direction=direction,
        status="ended" if ending else "ringing",
        caller=caller,
        occurred_at=raw.received_at,
        final=ending,
        answered=up if ending else None,
        started_at=None if ending else raw.received_at,
        ended_at=raw.received_at if ending else None,
        extension=from_ext if direction == "out" else (connected if is_extension(connected) else None),
        tracking_number=_tracking(exten) if direction == "in" else None,
        region=source.region,
        fields=dict(message),
    )


def extension_of(channel: str | None) -> str | None:
    """``PJSIP/101-00000013`` → ``101``; a trunk (``PJSIP/trunk-provider-…``) is no extension."""
    match = _PEER.match(channel or "")
    return match.group(1) if match else None


def is_extension(number: str | None) -> bool:
    return number is not None and number.isdigit() and len(number) <= 6


def _direction(from_ext: str | None, dialled: str | None) -> CallDirection:
    if from_ext is None:
        return "in"
    return "out" if _tracking(dialled) else "internal"


def _tracking(number: str | None) -> str | None:
    """A dialled number that is on the public network (a DID), not an extension or ``s``."""
    return number if number and _PUBLIC.fullmatch(number.strip()) else None


def _seconds(message: Mapping[str, str], key: str) -> int | None:
    return seconds(message.get(key), key)


# --- the AMI client -------------------------------------------------------------------------


class LoginRefused(Exception):
    """The PBX answered the login with an error (wrong username or secret, or no permission)."""


@dataclass
class AmiClient:
    """One source's AMI session, reconnecting with exponential backoff until it is cancelled."""

    capture: Capture
    source: SourceConfig
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    #: Silence after which a Ping is sent; a second silence as long drops the connection.
    keepalive: float = 30.0
    #: How long the banner and the login answer may take.
    login_timeout: float = 10.0
    logins: int = field(default=0, init=False)

    @property
    def host(self) -> str:
        return self.source.host or "127.0.0.1"

    @property
    def port(self) -> int:
        return self.source.port or DEFAULT_PORT

    async def run(self) -> None:
        """Never returns on its own and never raises (short of cancellation): the PBX may come back."""
        delay = self.backoff_base
        while True:
            logins = self.logins
            try:
                await self._session()
                reason = "the PBX closed the connection"
            except LoginRefused as exc:
                reason = f"login refused: {exc}"
            except (OSError, TimeoutError, ProtocolError, BadRequest) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a bug here must not stop capture for good
                log.exception("AMI session failed", extra={"fields": self._where()})
                reason = f"{type(exc).__name__}: {exc}"
            if self.logins > logins:
                delay = self.backoff_base
            log.warning(
                "AMI disconnected", extra={"fields": {**self._where(), "reason": reason, "retry_in": delay}}
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    def _where(self) -> dict[str, object]:
        return {"source": self.source.name, "host": self.host, "port": self.port}

    async def _session(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.login_timeout
        )
        try:
            messages = MessageReader(reader)
            await asyncio.wait_for(self._login(reader, writer, messages), self.login_timeout)
            self.logins += 1
            log.info("AMI logged in", extra={"fields": self._where()})
            await self._pump(writer, messages)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _login(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, messages: MessageReader
    ) -> None:
        await read_banner(reader)
        writer.write(
            action(
                "Login",
                ActionID="leadline-login",
                Username=self.source.username or "",
                Secret=self.source.secret_value("secret"),
                Events="call,cdr",
            )
        )
        await writer.drain()
        while True:
            block = await messages.next()
            if block is None:
                raise LoginRefused("the PBX closed the connection before answering the login")
            answer = parse_message(block)
            if "Response" not in answer:
                continue
            if answer["Response"].lower() != "success":
                raise LoginRefused(answer.get("Message") or answer["Response"])
            return

    async def _pump(self, writer: asyncio.StreamWriter, messages: MessageReader) -> None:
        pinged = False
        while True:
            try:
                block = await asyncio.wait_for(messages.next(), self.keepalive)
            except TimeoutError:
                if pinged:
                    raise TimeoutError(f"no answer to a keep-alive ping in {self.keepalive:g} s") from None
                writer.write(action("Ping", ActionID="leadline-ping"))
                await writer.drain()
                pinged = True
                continue
            if block is None:
                return
            pinged = False
            if _event_name(block) in CALL_EVENTS:
                await self._ingest(block)

    async def _ingest(self, block: bytes) -> None:
        raw = RawRequest(
            source=self.source.name,
            method="AMI",
            path="/event",
            query_string="",
            headers=make_headers({"Content-Type": CONTENT_TYPE}),
            body=block,
            received_at=self.capture.clock(),
            url=f"tcp://{self.host}:{self.port}",
            remote=self.host,
        )
        try:
            outcome = await self.capture.ingest(raw, self.source, verify=False)
        except Exception:
            log.exception("AMI event could not be journalled; it is lost", extra={"fields": self._where()})
            return
        if outcome.status != "processed":
            log.warning(
                "AMI event not processed",
                extra={
                    "fields": {**self._where(), "journal_id": outcome.journal_id, "reason": outcome.reason}
                },
            )


def _event_name(block: bytes) -> str | None:
    """The ``Event:`` value, read without parsing the rest (most of AMI's traffic is dropped)."""
    for line in block.splitlines():
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"event":
            return value.strip().decode("utf-8", "replace")
    return None


def background(
    capture: Capture,
    source: SourceConfig,
    *,
    backoff_base: float = 0.5,
    backoff_max: float = 30.0,
    keepalive: float = 30.0,
    login_timeout: float = 10.0,
) -> AbstractAsyncContextManager[None]:
    """The AMI client for ``source``, running while the context is open (see leadline/app.py)."""
    return _running(AmiClient(capture, source, backoff_base, backoff_max, keepalive, login_timeout))


@asynccontextmanager
async def _running(client: AmiClient) -> AsyncIterator[None]:
    task = asyncio.create_task(client.run(), name=f"ami:{client.source.name}")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])  # waits for the socket to close; a cancellation of ours still propagates


PROVIDER = AsteriskAmi()
