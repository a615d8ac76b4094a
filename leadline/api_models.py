"""What the JSON API reads and answers, as pydantic models: the handlers (leadline/api.py) parse and
serialise through them, and the OpenAPI document (leadline/api_document.py) is their JSON schema, so
the two cannot disagree. Flags are booleans on the wire, whatever SQLite stores them as.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from storage.events import Channel
from storage.identifiers import Kind as IdentifierKind
from storage.registrations import Stage, Temperature

MAX_LIMIT = 500
#: A page's ``after_id`` goes no higher: ids are SQLite rowids, and a client's typo stays a number.
MAX_AFTER_ID = 2**31

#: The spellings of storage.registrations.REASONS (a test holds them equal).
Disposition = Literal["lead", "not_a_lead"]
Reason = Literal["partner", "job_seeker", "spam", "wrong_number", "existing_client", "other"]

NamedPeriod = Literal["day", "today", "yesterday", "week", "last-week", "month", "last-month"]
#: ``2026-11``: a calendar month.
Month = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])$")]


def _lower(value: Any) -> Any:
    """A named period is read as the CLI reads it, in any case and with spaces around."""
    return value.strip().lower() if isinstance(value, str) else value


PeriodText = Annotated[NamedPeriod | Month | date, BeforeValidator(_lower)]

#: Omitted from a query, and not ``null`` in the document: a query parameter is absent, never null.
Absent = SkipJsonSchema[None]


def _moment(value: Any) -> Any:
    """``as_of`` is read as ``leadline report --as-of`` reads it, by Python's ISO reader: a date
    alone is its midnight, and a time without an offset is on the office clock (the handler's)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


Moment = Annotated[datetime, BeforeValidator(_moment)]


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# -- queries -------------------------------------------------------------------------------------


class Query(Model):
    """An operation's query parameters: one it does not take (a misspelt filter) is refused by
    name, not dropped, since an answer without that filter would look like the one asked for."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoQuery(Query):
    """The query of an operation that takes no parameters."""


class PeriodQuery(Query):
    """``from``/``to`` (either order; ``to`` alone is that day) win over ``period``."""

    period: PeriodText | Absent = Field(
        None, description="a named period, a month (YYYY-MM) or a day (YYYY-MM-DD)"
    )
    from_: date | Absent = Field(None, alias="from", description="the first day")
    to: date | Absent = Field(None, description="the last day (default: today)")


class PageQuery(PeriodQuery):
    after_id: int = Field(0, ge=0, le=MAX_AFTER_ID, description="the last id of the previous page")
    limit: int = Field(100, ge=1, le=MAX_LIMIT)


class TouchesQuery(PageQuery):
    channel: Channel | Absent = None


class LeadsQuery(PageQuery):
    stage: Stage | Absent = None


class ReportQuery(PeriodQuery):
    channel: Channel | Absent = None
    campaign: str | Absent = None
    staff: str | Absent = Field(None, description="a staff member's name")
    as_of: Moment | Absent = Field(
        None,
        description="the report time, as `leadline report --as-of` takes it (default: now):"
        " registrations and leads after it are not counted, and a named period and a missing `to`"
        " count from its day; an ISO date and time (2026-12-01T09:00:00+03:00, with the + sent as"
        " %2B), without an offset on the office clock, or a date alone for its midnight",
    )


class BlockedQuery(Query):
    after_id: int = Field(0, ge=0, le=MAX_AFTER_ID, description="the last id of the previous page")
    limit: int = Field(100, ge=1, le=MAX_LIMIT)


class ContactsQuery(Query):
    q: str = Field(min_length=1, description="a phone number in any spelling, an email or part of a name")
    limit: int = Field(20, ge=1, le=100)


# -- bodies --------------------------------------------------------------------------------------


class NewRegistration(Model):
    """The contact's phone or email (or both); a lead needs a temperature, a not-a-lead a reason.
    A key it does not take (a misspelt ``campain``) is refused by name, as a query's is: dropped,
    the registration would look done as sent."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "anyOf": [{"required": ["phone"]}, {"required": ["email"]}],
            "oneOf": [
                {"properties": {"disposition": {"const": "lead"}}, "required": ["temperature"]},
                {"properties": {"disposition": {"const": "not_a_lead"}}, "required": ["reason"]},
            ],
        },
    )

    # An invalid number or address is kept as written and flagged, as capture keeps it, so the
    # document shows the usual spellings and the server takes any string.
    phone: str | Absent = Field(None, json_schema_extra={"pattern": "^[+0-9(][0-9 ()+-]*$"})
    email: str | Absent = Field(None, json_schema_extra={"pattern": "\\S"})
    name: str | Absent = None
    disposition: Disposition
    temperature: Temperature | Absent = None
    reason: Reason | Absent = None
    campaign: str | Absent = Field(
        None,
        description="one of the config's campaigns, in any letter case (stored as the config spells it;"
        " another is a 404 `no_campaign`); default: the campaign of the contact's first touch",
    )
    need: str | Absent = None
    fields: dict[str, str] | Absent = Field(
        None,
        description="the lead's other fields by their names in [lead_fields] (company, industry, size…);"
        " a lead needs every required one, need and name being the body's own",
    )
    note: str | Absent = None


class ContactChange(BaseModel):
    """What ``PATCH /api/contacts/{id}`` may change: only the do-not-contact flag, true or false."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    do_not_contact: StrictBool


# -- answers -------------------------------------------------------------------------------------


class Error(BaseModel):
    """``error`` is a code to branch on; ``detail`` says it in English; the code's parameters (e.g.
    ``parameter``, the one that was wrong) come beside them."""

    model_config = ConfigDict(extra="allow")

    error: str
    detail: str


class Identifier(Model):
    kind: IdentifierKind
    value: str
    raw: str
    valid: bool


class ContactTouch(Model):
    id: int
    channel: Channel
    direction: Literal["in", "out"]
    source: str
    occurred_at: str
    campaign: str | None
    call_status: str | None
    message: str | None


class Contact(Model):
    id: int
    name: str | None
    created_at: str
    merged_into: int | None
    blocked: bool
    do_not_contact: bool = Field(
        description="left out of the lists meant for campaigns (the export's refusals); touches still count"
    )
    identifiers: list[Identifier]
    touches: list[ContactTouch]


class Contacts(Model):
    contacts: list[Contact]


class Touch(Model):
    id: int
    source: str
    channel: Channel
    direction: Literal["in", "out"]
    contact_id: int | None
    occurred_at: str
    campaign: str | None
    hidden_caller: bool
    call_status: str | None
    answered: bool | None
    duration_s: int | None
    staff_id: int | None
    called_back_at: str | None
    blocked: bool
    dropped: str | None


class Lead(Model):
    id: int
    contact_id: int
    temperature: Temperature
    stage: Stage
    owner_id: int | None
    campaign: str | None
    need: str | None
    amount: float | None
    won_amount: float | None
    lost_reason: str | None
    returned_reason: str | None
    follow_up_on: str | None
    created_at: str
    updated_at: str


class TouchPage(Model):
    touches: list[Touch]
    next_after_id: int | None = Field(description="pass it as after_id for the next page; null at the end")


class LeadPage(Model):
    leads: list[Lead]
    next_after_id: int | None = Field(description="pass it as after_id for the next page; null at the end")


class Report(BaseModel):
    """Every figure of ``leadline report --json``, under the same keys."""

    model_config = ConfigDict(extra="allow")

    period: dict[str, Any]
    inbound_touches: int
    inbound_contacts: int
    hidden_caller_touches: int
    registered: int
    lrr: float | None
    lrr_new: float | None
    registration_lag_p50_min: float | None
    registration_lag_p90_min: float | None
    response_p50_min: float | None = Field(
        description="median minutes (real, nearest rank) from a contact's first touch to its first answer"
    )
    response_p90_min: float | None
    responded_within_5_min: float | None = Field(
        description="share of inbound contacts answered within 5 min"
    )
    responded_within_60_min: float | None
    not_responded: int = Field(description="inbound contacts nobody answered yet")
    missed_calls: int
    missed_not_called_back: int
    leads: int
    lead_cost: float | None = None
    by_channel: dict[str, Any]
    by_campaign: dict[str, Any]
    by_staff: dict[str, Any]


class Registered(Model):
    registration_id: int
    contact_id: int
    lead_id: int | None
    #: Whether the registration made the contact (nobody in the base had its phone or email).
    contact_created: bool


class Erased(Model):
    erasure_id: int
    contact_id: int
    contacts: list[int] = Field(description="the contact and every contact merged into it")
    kinds: list[IdentifierKind] = Field(description="the kinds of identifier erased")
    rows: dict[str, int] = Field(description="rows changed, per table")
    checkpointed: bool = Field(description="whether the write-ahead log was truncated after it")


class BlockEntry(Model):
    id: int
    kind: IdentifierKind
    value: str
    reason: str | None
    at: str
    staff: str | None = Field(description="who blocked it, when a person did")
    contact_id: int | None = Field(description="the contact that number or address belongs to")


class BlockedPage(Model):
    blocked: list[BlockEntry]
    rules: list[dict[str, str | int]] = Field(
        description="the config's [[block]] rules, which only the config changes"
    )
    next_after_id: int | None


class Unblocked(Model):
    unblocked: BlockEntry
