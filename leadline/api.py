"""The JSON API under ``/api/``: contacts, touches, leads, the report, and registrations from a CRM.

Every route but ``/api/openapi.json`` needs ``Authorization: Bearer <token>`` with a token from
``[[api_clients]]`` (compared in constant time). Handlers only parse the query, call a storage
function through the store, and answer JSON. Every error is ``{"error": code, "detail": sentence}``
plus the code's parameters: a client branches on the code and may show the English detail; a storage
error (:mod:`storage.errors`) comes with its own code and parameters.
Queries and bodies are parsed, and answers written, by the models of leadline/api_models.py, whose
JSON schemas are the OpenAPI document (leadline/api_document.py) that schemathesis checks the
server against.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any, Literal, TypeVar

from aiohttp import web
from http_sfv.item import Item as SfItem
from pydantic import BaseModel, ValidationError
from sqlite_utils import Database

from capture.server import BodyRefused, read_body
from leadline import api_models as m
from leadline import keys
from leadline.api_document import IDEMPOTENCY_HOURS, MAX_IDEMPOTENCY_KEY, openapi_document
from storage.blocking import blocklist_page, unblock
from storage.contacts import contact_card, search_contacts, set_do_not_contact
from storage.errors import (
    BadDisposition,
    BadTemperature,
    Code,
    DomainError,
    NoCampaign,
    NoContact,
    ReasonRequired,
)
from storage.given_secrets import same_secret
from storage.id_pages import leads_after, touches_after
from storage.idempotency import Answered, expire, recall, remember
from storage.identifiers import email, mask, phone
from storage.register import Person, register
from storage.registrations import REASONS, Draft
from storage.reports.scope import Filters, Period, Rules, Scope
from storage.staff import known_campaign, staff_called

log = logging.getLogger("leadline.api")

#: Where a touch entered by hand through the API is recorded (``touches.source``); not a configured
#: source. Its ``external_id`` is the client's name and a fresh id.
API_SOURCE = "api"


_ERRORS: dict[int, Callable[..., web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    404: web.HTTPNotFound,
    413: partial(web.HTTPRequestEntityTooLarge, 0),  # its size is in the JSON detail
    422: web.HTTPUnprocessableEntity,
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
    "bad_idempotency_key",
    "idempotency_key_reused",
    "not_blocked",
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
    """A storage error as the API answers it: what the client sent cannot be done (400), or names
    something that is not there (404, as ``no_staff`` is)."""
    return ApiError(404 if isinstance(error, NoCampaign) else 400, error.code, str(error), **error.params())


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
    given = token.strip()
    for client in request.app[keys.CONFIG].api_clients:
        if same_secret(given, client.token.get_secret_value()):
            return client.name
    raise ApiError(401, "unknown_token", "unknown token", challenge)


Query = TypeVar("Query", bound=BaseModel)
Body = TypeVar("Body", bound=BaseModel)

#: Messages for the parameters whose refusal says more than pydantic's words.
_PERIOD_HELP = "use day, yesterday, week, last-week, month, last-month, YYYY-MM or YYYY-MM-DD"


def _refusal(error: ValidationError, given: dict[str, Any]) -> web.HTTPException:
    """A model's refusal as the API words it: the first wrong parameter, by name."""
    first = error.errors(include_url=False)[0]
    name = str(first["loc"][0]) if first["loc"] else "body"
    if name in ("period", "from", "to"):
        if name == "period":
            return ApiError(400, "bad_period", f"unknown period {given.get(name)!r}: {_PERIOD_HELP}")
        return ApiError(400, "bad_period", f"{name} must be a day: YYYY-MM-DD")
    if name == "as_of":
        return ApiError(
            400,
            "bad_parameter",
            "as_of must be an ISO date and time, e.g. 2026-12-01T09:00 or 2026-12-01T09:00:00+03:00"
            " (send the + as %2B)",
            parameter=name,
        )
    if first["type"] == "missing":
        return ApiError(400, "bad_parameter", f"{name} is required", parameter=name)
    if first["type"] == "string_type":
        return ApiError(400, "bad_parameter", f"{name} must be a string", parameter=name)
    message = first["msg"][0].lower() + first["msg"][1:]
    return ApiError(400, "bad_parameter", f"{name}: {message}", parameter=name)


def _unknown(
    exc: ValidationError, model: type[BaseModel], noun: str, takes: Callable[[list[str]], str]
) -> web.HTTPException | None:
    """The refusal of every name ``model`` does not take (a query's parameters, a body's keys), with
    what it does take; None when every name was known."""
    unknown = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden"]
    if not unknown:
        return None
    known = [field.alias or name for name, field in model.model_fields.items()]
    return ApiError(
        400,
        "bad_parameter",
        f"unknown {noun}{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: {takes(known)}",
        parameter=unknown[0],
        parameters=unknown,
    )


def _query(request: web.Request, model: type[Query]) -> Query:
    """The operation's query; a parameter it does not take, or one given more than once (only one
    value would be read, and the answer would look like one for all of them), is refused, naming
    every such one."""
    given = dict(request.query)
    try:
        query = model.model_validate(given)
    except ValidationError as exc:
        unknown = _unknown(
            exc,
            model,
            "parameter",
            lambda takes: (
                f"this operation takes {', '.join(takes)}" if takes else "this operation takes none"
            ),
        )
        raise (unknown or _refusal(exc, given)) from None
    repeated = [name for name in given if len(request.query.getall(name)) > 1]
    if repeated:
        raise ApiError(
            400,
            "bad_parameter",
            f"give {', '.join(repeated)} once: an operation takes one value of each parameter",
            parameter=repeated[0],
            parameters=repeated,
        )
    return query


def _today(request: web.Request) -> date:
    """The day it is now where the business is, which a named period counts from."""
    return request.app[keys.CLOCK]().astimezone(request.app[keys.CONFIG].tz).date()


def _period(request: web.Request, query: m.PeriodQuery, today: date | None = None) -> Period | None:
    """``from``/``to`` (either order; ``to`` alone is that day) win over ``period``; ``today`` (the
    report time's day) is what a named period and a missing ``to`` count from."""
    tz = request.app[keys.CONFIG].tz
    today = today or _today(request)
    if query.from_ or query.to:
        start = _day(query.from_ or query.to or today)
        end = _day(query.to) if query.to else today
        return Period(min(start, end), max(start, end), tz)
    if isinstance(query.period, date):
        return Period.day(_day(query.period), tz)
    if query.period is not None and query.period[0].isdigit():  # a month: YYYY-MM
        return Period.month(_day(date.fromisoformat(f"{query.period}-01")), tz)
    if query.period is not None:
        return Period.parse(query.period, tz, today)
    return None


def _day(day: date) -> date:
    """A date, kept within years a clock can turn into instants in any time zone."""
    return min(max(day, _EARLIEST), _LATEST)


_EARLIEST, _LATEST = date(1900, 1, 1), date(9000, 12, 31)


def _answer(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """The answer as its model writes it: flags as booleans, whatever SQLite stored."""
    return web.Response(
        text=model.model_dump_json(by_alias=True),
        status=status,
        headers=headers,
        content_type="application/json",
    )


async def openapi(request: web.Request) -> web.Response:
    fields = request.app[keys.CONFIG].lead_fields
    return web.json_response(openapi_document(tuple(fields.required), tuple(fields.desirable)))


async def contacts(request: web.Request) -> web.Response:
    _client(request)
    query = _query(request, m.ContactsQuery)
    config = request.app[keys.CONFIG]
    region, regions = config.leadline.region, config.phone_regions

    def find(db: Database) -> list[dict[str, Any]]:
        return [
            c
            for cid in search_contacts(db, query.q, region, query.limit, regions)
            if (c := contact_card(db, cid))
        ]

    found = await request.app[keys.STORE].read(find)
    return _answer(m.Contacts.model_validate({"contacts": found}))


def _path_id(request: web.Request, what: str) -> int:
    """The ``{id}`` of the path, written in ASCII digits: ``int()`` alone also reads ``1_0`` as 10
    and ``٣`` as 3, and an erasure must act on the record the caller wrote, or on none."""
    text = request.match_info["id"]
    if not (text.isascii() and text.isdigit() and len(text) <= 19):  # 2**63 has 19 digits
        raise ApiError(400, "bad_parameter", f"the {what} id must be an integer", parameter="id")
    return int(text)


def _contact_id(request: web.Request) -> int:
    contact_id = _path_id(request, "contact")
    if not 0 <= contact_id < 2**63:
        raise ApiError(404, "no_contact", f"no contact #{contact_id}", contact_id=contact_id)
    return contact_id


async def contact(request: web.Request) -> web.Response:
    _client(request)
    _query(request, m.NoQuery)
    contact_id = _contact_id(request)
    card = await request.app[keys.STORE].read(lambda db: contact_card(db, contact_id))
    if card is None:
        raise ApiError(404, "no_contact", f"no contact #{contact_id}", contact_id=contact_id)
    return _answer(m.Contact.model_validate(card))


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await read_body(request, request.app[keys.CONFIG].http.max_body_bytes))
    except BodyRefused as exc:
        raise ApiError(exc.status, "bad_body", exc.reason) from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "bad_body", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_body", "the body must be a JSON object")
    try:  # JSON may escape half of a UTF-16 pair (\ud800) alone: no text, and nothing SQLite stores
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            400, "bad_body", "the body holds a lone surrogate (\\ud800-\\udfff): send Unicode text"
        ) from None
    return body


async def _body(request: web.Request, model: type[Body]) -> tuple[dict[str, Any], Body]:
    """The JSON object sent, and it read by the operation's model; a refusal names every key the
    model does not take, else the first wrong field."""
    body = await _json_object(request)
    try:
        return body, model.model_validate(body)
    except ValidationError as exc:
        unknown = _unknown(
            exc,
            model,
            "key",
            lambda takes: (
                f"the body takes {', '.join(takes)}"
                + (" ([lead_fields] other than need and name go under fields)" if "fields" in takes else "")
            ),
        )
        if unknown:
            raise unknown from None
        raise _body_refusal(exc, body) from None


async def update_contact(request: web.Request) -> web.Response:
    """Set or clear a contact's do-not-contact flag; answers the contact as GET does."""
    client = _client(request)
    _query(request, m.NoQuery)
    contact_id = _contact_id(request)
    _, change = await _body(request, m.ContactChange)
    app = request.app

    def mark(db: Database) -> dict[str, Any] | None:
        try:
            marked = set_do_not_contact(db, contact_id, change.do_not_contact, at=app[keys.CLOCK]())
        except NoContact:
            return None
        return contact_card(db, marked)

    card = await app[keys.STORE].write(mark)
    if card is None:
        raise ApiError(404, "no_contact", f"no contact #{contact_id}", contact_id=contact_id)
    log.info(
        "do not contact set from the API",
        extra={"fields": {"client": client, "contact": card["id"], "do_not_contact": change.do_not_contact}},
    )
    return _answer(m.Contact.model_validate(card))


async def forget_contact(request: web.Request) -> web.Response:
    """Erase the person behind a contact (storage/erasure.py); the bot's unsaved drafts go with them."""
    from storage.erasure import Actor, forget  # loaded by the first erasure, not at start

    client = _client(request)
    _query(request, m.NoQuery)
    contact_id = _contact_id(request)
    app = request.app
    erased = await forget(
        app[keys.STORE], contact_id, at=app[keys.CLOCK](), actor=Actor("api", f"api: {client}")
    )
    if erased is None:
        raise ApiError(404, "no_contact", f"no contact #{contact_id}", contact_id=contact_id)
    return _answer(
        m.Erased(
            erasure_id=erased.erasure_id,
            contact_id=erased.contact_id,
            contacts=list(erased.contact_ids),
            kinds=list(erased.kinds),
            rows=erased.counts,
            checkpointed=erased.checkpointed,
        )
    )


async def blocked(request: web.Request) -> web.Response:
    """The block list a page at a time, and the config's ``[[block]]`` rules (not removable here)."""
    _client(request)
    query = _query(request, m.BlockedQuery)
    found = await request.app[keys.STORE].read(
        lambda db: blocklist_page(db, after_id=query.after_id, limit=query.limit)
    )
    return _answer(
        m.BlockedPage.model_validate(
            {
                "blocked": found,
                "rules": request.app[keys.CAPTURE].blocking.rows(),
                "next_after_id": found[-1]["id"] if found else None,
            }
        )
    )


async def unblock_entry(request: web.Request) -> web.Response:
    """Take a number or address off the block list: its touches count again from now on."""
    client = _client(request)
    _query(request, m.NoQuery)
    entry_id = _path_id(request, "entry")
    if not 0 <= entry_id < 2**63:
        raise ApiError(404, "not_blocked", f"no block-list entry #{entry_id}", entry_id=entry_id)
    app = request.app
    entry = await app[keys.STORE].write(partial(unblock, entry_id=entry_id, at=app[keys.CLOCK]()))
    if entry is None:
        raise ApiError(404, "not_blocked", f"no block-list entry #{entry_id}", entry_id=entry_id)
    log.info(
        "unblocked from the API",
        extra={"fields": {"client": client, "entry": entry_id, "kind": entry["kind"]}},
    )
    return _answer(m.Unblocked.model_validate({"unblocked": entry}))


async def touches(request: web.Request) -> web.Response:
    _client(request)
    query = _query(request, m.TouchesQuery)
    period = _period(request, query)
    found = await request.app[keys.STORE].read(
        lambda db: touches_after(db, query.after_id, query.limit, period, query.channel)
    )
    return _answer(
        m.TouchPage.model_validate({"touches": found, "next_after_id": found[-1]["id"] if found else None})
    )


async def leads(request: web.Request) -> web.Response:
    _client(request)
    query = _query(request, m.LeadsQuery)
    period = _period(request, query)
    found = await request.app[keys.STORE].read(
        lambda db: leads_after(db, query.after_id, query.limit, period, query.stage)
    )
    return _answer(
        m.LeadPage.model_validate({"leads": found, "next_after_id": found[-1]["id"] if found else None})
    )


async def report(request: web.Request) -> web.Response:
    _client(request)
    app = request.app
    config = app[keys.CONFIG]
    query = _query(request, m.ReportQuery)
    # The report time as `leadline report --as-of` takes it: without an offset, on the office clock.
    now = app[keys.CLOCK]()
    if query.as_of is not None:
        now = query.as_of if query.as_of.tzinfo else query.as_of.replace(tzinfo=config.tz)
        now = min(max(now, datetime.combine(_EARLIEST, time(), UTC)), datetime.combine(_LATEST, time(), UTC))
    today = now.astimezone(config.tz).date()
    period = _period(request, query, today) or Period.parse("month", config.tz, today)
    staff, campaign = query.staff, query.campaign

    # The report engine loads with the first report asked for, not with every process (bench/idle.py).
    from storage.reports.report import build_report

    def read(db: Database) -> dict[str, Any]:
        staff_id = None
        if staff is not None:
            staff_id = staff_called(db, staff)
            if not staff_id:
                raise ApiError(404, "no_staff", f"no staff member named {staff!r}", staff=staff)
        try:
            # A name not known, or in another letter case, would answer zeros that look like a campaign
            # with no activity; one taken out of the config still has its past.
            chosen = None if campaign is None else known_campaign(db, campaign, past=True)
        except NoCampaign as exc:
            raise refused(exc) from None
        filters = Filters(channel=query.channel, campaign=chosen, staff_id=staff_id)
        return build_report(db, Scope(period, filters, as_of=now), Rules.from_config(config))

    return _answer(m.Report.model_validate(await app[keys.STORE].read(read)))


def _idempotency_key(request: web.Request) -> str | None:
    """The ``Idempotency-Key`` header's key: a Structured Field string (``"8e03…"``) per the draft, or
    the bare key many clients send; printable ASCII, at most :data:`MAX_IDEMPOTENCY_KEY` long."""
    values = request.headers.getall("Idempotency-Key", [])
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, "bad_idempotency_key", "send one Idempotency-Key header, not several")
    raw = values[0].strip()
    item = SfItem()
    quoted = False
    try:
        item.parse(raw.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        pass  # a bare key that is no Structured Field item (a UUID starting with a digit)
    else:
        # Only a quoted key is read as the Structured Field string: a bare one can parse as a Token
        # with parameters (``acme;lead=1`` is the Token ``acme``), and cutting it there made keys one.
        if raw.startswith('"') and isinstance(item.value, str):
            quoted, raw = True, item.value
    if (
        not 0 < len(raw) <= MAX_IDEMPOTENCY_KEY
        or not all(" " <= c <= "~" for c in raw)
        or (not quoted and '"' in raw)
    ):
        raise ApiError(
            400,
            "bad_idempotency_key",
            f"the Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters",
        )
    return raw


def _body_refusal(error: ValidationError, body: dict[str, Any]) -> web.HTTPException:
    """A disposition, temperature or reason the API does not know is refused with storage's code for
    it, as the bot's and the CLI's are; anything else as a bad parameter."""
    first = error.errors(include_url=False)[0]
    name = str(first["loc"][0]) if first["loc"] else "body"
    if name == "disposition" and first["type"] in ("literal_error", "missing"):
        return refused(BadDisposition(body.get(name)))
    if first["type"] == "literal_error":
        if name == "temperature":
            return refused(BadTemperature(body.get(name)))
        if name == "reason":
            return refused(ReasonRequired(REASONS))
    return _refusal(error, body)


def _fingerprint(body: dict[str, Any]) -> str:
    """The request as the key remembers it: the JSON's content, whatever its spacing or key order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _unknown_fields(sent: dict[str, str], configured: list[str]) -> web.HTTPException | None:
    """A field the config does not name would be kept under a name nobody reads (a typo, a CRM's own
    column): refused, as the bot's form offers only the config's. Name and need are the body's own."""
    takes = [f for f in dict.fromkeys(configured) if f not in ("name", "need")]
    unknown = [f for f in sent if f not in takes]
    if not unknown:
        return None
    return ApiError(
        400,
        "bad_parameter",
        f"fields: [lead_fields] has no {', '.join(unknown)}; "
        + (f"it has {', '.join(takes)}" if takes else "it has none beyond need and name")
        + " (send need and name beside fields)",
        parameter="fields",
    )


async def create_registration(request: web.Request) -> web.Response:
    client = _client(request)
    _query(request, m.NoQuery)
    idempotency_key = _idempotency_key(request)
    body, sent = await _body(request, m.NewRegistration)
    config, now = request.app[keys.CONFIG], request.app[keys.CLOCK]()
    # An invalid number or address is kept as written and flagged, as capture keeps it: the
    # registration is not lost, and the flagged identifier is never used to match anyone.
    idents = [
        i
        for i in (
            phone(sent.phone, config.leadline.region) if sent.phone else None,
            email(sent.email),
        )
        if i is not None
    ]
    if not idents:
        raise ApiError(400, "identifier_required", "give the contact's phone or email")
    required = config.lead_fields.required
    if unknown := _unknown_fields(sent.fields or {}, [*required, *config.lead_fields.desirable]):
        raise unknown

    whom = Person(
        tuple(idents),
        request.app[keys.CAPTURE].context(API_SOURCE, None, now),
        external_id=f"{client}:{uuid.uuid4().hex}",
        name=sent.name,
    )
    draft = Draft(
        sent.disposition,
        temperature=sent.temperature,
        reason=sent.reason,
        campaign=sent.campaign,
        need=sent.need,
        fields=sent.fields,
        note=sent.note,
    )
    fingerprint = _fingerprint(body)

    def write(db: Database) -> tuple[Answered, bool]:
        """Register, or find what this key was answered before: in one transaction, so two
        retries racing each other cannot both register."""
        if idempotency_key is not None:
            expire(db, now - timedelta(hours=IDEMPOTENCY_HOURS))
            before = recall(db, client, idempotency_key, now - timedelta(hours=IDEMPOTENCY_HOURS))
            if before is not None:
                return before, True
        chosen = draft
        if sent.campaign:  # the config's spelling, so the lead counts where the campaign's cost does
            chosen = replace(draft, campaign=known_campaign(db, sent.campaign))
        done = register(db, whom=whom, draft=chosen, at=now, origin="api", required=required)
        registered = m.Registered(
            registration_id=done.registration_id,
            contact_id=done.contact_id,
            lead_id=done.lead_id,
            contact_created=done.contact_created,
        )
        answered = Answered(fingerprint, 201, registered.model_dump(mode="json"))
        if idempotency_key is not None:
            remember(db, client, idempotency_key, answered, contact_id=done.contact_id, at=now)
        return answered, False

    try:
        answered, replayed = await request.app[keys.STORE].write(write)
    except DomainError as exc:
        raise refused(exc) from None
    if replayed and answered.request_hash != fingerprint:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request; send a new key for a new registration",
        )
    log.info(
        "registration from the API replayed" if replayed else "registration from the API",
        extra={
            "fields": {
                "client": client,
                "contact": mask(sent.phone or sent.email),
                **answered.body,
            }
        },
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    # A replay answers what was stored, as it was stored: the same JSON, even should the model change.
    return web.json_response(answered.body, status=answered.status, headers=headers)
