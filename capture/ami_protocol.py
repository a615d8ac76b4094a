"""The Asterisk Manager Interface wire format, apart from what any message means.

A message is ``Key: Value`` lines ending with CRLF (a bare LF is accepted too) and closed by an
empty line; the server greets with one banner line. Reading keeps a half-read message across
calls, so a caller may time out between lines (to send a keep-alive) without losing bytes.
"""

from __future__ import annotations

import asyncio

from capture.providers.base import BadRequest, quoted

BANNER_PREFIX = "Asterisk Call Manager/"
#: No real message is this long; a peer that sends more is not speaking AMI.
MAX_LINES = 1000


class ProtocolError(Exception):
    """The peer does not speak AMI (no banner, an endless message, a line over the limit)."""


def parse_message(data: bytes | str) -> dict[str, str]:
    """The keys and values of one message; the first of a repeated key wins."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(f"AMI message is not valid UTF-8 (byte {exc.start})") from exc
    fields: dict[str, str] = {}
    for line in data.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(f"AMI line without 'Key: Value': {quoted(line, 40)}")
        fields.setdefault(key.strip(), value.strip())
    if not fields:
        raise BadRequest("empty AMI message")
    return fields


def action(name: str, **fields: str) -> bytes:
    """One action, ready to write; values must not contain line breaks (they would forge keys)."""
    lines = [f"Action: {name}"]
    for key, value in fields.items():
        if "\r" in value or "\n" in value:
            raise ValueError(f"AMI value for {key} contains a line break")
        lines.append(f"{key}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


async def read_banner(reader: asyncio.StreamReader) -> str:
    line = await _readline(reader)
    text = line.decode("utf-8", "replace").strip()
    if not text.startswith(BANNER_PREFIX):
        raise ProtocolError(f"not an AMI server: greeting {quoted(text, 60)}")
    return text


class MessageReader:
    """Whole messages from a stream, as the bytes that arrived (the journal keeps them as such)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._lines: list[bytes] = []

    async def next(self) -> bytes | None:
        """The next message, blank line included; None when the peer closed between messages."""
        while True:
            line = await _readline(self._reader)
            if not line:
                if self._lines:
                    raise ProtocolError("connection closed in the middle of a message")
                return None
            if line.strip():
                self._lines.append(line)
                if len(self._lines) > MAX_LINES:
                    raise ProtocolError(f"message longer than {MAX_LINES} lines")
            elif self._lines:
                block, self._lines = b"".join(self._lines) + line, []
                return block


async def _readline(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readline()
    except ValueError as exc:  # the line is over the stream's limit
        raise ProtocolError("line over the length limit") from exc
