"""An IMAP mailbox polled for new mail; each message is journalled before it is marked seen.

The order is the point: fetch with ``BODY.PEEK[]`` (which leaves the message unseen), journal and
process it, and only then ``STORE +FLAGS (\\Seen)``. A crash or a dropped connection in between
leaves the message unseen, so it is fetched again next time; the second copy has the same
Message-ID and changes nothing. New mail is found by UID as well as by the unseen flag
(``storage/imap_state.py``): a letter someone opened in their mail client before the poll is new
all the same. The first look at a mailbox (or one whose UIDVALIDITY changed) takes what is unseen
and remembers where the mailbox ends, so years of read mail are not imported. When the server goes away the poller reconnects with a growing
delay and never stops the process.

``security`` is ``tls`` (implicit TLS, port 993), ``starttls`` (port 143, upgraded before login;
``aioimaplib`` has no helper for it, so the command is sent and the transport upgraded here) or
``none`` (plain text: only for a server on the same machine).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import ssl
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import aioimaplib

from capture.addresses import OurAddresses
from capture.mail import parse_message, source_event
from capture.providers.base import ParseResult, RawRequest, Unauthorized, make_headers
from leadline.config import SourceConfig
from storage import imap_state

if TYPE_CHECKING:
    from capture.pipeline import Capture, Outcome

log = logging.getLogger("leadline.imap")

T = TypeVar("T")

#: Seconds one IMAP command may take before the connection is given up as dead.
COMMAND_TIMEOUT = 30.0
#: The longest wait between reconnection attempts.
MAX_BACKOFF = 300.0
INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")


class MailboxError(Exception):
    """The server refused a command or went away; the poller reconnects."""


@dataclass(frozen=True)
class ImapSource:
    """Parses what the poller journalled; the source takes no HTTP requests (405)."""

    methods: frozenset[str] = frozenset()
    reads_mail: bool = True

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        raise Unauthorized("an IMAP source is polled by Leadline, it takes no HTTP requests")

    def parse(self, raw: RawRequest, source: SourceConfig, *, ours: OurAddresses) -> ParseResult:
        arrived = raw.headers.get("X-Imap-Internaldate")
        mail = parse_message(raw.body, occurred_at=datetime.fromisoformat(arrived) if arrived else None)
        return ParseResult(events=[source_event(mail, source, ours)])


PROVIDER = ImapSource()


class Mailbox:
    """One logged-in connection with the source's mailbox selected."""

    def __init__(self, client: Any, lost: asyncio.Event, source: SourceConfig) -> None:
        self.client = client
        self.lost = lost
        self.source = source
        #: From SELECT's answer; 0 when the server did not say.
        self.uidvalidity = 0
        self.uidnext = 0

    @classmethod
    async def open(cls, source: SourceConfig) -> Mailbox:
        host = source.host or "127.0.0.1"
        port = source.port or (993 if source.security == "tls" else 143)
        lost = asyncio.Event()
        context = ssl.create_default_context() if source.security != "none" else None
        client = aioimaplib.IMAP4(
            host,
            port,
            timeout=COMMAND_TIMEOUT,
            conn_lost_cb=lambda exc: lost.set(),
            ssl_context=context if source.security == "tls" else None,
        )
        mailbox = cls(client, lost, source)
        try:
            await mailbox._call(client.wait_hello_from_server())
            if source.security == "starttls":
                assert context is not None
                await mailbox._starttls(context, host)
            response = await mailbox._call(
                client.login(source.username or "", source.secret_value("password"))
            )
            if response.result != "OK":
                raise MailboxError(f"login refused: {_last_line(response)}")
            response = await mailbox._call(client.select(imap_utf7(source.mailbox)))
            if response.result != "OK":
                raise MailboxError(f"cannot select {source.mailbox!r}: {_last_line(response)}")
            mailbox.uidvalidity = _code(response, UIDVALIDITY)
            mailbox.uidnext = _code(response, UIDNEXT)
        except BaseException:
            await mailbox.close()
            raise
        return mailbox

    async def unseen(self) -> list[str]:
        return await self._search("UNSEEN")

    @property
    def identity(self) -> str:
        source = self.source
        return f"{source.username or ''}@{source.host or '127.0.0.1'}:{source.port or ''}/{source.mailbox}"

    async def highest_uid(self) -> int:
        """Where the mailbox ends now: UIDNEXT - 1, or the largest UID when the server gave no UIDNEXT."""
        if self.uidnext:
            return self.uidnext - 1
        return max((int(uid) for uid in await self._search("ALL")), default=0)

    async def after(self, last_uid: int) -> list[str]:
        """Messages with a UID above ``last_uid``, read or not."""
        # "n:*" always includes the last message, even when its UID is below n: filter it out.
        return [uid for uid in await self._search(f"UID {last_uid + 1}:*") if int(uid) > last_uid]

    async def _search(self, criteria: str) -> list[str]:
        response = await self._call(self.client.uid_search(criteria, charset=None))
        self._check(response, "SEARCH")
        return [uid.decode() for line in response.lines[:-1] for uid in line.split() if uid.isdigit()]

    async def fetch(self, uid: str) -> tuple[bytes, datetime | None] | None:
        """The message's bytes (without setting \\Seen) and when the server received it."""
        response = await self._call(self.client.uid("fetch", uid, "(UID INTERNALDATE BODY.PEEK[])"))
        self._check(response, "FETCH")
        body = next((bytes(line) for line in response.lines if isinstance(line, bytearray)), None)
        if body is None:
            return None  # expunged meanwhile
        stamp = next((m[1] for line in response.lines if (m := INTERNALDATE.search(bytes(line)))), None)
        arrived = None
        if stamp:
            with suppress(ValueError):
                arrived = datetime.strptime(stamp.decode(), "%d-%b-%Y %H:%M:%S %z")
        return body, arrived

    async def mark_seen(self, uid: str) -> None:
        response = await self._call(self.client.uid("store", uid, "+FLAGS.SILENT (\\Seen)"))
        self._check(response, "STORE")

    async def close(self) -> None:
        """Log out if the connection is alive; in any case drop it."""
        if not self.lost.is_set() and self.client.get_state() in ("AUTH", "SELECTED"):
            with suppress(Exception):
                await asyncio.wait_for(self.client.logout(), 2)
        transport = getattr(self.client.protocol, "transport", None)
        if transport is not None:
            transport.close()

    async def _starttls(self, context: ssl.SSLContext, host: str) -> None:
        protocol = self.client.protocol
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await self._call(protocol.execute(command))
        if response.result != "OK":
            raise MailboxError(f"STARTTLS refused: {_last_line(response)}")
        loop = asyncio.get_running_loop()
        protocol.transport = await loop.start_tls(protocol.transport, protocol, context, server_hostname=host)
        await self._call(protocol.capability())

    async def _call(self, step: Awaitable[T]) -> T:
        """Await an IMAP command, but give up at once when the server drops the connection."""
        task = asyncio.ensure_future(step)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        finally:
            lost.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await task
        raise MailboxError("the IMAP server closed the connection")

    @staticmethod
    def _check(response: Any, command: str) -> None:
        if response.result != "OK":
            raise MailboxError(f"{command} failed: {_last_line(response)}")


async def ingest_uid(mailbox: Mailbox, capture: Capture, source: SourceConfig, uid: str) -> Outcome | None:
    """Fetch one message and journal it (durably) as this source's; None if it is gone."""
    fetched = await mailbox.fetch(uid)
    if fetched is None:
        return None
    body, arrived = fetched
    host = source.host or "127.0.0.1"
    headers = [("Content-Type", "message/rfc822"), ("X-Imap-Uid", uid), ("X-Imap-Mailbox", source.mailbox)]
    if arrived:
        headers.append(("X-Imap-Internaldate", arrived.isoformat()))
    raw = RawRequest(
        source=source.name,
        method="IMAP",
        path="/message",
        query_string="",
        headers=make_headers(headers),
        body=body,
        received_at=capture.clock(),
        url=f"imap://{host}:{source.port or ''}/{source.mailbox}",
        remote=host,
    )
    return await capture.ingest(raw, source, verify=False)


async def poll_once(mailbox: Mailbox, capture: Capture, source: SourceConfig) -> int:
    """Journal every new message, marking each seen only after its journal write; returns how many."""
    state = await capture.store.read(partial(imap_state.load, source=source.name))
    if state is None or (state.mailbox, state.uidvalidity) != (mailbox.identity, mailbox.uidvalidity):
        # First sight of this mailbox: unread mail is new, read mail is history.
        uids = await mailbox.unseen()
        state = imap_state.ImapState(mailbox.identity, mailbox.uidvalidity, await mailbox.highest_uid())
        await capture.store.write(partial(imap_state.save, source=source.name, state=state))
    else:
        uids = sorted(set(await mailbox.unseen()) | set(await mailbox.after(state.last_uid)), key=int)
    count = 0
    for uid in uids:
        outcome = await ingest_uid(mailbox, capture, source, uid)
        if int(uid) > state.last_uid:
            state = imap_state.ImapState(state.mailbox, state.uidvalidity, int(uid))
            await capture.store.write(partial(imap_state.save, source=source.name, state=state))
        await mailbox.mark_seen(uid)
        if outcome is not None:
            count += 1
            log.info(
                "mail fetched",
                extra={
                    "fields": {
                        "source": source.name,
                        "journal_id": outcome.journal_id,
                        "outcome": outcome.status,
                        "touches_created": outcome.touches_created,
                    }
                },
            )
    return count


async def run_poller(capture: Capture, source: SourceConfig) -> None:
    """Poll until cancelled; any failure closes the connection and retries after a growing delay."""
    first_delay = min(source.poll_seconds, 5.0)
    delay = first_delay
    while True:
        mailbox: Mailbox | None = None
        try:
            mailbox = await Mailbox.open(source)
            log.info(
                "IMAP mailbox open", extra={"fields": {"source": source.name, "mailbox": source.mailbox}}
            )
            delay = first_delay
            while True:
                await poll_once(mailbox, capture, source)
                await asyncio.sleep(source.poll_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "IMAP polling failed; retrying",
                extra={
                    "fields": {
                        "source": source.name,
                        "error": f"{type(exc).__name__}: {exc}",
                        "retry_in_s": delay,
                    }
                },
            )
        finally:
            if mailbox is not None:
                await mailbox.close()
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_BACKOFF)


@asynccontextmanager
async def background(capture: Capture, source: SourceConfig) -> AsyncIterator[None]:
    """Run the poller for as long as the application runs; cancel it cleanly at shutdown."""
    task = asyncio.create_task(run_poller(capture, source), name=f"imap-poller:{source.name}")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def imap_utf7(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 §5.1.3), quoted: ``Заявки`` → ``"&BBcEMARP-…"``."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode().rstrip("=")
            out.append("&" + encoded.replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    encoded = "".join(out)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _code(response: Any, pattern: re.Pattern[bytes]) -> int:
    """A number from a response code in the untagged lines, such as ``[UIDVALIDITY 1700000000]``."""
    for line in getattr(response, "lines", None) or []:
        if isinstance(line, bytes | bytearray) and (match := pattern.search(bytes(line))):
            return int(match[1])
    return 0


def _last_line(response: Any) -> str:
    lines = getattr(response, "lines", None) or [b""]
    last = lines[-1]
    return last.decode("utf-8", "replace") if isinstance(last, bytes | bytearray) else str(last)
