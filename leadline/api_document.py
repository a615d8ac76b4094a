"""The OpenAPI document at ``/api/openapi.json``, built from the models the handlers parse and answer
with (leadline/api_models.py): a schema here is a model's ``model_json_schema``, and each query
parameter is a field of the operation's query model. Only the operations' words are written here.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from leadline import api_models as m

#: How long an ``Idempotency-Key`` is remembered: a retry within it gets the first answer.
IDEMPOTENCY_HOURS = 24
#: The longest key accepted; a UUID is 36 characters.
MAX_IDEMPOTENCY_KEY = 255
#: What the header may hold: a quoted Structured Field string or a bare key, printable ASCII.
IDEMPOTENCY_KEY_PATTERN = (
    rf'^("[ !#-\[\]-~]{{1,{MAX_IDEMPOTENCY_KEY}}}"|[!#-~]([ !#-~]{{0,{MAX_IDEMPOTENCY_KEY - 2}}}[!#-~])?)$'
)

_BODIES: tuple[type[BaseModel], ...] = (m.NewRegistration, m.ContactChange)
_ANSWERS: tuple[type[BaseModel], ...] = (
    m.Error,
    m.Contacts,
    m.Contact,
    m.TouchPage,
    m.LeadPage,
    m.Report,
    m.Registered,
    m.Erased,
    m.BlockedPage,
    m.Unblocked,
)


class _Schema(GenerateJsonSchema):
    """Pydantic's schemas, less the ``default: null`` of a field that is absent when not sent: the
    field's type has no null in it (see ``api_models.Absent``), so the default would contradict it."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if "default" in json_schema and json_schema["default"] is None:
            del json_schema["default"]
        return json_schema


def _schemas() -> dict[str, Any]:
    """Every body and answer model under ``components/schemas``, each referring to the others."""
    _, top = models_json_schema(
        [*((model, "validation") for model in _BODIES), *((model, "serialization") for model in _ANSWERS)],
        ref_template="#/components/schemas/{model}",
        schema_generator=_Schema,
    )
    return dict(top["$defs"])


#: A value that counts as given: one character other than the whitespace a blank value is made of.
FILLED = "[^\\s\\x1c-\\x1f\\x85]"
#: The lead fields that are the body's own; every other one of ``[lead_fields]`` goes under ``fields``.
OWN_FIELDS = ("name", "need")


def _with_lead_fields(schemas: dict[str, Any], required: tuple[str, ...], desirable: tuple[str, ...]) -> None:
    """The registration body as this installation's ``[lead_fields]`` make it: ``fields`` takes the
    config's names alone, and a lead needs every required field (``storage.registrations``)."""
    body = schemas[m.NewRegistration.__name__]
    filled = {"type": "string", "pattern": FILLED}
    names = [f for f in dict.fromkeys([*required, *desirable]) if f not in OWN_FIELDS]
    body["properties"]["fields"] |= {
        "properties": {f: {"type": "string"} for f in names},
        "additionalProperties": False,
    }
    own = [f for f in dict.fromkeys(required) if f in OWN_FIELDS]
    others = [f for f in dict.fromkeys(required) if f not in OWN_FIELDS]
    [lead] = [b for b in body["oneOf"] if b["properties"]["disposition"] == {"const": "lead"}]
    lead["required"] = [*lead["required"], *own, *(["fields"] if others else [])]
    lead["properties"] |= {f: filled for f in own}
    if others:
        lead["properties"]["fields"] = {"required": others, "properties": {f: filled for f in others}}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _parameters(query: type[BaseModel] | None) -> list[dict[str, Any]]:
    """The query model's fields as query parameters, with the model's own schema for each."""
    if query is None:
        return []
    schema = query.model_json_schema(mode="validation", schema_generator=_Schema)
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if "description" in prop:
            parameter["description"] = prop.pop("description")
        parameters.append(parameter)
    return parameters


def _answer(description: str, model: type[BaseModel] = m.Error) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _operation(
    operation_id: str,
    tag: str,
    summary: str,
    answer: type[BaseModel],
    *,
    query: type[BaseModel] | None = None,
    path_id: bool = False,
    status: str = "200",
    answered: str = "OK",
    **more: Any,
) -> dict[str, Any]:
    parameters = _parameters(query)
    if path_id:
        parameters.insert(
            0,
            {
                "name": "id",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
            },
        )
    return {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "parameters": [*more.pop("parameters", []), *parameters],
        "responses": {
            status: _answer(answered, answer),
            "400": _answer(
                "a bad parameter or body, or a query parameter the operation does not take"
                " (`bad_parameter`, naming it in `parameter` and every such one in `parameters`)"
            ),
            "401": _answer("no or unknown bearer token"),
            **more.pop("responses", {}),
        },
        **more,
    }


_IDEMPOTENCY = (
    f"With an `Idempotency-Key` header (draft-ietf-httpapi-idempotency-key-header: a string such as a"
    f" UUID, quoted as a Structured Field or bare), a retry with the same key and body within"
    f" {IDEMPOTENCY_HOURS} hours gets the first answer (with `Idempotent-Replayed: true`) and registers"
    " nothing; the same key with another body is a 422 `idempotency_key_reused`. Keys are per API"
    " client; a refused request keeps no key."
)


def build_document(required: tuple[str, ...] = (), desirable: tuple[str, ...] = ()) -> dict[str, Any]:
    """The document for an installation whose ``[lead_fields]`` are ``required`` and ``desirable``."""
    schemas = _schemas()
    _with_lead_fields(schemas, required, desirable)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Leadline API",
            "version": "1.0.0",
            "description": "Contacts, touches, leads and numbers. Every refusal is JSON:"
            ' `{"error": code, "detail": sentence}` and the code\'s parameters. A query'
            " parameter an operation does not list is refused (400 `bad_parameter`), not ignored;"
            " a path under /api/ not listed here is a 404 `not_found`, and a method a path does not"
            " list a 405 `method_not_allowed` with the `Allow` header.",
        },
        "tags": [
            {"name": "contacts", "description": "People, found by phone, email or name; erasure"},
            {
                "name": "blocked",
                "description": "The block list: numbers and addresses whose touches count apart",
            },
            {"name": "touches", "description": "Calls, forms, mail and touches entered by hand"},
            {"name": "leads", "description": "Leads and their stages"},
            {"name": "report", "description": "The numbers of `leadline report`"},
            {"name": "registrations", "description": "Registering a contact from a CRM"},
            {"name": "meta", "description": "This document"},
        ],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/contacts": {
                "get": _operation(
                    "findContacts",
                    "contacts",
                    "Find contacts by phone (any spelling), email or part of a name",
                    m.Contacts,
                    query=m.ContactsQuery,
                )
            },
            "/api/contacts/{id}": {
                "get": _operation(
                    "getContact",
                    "contacts",
                    "One contact with its identifiers and touches",
                    m.Contact,
                    path_id=True,
                    responses={"404": _answer("no such contact")},
                ),
                "patch": _operation(
                    "updateContact",
                    "contacts",
                    "Set or clear the contact's do-not-contact flag: a marked person is left out of the"
                    " lists meant for campaigns (the export's refusals); their touches still count",
                    m.Contact,
                    path_id=True,
                    answered="the contact, marked",
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": _ref(m.ContactChange)}},
                    },
                    responses={"404": _answer("no such contact")},
                ),
                "delete": _operation(
                    "forgetContact",
                    "contacts",
                    "Erase the person behind a contact: identifiers, names, texts, raw requests and"
                    " messages. Their touches stay on the anonymous contact, so past reports do not"
                    " change; the erasure is recorded without the values. The id of a contact merged"
                    " into another erases that one.",
                    m.Erased,
                    path_id=True,
                    answered="erased (again, for a contact erased before)",
                    responses={"404": _answer("no such contact")},
                ),
            },
            "/api/blocked": {
                "get": _operation(
                    "listBlocked",
                    "blocked",
                    "The block list, oldest first, in pages (pass next_after_id as after_id), and the"
                    " config's [[block]] rules, which only the config changes",
                    m.BlockedPage,
                    query=m.BlockedQuery,
                )
            },
            "/api/blocked/{id}": {
                "delete": _operation(
                    "unblock",
                    "blocked",
                    "Take a number or address off the block list: its touches count again from now on",
                    m.Unblocked,
                    path_id=True,
                    answered="unblocked",
                    responses={"404": _answer("no such entry on the block list")},
                )
            },
            "/api/touches": {
                "get": _operation(
                    "listTouches",
                    "touches",
                    "Touches, oldest first, in pages (pass next_after_id as after_id)",
                    m.TouchPage,
                    query=m.TouchesQuery,
                )
            },
            "/api/leads": {
                "get": _operation(
                    "listLeads",
                    "leads",
                    "Leads, oldest first, in pages (pass next_after_id as after_id)",
                    m.LeadPage,
                    query=m.LeadsQuery,
                )
            },
            "/api/report": {
                "get": _operation(
                    "getReport",
                    "report",
                    "The numbers for a period (default: this month)",
                    m.Report,
                    query=m.ReportQuery,
                    responses={
                        "404": _answer(
                            "no staff member (`no_staff`) or campaign (`no_campaign`) of that name"
                        )
                    },
                )
            },
            "/api/registrations": {
                "post": _operation(
                    "createRegistration",
                    "registrations",
                    "Register a contact (found or created by phone or email) as a lead or not a lead",
                    m.Registered,
                    status="201",
                    answered="registered (or, for a retried key, registered before)",
                    description=_IDEMPOTENCY,
                    parameters=[
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                        }
                    ],
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": _ref(m.NewRegistration)}},
                    },
                    responses={
                        "404": _answer("no campaign of that name (`no_campaign`)"),
                        "413": _answer("a body over the limit"),
                        "422": _answer("the Idempotency-Key was used for a different request"),
                    },
                )
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "getOpenAPI",
                    "tags": ["meta"],
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
    }


@functools.cache
def openapi_document(required: tuple[str, ...] = (), desirable: tuple[str, ...] = ()) -> dict[str, Any]:
    """The document, built at its first request: generating every model's schema costs a start-up
    that serves webhooks tens of milliseconds for a page few clients read (bench/idle.py)."""
    return build_document(required, desirable)
