"""The registration card: one message per touch that turns, edited in place, into a registration.

Rendering is plain functions from data to (text, keyboard), so a nudge can send the same card the
lists and the typed look-ups send. Staff see the caller's full number here (the log never does).
Texts are HTML: everything that came from outside is escaped.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from babel.dates import format_date, format_datetime

from bot import labels
from bot.callbacks import CardCB, DialCB
from bot.catalogues import current_locale
from bot.catalogues import gettext as _
from storage.cards import TouchCard
from storage.db import parse_iso
from storage.local_time import zone_label
from storage.registrations import REASONS, TEMPERATURES, Registration
from storage.staff import StaffMember

FOLLOW_UP_DAYS = (1, 3, 7, 14, 30)
MESSAGE_PREVIEW = 300
#: The links a card opens: web pages, and Telegram's own for a user with no username.
CHAT_LINKS = ("https://", "tg://user?id=")


def when(stored: str | None, tz: ZoneInfo) -> str:
    """A stored UTC time as staff read it: the office's zone, named, in their language."""
    if not stored:
        return "—"
    moment = parse_iso(stored).astimezone(tz)
    shown = format_datetime(moment, "d MMM, HH:mm", tzinfo=tz, locale=current_locale())
    return f"{shown} {zone_label(moment)}"


def day(value: str | date | None) -> str:
    if not value:
        return "—"
    parsed = date.fromisoformat(value) if isinstance(value, str) else value
    return format_date(parsed, "d MMM y", locale=current_locale())


def pretty_phone(value: str) -> str:
    """``+79161234567`` as ``+7 916 123-45-67``; anything unparseable as written."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def amount(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.2f}".replace(",", " ").removesuffix(".00")


def not_an_amount(text: str) -> str:
    """What to fix when a typed amount does not read: the same words wherever an amount is asked."""
    return _("“{text}” is not an amount. Type digits, e.g. 150000.").format(text=html.escape(text))


def not_a_date(text: str) -> str:
    return _("“{text}” is not a date. Type it as 25.12 or 2026-12-25.").format(text=html.escape(text))


def button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data)


def rows(buttons: list[InlineKeyboardButton], width: int) -> list[list[InlineKeyboardButton]]:
    return [buttons[i : i + width] for i in range(0, len(buttons), width)]


# ---------------------------------------------------------------------- the draft


@dataclass
class CardDraft:
    """A registration being filled in on a card (kept in the FSM storage under the card's message)."""

    touch: int
    contact: int
    temperature: str
    owner_id: int
    owner_name: str
    campaign: str | None = None
    name: str | None = None
    need: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    follow_up_on: str | None = None
    amount: float | None = None
    awaiting: str | None = None

    def value(self, name: str) -> Any:
        if name in ("name", "need"):
            return getattr(self, name)
        return self.fields.get(name)

    def with_value(self, name: str, value: str) -> CardDraft:
        if name == "name":
            return replace(self, name=value)
        if name == "need":
            return replace(self, need=value)
        return replace(self, fields={**self.fields, name: value})

    def missing(self, required: list[str]) -> list[str]:
        return [f for f in required if not self.value(f)]

    def dump(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def load(cls, data: dict[str, Any]) -> CardDraft | None:
        try:
            return cls(**data)
        except TypeError:
            return None


# ---------------------------------------------------------------------- texts


def header(card: TouchCard, tz: ZoneInfo) -> str:
    """What the touch was: channel, who, when, campaign, history, recording."""
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
    lines.append("📣 " + _("Campaign: {campaign}").format(campaign=html.escape(touch["campaign"] or "—")))
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
    return _("✅ Registered by {who}, {when}: {what}").format(
        who=html.escape(registration.staff_name or "—"),
        when=when(registration.created_at, tz),
        what=labels.disposition(registration.disposition, registration.reason, registration.temperature),
    )


def initial_text(card: TouchCard, tz: ZoneInfo) -> str:
    body = header(card, tz)
    if card.registration is not None:
        return body + "\n\n" + registered_line(card.registration, tz)
    return body + "\n\n" + _("Who is it? Choose below.")


def dial_row(card: TouchCard, touch_id: int) -> list[list[InlineKeyboardButton]]:
    """``📞 Call back`` for a missed call with a number; the caller checks its source can dial."""
    touch = card.touch
    if touch["channel"] != "call" or touch["answered"] != 0 or not card.phones:
        return []
    return [[button(_("📞 Call back"), DialCB(t=touch_id).pack())]]


def initial_keyboard(
    card: TouchCard, touch_id: int, *, can_dial: bool = False
) -> InlineKeyboardMarkup | None:
    """The registration buttons; with ``can_dial`` (the touch's source can call back) a missed call's
    card also calls the client back through the office line."""
    if card.registration is not None:
        return None
    c = card.contact_id
    temps = [
        button(
            _("Lead: {temperature}").format(
                temperature=labels.TEMPERATURE_ICONS[t] + " " + labels.temperature(t)
            ),
            CardCB(act="lead", t=touch_id, c=c, v=t).pack(),
        )
        for t in TEMPERATURES
    ]
    dial = dial_row(card, touch_id) if can_dial else []
    return InlineKeyboardMarkup(
        inline_keyboard=[*dial, temps, [button(_("Not a lead"), CardCB(act="nal", t=touch_id, c=c).pack())]]
    )


def reasons_keyboard(card: TouchCard, touch_id: int) -> InlineKeyboardMarkup:
    c = card.contact_id
    choices = [button(labels.reason(r), CardCB(act="why", t=touch_id, c=c, v=r).pack()) for r in REASONS]
    return InlineKeyboardMarkup(
        inline_keyboard=[*rows(choices, 2), [button(_("« Back"), CardCB(act="back", t=touch_id, c=c).pack())]]
    )


def spam_keyboard(card: TouchCard, touch_id: int) -> InlineKeyboardMarkup:
    c = card.contact_id
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(_("🚫 Spam, and block"), CardCB(act="spam", t=touch_id, c=c, v="block").pack())],
            [button(_("Spam, do not block"), CardCB(act="spam", t=touch_id, c=c, v="keep").pack())],
            [button(_("« Back"), CardCB(act="nal", t=touch_id, c=c).pack())],
        ]
    )


def spam_question(card: TouchCard) -> str:
    what = ", ".join(html.escape(pretty_phone(p)) for p in card.phones) or ", ".join(
        html.escape(e) for e in card.emails
    )
    return _(
        "Add {what} to the block list? Later calls and messages from it are still kept and counted apart,"
        " but never shown as waiting for registration."
    ).format(what=what or "—")


def prompt(name: str, required: bool) -> str:
    if name == "amount":
        return _("✏️ Type the expected deal amount, e.g. 150000.")
    if name == "follow_up":
        return _("✏️ Type the follow-up date, e.g. 25.12 or 2026-12-25.")
    if required:
        return _("✏️ Type the {field} (required).").format(field=labels.field(name).lower())
    return _("✏️ Type the {field}, or tap another button to skip it.").format(field=labels.field(name).lower())


def form_text(
    card: TouchCard, draft: CardDraft, tz: ZoneInfo, required: list[str], desirable: list[str]
) -> str:
    temp = draft.temperature
    lines = [
        header(card, tz),
        "",
        "<b>"
        + _("Lead: {temperature}").format(
            temperature=labels.TEMPERATURE_ICONS[temp] + " " + labels.temperature(temp)
        )
        + "</b>",
    ]
    for name in ["name", *[f for f in [*required, *desirable] if f != "name"]]:
        mark = " ✱" if name in required else ""
        value = draft.value(name)
        lines.append(f"{labels.field(name)}{mark}: {html.escape(str(value)) if value else '—'}")
    lines.append(f"{labels.field('campaign')}: {html.escape(draft.campaign or '—')}")
    lines.append(f"{labels.field('owner')}: {html.escape(draft.owner_name)}")
    if temp in ("warm", "cold"):
        lines.append(f"{labels.field('follow_up')}: {day(draft.follow_up_on)}")
    lines.append(f"{labels.field('amount')}: {amount(draft.amount)}")
    missing = draft.missing(required)
    lines.append("")
    if draft.awaiting:
        lines.append(prompt(draft.awaiting, draft.awaiting in required))
    elif missing:
        lines.append(
            _("✱ Still needed: {fields}.").format(fields=", ".join(labels.field(f) for f in missing))
        )
    else:
        lines.append(_("Tap “Save” when it is right."))
    return "\n".join(lines)


def form_keyboard(draft: CardDraft, required: list[str], desirable: list[str]) -> InlineKeyboardMarkup:
    t, c = draft.touch, draft.contact

    def edit(name: str) -> InlineKeyboardButton:
        mark = " ✱" if name in required else ""
        return button("✏️ " + labels.field(name) + mark, CardCB(act="edit", t=t, c=c, v=name).pack())

    names = ["name", *[f for f in [*required, *desirable] if f != "name"]]
    keyboard = rows([edit(n) for n in names], 3)
    keyboard.append(
        [
            button("📣 " + labels.field("campaign"), CardCB(act="camp", t=t, c=c).pack()),
            button("👤 " + labels.field("owner"), CardCB(act="own", t=t, c=c).pack()),
        ]
    )
    extra = [button("💰 " + labels.field("amount"), CardCB(act="edit", t=t, c=c, v="amount").pack())]
    if draft.temperature in ("warm", "cold"):
        extra.insert(0, button("📅 " + labels.field("follow_up"), CardCB(act="fu", t=t, c=c).pack()))
    keyboard.append(extra)
    others = [x for x in TEMPERATURES if x != draft.temperature]
    keyboard.append(
        [
            button(
                "→ " + labels.TEMPERATURE_ICONS[x] + " " + labels.temperature(x),
                CardCB(act="temp", t=t, c=c, v=x).pack(),
            )
            for x in others
        ]
    )
    keyboard.append(
        [
            button(_("« Back"), CardCB(act="back", t=t, c=c).pack()),
            button(_("✅ Save"), CardCB(act="save", t=t, c=c).pack()),
        ]
    )
    return InlineKeyboardMarkup(inline_keyboard=keyboard)


def campaign_keyboard(draft: CardDraft, campaigns: list[tuple[int, str]]) -> InlineKeyboardMarkup:
    t, c = draft.touch, draft.contact
    choices = [
        button(
            ("• " if name == draft.campaign else "") + name, CardCB(act="camp", t=t, c=c, v=str(cid)).pack()
        )
        for cid, name in campaigns
    ]
    return InlineKeyboardMarkup(
        inline_keyboard=[*rows(choices, 2), [button(_("« Back"), CardCB(act="form", t=t, c=c).pack())]]
    )


def owner_keyboard(draft: CardDraft, staff: list[StaffMember]) -> InlineKeyboardMarkup:
    t, c = draft.touch, draft.contact
    choices = [
        button(
            ("• " if s.id == draft.owner_id else "") + s.name, CardCB(act="own", t=t, c=c, v=str(s.id)).pack()
        )
        for s in staff
    ]
    return InlineKeyboardMarkup(
        inline_keyboard=[*rows(choices, 2), [button(_("« Back"), CardCB(act="form", t=t, c=c).pack())]]
    )


def follow_up_label(days: int) -> str:
    if days == 1:
        return _("Tomorrow")
    if days % 7 == 0:
        weeks = days // 7
        return _("In {n} week", "In {n} weeks", weeks).format(n=weeks)
    return _("In {n} day", "In {n} days", days).format(n=days)


def follow_up_keyboard(draft: CardDraft) -> InlineKeyboardMarkup:
    t, c = draft.touch, draft.contact
    choices = [
        button(follow_up_label(d), CardCB(act="fu", t=t, c=c, v=str(d)).pack()) for d in FOLLOW_UP_DAYS
    ]
    choices.append(button(_("✏️ Type a date"), CardCB(act="edit", t=t, c=c, v="follow_up").pack()))
    return InlineKeyboardMarkup(
        inline_keyboard=[*rows(choices, 3), [button(_("« Back"), CardCB(act="form", t=t, c=c).pack())]]
    )


def now_local(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()
