"""The words and buttons of a card on arrival (``storage/arrivals.py``), in the reader's language.

A plain function of an :class:`storage.arrival_cards.ArrivalView`, without aiogram, so the arrival pass
renders inside its write, as the nudge sweep does. Buttons carry ``callback_data`` in the shape
aiogram's ``CallbackData`` packs (``prefix:field:field``):

* ``t:<act>:<touch>:<contact>:<value>``: the registration card's own ``CardCB`` (a temperature, or
  "Not a lead"), so a tap continues the registration on this very message;
* ``r:<act>:<touch>:<value>``: ``ArrivalCB``, a missed call's ``called`` (Called back) and ``cant``
  (Can't reach), which act through the call-back nudge of that touch (``storage.nudges.actions``),
  and ``give`` (a manager gives the card to someone else; ``bot/routers/arrivals.py``);
* ``o:lead:<id>``: the bot's ``OpenCB``, which opens the lead.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from bot import labels
from bot.catalogues import gettext as _
from bot.catalogues import written_for
from bot.touch_text import header, pretty_phone, registered_line, when
from storage.arrival_cards import ArrivalView
from storage.registrations import TEMPERATURES

Buttons = list[list[dict[str, str]]]


def button(text: str, data: str) -> dict[str, str]:
    return {"text": text, "callback_data": data}


def card_cb(act: str, touch_id: int, contact_id: int, value: str = "") -> str:
    """What ``CardCB(act=..., t=..., c=..., v=...)`` packs."""
    return f"t:{act}:{touch_id}:{contact_id}:{value}"


def arrival_cb(act: str, touch_id: int, value: int = 0) -> str:
    """What ``ArrivalCB(act=..., t=..., v=...)`` packs."""
    return f"r:{act}:{touch_id}:{value}"


def dial_cb(touch_id: int) -> str:
    """What ``DialCB(t=...)`` packs: the nudges' and the cards' 📞 go to one handler."""
    return f"d:{touch_id}"


def registration_buttons(touch_id: int, contact_id: int) -> Buttons:
    """ "Who was it?": a lead of each temperature, or not a lead (the registration card's first step)."""
    temperatures = [
        button(
            _("Lead: {temperature}").format(
                temperature=labels.TEMPERATURE_ICONS[t] + " " + labels.temperature(t)
            ),
            card_cb("lead", touch_id, contact_id, t),
        )
        for t in TEMPERATURES
    ]
    return [temperatures, [button(_("Not a lead"), card_cb("nal", touch_id, contact_id))]]


def missed_call_buttons(touch_id: int, *, call_back: bool) -> Buttons:
    """A missed call's card: "Called back" and "Can't reach", and first, when the office line can
    ring the staff member and then the client (``call_back``), "📞 Call back" (bot/routers/dial.py)."""
    first = [button(_("📞 Call back"), dial_cb(touch_id))] if call_back else []
    return [
        *([first] if first else []),
        [
            button(_("Called back"), arrival_cb("called", touch_id)),
            button(_("Can't reach"), arrival_cb("cant", touch_id)),
        ],
    ]


def _who(view: ArrivalView) -> str:
    card = view.card
    found = card.contact_name or next(iter(card.phones), None) or next(iter(card.emails), None)
    if found is None:
        return "#" + str(card.contact_id)
    return html.escape(found if found != next(iter(card.phones), None) else pretty_phone(found))


def _repeat_title(view: ArrivalView) -> str:
    if view.card.touch["channel"] == "call":
        return _("🔁 <b>{who} calls again</b>").format(who=_who(view))
    return _("🔁 <b>{who} writes again</b>").format(who=_who(view))


def _lead_line(lead: dict[str, Any]) -> str:
    line = _("{temperature} lead, {stage}").format(
        temperature=labels.temperature(lead["temperature"]), stage=labels.stage(lead["stage"])
    )
    if lead.get("need"):
        line += "; " + _("need: {need}").format(need=lead["need"])
    owner = lead.get("owner_name")
    if owner:
        line += "; " + _("owner: {name}").format(name=owner)
    return html.escape(line)


def render_arrival(view: ArrivalView, titles: Mapping[str, str]) -> dict[str, Any]:
    """A ``sendMessage`` payload (Telegram HTML); an edit of the card sends the same fields. ``titles``
    names the campaigns (the config's); the composition root binds them, as the pass renders without it."""
    with written_for(view.language, view.office_language):
        lines: list[str] = []
        keyboard: Buttons = []
        if view.kind == "repeat":
            lines.append(_repeat_title(view))
        elif view.kind == "callback":
            lines.append(_("📞 <b>Missed call: call back</b>"))
        lines.append(header(view.card, view.tz, titles))
        if view.count > 1:
            lines.append(_("🔂 Touches in a row: {n}").format(n=view.count))
        if view.kind == "repeat" and view.lead is not None:
            lines.append("📇 " + _lead_line(view.lead))
            keyboard = [[button(_("Open"), f"o:lead:{view.lead['id']}")]]
        elif view.registered is not None:
            lines.append("")
            lines.append(registered_line(view.registered, view.tz))
        elif view.called_back:
            lines.append("")
            lines.append("✅ " + _("Marked as called back."))
        elif view.given_to is not None:
            lines.append("")
            lines.append(_("👤 Given to {name}").format(name=html.escape(view.given_to)))
        else:
            if view.kind == "callback":
                keyboard = missed_call_buttons(view.touch_id, call_back=view.call_back)
            else:
                lines.append("")
                lines.append(_("Who is it? Choose below."))
                keyboard = registration_buttons(view.touch_id, view.card.contact_id)
            keyboard.append([button(_("👤 Give to…"), arrival_cb("give", view.touch_id))])
    payload: dict[str, Any] = {"text": "\n".join(lines), "parse_mode": "HTML"}
    if keyboard:
        payload["reply_markup"] = {"inline_keyboard": keyboard}
    return payload


def warm_up(language: str, tz: ZoneInfo) -> None:
    """Load the catalogues and Babel's calendar data now (about a second the first time), so that
    the first card after a start is not the one that waits for them."""
    with written_for(language):
        when("2026-01-01T00:00:00+00:00", tz)
