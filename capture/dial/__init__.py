"""Calling a client back through the office line: one PBX client per provider, one registry.

A staff member presses ``📞 Call back`` on a missed call's card; the bot (which declares the
:class:`bot.dialer.Dialer` it needs and never imports capture) hands the press here. The PBX first
rings the staff member's extension (or number) and, once they pick up, dials the client, so the call
goes out through the office line: it arrives back through the provider's normal webhooks, and the
missed call is marked called back by :mod:`storage.calls` like any answered call to the number.

A provider module ``capture/dial/<provider>.py`` has ``async def dial(http, source, call)``, which
raises :class:`Refused` with the PBX's own reason and marks ``call.progress`` as the command goes
out and as the PBX takes it, and may have ``ring(source, extension, phone)``:
what its PBX rings first of the staff member's extension and own number (default: the extension). Which keys a source needs is in the providers'
one list (``capture.providers.PROVIDERS[...].dial``), which the config checks at start-up.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Literal, cast

import aiohttp

from capture.providers import PROVIDERS
from leadline.config import Config, SourceConfig
from storage.identifiers import mask

log = logging.getLogger("leadline.dial")

#: How long a PBX may take to take the command; the person pressing the button is waiting.
TIMEOUT_SECONDS = 10.0


@dataclass(slots=True)
class Progress:
    """How far a command got, which decides what a failure means: before it went out the PBX cannot
    ring; after, it may (a slow PBX takes the command and answers late); once it said yes, a failure
    in what follows (a goodbye) changes nothing. An HTTP request counts as sent from its start: a
    connection that fails is told apart, one that times out cannot be."""

    sent: bool = False
    taken: bool = False


@dataclass(frozen=True, slots=True)
class Call:
    """One call-back: ring ``staff`` first (an extension, or a number in E.164), then ``client``."""

    staff: str
    client: str
    #: The office line the client called (else their tracking number), to call them back from; None when unknown.
    line: str | None = None
    #: The source's webhook address, ``<public_url>/hooks/<source>``, for a PBX that is told where to
    #: report the call-back (Twilio: a REST call reports nothing unless its TwiML names a URL).
    hooks_url: str = ""
    progress: Progress = field(default_factory=Progress, compare=False)

    @property
    def staff_is_number(self) -> bool:
        return self.staff.startswith("+")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a press: ``taken`` (the PBX is ringing), ``refused`` (it will not ring: it said
    no, or could not be reached) or ``unconfirmed`` (the command went out and no answer came: it may
    still ring); ``reason`` says why for the last two."""

    status: Literal["taken", "refused", "unconfirmed"]
    reason: str = ""


TAKEN = Outcome("taken")


class Refused(Exception):
    """The PBX did not take the command; ``reason`` is its own words (or what went wrong reaching it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Cut(Refused):
    """The PBX closed the connection before answering: a refusal before the command went out, and
    no answer at all after it (the PBX may have taken it)."""


Dial = Callable[[aiohttp.ClientSession, SourceConfig, Call], Awaitable[None]]
Ring = Callable[[SourceConfig, str | None, str | None], str | None]


def ring_extension_first(source: SourceConfig, extension: str | None, phone: str | None) -> str | None:
    """A PBX rings a staff member's extension; their own number when they have none."""
    return extension or phone


def can_dial(source: SourceConfig) -> bool:
    """A source whose provider can call back and whose config has every key that needs."""
    keys = PROVIDERS[source.provider].dial
    return bool(keys) and all(source.secret_value(key).strip() for key in keys)


def dialable(config: Config) -> frozenset[str]:
    """The names of the sources whose missed calls get a ``📞 Call back`` button."""
    return frozenset(s.name for s in config.sources if can_dial(s))


def _dial_fn(provider: str) -> Dial:
    return cast(Dial, import_module(f"{__name__}.{provider}").dial)


def _ring_fn(provider: str) -> Ring:
    return cast(Ring, getattr(import_module(f"{__name__}.{provider}"), "ring", ring_extension_first))


class PbxDialer:
    """What the bot's ``dialer`` is: the config's sources that can call back, over one HTTP session."""

    def __init__(self, config: Config, http: aiohttp.ClientSession) -> None:
        self._sources = {s.name: s for s in config.sources if can_dial(s)}
        self._http = http
        self._public_url = config.http.public_url

    def can_dial(self, source: str) -> bool:
        return source in self._sources

    def rings(self, source: str, extension: str | None, phone: str | None) -> str | None:
        config = self._sources.get(source)
        return None if config is None else _ring_fn(config.provider)(config, extension, phone)

    async def dial(self, source: str, staff: str, client: str, line: str | None) -> Outcome:
        """Whether the PBX took the call-back, refused it, or may still ring (a timeout or a cut
        after the command went out: pressing again then would ring twice); the reason, for the
        person who pressed."""
        config = self._sources.get(source)
        if config is None:
            return Outcome("refused", f"source {source} cannot call back (no API credentials in the config)")
        call = Call(staff=staff, client=client, line=line, hooks_url=f"{self._public_url}/hooks/{source}")
        progress = call.progress
        shown_staff = mask(staff) if staff.startswith("+") else staff
        fields = {"source": source, "provider": config.provider, "staff": shown_staff, "client": mask(client)}
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                await _dial_fn(config.provider)(self._http, config, call)
        except Refused as exc:
            if not (isinstance(exc, Cut) and progress.sent):
                log.warning("call-back refused", extra={"fields": {**fields, "reason": exc.reason}})
                return Outcome("refused", exc.reason)
            reason = exc.reason
        except aiohttp.ClientConnectorError as exc:  # no connection: the request never left
            reason = f"cannot reach the PBX ({type(exc).__name__})"
            progress.sent = False
        except TimeoutError:
            reason = f"the PBX did not answer within {TIMEOUT_SECONDS:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            cut = "the PBX cut the connection before answering" if progress.sent else "cannot reach the PBX"
            reason = f"{cut} ({type(exc).__name__})"
        except (EOFError, ValueError) as exc:  # a socket cut mid-answer, an answer that does not parse
            reason = f"the PBX's answer could not be read ({type(exc).__name__})"
        else:
            log.info("call-back requested", extra={"fields": fields})
            return TAKEN
        if progress.taken:
            log.info("call-back requested", extra={"fields": {**fields, "after": reason}})
            return TAKEN
        if progress.sent:
            log.warning("call-back unconfirmed", extra={"fields": {**fields, "reason": reason}})
            return Outcome("unconfirmed", reason)
        log.warning("call-back failed", extra={"fields": {**fields, "reason": reason}})
        return Outcome("refused", reason)


async def answer_json(response: aiohttp.ClientResponse) -> dict[str, object]:
    """A provider's JSON answer as a dict; anything else is a refusal naming the HTTP status."""
    text = await response.text()
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise Refused(f"HTTP {response.status}: the PBX answered something that is not a JSON object")
    return data
