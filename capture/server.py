"""The webhook endpoints: ``/hooks/<source>[/<path>]``, ``/healthz`` and ``/metrics``.

Handlers only turn HTTP into a :class:`RawRequest` and an :class:`Outcome` back into HTTP; what a
request means is decided in ``capture/pipeline.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from multidict import CIMultiDictProxy
from sqlite_utils import Database

from capture.pipeline import Outcome, Verdict
from capture.providers.base import RawRequest, quoted
from leadline import keys

log = logging.getLogger("leadline.http")

READ_CHUNK = 64 * 1024
#: A health check that waits longer than this for a write reports the database as down.
HEALTHZ_WRITE_SECONDS = 10.0


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` (without reading all of it)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    if request.content_length is not None and "Content-Encoding" not in request.headers:
        # Known and within the limit: read whole, a third of the cost of iterating over chunks.
        # A compressed body's length says nothing of what it inflates to, so that one is counted.
        return await request.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _raw(request: web.Request, source: str, tail: str, body: bytes) -> RawRequest:
    config = request.app[keys.CONFIG]
    query = request.rel_url.raw_query_string  # as sent: Twilio signs the encoded URL
    url = f"{config.http.public_url}/hooks/{source}{tail}" + (f"?{query}" if query else "")
    return RawRequest(
        source=source,
        method=request.method,
        path=tail,
        query_string=query,
        headers=CIMultiDictProxy(request.headers.copy()),
        body=body,
        received_at=request.app[keys.CLOCK](),
        url=url,
        remote=request.remote,
    )


async def hook(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    app = request.app
    config, capture = app[keys.CONFIG], app[keys.CAPTURE]
    name = request.match_info["source"]
    tail = request.match_info.get("tail", "")
    source = config.source(name)
    limit = config.http.max_body_bytes
    undecodable = None
    try:
        body = await _read_limited(request, limit)
    except web.RequestPayloadError as exc:  # aiohttp could not inflate it (or the body broke off)
        encoding = request.headers.get("Content-Encoding")
        problem = f"decompressed as {encoding}" if encoding else "read"
        body, undecodable = b"", f"body could not be {problem}: {exc}"
    raw = _raw(request, name, tail, body or b"")
    if source is None:
        verdict = Verdict(
            None, 404, f"no source named {quoted(name)}: check the URL against the sources in the config"
        )
    elif request.method not in _methods(source.provider):
        allowed = ", ".join(sorted(_methods(source.provider))) or "none (this source does not take HTTP)"
        verdict = Verdict(source.provider, 405, f"method {request.method} not allowed here; use {allowed}")
    elif body is None:
        size = request.content_length or limit + 1
        reason = (
            f"body inflates to over the limit of {limit} bytes"
            if "Content-Encoding" in request.headers
            else f"body of {size} bytes is over the limit of {limit}"
        )
        verdict = Verdict(source.provider, 413, reason, keep_body=False)
    elif undecodable:
        verdict = Verdict(source.provider, 400, undecodable, keep_body=False)
    else:
        verdict = capture.judge(raw, source)
    try:
        outcome = await capture.record(raw, verdict)
    except Exception:
        log.exception("journal write failed", extra={"fields": {"source": name}})
        _count(request, name, 503, started)
        return web.Response(status=503, text="the journal cannot be written right now; retry later")
    _log(name, request.method, tail, outcome, started)
    _count(request, name, outcome.http_status, started, outcome)
    return _response(outcome, verdict)


def _methods(provider: str) -> frozenset[str]:
    from capture.pipeline import provider_for

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


def _count(
    request: web.Request, source: str, status: int, started: float, outcome: Outcome | None = None
) -> None:
    metrics = request.app[keys.METRICS]
    label = source if request.app[keys.CONFIG].source(source) else "(unknown)"
    metrics.requests.labels(label, str(status)).inc()
    metrics.latency.labels(label).observe(time.perf_counter() - started)
    if outcome:
        for channel in outcome.channels:
            metrics.touches.labels(channel).inc()


async def healthz(request: web.Request) -> web.Response:
    """200 only when a write reaches the disk: a receiver that cannot journal must look down."""
    store, clock = request.app[keys.STORE], request.app[keys.CLOCK]
    stamp = clock().isoformat()

    def mark(db: Database) -> None:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('healthz', ?)", [stamp])

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
    store, m = request.app[keys.STORE], request.app[keys.METRICS]
    waiting = await store.read(
        lambda db: db.execute(
            "SELECT COUNT(*) FROM journal WHERE status IN ('received', 'failed')"
        ).fetchone()[0]
    )
    m.waiting.set(waiting)
    return web.Response(body=m.render(), content_type="text/plain", charset="utf-8")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("*", "/hooks/{source}", hook)
    app.router.add_route("*", r"/hooks/{source}{tail:/.*}", hook)
