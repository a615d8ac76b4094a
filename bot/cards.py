"""The registration card: one message per touch that turns, edited in place, into a registration.

Rendering is plain functions from data to (text, keyboard), so a nudge can send the same card the
lists and the typed look-ups send. Staff see the caller's full number here (the log never does).
Texts are HTML: everything that came from outside is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from babel.dates import format_date

from bot import labels
from bot.arrival_texts import registration_buttons
from bot.callbacks import CardCB, DialCB
from bot.catalogues import current_locale
from bot.catalogues import gettext as _
from bot.digest_figures import money
from bot.parsing import parse_date
from bot.replies import quoted
from bot.touch_text import already_registered as already_registered
from bot.touch_text import do_not_contact_line as do_not_contact_line
from bot.touch_text import header as header
from bot.touch_text import pretty_phone as pretty_phone
from bot.touch_text import registered_line as registered_line
from bot.touch_text import when as when
from storage.cards import TouchCard
from storage.registrations import REASONS, TEMPERATURES
from storage.staff import StaffMember

FOLLOW_UP_DAYS = (1, 3, 7, 14, 30)


def day(value: str | date | None) -> str:
    if not value:
        return "—"
    parsed = date.fromisoformat(value) if isinstance(value, str) else value
    return format_date(parsed, "d MMM y", locale=current_locale())


def amount(value: float | None, currency: str) -> str:
    """An amount in ``[leadline] currency`` as the reader's language writes money (the digest's
    :func:`~bot.digest_figures.money`), to the cent when it has cents: a typed amount reads back as typed."""
    if value is None:
        return "—"
    return money(value, currency, current_locale(), exact=True)


def not_an_amount(text: str) -> str:
    """What to fix when a typed amount does not read: the same words wherever an amount is asked."""
    return _("“{text}” is not an amount. Type digits, e.g. 150000.").format(text=quoted(text))


def not_a_date(text: str) -> str:
    return _("“{text}” is not a date. Type it as 25.12 or 2026-12-25.").format(text=quoted(text))


def follow_up_date(text: str, today: date) -> date | str:
    """A typed follow-up date, or the reply that asks again: a day already gone would never be
    nudged (the sweep looks back only ``[nudges] horizon_days``), so it is refused, not kept."""
    when = parse_date(text, today)
    if when is None:
        return not_a_date(text)
    if when < today:
        return _("{day} has passed: a follow-up is today or later. Type the date again.").format(
            day=day(when)
        )
    return when


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


def initial_text(card: TouchCard, tz: ZoneInfo, titles: Mapping[str, str]) -> str:
    body = header(card, tz, titles)
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
    dial = dial_row(card, touch_id) if can_dial else []
    return InlineKeyboardMarkup.model_validate(
        {"inline_keyboard": [*dial, *registration_buttons(touch_id, card.contact_id)]}
    )


def reasons_keyboard(card: TouchCard, touch_id: int) -> InlineKeyboardMarkup:
    c = card.contact_id
    choices = [button(labels.reason(r), CardCB(act="why", t=touch_id, c=c, v=r).pack()) for r in REASONS]
    return InlineKeyboardMarkup(
        inline_keyboard=[*rows(choices, 2), [button(_("« Back"), CardCB(act="back", t=touch_id, c=c).pack())]]
    )


def spam_keyboard(card: TouchCard, touch_id: int) -> InlineKeyboardMarkup:
    """Blocking is offered only for a contact with something to block (:func:`spam_question`)."""
    c = card.contact_id
    block = [button(_("🚫 Spam, and block"), CardCB(act="spam", t=touch_id, c=c, v="block").pack())]
    return InlineKeyboardMarkup(
        inline_keyboard=[
            *([block] if card.blockable else []),
            [button(_("Spam, do not block"), CardCB(act="spam", t=touch_id, c=c, v="keep").pack())],
            [button(_("« Back"), CardCB(act="nal", t=touch_id, c=c).pack())],
        ]
    )


def blockable_name(kind: str, value: str) -> str:
    """A block-list entry as staff recognise it: a number as they dial it, a chat id with its service."""
    if kind == "phone":
        return pretty_phone(value)
    if kind == "email":
        return value
    return labels.chat_id(kind, value)


def spam_question(card: TouchCard) -> str:
    """Names exactly what "Spam, and block" puts on the list (storage's ``block_contact``), or says why
    nothing can go there: a number kept as written (invalid) is never matched, so it would block nobody."""
    if not card.blockable:
        return _(
            "This contact cannot be blocked: it has no valid phone number, email address or chat ID, so"
            " a later call or message from it could not be recognised. Refuse it as spam without blocking."
        )
    what = ", ".join(html.escape(blockable_name(kind, value)) for kind, value in card.blockable)
    if len(card.blockable) == 1:  # not a plural by count, which in Russian reads "it" for 21 of them
        question = _(
            "Add {what} to the block list? Later calls and messages from it are still kept and counted"
            " apart, but never shown as waiting for registration."
        )
    else:
        question = _(
            "Add {what} to the block list? Later calls and messages from them are still kept and counted"
            " apart, but never shown as waiting for registration."
        )
    return question.format(what=what)


def field_label(name: str) -> str:
    """A lead field's label in a card's HTML: the config's own field names are the owner's free text
    (``Budget <100k``, ``R&D``), while buttons and alerts show :func:`labels.field` as it is."""
    return html.escape(labels.field(name))


def prompt(name: str, required: bool) -> str:
    if name == "amount":
        return _("✏️ Type the expected deal amount, e.g. 150000.")
    if name == "follow_up":
        return _("✏️ Type the follow-up date, e.g. 25.12 or 2026-12-25.")
    if required:
        return _("✏️ Type the {field} (required).").format(field=field_label(name).lower())
    return _("✏️ Type the {field}, or tap another button to skip it.").format(field=field_label(name).lower())


#: Fields the form edits besides the config's, by their own names: short, ASCII and never an index.
OWN_FIELDS = ("amount", "follow_up")


def form_fields(required: list[str], desirable: list[str]) -> list[str]:
    """The fields the form lists, in its order: the name, then the config's."""
    return ["name", *[f for f in [*required, *desirable] if f != "name"]]


def edited_field(value: str, required: list[str], desirable: list[str]) -> str | None:
    """The field a ✏️ button names, or None for a button drawn under another config.

    The config's fields go by their index in :func:`form_fields`: their names are the owner's, of any
    length and in any script, and Telegram returns at most 64 bytes of a button's data."""
    if value in OWN_FIELDS:
        return value
    fields = form_fields(required, desirable)
    return fields[int(value)] if value.isdecimal() and int(value) < len(fields) else None


def form_text(
    card: TouchCard,
    draft: CardDraft,
    tz: ZoneInfo,
    required: list[str],
    desirable: list[str],
    titles: Mapping[str, str],
    currency: str,
) -> str:
    temp = draft.temperature
    lines = [
        header(card, tz, titles),
        "",
        "<b>"
        + _("Lead: {temperature}").format(
            temperature=labels.TEMPERATURE_ICONS[temp] + " " + labels.temperature(temp)
        )
        + "</b>",
    ]
    for name in form_fields(required, desirable):
        mark = " ✱" if name in required else ""
        value = draft.value(name)
        lines.append(f"{field_label(name)}{mark}: {html.escape(str(value)) if value else '—'}")
    lines.append(f"{labels.field('campaign')}: {html.escape(labels.campaign(draft.campaign, titles))}")
    lines.append(f"{labels.field('owner')}: {html.escape(draft.owner_name)}")
    if temp in ("warm", "cold"):
        lines.append(f"{labels.field('follow_up')}: {day(draft.follow_up_on)}")
    lines.append(f"{labels.field('amount')}: {amount(draft.amount, currency)}")
    missing = draft.missing(required)
    lines.append("")
    if draft.awaiting:
        lines.append(prompt(draft.awaiting, draft.awaiting in required))
    elif missing:
        lines.append(_("✱ Still needed: {fields}.").format(fields=", ".join(field_label(f) for f in missing)))
    else:
        lines.append(_("Tap “Save” when it is right."))
    return "\n".join(lines)


def form_keyboard(
    draft: CardDraft, required: list[str], desirable: list[str], *, give: bool
) -> InlineKeyboardMarkup:
    """``give``: the 👤 owner button, for those who may give a lead to someone else (managers)."""
    t, c = draft.touch, draft.contact

    def edit(index: int, name: str) -> InlineKeyboardButton:
        mark = " ✱" if name in required else ""
        return button("✏️ " + labels.field(name) + mark, CardCB(act="edit", t=t, c=c, v=str(index)).pack())

    keyboard = rows([edit(i, n) for i, n in enumerate(form_fields(required, desirable))], 3)
    keyboard.append(
        [button("📣 " + labels.field("campaign"), CardCB(act="camp", t=t, c=c).pack())]
        + ([button("👤 " + labels.field("owner"), CardCB(act="own", t=t, c=c).pack())] if give else [])
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


def campaign_keyboard(
    draft: CardDraft, campaigns: list[tuple[int, str]], titles: Mapping[str, str]
) -> InlineKeyboardMarkup:
    """The campaigns by title; a button carries the campaign's id, so the lead is saved under its key."""
    t, c = draft.touch, draft.contact
    choices = [
        button(
            ("• " if name == draft.campaign else "") + labels.campaign(name, titles),
            CardCB(act="camp", t=t, c=c, v=str(cid)).pack(),
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
