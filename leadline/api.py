"""The JSON API under ``/api/``: contacts, touches, leads, the report, and registrations from a CRM.

Every route but ``/api/openapi.json`` needs ``Authorization: Bearer <token>`` with a token from
``[[api_clients]]`` (compared in constant time). Handlers only parse the query, call a storage
function through the store, and answer JSON. Every error is ``{"error": code, "detail": sentence}``
plus the code's parameters: a client branches on the code and may show the English detail; a storage
error (:mod:`storage.errors`) comes with its own code and parameters.
The OpenAPI document below is written by hand and is what schemathesis checks the server against.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import date
from functools import partial
from typing import Any, Literal

from aiohttp import web
from sqlite_utils import Database

from capture.server import BodyRefused, read_body
from leadline import keys
from storage.contacts import contact_card, search_contacts
from storage.erasure import Actor, forget
from storage.errors import Code, DomainError
from storage.id_pages import leads_after, touches_after
from storage.identifiers import email, mask, phone
from storage.register import Person, register
from storage.registrations import REASONS, STAGES, TEMPERATURES, Draft
from storage.reports.report import build_report
from storage.reports.scope import CHANNELS, Filters, Period, Rules, Scope
from storage.staff import staff_named

log = logging.getLogger("leadline.api")

#: Where a touch entered by hand through the API is recorded (``touches.source``); not a configured
#: source. Its ``external_id`` is the client's name and a fresh id.
API_SOURCE = "api"

MAX_LIMIT = 500


_ERRORS: dict[int, Callable[..., web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    404: web.HTTPNotFound,
    413: partial(web.HTTPRequestEntityTooLarge, 0),  # its size is in the JSON detail
}


#: The API's own refusals, beside storage's :data:`storage.errors.Code`.
ApiCode = Literal[
    "auth_required",
    "unknown_token",
    "bad_parameter",
    "bad_period",
    "bad_body",
    "identifier_required",
    "no_staff",
]


def ApiError(
    status: int,
    code: ApiCode | Code,
    detail: str,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> web.HTTPException:
    """A 4xx with ``{"error": code, "detail": detail, **params}``, raised from a handler or a store function."""
    return _ERRORS[status](
        text=json.dumps({"error": code, "detail": detail, **params}, ensure_ascii=False),
        content_type="application/json",
        headers=headers,
    )


def refused(error: DomainError) -> web.HTTPException:
    """A storage error as the API answers it: what the client sent cannot be done (400)."""
    return ApiError(400, error.code, str(error), **error.params())


def _client(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="leadline"'}
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "auth_required",
            "send Authorization: Bearer <token> with a token from [[api_clients]]",
            challenge,
        )
    given = token.strip().encode()
    for client in request.app[keys.CONFIG].api_clients:
        if hmac.compare_digest(given, client.token.get_secret_value().encode()):
            return client.name
    raise ApiError(401, "unknown_token", "unknown token", challenge)


def _int(request: web.Request, name: str, default: int, low: int = 0, high: int = 2**31) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"{name} must be an integer", parameter=name) from None
    if not low <= value <= high:
        raise ApiError(400, "bad_parameter", f"{name} must be between {low} and {high}", parameter=name)
    return value


def _choice(request: web.Request, name: str, allowed: Sequence[str], message: str) -> str | None:
    value = request.query.get(name)
    if value is not None and value not in allowed:
        raise ApiError(400, "bad_parameter", message, parameter=name)
    return value


_CHANNEL = ("channel", CHANNELS, "channel must be call, form, email or manual")


def _today(request: web.Request) -> date:
    """The day it is now where the business is, which a named period counts from."""
    return request.app[keys.CLOCK]().astimezone(request.app[keys.CONFIG].tz).date()


def _period(request: web.Request) -> Period | None:
    """``from``/``to`` (either order; ``to`` alone is that day) win over ``period``."""
    config = request.app[keys.CONFIG]
    today = _today(request)
    text, first, last = (request.query.get(k) for k in ("period", "from", "to"))
    try:
        if first or last:
            start = _day(first) if first else _day(last or "")
            end = _day(last) if last else today
            return Period(min(start, end), max(start, end), config.tz)
        return Period.parse(text, config.tz, today) if text else None
    except ValueError as exc:
        raise ApiError(400, "bad_period", str(exc)) from None


def _day(text: str) -> date:
    """A date, kept within years a clock can turn into instants in any time zone."""
    return min(max(date.fromisoformat(text), _EARLIEST), _LATEST)


_EARLIEST, _LATEST = date(1900, 1, 1), date(9000, 12, 31)


#: A paged list's read: (after_id, limit, period, the filter's value) → rows.
RowsAfter = Callable[[Database, int, int, Period | None, str | None], list[dict[str, Any]]]


async def _paged(
    request: web.Request,
    key: str,
    rows_after: RowsAfter,
    filter_by: tuple[str, Sequence[str], str],
) -> web.Response:
    """A page of rows by id past ``after_id``, within the period, with one column filtered.

    The paged lists differ only in their rows and their filter, so the parameters, their
    errors (in this order) and the page's shape are written once, here.
    """
    period = _period(request)
    after = _int(request, "after_id", 0)
    limit = _int(request, "limit", 100, 1, MAX_LIMIT)
    wanted = _choice(request, *filter_by)
    found = await request.app[keys.STORE].read(lambda db: rows_after(db, after, limit, period, wanted))
    return web.json_response({key: found, "next_after_id": found[-1]["id"] if found else None})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


async def contacts(request: web.Request) -> web.Response:
    _client(request)
    if "q" not in request.query:
        raise ApiError(
            400, "bad_parameter", "q is required: a phone number, an email or part of a name", parameter="q"
        )
    query = request.query["q"]
    limit = _int(request, "limit", 20, 1, 100)
    region = request.app[keys.CONFIG].leadline.region

    def find(db: Database) -> list[dict[str, Any]]:
        return [c for cid in search_contacts(db, query, region, limit) if (c := contact_card(db, cid))]

    return web.json_response({"contacts": await request.app[keys.STORE].read(find)})


def _contact_id(request: web.Request) -> int:
    try:
        contact_id = int(request.match_info["id"])
    except ValueError:
        raise ApiError(400, "bad_parameter", "the contact id must be an integer", parameter="id") from None
    if not 0 <= contact_id < 2**63:
        raise ApiError(404, "no_contact", f"no contact #{contact_id}", contact_id=contact_id)
    return contact_id


async def contact(request: web.Request) -> web.Response:
    _client(request)
    contact_id = _contact_id(request)
    card = await request.app[keys.STORE].read(lambda db: contact_card(db, contact_id))
    if card is None:
        raise ApiError(404, "no_contact", f"no contact #{contact_id}", contact_id=contact_id)
    return web.json_response(card)


async def forget_contact(request: web.Request) -> web.Response:
    """Erase the person behind a contact (storage/erasure.py); the bot's unsaved drafts go too."""
    client = _client(request)
    contact_id = _contact_id(request)
    app = request.app
    erased = await forget(
        app[keys.STORE], contact_id, at=app[keys.CLOCK](), actor=Actor("api", f"api: {client}")
    )
    if erased is None:
        raise ApiError(404, "no_contact", f"no contact #{contact_id}", contact_id=contact_id)
    drop_drafts = app.get(keys.DROP_DRAFTS)
    if drop_drafts is not None:
        await drop_drafts(erased.contact_ids, erased.touch_ids)
    return web.json_response(
        {
            "erasure_id": erased.erasure_id,
            "contact_id": erased.contact_id,
            "contacts": list(erased.contact_ids),
            "kinds": list(erased.kinds),
            "rows": erased.counts,
            "checkpointed": erased.checkpointed,
        }
    )


async def touches(request: web.Request) -> web.Response:
    _client(request)
    return await _paged(request, "touches", touches_after, _CHANNEL)


async def leads(request: web.Request) -> web.Response:
    _client(request)
    return await _paged(
        request, "leads", leads_after, ("stage", STAGES, f"stage must be one of {', '.join(STAGES)}")
    )


async def report(request: web.Request) -> web.Response:
    _client(request)
    app = request.app
    config = app[keys.CONFIG]
    period = _period(request) or Period.parse("month", config.tz, _today(request))
    channel = _choice(request, *_CHANNEL)
    staff = request.query.get("staff")
    scope_filters = Filters(channel=channel, campaign=request.query.get("campaign"))

    def read(db: Database) -> dict[str, Any]:
        filters = scope_filters
        if staff is not None:
            staff_id = staff_named(db, staff)
            if staff_id is None:
                raise ApiError(404, "no_staff", f"no staff member named {staff!r}", staff=staff)
            filters = Filters(filters.channel, filters.campaign, staff_id)
        return build_report(db, Scope(period, filters, as_of=app[keys.CLOCK]()), Rules.from_config(config))

    return web.json_response(await app[keys.STORE].read(read))


async def create_registration(request: web.Request) -> web.Response:
    client = _client(request)
    try:
        body = json.loads(await read_body(request, request.app[keys.CONFIG].http.max_body_bytes))
    except BodyRefused as exc:
        raise ApiError(exc.status, "bad_body", exc.reason) from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "bad_body", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_body", "the body must be a JSON object")
    config, now = request.app[keys.CONFIG], request.app[keys.CLOCK]()
    fields = {
        k: body.get(k)
        for k in (
            "phone",
            "email",
            "disposition",
            "temperature",
            "reason",
            "campaign",
            "need",
            "note",
            "name",
        )
    }
    for key, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise ApiError(400, "bad_parameter", f"{key} must be a string", parameter=key)
    # An invalid number or address is kept as written and flagged, as capture keeps it: the
    # registration is not lost, and the flagged identifier is never used to match anyone.
    idents = [
        i
        for i in (
            phone(fields["phone"], config.leadline.region) if fields["phone"] else None,
            email(fields["email"]),
        )
        if i is not None
    ]
    if not idents:
        raise ApiError(400, "identifier_required", "give the contact's phone or email")

    whom = Person(
        tuple(idents),
        request.app[keys.CAPTURE].context(API_SOURCE, None, now),
        external_id=f"{client}:{uuid.uuid4().hex}",
        name=fields["name"],
    )
    draft = Draft(
        fields["disposition"],  # type: ignore[arg-type]
        temperature=fields["temperature"],  # type: ignore[arg-type]
        reason=fields["reason"],
        campaign=fields["campaign"],
        need=fields["need"],
        note=fields["note"],
    )
    try:
        done = await request.app[keys.STORE].write(
            partial(register, whom=whom, draft=draft, at=now, origin="api")
        )
    except DomainError as exc:
        raise refused(exc) from None
    result = {
        "registration_id": done.registration_id,
        "contact_id": done.contact_id,
        "lead_id": done.lead_id,
        "contact_created": done.contact_created,
    }
    log.info(
        "registration from the API",
        extra={"fields": {"client": client, "contact": mask(fields["phone"] or fields["email"]), **result}},
    )
    return web.json_response(result, status=201)


def setup_api(app: web.Application, *, send_webhooks: bool = True) -> None:
    """The API's routes, and the sender of the outgoing webhooks that tell a CRM what changed.

    Workers pass ``send_webhooks=False``: the queue is in the database and the primary sends it.
    """
    from leadline.webhooks_out import webhooks_ctx

    if send_webhooks:
        app.cleanup_ctx.append(webhooks_ctx)
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_get("/api/contacts", contacts)
    app.router.add_get("/api/contacts/{id}", contact)
    app.router.add_delete("/api/contacts/{id}", forget_contact)
    app.router.add_get("/api/touches", touches)
    app.router.add_get("/api/leads", leads)
    app.router.add_get("/api/report", report)
    app.router.add_post("/api/registrations", create_registration)


# -- the OpenAPI document ------------------------------------------------------------------------


def _ref(schema: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{schema}"}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _ok(_ref("Error"), "a bad parameter")
_UNAUTHORIZED = _ok(_ref("Error"), "no or unknown bearer token")
_PERIOD_PARAMS: list[dict[str, Any]] = [
    {
        "name": "period",
        "in": "query",
        "schema": {
            "type": "string",
            "enum": ["day", "today", "yesterday", "week", "last-week", "month", "last-month"],
        },
        "description": "a named period (YYYY-MM and YYYY-MM-DD are accepted too)",
    },
    {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"}},
    {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"}},
]
_PAGE_PARAMS: list[dict[str, Any]] = [
    {"name": "after_id", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 2147483648}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
]
_CHANNEL_PARAM = {"name": "channel", "in": "query", "schema": {"type": "string", "enum": list(CHANNELS)}}
_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}
_NULLABLE_NUMBER = {"type": ["number", "null"]}


def _op(
    summary: str, response: dict[str, Any], params: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": response, "400": _ERROR, "401": _UNAUTHORIZED}
    responses.update(extra.pop("responses", {}))
    return {"summary": summary, "parameters": params or [], "responses": responses, **extra}


def _page_op(summary: str, key: str, item: str, filter_param: dict[str, Any]) -> dict[str, Any]:
    """The operation of a paged list: see ``_paged``."""
    return _op(
        summary,
        _ok(
            {
                "type": "object",
                "required": [key, "next_after_id"],
                "properties": {key: {"type": "array", "items": _ref(item)}, "next_after_id": _NULLABLE_INT},
            }
        ),
        [*_PERIOD_PARAMS, *_PAGE_PARAMS, filter_param],
    )


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Leadline API",
        "version": "1.0.0",
        "description": "Contacts, touches, leads and numbers.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "description": "`error` is a code to branch on; `detail` says it in English; the code's"
                " parameters (e.g. `parameter`, the one that was wrong) come beside them",
                "required": ["error", "detail"],
                "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
            },
            "Contact": {
                "type": "object",
                "required": ["id", "name", "created_at", "identifiers", "touches"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": _NULLABLE_STRING,
                    "created_at": {"type": "string"},
                    "merged_into": _NULLABLE_INT,
                    "blocked": {"type": "integer"},
                    "identifiers": {"type": "array", "items": {"type": "object"}},
                    "touches": {"type": "array", "items": {"type": "object"}},
                },
            },
            "Touch": {
                "type": "object",
                "required": ["id", "source", "channel", "direction", "occurred_at"],
                "properties": {
                    "id": {"type": "integer"},
                    "source": {"type": "string"},
                    "channel": {"type": "string", "enum": list(CHANNELS)},
                    "direction": {"type": "string", "enum": ["in", "out"]},
                    "contact_id": _NULLABLE_INT,
                    "occurred_at": {"type": "string"},
                    "campaign": _NULLABLE_STRING,
                    "hidden_caller": {"type": "integer"},
                    "call_status": _NULLABLE_STRING,
                    "answered": _NULLABLE_INT,
                    "duration_s": _NULLABLE_INT,
                    "staff_id": _NULLABLE_INT,
                    "called_back_at": _NULLABLE_STRING,
                    "blocked": {"type": "integer"},
                    "dropped": _NULLABLE_STRING,
                },
            },
            "Lead": {
                "type": "object",
                "required": ["id", "contact_id", "temperature", "stage", "created_at"],
                "properties": {
                    "id": {"type": "integer"},
                    "contact_id": {"type": "integer"},
                    "temperature": {"type": "string", "enum": list(TEMPERATURES)},
                    "stage": {"type": "string", "enum": list(STAGES)},
                    "owner_id": _NULLABLE_INT,
                    "campaign": _NULLABLE_STRING,
                    "need": _NULLABLE_STRING,
                    "amount": _NULLABLE_NUMBER,
                    "won_amount": _NULLABLE_NUMBER,
                    "lost_reason": _NULLABLE_STRING,
                    "returned_reason": _NULLABLE_STRING,
                    "follow_up_on": _NULLABLE_STRING,
                    "created_at": {"type": "string"},
                    "updated_at": {"type": "string"},
                },
            },
            "Report": {
                "type": "object",
                "description": "every figure of `leadline report --json`, under the same keys",
                "required": [
                    "period",
                    "inbound_touches",
                    "inbound_contacts",
                    "hidden_caller_touches",
                    "registered",
                    "lrr",
                    "lrr_new",
                    "registration_lag_p50_min",
                    "registration_lag_p90_min",
                    "response_p50_min",
                    "response_p90_min",
                    "responded_within_5_min",
                    "responded_within_60_min",
                    "not_responded",
                    "missed_calls",
                    "missed_not_called_back",
                    "leads",
                    "by_channel",
                    "by_campaign",
                    "by_staff",
                ],
                "properties": {
                    "period": {"type": "object"},
                    "inbound_touches": {"type": "integer"},
                    "inbound_contacts": {"type": "integer"},
                    "hidden_caller_touches": {"type": "integer"},
                    "registered": {"type": "integer"},
                    "lrr": _NULLABLE_NUMBER,
                    "lrr_new": _NULLABLE_NUMBER,
                    "registration_lag_p50_min": _NULLABLE_NUMBER,
                    "registration_lag_p90_min": _NULLABLE_NUMBER,
                    "response_p50_min": _NULLABLE_NUMBER,
                    "response_p90_min": _NULLABLE_NUMBER,
                    "responded_within_5_min": _NULLABLE_NUMBER,
                    "responded_within_60_min": _NULLABLE_NUMBER,
                    "not_responded": {"type": "integer"},
                    "missed_calls": {"type": "integer"},
                    "missed_not_called_back": {"type": "integer"},
                    "leads": {"type": "integer"},
                    "lead_cost": _NULLABLE_NUMBER,
                    "by_channel": {"type": "object"},
                    "by_campaign": {"type": "object"},
                    "by_staff": {"type": "object"},
                },
            },
            "NewRegistration": {
                "type": "object",
                "description": "the contact's phone or email (or both); a lead needs a temperature, a not-a-lead a reason",
                "required": ["disposition"],
                "anyOf": [{"required": ["phone"]}, {"required": ["email"]}],
                "oneOf": [
                    {"properties": {"disposition": {"const": "lead"}}, "required": ["temperature"]},
                    {"properties": {"disposition": {"const": "not_a_lead"}}, "required": ["reason"]},
                ],
                "properties": {
                    "phone": {"type": "string", "pattern": "^[+0-9(][0-9 ()+-]*$"},
                    "email": {"type": "string", "pattern": "\\S"},
                    "name": {"type": "string"},
                    "disposition": {"type": "string", "enum": ["lead", "not_a_lead"]},
                    "temperature": {"type": "string", "enum": list(TEMPERATURES)},
                    "reason": {"type": "string", "enum": list(REASONS)},
                    "campaign": {"type": "string"},
                    "need": {"type": "string"},
                    "note": {"type": "string"},
                },
            },
            "Erased": {
                "type": "object",
                "required": ["erasure_id", "contact_id", "contacts", "kinds", "rows", "checkpointed"],
                "properties": {
                    "erasure_id": {"type": "integer"},
                    "contact_id": {"type": "integer"},
                    "contacts": {"type": "array", "items": {"type": "integer"}},
                    "kinds": {"type": "array", "items": {"type": "string", "enum": ["email", "phone"]}},
                    "rows": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "checkpointed": {"type": "boolean"},
                },
            },
            "Registered": {
                "type": "object",
                "required": ["registration_id", "contact_id", "lead_id", "contact_created"],
                "properties": {
                    "registration_id": {"type": "integer"},
                    "contact_id": {"type": "integer"},
                    "lead_id": _NULLABLE_INT,
                    "contact_created": {"type": "boolean"},
                },
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/contacts": {
            "get": _op(
                "Find contacts by phone (any spelling), email or part of a name",
                _ok(
                    {
                        "type": "object",
                        "required": ["contacts"],
                        "properties": {"contacts": {"type": "array", "items": _ref("Contact")}},
                    }
                ),
                [
                    {
                        "name": "q",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                ],
            )
        },
        "/api/contacts/{id}": {
            "get": _op(
                "One contact with its identifiers and touches",
                _ok(_ref("Contact")),
                [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                responses={"404": _ok(_ref("Error"), "no such contact")},
            ),
            "delete": _op(
                "Erase the person behind a contact: identifiers, names, texts, raw requests and messages."
                " Their touches stay on the anonymous contact, so past reports do not change; the erasure"
                " is recorded without the values. The id of a contact merged into another erases that one.",
                _ok(_ref("Erased"), "erased (again, for a contact erased before)"),
                [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                responses={"404": _ok(_ref("Error"), "no such contact")},
            ),
        },
        "/api/touches": {
            "get": _page_op(
                "Touches, oldest first, in pages (pass next_after_id as after_id)",
                "touches",
                "Touch",
                _CHANNEL_PARAM,
            )
        },
        "/api/leads": {
            "get": _page_op(
                "Leads, oldest first, in pages",
                "leads",
                "Lead",
                {"name": "stage", "in": "query", "schema": {"type": "string", "enum": list(STAGES)}},
            )
        },
        "/api/report": {
            "get": _op(
                "The numbers for a period (default: this month)",
                _ok(_ref("Report")),
                [
                    *_PERIOD_PARAMS,
                    _CHANNEL_PARAM,
                    {"name": "campaign", "in": "query", "schema": {"type": "string"}},
                    {"name": "staff", "in": "query", "schema": {"type": "string"}},
                ],
                responses={"404": _ok(_ref("Error"), "no staff member of that name")},
            )
        },
        "/api/registrations": {
            "post": {
                "summary": "Register a contact (found or created by phone or email) as a lead or not a lead",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewRegistration")}},
                },
                "responses": {
                    "201": _ok(_ref("Registered"), "registered"),
                    "400": _ERROR,
                    "401": _UNAUTHORIZED,
                },
            }
        },
    },
}
OPENAPI["paths"]["/api/openapi.json"] = {
    "get": {"summary": "This document", "security": [], "responses": {"200": _ok({"type": "object"})}}
}
