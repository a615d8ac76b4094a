"""The API's routes. Each handler, and with it the API's pydantic models and the report engine
(leadline/api.py), loads with the first request that reaches the API: a Leadline that only captures
webhooks never pays for them at start (bench/idle.py, tests/test_idle.py)."""

from __future__ import annotations

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
