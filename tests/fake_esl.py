"""A small FreeSWITCH event socket (mod_event_socket, inbound) on 127.0.0.1, speaking the protocol itself.

It asks for ``auth``, checks the password, and answers ``bgapi`` with a Job-UUID, recording the
commands; as FreeSWITCH documents it (developer.signalwire.com, "The Inbound Event Socket"). Its
framing is written here, not imported from ``capture/dial/freeswitch.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self


@dataclass
class FakeEsl:
    password: str = "ClueCon"
    host: str = "127.0.0.1"
    port: int = 0
    #: The bgapi commands an authenticated client sent, without ``bgapi``.
    jobs: list[str] = field(default_factory=list)
    #: When set, a bgapi is answered ``-ERR <refuse>``.
    refuse: str | None = None
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"Content-Type: auth/request\n\n")
            authed = False
            while command := await _command(reader):
                if command.startswith("auth "):
                    authed = command[5:] == self.password
                    text = "+OK accepted" if authed else "-ERR invalid"
                    writer.write(f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode())
                    if not authed:
                        break
                elif command.startswith("bgapi ") and authed:
                    if self.refuse:
                        writer.write(
                            f"Content-Type: command/reply\nReply-Text: -ERR {self.refuse}\n\n".encode()
                        )
                    else:
                        self.jobs.append(command[6:])
                        uuid = "7f4de4bc-17d7-11dd-b7a0-db4edd065621"
                        writer.write(
                            f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: {uuid}\nJob-UUID: {uuid}\n\n".encode()
                        )
                elif command == "exit":
                    writer.write(b"Content-Type: command/reply\nReply-Text: +OK bye\n\n")
                    break
                else:
                    writer.write(b"Content-Type: command/reply\nReply-Text: -ERR command not found\n\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _command(reader: asyncio.StreamReader) -> str | None:
    """One command: its first line, once the blank line after it has come; None when the client has gone."""
    lines: list[str] = []
    while True:
        line = await reader.readline()
        if not line:
            return None
        text = line.decode().rstrip("\r\n")
        if not text:
            if lines:
                return lines[0]
            continue
        lines.append(text)
