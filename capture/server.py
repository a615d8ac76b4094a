"""The webhook endpoints: ``/hooks/<source>[/<path>]``, ``/healthz`` and ``/metrics``.

Handlers only turn HTTP into a :class:`RawRequest` and an :class:`Outcome` back into HTTP; what a
request means is decided in ``capture/pipeline.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib

from aiohttp import web
from multidict import CIMultiDictProxy
from sqlite_utils import Database

from capture.keys import CAPTURE, METRICS
from capture.pipeline import UNAUTHENTICATED_BODY_KEPT, Outcome, Verdict, provider_for
from capture.providers.base import RawRequest, quoted
from storage import meta
from storage.backlog import backlog
from storage.keys import CLOCK, STORE
from storage.webhook_deliveries import stats as webhook_stats

log = logging.getLogger("leadline.http")

READ_CHUNK = 64 * 1024
#: The Content-Encodings a body is inflated from, with zlib's window bits for each.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
#: A health check that waits longer than this for a write reports the database as down.
HEALTHZ_WRITE_SECONDS = 10.0


class BodyRefused(Exception):
    """A body that cannot be taken as it came: too large (413) or not inflatable (400), and why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body as its sender wrote it, inflated from its Content-Encoding; raises :class:`BodyRefused`."""
    body = await _read_limited(request, limit)
    if body is None:
        size = request.content_length or limit + 1
        raise BodyRefused(413, f"body of {size} bytes is over the limit of {limit}")
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    return inflate(body, encoding, limit) if body and encoding not in ("", "identity") else body


def inflate(data: bytes, encoding: str, limit: int) -> bytes:
    """``data`` inflated, every gzip member of it, checking that each stream reaches its end.

    aiohttp's own inflation is off (``auto_decompress`` in leadline/app.py): it takes a gzip stream
    cut off half-way for the whole body, and the sender would be told that half a form was stored.
    """
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise BodyRefused(400, f"body could not be decompressed as {encoding}: send gzip, deflate or none")
    if encoding == "deflate" and data[:1] and data[0] & 0x0F != 8:
        wbits = -zlib.MAX_WBITS  # raw deflate without the zlib header, as some senders send it
    parts: list[bytes] = []
    size = 0
    while data:
        stream = zlib.decompressobj(wbits)
        try:
            part = stream.decompress(data, limit + 1 - size)  # at most one byte past the limit
        except zlib.error as exc:
            raise BodyRefused(400, f"body could not be decompressed as {encoding}: {exc}") from None
        size += len(part)
        if size > limit:
            raise BodyRefused(413, f"body inflates to over the limit of {limit} bytes")
        if not stream.eof:
            raise BodyRefused(400, f"body could not be decompressed as {encoding}: the stream is cut off")
        parts.append(part)
        data = stream.unused_data
        if data and encoding == "deflate":
            raise BodyRefused(
                400, f"body could not be decompressed as deflate: {len(data)} bytes after its end"
            )
    return b"".join(parts)


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body as it came over the wire, or None when it is over ``limit`` (without reading all of it)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    if request.content_length is not None:
        # Known and within the limit: read whole, a third of the cost of iterating over chunks.
        return await request.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def read_prefix(request: web.Request, size: int) -> bytes:
    """At most the body's first ``size`` bytes as they came: all a refused request's row keeps, so a
    forger's body costs no more than that to read."""
    parts: list[bytes] = []
    left = size
    try:
        while left > 0:
            chunk = await request.content.read(left)
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
    except web.RequestPayloadError:  # the body broke off: keep what came
        pass
    return b"".join(parts)


def _raw(request: web.Request, source: str, tail: str, body: bytes, url: str | None = None) -> RawRequest:
    config = request.app[CAPTURE].config
    query = request.rel_url.raw_query_string  # as sent: Twilio signs the encoded URL
    if url is None:
        url = f"{config.http.public_url}/hooks/{source}{tail}"
    url += f"?{query}" if query else ""
    return RawRequest(
        source=source,
        method=request.method,
        path=tail,
        query_string=query,
        headers=CIMultiDictProxy(request.headers.copy()),
        body=body,
        received_at=request.app[CLOCK](),
        url=url,
        remote=request.remote,
    )


async def hook(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    app = request.app
    capture = app[CAPTURE]
    config = capture.config
    name = request.match_info["source"]
    tail = request.match_info.get("tail", "")
    source = config.source(name)
    limit = config.http.max_body_bytes
    refused = None
    try:
        body = await read_body(request, limit)
    except BodyRefused as exc:
        body, refused = b"", exc
    except web.RequestPayloadError as exc:  # the body broke off
        body, refused = b"", BodyRefused(400, f"body could not be read: {exc}")
    raw = _raw(request, name, tail, body)
    if source is None:
        verdict = Verdict(
            None,
            404,
            f"no source named {quoted(name)}: check the URL against the sources in the config",
            anonymous=True,
        )
    elif request.method not in _methods(source.provider):
        allowed = ", ".join(sorted(_methods(source.provider))) or "none (this source does not take HTTP)"
        reason = f"method {request.method} not allowed here; use {allowed}"
        verdict = Verdict(source.provider, 405, reason, anonymous=True)
    elif refused:
        verdict = Verdict(source.provider, refused.status, refused.reason, keep_body=False, anonymous=True)
    else:
        verdict = await capture.judged(raw, source)
    return await _journalled(request, raw, verdict, started)


async def journal_refusal(
    request: web.Request, *, source: str, provider: str | None, reason: str, url: str, anonymous: bool = False
) -> web.Response:
    """A request that a route outside ``/hooks`` refused as unauthenticated (the bot's webhook, on a
    wrong secret token), journalled, logged and counted as ``/hooks`` refusals are, and its 401;
    ``anonymous`` when it carried no secret at all (:attr:`Verdict.anonymous`)."""
    started = time.perf_counter()
    body = await read_prefix(request, UNAUTHENTICATED_BODY_KEPT)
    raw = _raw(request, source, request.path, body, url)
    verdict = Verdict(provider, 401, reason, anonymous=anonymous)
    return await _journalled(request, raw, verdict, started)


async def _journalled(
    request: web.Request, raw: RawRequest, verdict: Verdict, started: float
) -> web.Response:
    """The request journalled with its verdict, then answered: 503 when the journal cannot take it."""
    try:
        outcome = await request.app[CAPTURE].record(raw, verdict)
    except Exception:
        log.exception("journal write failed", extra={"fields": {"source": raw.source}})
        _count(request, raw.source, 503, started)
        return web.Response(status=503, text="the journal cannot be written right now; retry later")
    _log(raw.source, request.method, raw.path, outcome, started)
    _count(request, raw.source, outcome.http_status, started)
    return _response(outcome, verdict)


def _methods(provider: str) -> frozenset[str]:
    return provider_for(provider).methods


def _response(outcome: Outcome, verdict: Verdict) -> web.Response:
    reply = outcome.reply
    if outcome.status == "rejected":
        headers = (
            {"Allow": ", ".join(sorted(_methods(verdict.provider)))}
            if outcome.http_status == 405 and verdict.provider
            else {}
        )
        return web.Response(status=outcome.http_status, text=(outcome.reason or "") + "\n", headers=headers)
    return web.Response(
        status=reply.status,
        body=reply.body,
        content_type=reply.content_type.split(";")[0],
        charset="utf-8" if reply.body else None,
    )


def _log(source: str, method: str, tail: str, outcome: Outcome, started: float) -> None:
    log.info(
        "request",
        extra={
            "fields": {
                "source": source,
                "method": method,
                "path": tail,
                "journal_id": outcome.journal_id,
                "status": outcome.http_status,
                "outcome": outcome.status,
                "reason": outcome.reason,
                "events": outcome.events,
                "touches_created": outcome.touches_created,
                "ms": round((time.perf_counter() - started) * 1000, 2),
            }
        },
    )


def _count(request: web.Request, source: str, status: int, started: float) -> None:
    label = source if request.app[CAPTURE].config.source(source) else "(unknown)"
    request.app[METRICS].request(label, status, time.perf_counter() - started)


async def healthz(request: web.Request) -> web.Response:
    """200 only when a write reaches the disk: a receiver that cannot journal must look down."""
    store, clock = request.app[STORE], request.app[CLOCK]
    stamp = clock().isoformat()

    def mark(db: Database) -> None:
        meta.put(db, "healthz", stamp)

    try:
        async with asyncio.timeout(HEALTHZ_WRITE_SECONDS):
            # Both writers: webhooks are written on the event loop, everything else on the thread.
            await asyncio.gather(store.write_now(mark), store.write(mark))
    except TimeoutError:
        error = f"database not writable within {HEALTHZ_WRITE_SECONDS:g} s (locked by another process?)"
        return web.json_response({"ok": False, "error": error}, status=503)
    except Exception as exc:
        return web.json_response({"ok": False, "error": f"database not writable: {exc}"}, status=503)
    return web.json_response({"ok": True})


async def metrics(request: web.Request) -> web.Response:
    store, m = request.app[STORE], request.app[METRICS]
    rows = await store.read(backlog)
    m.waiting.set(rows.waiting)
    m.set_failed(rows.failed, (s.name for s in request.app[CAPTURE].config.sources))
    queue = await store.read(webhook_stats)
    age = (
        0.0 if queue.oldest_pending is None else (request.app[CLOCK]() - queue.oldest_pending).total_seconds()
    )
    m.set_webhooks(queue.by_status, max(age, 0.0))
    return web.Response(body=m.render(), content_type="text/plain", charset="utf-8")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("*", "/hooks/{source}", hook)
    app.router.add_route("*", r"/hooks/{source}{tail:/.*}", hook)
