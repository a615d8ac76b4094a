"""The text of a touch's card, apart from its buttons, so that a renderer without aiogram can draw it.

The registration card (``bot/cards.py``) and the card on arrival (``bot/arrival_texts.py``) show a
touch the same way. Staff see the caller's full number here (the log never does); everything that
came from outside is escaped, since the texts are Telegram HTML.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

import phonenumbers
from babel.dates import format_datetime

from bot import labels
from bot.catalogues import current_locale
from bot.catalogues import gettext as _
from storage.cards import TouchCard
from storage.db import parse_iso
from storage.local_time import zone_label
from storage.registrations import Registration

MESSAGE_PREVIEW = 300
#: The links a card opens: web pages, and Telegram's own for a user with no username.
CHAT_LINKS = ("https://", "tg://user?id=")


def when(stored: str | datetime | None, tz: tzinfo) -> str:
    """A stored UTC time as staff read it: the office's zone, named, in their language. Cards, nudges
    and the digest all write times through this, so one reader sees one time one way."""
    if not stored:
        return "—"
    moment = (parse_iso(stored) if isinstance(stored, str) else stored).astimezone(tz)
    shown = format_datetime(moment, "d MMM, HH:mm", tzinfo=tz, locale=current_locale())
    return f"{shown} {zone_label(moment)}"


def pretty_phone(value: str) -> str:
    """``+79161234567`` as ``+7 916 123-45-67``; anything unparseable as written."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def header(card: TouchCard, tz: ZoneInfo, titles: Mapping[str, str]) -> str:
    """What the touch was: channel, who, when, campaign (by its ``titles`` entry), history, recording."""
    touch = card.touch
    icon = labels.CHANNEL_ICONS.get(touch["channel"], "•")
    title = f"{icon} <b>{labels.channel(touch['channel'])}</b>"
    if touch["channel"] == "call" and touch["answered"] is not None:
        title += " · " + (_("answered") if touch["answered"] else _("missed"))
    lines = [f"{title} · {when(touch['occurred_at'], tz)}"]
    who = [pretty_phone(p) for p in card.phones[:2]] + card.emails[:2]
    if not who:
        who = [labels.chat_id(kind, value) for kind, value in card.chat_ids[:2]]
    if not who:
        who = [touch["phone_raw"] or touch["email_raw"] or "?"]
    lines.append(" · ".join(html.escape(w) for w in who))
    if card.contact_name:
        lines.append("👤 " + html.escape(card.contact_name))
    if card.do_not_contact:
        lines.append(do_not_contact_line())
    campaign = labels.campaign(touch["campaign"], titles)
    lines.append("📣 " + _("Campaign: {campaign}").format(campaign=html.escape(campaign)))
    if card.earlier_touches:
        lines.append(
            "🔁 "
            + _("{n} earlier touch", "{n} earlier touches", card.earlier_touches).format(
                n=card.earlier_touches
            )
        )
    else:
        lines.append("🆕 " + _("First contact"))
    if touch["message"]:
        text = str(touch["message"])
        short = text if len(text) <= MESSAGE_PREVIEW else text[:MESSAGE_PREVIEW] + "…"
        lines.append("💬 " + html.escape(short))  # a chat's first message comes first
    if card.conversation_url and card.conversation_url.startswith(CHAT_LINKS):
        link = html.escape(card.conversation_url, quote=True)
        lines.append("🔗 " + f'<a href="{link}">' + _("Open the conversation") + "</a>")
    recording = touch["recording"]
    if recording:
        if str(recording).startswith(("http://", "https://")):
            lines.append(
                "🎧 " + f'<a href="{html.escape(str(recording), quote=True)}">' + _("Recording") + "</a>"
            )
        else:
            lines.append("🎧 " + _("Recording: {id}").format(id=html.escape(str(recording))))
    return "\n".join(lines)


def do_not_contact_line() -> str:
    return "🚷 " + _("Do not contact: left out of campaigns")


def registered_line(registration: Registration, tz: ZoneInfo) -> str:
    """Says who registered, so a registration staff did not make (a CRM's, a source's rule) is not
    read as someone's unnamed one."""
    what = labels.disposition(registration.disposition, registration.reason, registration.temperature)
    moment = when(registration.created_at, tz)
    if registration.staff_name is None and registration.origin == "api":
        return _("✅ Registered through the API, {when}: {what}").format(when=moment, what=what)
    if registration.staff_name is None and registration.origin == "system":
        return _("✅ Registered automatically by the source's rule, {when}: {what}").format(
            when=moment, what=what
        )
    return _("✅ Registered by {who}, {when}: {what}").format(
        who=html.escape(registration.staff_name or "—"), when=moment, what=what
    )


def already_registered(registration: Registration) -> str:
    """The alert for a card someone else registered first, naming who as :func:`registered_line` does."""
    what = labels.disposition(registration.disposition, registration.reason, registration.temperature)
    if registration.staff_name is None and registration.origin == "api":
        return _("Already registered through the API: {what}. Nothing to do here.").format(what=what)
    if registration.staff_name is None and registration.origin == "system":
        return _("Already registered automatically by the source's rule: {what}. Nothing to do here.").format(
            what=what
        )
    return _("Already registered by {who}: {what}. Nothing to do here.").format(
        who=registration.staff_name or "—", what=what
    )
