"""What storage refuses to do for people, as a code and typed parameters: the words belong to the edges.

The bot turns an error into a sentence in the reader's language by its class and fields, the JSON
API into a status and ``{"error": code, "detail": ..., **params}``; ``str()`` is the English
sentence the API's ``detail``, the command line and the log show. One class per code, so that a
renamed code or parameter is an error mypy sees at every place that words it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

Code = Literal[
    # registrations and leads
    "no_contact",
    "no_lead",
    "no_touch",
    "bad_disposition",
    "bad_temperature",
    "reason_required",
    "field_required",
    "not_editable",
    "stage_not_allowed",
    "stage_reason_required",
    "won_amount_required",
    "already_registered",
    "contact_merged",
    "own_number",
    "no_campaign",
    # access requests
    "unknown_decision",
    "no_access_request",
    "access_decided",
    # merges
    "already_one_contact",
    "contact_gone",
    "merge_gone",
    "merge_undone",
    # nudge buttons
    "reminder_gone",
    "snooze_too_short",
    # the funnel plan
    "rate_out_of_range",
    "too_little_history",
    "average_deal_not_positive",
    "no_target",
    "two_targets",
    "too_few_clients",
]


@dataclass(eq=False)
class DomainError(ValueError):
    """A step that cannot be made as asked; subclasses name the code and carry its parameters."""

    code: ClassVar[Code]

    def params(self) -> dict[str, Any]:
        """The parameters by name, as the API's JSON body carries them beside the code."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


# -- registrations and leads ---------------------------------------------------------------------


@dataclass(eq=False)
class RegistrationError(DomainError):
    """A registration or lead change that cannot be made."""


@dataclass(eq=False)
class NoContact(RegistrationError):
    code: ClassVar[Code] = "no_contact"
    contact_id: int

    def __str__(self) -> str:
        return f"no contact #{self.contact_id}"


@dataclass(eq=False)
class NoLead(RegistrationError):
    code: ClassVar[Code] = "no_lead"
    lead_id: int

    def __str__(self) -> str:
        return f"no lead #{self.lead_id}"


@dataclass(eq=False)
class NoTouch(RegistrationError):
    code: ClassVar[Code] = "no_touch"
    touch_id: int

    def __str__(self) -> str:
        return f"no touch #{self.touch_id}"


@dataclass(eq=False)
class BadDisposition(RegistrationError):
    code: ClassVar[Code] = "bad_disposition"
    disposition: str | None

    def __str__(self) -> str:
        return "disposition must be lead or not_a_lead"


@dataclass(eq=False)
class BadTemperature(RegistrationError):
    """A lead registered without a temperature, or changed to one that is not hot, warm or cold."""

    code: ClassVar[Code] = "bad_temperature"
    temperature: str | None

    def __str__(self) -> str:
        return "a lead needs a temperature: hot, warm or cold"


@dataclass(eq=False)
class ReasonRequired(RegistrationError):
    """A not-a-lead without one of ``reasons``."""

    code: ClassVar[Code] = "reason_required"
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"a not-a-lead needs a reason: {', '.join(self.reasons)}"


@dataclass(eq=False)
class FieldRequired(RegistrationError):
    """A lead without the ``fields`` that ``[lead_fields] required`` names, in the config's order."""

    code: ClassVar[Code] = "field_required"
    fields: tuple[str, ...]

    def __str__(self) -> str:
        return f"a lead needs these fields ([lead_fields] required): {', '.join(self.fields)}"


@dataclass(eq=False)
class NotEditable(RegistrationError):
    code: ClassVar[Code] = "not_editable"
    field: str

    def __str__(self) -> str:
        return f"{self.field} cannot be changed here"


@dataclass(eq=False)
class StageNotAllowed(RegistrationError):
    """A move the funnel does not allow from ``old``; ``allowed`` is empty for a closed lead."""

    code: ClassVar[Code] = "stage_not_allowed"
    old: str
    new: str
    allowed: tuple[str, ...]

    def __str__(self) -> str:
        allowed = ", ".join(self.allowed) or "none (the lead is closed)"
        return f"a {self.old} lead cannot become {self.new}; it can become: {allowed}"


@dataclass(eq=False)
class StageReasonRequired(RegistrationError):
    code: ClassVar[Code] = "stage_reason_required"
    stage: str

    def __str__(self) -> str:
        return f"say why the lead is {self.stage}"


@dataclass(eq=False)
class WonAmountRequired(RegistrationError):
    code: ClassVar[Code] = "won_amount_required"

    def __str__(self) -> str:
        return "a won lead needs the deal amount"


@dataclass(eq=False)
class AlreadyRegistered(RegistrationError):
    """Someone registered this contact after the card was drawn."""

    code: ClassVar[Code] = "already_registered"
    contact_id: int

    def __str__(self) -> str:
        return f"contact #{self.contact_id} is already registered"


@dataclass(eq=False)
class ContactMerged(RegistrationError):
    """The card's contact was merged into another one after the card was drawn."""

    code: ClassVar[Code] = "contact_merged"
    old_id: int
    new_id: int

    def __str__(self) -> str:
        return f"contact #{self.old_id} was merged into #{self.new_id}"


@dataclass(eq=False)
class NoCampaign(RegistrationError):
    """A campaign name that is none of ``campaigns``: stored as sent, it would be a campaign of its
    own, with leads and no cost, beside the real one with the cost and none of the leads."""

    code: ClassVar[Code] = "no_campaign"
    campaign: str
    campaigns: tuple[str, ...]

    def __str__(self) -> str:
        if not self.campaigns:
            return f"no campaign named {self.campaign!r}, and none is set up: add campaigns to the config"
        return f"no campaign named {self.campaign!r}; the campaigns are: {', '.join(self.campaigns)}"


# -- access requests -----------------------------------------------------------------------------


@dataclass(eq=False)
class OwnNumber(RegistrationError):
    """Registering one of the office's own tracking numbers would make a contact of ourselves."""

    code: ClassVar[Code] = "own_number"

    def __str__(self) -> str:
        return "give the contact's own phone or email, not one of our tracking numbers"


@dataclass(eq=False)
class UnknownDecision(RegistrationError):
    code: ClassVar[Code] = "unknown_decision"
    decision: str

    def __str__(self) -> str:
        return f"unknown decision {self.decision!r}"


@dataclass(eq=False)
class NoAccessRequest(RegistrationError):
    code: ClassVar[Code] = "no_access_request"
    request_id: int

    def __str__(self) -> str:
        return f"no access request #{self.request_id}"


@dataclass(eq=False)
class AccessDecided(RegistrationError):
    """Another owner already answered this access request."""

    code: ClassVar[Code] = "access_decided"
    decision: str
    decided_by: str | None

    def __str__(self) -> str:
        return f"this request was already answered: {self.decision}"


# -- merges --------------------------------------------------------------------------------------


@dataclass(eq=False)
class MergeError(DomainError):
    """A merge or undo that cannot be made as asked."""


@dataclass(eq=False)
class AlreadyOneContact(MergeError):
    code: ClassVar[Code] = "already_one_contact"

    def __str__(self) -> str:
        return "these are already one contact"


@dataclass(eq=False)
class ContactGone(MergeError):
    code: ClassVar[Code] = "contact_gone"

    def __str__(self) -> str:
        return "one of the contacts no longer exists"


@dataclass(eq=False)
class MergeGone(MergeError):
    code: ClassVar[Code] = "merge_gone"
    merge_id: int

    def __str__(self) -> str:
        return "this merge no longer exists"


@dataclass(eq=False)
class MergeUndone(MergeError):
    code: ClassVar[Code] = "merge_undone"
    merge_id: int

    def __str__(self) -> str:
        return "this merge was already undone"


# -- nudge buttons -------------------------------------------------------------------------------


@dataclass(eq=False)
class NudgeError(DomainError):
    """A button that cannot act (no such nudge, wrong kind)."""


@dataclass(eq=False)
class ReminderGone(NudgeError):
    code: ClassVar[Code] = "reminder_gone"
    nudge_id: int

    def __str__(self) -> str:
        return "this reminder no longer exists"


@dataclass(eq=False)
class SnoozeTooShort(NudgeError):
    code: ClassVar[Code] = "snooze_too_short"
    days: int

    def __str__(self) -> str:
        return "snooze by a day or more"


# -- the funnel plan -----------------------------------------------------------------------------


@dataclass(eq=False)
class PlanError(DomainError):
    """A plan that cannot be made; the edges say what to give instead."""


@dataclass(eq=False)
class RateOutOfRange(PlanError):
    """A conversion rate (``name`` as :class:`storage.plan.Rates` spells it) outside (0, 1]."""

    code: ClassVar[Code] = "rate_out_of_range"
    name: str
    value: float

    def __str__(self) -> str:
        return f"{self.name} must be above 0 and at most 1 (100 %), got {self.value:g}"


@dataclass(eq=False)
class TooLittleHistory(PlanError):
    """Too few leads or clients to take the rates from; ``label`` names the period when there is one."""

    code: ClassVar[Code] = "too_little_history"
    leads: int
    qualified: int
    won: int
    needed_leads: int
    label: str | None = None

    def __str__(self) -> str:
        if self.label is None:
            return (
                f"too little history for rates ({self.leads} leads, {self.qualified} qualified,"
                f" {self.won} won): give them"
            )
        return (
            f"{self.label} has too little history to plan on ({self.leads} leads, {self.won} won;"
            f" at least {self.needed_leads} leads and 1 client are needed): give the rates"
        )


@dataclass(eq=False)
class AverageDealNotPositive(PlanError):
    code: ClassVar[Code] = "average_deal_not_positive"
    average_deal: float

    def __str__(self) -> str:
        return "the average deal must be above 0"


@dataclass(eq=False)
class NoTarget(PlanError):
    code: ClassVar[Code] = "no_target"

    def __str__(self) -> str:
        return "give a number of clients, or a revenue target and the average deal"


@dataclass(eq=False)
class TwoTargets(PlanError):
    """Both a number of clients and a revenue: the plan has figures for one and a title for both."""

    code: ClassVar[Code] = "two_targets"

    def __str__(self) -> str:
        return "the clients and the revenue are two targets: keep one"


@dataclass(eq=False)
class TooFewClients(PlanError):
    """Fewer clients than :data:`storage.plan.MIN_CLIENTS`: a plan for none asks for nothing."""

    code: ClassVar[Code] = "too_few_clients"
    clients: int

    def __str__(self) -> str:
        return "the number of clients must be at least 1"
