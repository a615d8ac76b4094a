"""A small Asterisk Manager Interface server on 127.0.0.1, speaking the wire protocol itself.

It greets, checks ``Action: Login`` against one username and secret, answers ``Ping``, and lets a
test push event blocks to every logged-in client, drop connections, and stop and start listening
on the same port (a PBX restarting). Its framing is written here on purpose, not imported from
``capture.ami_protocol``, so a framing bug in Leadline cannot hide behind the same bug in the fake.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

BANNER = b"Asterisk Call Manager/5.0.2\r\n"


@dataclass
class Login:
    username: str
    accepted: bool
    events: str | None


@dataclass
class FakeAmi:
    username: str = "leadline"
    secret: str = "ami-secret"
    #: False plays a half-dead PBX: the socket stays open but Ping gets no answer.
    answer_pings: bool = True
    host: str = "127.0.0.1"
    port: int = 0
    logins: list[Login] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    #: Every ``Originate`` a logged-in client sent, its keys lower-cased.
    originates: list[dict[str, str]] = field(default_factory=list)
    #: When set, an ``Originate`` is answered with ``Response: Error`` and this message.
    refuse_originate: str | None = None
    _server: asyncio.Server | None = None
    _clients: set[asyncio.StreamWriter] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def clients(self) -> int:
        """Connections that are logged in now."""
        return len(self._clients)

    @property
    def connections(self) -> int:
        """Open connections, logged in or not."""
        return len(self._writers)

    async def start(self) -> None:
        """Listen (again) on ``port``; the first start picks a free port and keeps it."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection, as a PBX going down does."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self.drop_connections()
        if server is not None:
            await server.wait_closed()

    async def drop_connections(self) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._handlers:
            await asyncio.wait(list(self._handlers))

    async def push(self, block: bytes) -> int:
        """Send one event block to every logged-in client; returns how many got it."""
        sent = 0
        for writer in list(self._clients):
            writer.write(block)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
                sent += 1
        return sent

    async def wait_for(self, predicate: Callable[[FakeAmi], bool], within: float = 10.0) -> None:
        """Until ``predicate(self)`` holds, or fail after ``within`` s; woken by logins, logouts, actions."""
        async with asyncio.timeout(within):
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self))

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            writer.write(BANNER)
            await writer.drain()
            while (message := await _read_message(reader)) is not None:
                if not await self._answer(message, writer):
                    break
        except ConnectionError:
            pass
        finally:
            self._clients.discard(writer)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._handlers.discard(task)
            await self._notify()

    async def _answer(self, message: dict[str, str], writer: asyncio.StreamWriter) -> bool:
        """Reply to one action; False when the connection must end."""
        name = message.get("action", "")
        self.actions.append(name)
        action_id = message.get("actionid", "")
        reply = f"ActionID: {action_id}\r\n" if action_id else ""
        keep_open = True
        if name.lower() == "login":
            accepted = message.get("username") == self.username and message.get("secret") == self.secret
            self.logins.append(Login(message.get("username", ""), accepted, message.get("events")))
            if accepted:
                writer.write(f"Response: Success\r\n{reply}Message: Authentication accepted\r\n\r\n".encode())
                writer.write(b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n")
                self._clients.add(writer)
            else:  # Asterisk answers, then closes the session
                writer.write(f"Response: Error\r\n{reply}Message: Authentication failed\r\n\r\n".encode())
                keep_open = False
        elif name.lower() == "ping":
            if not self.answer_pings:
                await self._notify()
                return True
            writer.write(
                f"Response: Success\r\n{reply}Ping: Pong\r\nTimestamp: 1709648527.000000\r\n\r\n".encode()
            )
        elif name.lower() == "originate":
            # Documented (docs.asterisk.org AMI_Actions/Originate): Channel, and Exten with Context and Priority.
            if writer not in self._clients:
                writer.write(f"Response: Error\r\n{reply}Message: Permission denied\r\n\r\n".encode())
            elif not {"channel", "exten", "context", "priority"} <= set(message):
                writer.write(f"Response: Error\r\n{reply}Message: Exten not specified\r\n\r\n".encode())
            elif self.refuse_originate:
                self.originates.append(message)
                writer.write(f"Response: Error\r\n{reply}Message: {self.refuse_originate}\r\n\r\n".encode())
            else:
                self.originates.append(message)
                writer.write(
                    f"Response: Success\r\n{reply}Message: Originate successfully queued\r\n\r\n".encode()
                )
        elif name.lower() == "logoff":
            writer.write(f"Response: Goodbye\r\n{reply}Message: Thanks for all the fish.\r\n\r\n".encode())
            keep_open = False
        else:
            writer.write(f"Response: Error\r\n{reply}Message: Invalid/unknown command\r\n\r\n".encode())
        await writer.drain()
        await self._notify()
        return keep_open


async def _read_message(reader: asyncio.StreamReader) -> dict[str, str] | None:
    """One action as lower-cased keys; None when the client has gone."""
    fields: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if not line:
            return None
        text = line.decode("utf-8").rstrip("\r\n")
        if not text:
            if fields:
                return fields
            continue
        key, _, value = text.partition(":")
        fields[key.strip().lower()] = value.strip()
