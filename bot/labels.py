"""The words staff see for the codes the database and the API use (``job_seeker``, ``qualified``...).

The codes stay English everywhere else; these functions are the one place they become a person's
language, so the catalogues hold every one of them.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.catalogues import gettext as _

TEMPERATURE_ICONS = {"hot": "🔥", "warm": "🌤", "cold": "❄️"}
CHANNEL_ICONS = {"call": "📞", "form": "📝", "email": "✉️", "manual": "✍️", "chat": "💬"}
LOST_REASONS = ("price", "competitor", "no_budget", "no_answer", "not_a_fit", "other")


def campaign(key: str | None, titles: Mapping[str, str]) -> str:
    """A campaign as staff read it: its config ``title``; the key stays in the database and the buttons."""
    if not key:
        return "—"
    return titles.get(key) or key


def temperature(code: str | None) -> str:
    labels = {"hot": _("hot"), "warm": _("warm"), "cold": _("cold")}
    return labels.get(code or "", code or "—")


def stage(code: str | None) -> str:
    labels = {
        "new": _("new"),
        "qualified": _("qualified"),
        "accepted": _("accepted by sales"),
        "returned": _("returned by sales"),
        "won": _("won"),
        "lost": _("lost"),
    }
    return labels.get(code or "", code or "—")


def reason(code: str | None) -> str:
    labels = {
        "partner": _("partner"),
        "job_seeker": _("job seeker"),
        "spam": _("spam"),
        "wrong_number": _("wrong number"),
        "existing_client": _("existing client"),
        "other": _("other"),
    }
    return labels.get(code or "", code or "—")


def lost_reason(code: str | None) -> str:
    labels = {
        "price": _("price"),
        "competitor": _("chose a competitor"),
        "no_budget": _("no budget"),
        "no_answer": _("stopped answering"),
        "not_a_fit": _("not a fit"),
        "other": _("other"),
    }
    return labels.get(code or "", code or "—")


def channel(code: str | None) -> str:
    labels = {
        "call": _("Call"),
        "form": _("Form"),
        "email": _("Email"),
        "manual": _("Entered by hand"),
        "chat": _("Chat"),
    }
    return labels.get(code or "", code or "—")


#: Chat ids as people know them: the service's own name (not translated) and the id, or @username.
_CHAT_SERVICES = {"telegram_id": "Telegram", "vk_id": "VK", "avito_id": "Avito", "whatsapp_id": "WhatsApp"}


def chat_id(kind: str, value: str) -> str:
    if kind.endswith("_username"):
        return "@" + value
    return f"{_CHAT_SERVICES.get(kind, kind)} {value}"


def field(name: str) -> str:
    """A lead field's label; fields the config adds beyond these show as written there."""
    labels = {
        "name": _("Name"),
        "need": _("Need"),
        "company": _("Company"),
        "industry": _("Industry"),
        "size": _("Company size"),
        "campaign": _("Campaign"),
        "owner": _("Owner"),
        "follow_up": _("Follow-up"),
        "amount": _("Deal amount"),
        "won_amount": _("Won amount"),
    }
    return labels.get(name, name)


def disposition(code: str, reason_code: str | None, temperature_code: str | None) -> str:
    if code == "lead":
        return _("lead ({temperature})").format(temperature=temperature(temperature_code))
    return _("not a lead ({reason})").format(reason=reason(reason_code))


def yes_no(flag: bool) -> str:
    return _("yes") if flag else _("no")


def export_sheet(name: str) -> str:
    """A sheet of ``leadline export``'s workbook (the tables of :mod:`storage.export`)."""
    labels = {
        "contacts": _("Contacts"),
        "touches": _("Touches"),
        "registrations": _("Registrations"),
        "leads": _("Leads"),
        "refusals": _("Refusals"),
        "blocklist": _("Block list"),
        "responses": _("Responses"),
    }
    return labels.get(name, name)


def export_column(code: str) -> str:
    """A column header of the export's workbook; a column not named here shows its code.
    ``name`` is the contact's in every table, ``staff`` who handled the touch or registered it,
    ``assignee`` whom the touch was given to."""
    labels = {
        "id": _("ID"),
        "name": _("Name"),
        "phones": _("Phones"),
        "emails": _("Emails"),
        "created_at": _("Created"),
        "touches": _("Touches"),
        "first_touch_at": _("First touch"),
        "last_touch_at": _("Last touch"),
        "registered": _("Registered as"),
        "occurred_at": _("When"),
        "channel": _("Channel"),
        "direction": _("Direction"),
        "source": _("Source"),
        "contact_id": _("Contact ID"),
        "campaign": _("Campaign"),
        "hidden_caller": _("Hidden number"),
        "phone": _("Phone"),
        "email": _("Email address"),
        "message": _("Message"),
        "call_status": _("Call status"),
        "duration_s": _("Call length, s"),
        "talk_s": _("Talk time, s"),
        "staff": _("Staff member"),
        "assignee": _("Assigned to"),
        "called_back_at": _("Called back at"),
        "blocked": _("Blocked"),
        "dropped": _("Dropped by rule"),
        "disposition": _("Disposition"),
        "reason": _("Reason"),
        "origin": _("Entered via"),
        "note": _("Note"),
        "temperature": _("Temperature"),
        "stage": _("Stage"),
        "owner": _("Owner"),
        "need": _("Need"),
        "amount": _("Deal amount"),
        "won_amount": _("Won amount"),
        "lost_reason": _("Why lost"),
        "returned_reason": _("Why returned"),
        "follow_up_on": _("Follow-up"),
        "qualified_at": _("Qualified"),
        "accepted_at": _("Accepted"),
        "closed_at": _("Closed"),
        "counted": _("Counted in reports"),
        "kind": _("Refused as"),
        "at": _("When"),
        "do_not_contact": _("Do not contact"),
        "identifier_kind": _("Type"),
        "value": _("Number or address"),
        "answered_at": _("Answered at"),
        "answered_by": _("Answered by"),
        "response_min": _("Response, min"),
        "chat_ids": _("Chat IDs"),
    }
    return labels.get(code, code)
