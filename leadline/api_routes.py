"""The API's routes. Each handler, and with it the API's pydantic models and the report engine
(leadline/api.py), loads with the first request that reaches the API: a Leadline that only captures
webhooks never pays for them at start (bench/idle.py, tests/test_idle.py)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from importlib import import_module
from typing import cast

from aiohttp import hdrs, web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Method, path and the name of its handler in leadline/api.py.
ROUTES: tuple[tuple[str, str, str], ...] = (
    (hdrs.METH_GET, "/api/openapi.json", "openapi"),
    (hdrs.METH_GET, "/api/contacts", "contacts"),
    (hdrs.METH_GET, "/api/contacts/{id}", "contact"),
    (hdrs.METH_PATCH, "/api/contacts/{id}", "update_contact"),
    (hdrs.METH_DELETE, "/api/contacts/{id}", "forget_contact"),
    (hdrs.METH_GET, "/api/blocked", "blocked"),
    (hdrs.METH_DELETE, "/api/blocked/{id}", "unblock_entry"),
    (hdrs.METH_GET, "/api/touches", "touches"),
    (hdrs.METH_GET, "/api/leads", "leads"),
    (hdrs.METH_GET, "/api/report", "report"),
    (hdrs.METH_POST, "/api/registrations", "create_registration"),
)


def _pattern(path: str) -> re.Pattern[str]:
    """A route's path as a regular expression: ``{id}`` is any one segment, as the router reads it."""
    return re.compile("[^/]+".join(re.escape(part) for part in re.split(r"\{[^}]+\}", path)))


_PATTERNS = tuple((method, _pattern(path)) for method, path, _ in ROUTES)


async def unmatched(request: web.Request) -> web.Response:
    """What no route under ``/api/`` takes gets the API's JSON refusal with a code, not aiohttp's
    plain text: 405 with ``Allow`` for a path that takes other methods, else 404."""
    path = request.rel_url.path
    allowed = sorted({method for method, pattern in _PATTERNS if pattern.fullmatch(path)})
    if allowed:
        return web.json_response(
            {
                "error": "method_not_allowed",
                "detail": f"{request.method} is not allowed here: use {', '.join(allowed)}",
                "allowed": allowed,
            },
            status=405,
            headers={hdrs.ALLOW: ", ".join(allowed)},
        )
    return web.json_response(
        {"error": "not_found", "detail": "no such path in the API: see /api/openapi.json"}, status=404
    )


def _handler(name: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        handler = cast(Handler, getattr(import_module("leadline.api"), name))
        return await handler(request)

    handle.__name__ = handle.__qualname__ = name
    return handle


def setup_api(app: web.Application, *, send_webhooks: bool = True) -> None:
    """The API's routes, and the sender of the outgoing webhooks that tell a CRM what changed.

    Workers pass ``send_webhooks=False``: the queue is in the database and the primary sends it.
    """
    from leadline.webhooks_out import webhooks_ctx

    if send_webhooks:
        app.cleanup_ctx.append(webhooks_ctx)
    for method, path, name in ROUTES:
        app.router.add_route(method, path, _handler(name))
    # Last, so that it takes only what the routes above do not.
    app.router.add_route(hdrs.METH_ANY, "/api/{tail:.*}", unmatched)
