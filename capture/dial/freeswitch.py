"""FreeSWITCH: ``bgapi originate`` over mod_event_socket, the extension first, then the client.

From the FreeSWITCH docs (developer.signalwire.com, "The Inbound Event Socket" and mod_event_socket;
the FreeSWITCH 1.8 book's bgapi): connect to ``host``:``port`` (8021), the server sends
``Content-Type: auth/request``, ``auth <password>`` answers ``command/reply`` with ``Reply-Text: +OK
accepted`` (``-ERR invalid`` otherwise); ``bgapi <command>`` answers at once ``Reply-Text: +OK
Job-UUID: …`` and runs the command in the background; each command ends with a blank line. The
command is ``originate {origination_caller_id_number=<client>}user/<extension> <client> XML
<dial_context>``: ring the extension's registered phone showing the client's number, then send the
answered leg to the client's number in the XML dialplan, which dials it out as a phone would.

Verified: the socket protocol and the shape of ``originate``. UNVERIFIED: how the dialplan wants the
client's number (this sends E.164 digits without ``+``), and that the background job then succeeds
(its result comes as a BACKGROUND_JOB event, which this does not wait for: the call's own CDR comes
through the freeswitch webhook either way).
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from capture.dial import Call, Cut, Refused
from capture.providers.freeswitch import CALLBACK_MARK
from leadline.config import SourceConfig

DEFAULT_PORT = 8021
DEFAULT_CONTEXT = "default"
#: No reply of the socket is longer; a peer that sends more is not FreeSWITCH.
MAX_HEADER_LINES = 100


async def _reply(reader: asyncio.StreamReader) -> dict[str, str]:
    """One message's headers (its body, if any, read and dropped)."""
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = (await reader.readline()).decode("utf-8", "replace").strip()
        if not line:
            if headers:
                length = int(headers.get("Content-Length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                return headers
            if reader.at_eof():
                raise Cut("FreeSWITCH closed the event socket")
            continue
        key, _sep, value = line.partition(":")
        headers[key.strip()] = value.strip()
    raise Refused("FreeSWITCH's event socket sent a reply too long to be one")


def originate(call: Call, context: str) -> str:
    client = "".join(c for c in call.client if c.isdigit())
    if call.staff_is_number:
        first = f"loopback/{''.join(c for c in call.staff if c.isdigit())}/{context}"
    else:
        first = f"user/{call.staff}"
    # The mark comes back in the staff leg's CDR: the call-back is an outgoing call of the office,
    # though its caller id is the client's number (capture/providers/freeswitch.py reads it).
    return f"originate {{origination_caller_id_number={client},{CALLBACK_MARK}=true}}{first} {client} XML {context}"


async def dial(http: aiohttp.ClientSession, source: SourceConfig, call: Call) -> None:
    for value in (call.staff, call.client, source.dial_context or ""):
        if any(c in value for c in " \r\n{}"):
            raise Refused("a number or context with spaces or braces cannot go into an originate")
    if any(c in source.secret_value("password") for c in "\r\n"):
        raise Refused("the event socket password has a line break")
    reader, writer = await asyncio.open_connection(source.host, source.port or DEFAULT_PORT)
    try:
        if (await _reply(reader)).get("Content-Type") != "auth/request":
            raise Refused("the peer is not FreeSWITCH's event socket (no auth/request)")
        writer.write(f"auth {source.secret_value('password')}\n\n".encode())
        login = await _reply(reader)
        if not login.get("Reply-Text", "").startswith("+OK"):
            raise Refused(f"FreeSWITCH auth: {login.get('Reply-Text') or 'refused'}")
        writer.write(f"bgapi {originate(call, source.dial_context or DEFAULT_CONTEXT)}\n\n".encode())
        call.progress.sent = True
        answer = await _reply(reader)
        if not answer.get("Reply-Text", "").startswith("+OK"):
            raise Refused(f"FreeSWITCH: {answer.get('Reply-Text') or 'refused'}")
        call.progress.taken = True
        writer.write(b"exit\n\n")
        await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
