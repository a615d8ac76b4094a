"""Asterisk: an AMI ``Originate`` on a session of its own, rings the extension, then dials the client.

From docs.asterisk.org (AMI_Actions/Originate, Asterisk 16-21): ``Channel`` is called first and,
once it answers, the call goes to ``Exten``/``Context``/``Priority``. So ``Channel:
Local/<extension>@<dial_context>`` rings the staff member through the dialplan (whatever phone
the extension is), and ``Exten: <client>`` in the same context dials the client out, as the phone
would; ``Async: true`` answers at once instead of when the extension picks up. The AMI user needs
the ``originate`` write class (manager.conf). Login, the answer matched by ``ActionID``, ``Logoff``.

Verified: the action and its fields. UNVERIFIED: how a dialplan wants the client's number; this
sends E.164 digits with the ``+`` (``+79160000013``), which FreePBX's ``from-internal`` routes by
outbound route patterns; a plan that wants ``8…`` or no ``+`` needs a pattern for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import aiohttp

from capture.ami_protocol import MessageReader, ProtocolError, action, parse_message, read_banner
from capture.dial import Call, Cut, Refused
from capture.providers.asterisk_ami import DEFAULT_PORT
from capture.providers.base import BadRequest
from leadline.config import SourceConfig

#: FreePBX's context for calls from extensions (it knows the outbound routes).
DEFAULT_CONTEXT = "from-internal"
#: How long the extension rings before Asterisk gives up, in ms.
RING_MS = 30000


async def _answer(messages: MessageReader, action_id: str) -> dict[str, str]:
    """The response to the action ``action_id``; events in between are skipped."""
    while True:
        block = await messages.next()
        if block is None:
            raise Cut("the PBX closed the AMI connection before answering")
        answer = parse_message(block)
        if answer.get("ActionID") == action_id and "Response" in answer:
            return answer


async def dial(http: aiohttp.ClientSession, source: SourceConfig, call: Call) -> None:
    host, port = source.host or "127.0.0.1", source.port or DEFAULT_PORT
    reader, writer = await asyncio.open_connection(host, port)
    messages = MessageReader(reader)
    tag = uuid.uuid4().hex
    try:
        await read_banner(reader)
        writer.write(
            action(
                "Login",
                ActionID=f"leadline-login-{tag}",
                Username=source.username or "",
                Secret=source.secret_value("secret"),
                Events="off",
            )
        )
        login = await _answer(messages, f"leadline-login-{tag}")
        if login["Response"].lower() != "success":
            raise Refused(f"AMI login: {login.get('Message') or login['Response']}")
        context = source.dial_context or DEFAULT_CONTEXT
        writer.write(
            action(
                "Originate",
                ActionID=f"leadline-dial-{tag}",
                Channel=f"Local/{call.staff}@{context}",
                Exten=call.client,
                Context=context,
                Priority="1",
                CallerID=f"Call back <{call.client}>",
                Timeout=str(RING_MS),
                Async="true",
            )
        )
        call.progress.sent = True
        answer = await _answer(messages, f"leadline-dial-{tag}")
        if answer["Response"].lower() != "success":
            raise Refused(f"Asterisk: {answer.get('Message') or answer['Response']}")
        call.progress.taken = True
        writer.write(action("Logoff", ActionID=f"leadline-bye-{tag}"))
        with contextlib.suppress(Refused):  # the call is queued whatever the goodbye says
            await _answer(messages, f"leadline-bye-{tag}")
    except (ProtocolError, BadRequest) as exc:
        raise (Cut if call.progress.sent else Refused)(f"Asterisk: {exc}") from None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
