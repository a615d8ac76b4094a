"""A receiving SMTP server inside ``leadline serve``: mail for the source's addresses becomes touches.

It runs ``aiosmtpd``'s protocol on the application's own event loop (``loop.create_server``), so
a message goes straight to the capture pipeline with no thread hand-off. The SMTP reply is the
delivery receipt the sending server acts on, so it follows the journal: ``250`` only once the
message is durably journalled (processed, or kept as rejected for replay), ``451`` when the journal
cannot be written (the sender keeps the mail and retries for days), ``550`` at RCPT time for an
address this source does not serve (the sender bounces it at once instead of retrying).

The message is journalled as a :class:`RawRequest` with method ``SMTP``, the raw bytes as body and
the envelope in ``X-Envelope-From`` / ``X-Envelope-To``, so ``leadline replay`` re-reads it exactly.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import weakref
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from capture.addresses import OurAddresses
from capture.mail import parse_message, source_event
from capture.providers.base import ParseResult, RawRequest, SourceUnavailable, Unauthorized, make_headers
from leadline.config import SourceConfig

if TYPE_CHECKING:
    from capture.pipeline import Capture

log = logging.getLogger("leadline.smtp")

DEFAULT_PORT = 25
#: aiosmtpd's default (32 MiB): mail with attachments is large, and refusing it would lose the lead.
DATA_SIZE_LIMIT = 2**25


@dataclass(frozen=True)
class SmtpSource:
    """Parses what the SMTP server journalled; the source takes no HTTP requests (405)."""

    methods: frozenset[str] = frozenset()
    reads_mail: bool = True

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        raise Unauthorized("an SMTP source takes mail over SMTP, not HTTP requests")

    def parse(self, raw: RawRequest, source: SourceConfig, *, ours: OurAddresses) -> ParseResult:
        mail = parse_message(
            raw.body,
            to_address=raw.headers.get("X-Envelope-To") or None,
            envelope_from=raw.headers.get("X-Envelope-From"),
        )
        return ParseResult(events=[source_event(mail, source, ours)])


PROVIDER = SmtpSource()


def accepts(addresses: Iterable[str], recipient: str) -> bool:
    """Whether the source serves ``recipient``: the address itself, its plus-tagged form
    (``leads+brand_msk@…`` for ``leads@…``), or a whole domain written as ``@example.com``."""
    local, _, domain = recipient.strip().strip("<>").lower().rpartition("@")
    base = local.split("+", 1)[0]
    for entry in addresses:
        wanted = entry.strip().lower()
        if wanted.startswith("@") and wanted[1:] == domain:
            return True
        if wanted in (f"{local}@{domain}", f"{base}@{domain}"):
            return True
    return False


class _Handler:
    """aiosmtpd's hooks: refuse unknown recipients, journal each message before answering."""

    def __init__(self, capture: Capture, source: SourceConfig, url: str) -> None:
        self.capture = capture
        self.source = source
        self.url = url

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not accepts(self.source.addresses, address):
            return "550 5.1.1 No such recipient here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        peer: Any = session.peer
        raw = RawRequest(
            source=self.source.name,
            method="SMTP",
            path="/message",
            query_string="",
            headers=make_headers(
                [
                    ("Content-Type", "message/rfc822"),
                    ("X-Envelope-From", envelope.mail_from or ""),
                    ("X-Envelope-To", ", ".join(envelope.rcpt_tos)),
                ]
            ),
            body=envelope.original_content or b"",
            received_at=self.capture.clock(),
            url=self.url,
            remote=str(peer[0]) if isinstance(peer, tuple) and peer else None,
        )
        try:
            outcome = await self.capture.ingest(raw, self.source, verify=False)
        except Exception:
            log.exception(
                "journal write failed; the sender will retry", extra={"fields": {"source": self.source.name}}
            )
            return "451 4.3.0 Cannot store the message right now; try again later"
        log.info(
            "mail received",
            extra={
                "fields": {
                    "source": self.source.name,
                    "journal_id": outcome.journal_id,
                    "outcome": outcome.status,
                    "reason": outcome.reason,
                    "touches_created": outcome.touches_created,
                }
            },
        )
        return f"250 2.0.0 Stored as {outcome.journal_id}"


#: Ports below this need root or CAP_NET_BIND_SERVICE to bind.
_PRIVILEGED_BELOW = 1024


def _cannot_listen(name: str, host: str, port: int, exc: OSError) -> str:
    where = f"SMTP source {name!r} cannot listen on {host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where}: the port is in use by another program; stop it, or set another port for the source."
    if exc.errno == errno.EACCES and port < _PRIVILEGED_BELOW:
        return (
            f"{where}: a port below {_PRIVILEGED_BELOW} needs the right to bind it (CAP_NET_BIND_SERVICE,"
            " see docs/email.md), or take a port above it behind your mail server."
        )
    return f"{where}: {exc.strerror or exc}."


@asynccontextmanager
async def background(capture: Capture, source: SourceConfig) -> AsyncIterator[None]:
    """Listen on the source's ``host``/``port`` for as long as the application runs."""
    loop = asyncio.get_running_loop()
    host = source.host or "127.0.0.1"
    port = DEFAULT_PORT if source.port is None else source.port
    handler = _Handler(capture, source, f"smtp://{host}:{port}")
    hostname = socket.gethostname()
    sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()
    if not source.addresses:
        log.warning(
            "SMTP source has no addresses: every recipient will be refused",
            extra={"fields": {"source": source.name}},
        )

    def session() -> SMTP:
        protocol = SMTP(
            handler,
            data_size_limit=DATA_SIZE_LIMIT,
            enable_SMTPUTF8=True,
            hostname=hostname,
            ident="Leadline",
            loop=loop,
        )
        sessions.add(protocol)
        return protocol

    try:
        server = await loop.create_server(session, host=host, port=port)
    except OSError as exc:
        raise SourceUnavailable(_cannot_listen(source.name, host, port, exc)) from None
    log.info("SMTP server listening", extra={"fields": {"source": source.name, "host": host, "port": port}})
    try:
        yield
    finally:
        server.close()
        for protocol in list(sessions):
            if protocol.transport is not None:
                protocol.transport.close()
        await server.wait_closed()
