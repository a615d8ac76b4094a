"""The words and buttons of nudge messages and source alerts, in the reader's language.

A plain function of a :class:`storage.nudges.cards.MessageView`, so the sweep renders a message
inside its write without reaching for the bot's dispatcher. The words are the bot's: the gettext
catalogues under ``bot/locales``, in the language of the person's staff record, else the config's
``[leadline] language`` (the view and the source-health rules have already chosen between them).

Buttons carry ``callback_data`` in the shape aiogram's ``CallbackData`` packs
(``prefix:field:field``), so the bot can parse them with a factory:

* ``n:<act>:<nudge id>:<value>`` — ``NudgeCB(prefix="n")`` with fields ``act: str``, ``nudge: int``,
  ``v: str = ""``. Acts: ``called`` (Called back), ``cant`` (Can't reach), ``snooze`` (``v`` =
  minutes of working time), ``done``, ``later`` (``v`` = days: 1 or 7), ``lost`` (the bot asks for
  the reason). Each maps to one function in :mod:`storage.nudges.actions`.
* ``o:touch:<touch id>`` and ``o:lead:<lead id>`` — the bot's own ``OpenCB``: "Register" opens the
  touch's registration card, "Open" the lead.
* ``d:<touch id>`` — the bot's ``DialCB``: "📞 Call back" asks the PBX of the touch's source to ring
  the person who pressed and then the client. Shown only for sources in ``dialable`` (those with
  the provider's API credentials; ``capture.dial.dialable``).
"""

from __future__ import annotations

import html
import logging
from dataclasses import replace
from datetime import tzinfo
from typing import Any

from bot import labels
from bot.catalogues import gettext as _
from bot.catalogues import written_for
from bot.replies import clip, fit_leading, fits_telegram
from bot.touch_text import when
from storage.nudges.cards import Card, MessageView, Rendered

log = logging.getLogger("leadline.nudges")

#: How long "Remind me later" puts a registration card away, in working minutes.
SNOOZE_MINUTES = 60
#: What people typed is cut to these lengths, so ten cards always fit in one message.
NAME_LIMIT = 100
NEED_LIMIT = 200
#: A card lists at most this many of its touches (the latest), then "+N".
TOUCH_LIMIT = 5


def nudge_cb(act: str, nudge_id: int, value: str = "") -> str:
    """``n:<act>:<nudge>:<v>``: what aiogram's ``CallbackData`` with prefix ``n`` packs."""
    return f"n:{act}:{nudge_id}:{value}"


def open_cb(kind: str, target: int) -> str:
    """The bot's ``OpenCB(kind=..., id=...)``: opens a touch's registration card or a lead."""
    return f"o:{kind}:{target}"


def dial_cb(touch_id: int) -> str:
    """The bot's ``DialCB(t=...)``: call the touch's contact back through the office line."""
    return f"d:{touch_id}"


def _who(card: Card) -> str:
    parts = [clip(p, NAME_LIMIT) for p in (card.name, *card.phones[:1], *card.emails[:1]) if p]
    return html.escape(" · ".join(parts)) if parts else f"#{card.contact_id}"


def _asked(card: Card) -> str:
    asked = (
        card.asked if card.asked else (_("the team chat") if card.asked == "" else _("nobody in particular"))
    )
    return html.escape(clip(asked, NAME_LIMIT))


def _title(card: Card, view: MessageView) -> str:
    if card.kind == "register":
        if card.level:
            title = _("⚠️ <b>Still not registered</b> — {asked} was asked").format(asked=_asked(card))
        else:
            title = _("📝 <b>Register this contact</b>")
    elif card.kind == "callback":
        if card.level and card.outcome == "unreachable":
            # A plural call keeps its three arguments without a trailing comma (hence ``fmt: skip``):
            # pybabel does not extract ``_(one, many, n,)``, and the text would stay English.
            title = _(
                "⚠️ <b>Could not be reached</b> — {asked} tried {n} time",
                "⚠️ <b>Could not be reached</b> — {asked} tried {n} times",
                card.tries
            ).format(asked=_asked(card), n=card.tries)  # fmt: skip
        elif card.level:
            title = _("⚠️ <b>Not called back</b> — {asked} was asked").format(asked=_asked(card))
        elif card.tries:
            # Tries made before ``callback_tries`` was lowered still count: this one is then the last.
            title = _("📞 <b>Try calling again</b> (try {n} of {of})").format(
                n=card.tries + 1, of=max(view.max_tries, card.tries + 1)
            )
        else:
            title = _("📞 <b>Call back</b>")
    elif card.kind == "follow_up" and card.level:
        title = _("⚠️ <b>Not followed up</b> — {asked} was asked").format(asked=_asked(card))
    elif card.kind == "follow_up":
        title = _("⏰ <b>Follow up today</b>")
    elif card.level:
        title = _(
            "⚠️ <b>Lead untouched for {days} day</b> — {asked} was asked",
            "⚠️ <b>Lead untouched for {days} days</b> — {asked} was asked",
            view.stale_days
        ).format(days=view.stale_days, asked=_asked(card))  # fmt: skip
    else:
        title = _(
            "💤 <b>No change for {days} day</b>", "💤 <b>No change for {days} days</b>", view.stale_days
        ).format(days=view.stale_days)
    if card.round and not (card.kind == "callback" and card.tries):
        title = _("🔁 Reminder") + " · " + title
    return title


def unreachable_answer(tries: int, *, escalates: bool) -> str:
    """The answer to the "Can't reach" that gives a call-back up: it promises the managers only when
    the card goes on to them (a manager giving up an escalation has nobody further to tell)."""
    if escalates:
        return _(
            "Noted: not reached after {n} try. The managers will see it.",
            "Noted: not reached after {n} tries. The managers will see it.",
            tries
        ).format(n=tries)  # fmt: skip
    return _("Noted: not reached after {n} try.", "Noted: not reached after {n} tries.", tries).format(
        n=tries
    )


def _channel(channel: str, answered: bool | None) -> str:
    if channel == "call" and answered is False:
        return _("missed call")
    words = {
        "call": _("call"),
        "form": _("form"),
        "email": _("email"),
        "manual": _("entered by hand"),
        "chat": _("chat"),
    }
    return words.get(channel, channel)


def _stage(code: str) -> str:
    # A nudge's line is short: "accepted", where the lead's card says "accepted by sales".
    short = {"accepted": _("accepted"), "returned": _("returned")}
    return short.get(code) or labels.stage(code)


def _details(card: Card, view: MessageView) -> list[str]:
    lines = [_who(card)]
    if card.touches:
        said = []
        hidden = len(card.touches) - TOUCH_LIMIT
        if hidden > 0:
            said.append(_("+{n} more").format(n=hidden))
        for touch in card.touches[-TOUCH_LIMIT:]:
            said.append(f"{_channel(touch.channel, touch.answered)} {when(touch.at, view.tz)}")
        lines.append(html.escape(", ".join(said)))
    if card.lead is not None:
        lead = card.lead
        line = _("{temperature} lead, {stage}").format(
            temperature=labels.temperature(lead.temperature), stage=_stage(lead.stage)
        )
        if lead.need:
            line += "; " + _("need: {need}").format(need=clip(lead.need, NEED_LIMIT))
        lines.append(html.escape(line))
    return lines


def _dial_touch(card: Card, dialable: frozenset[str]) -> int | None:
    """The latest of the card's touches that came through a PBX Leadline can call back through."""
    if not card.phones:
        return None
    return next((t.id for t in reversed(card.touches) if t.id and t.source in dialable), None)


def _buttons(card: Card, label: str, dialable: frozenset[str] = frozenset()) -> list[list[dict[str, str]]]:
    def b(text: str, data: str) -> dict[str, str]:
        return {"text": label + text, "callback_data": data}

    nid = card.nudge_id
    if card.kind == "register":
        row = [b(_("Register"), open_cb("touch", card.touch_id))] if card.touch_id else []
        if card.level == 0:
            row.append(b(_("Remind in 1 h"), nudge_cb("snooze", nid, str(SNOOZE_MINUTES))))
        return [row] if row else []
    called = b(_("Called back"), nudge_cb("called", nid))
    if card.kind == "callback":
        touch = _dial_touch(card, dialable)
        dial = [[b(_("📞 Call back"), dial_cb(touch))]] if touch is not None else []
        if card.outcome == "unreachable" and card.level == 0:
            return [*dial, [called]]
        return [*dial, [called, b(_("Can't reach"), nudge_cb("cant", nid))]]
    first = [b(_("Done"), nudge_cb("done", nid))] if card.kind == "follow_up" else []
    if card.lead is not None:
        first.append(b(_("Open"), open_cb("lead", card.lead.id)))
    second = [
        b(_("+1 day"), nudge_cb("later", nid, "1")),
        b(_("+1 week"), nudge_cb("later", nid, "7")),
        b(_("Lost"), nudge_cb("lost", nid)),
    ]
    return [first, second] if first else [second]


def render(view: MessageView, dialable: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A ``sendMessage`` payload (Telegram HTML) listing the cards, each with its own buttons;
    ``dialable`` names the sources whose missed calls can be called back from the card."""
    with written_for(view.language, view.office_language):
        numbered = len(view.cards) > 1
        blocks: list[str] = []
        keyboard: list[list[dict[str, str]]] = []
        if numbered:
            n = len(view.cards) + view.more
            blocks.append(_("🔔 <b>{n} thing to do</b>", "🔔 <b>{n} things to do</b>", n).format(n=n))
        for i, card in enumerate(view.cards, 1):
            prefix = f"{i}. " if numbered else ""
            blocks.append("\n".join([prefix + _title(card, view), *_details(card, view)]))
            keyboard += _buttons(card, prefix, dialable)
        if view.more:
            blocks.append(_("…and {n} more after this.").format(n=view.more))
    payload: dict[str, Any] = {"text": "\n\n".join(blocks), "parse_mode": "HTML"}
    if keyboard:
        payload["reply_markup"] = {"inline_keyboard": keyboard}
    return payload


def lay_out(view: MessageView, dialable: frozenset[str] = frozenset()) -> Rendered:
    """The message of ``view`` with as many of its cards as Telegram takes in one message.

    The header keeps counting every card due, and the cards left out are among the "…and N more".
    """

    def first(n: int) -> dict[str, Any]:
        return render(replace(view, cards=view.cards[:n], more=view.more + len(view.cards) - n), dialable)

    payload, shown = fit_leading(first, len(view.cards))
    if not fits_telegram(payload):
        log.error("a nudge card is longer than Telegram allows", extra={"fields": {"chat_id": view.chat_id}})
    return Rendered(payload, shown)


def render_source_alert(
    language: str, problem: str, fields: dict[str, Any], *, tz: tzinfo, office_language: str = "en"
) -> dict[str, Any]:
    """An owner's alert that a source is silent or failing, or that it recovered; its stored times
    (``since``, ``at``) are written as the reader's cards write them."""
    with written_for(language, office_language):
        shown: dict[str, Any] = {**fields, **{k: when(fields[k], tz) for k in ("since", "at") if k in fields}}
        safe = {k: html.escape(clip(str(v), NEED_LIMIT)) for k, v in shown.items()}
        if problem == "silent":
            text = _(
                "🛑 <b>{source} has gone quiet</b>: nothing since {since} ({minutes} working minute; "
                "its usual quiet spell is {usual} minutes at most). Check the integration: leads may be lost.",
                "🛑 <b>{source} has gone quiet</b>: nothing since {since} ({minutes} working minutes; "
                "its usual quiet spell is {usual} minutes at most). Check the integration: leads may be lost.",
                int(fields["minutes"])
            )  # fmt: skip
        elif problem == "failing" and fields.get("cause") == "unreadable":
            text = _(
                "🛑 <b>{source} is failing</b>: its last {count} request could not be read ({reason}). "
                "Check what the provider sends and the source's settings: leads may be lost. "
                "The request is kept: leadline replay takes it again once that is fixed.",
                "🛑 <b>{source} is failing</b>: its last {count} requests could not be read ({reason}). "
                "Check what the provider sends and the source's settings: leads may be lost. "
                "The requests are kept: leadline replay takes them again once that is fixed.",
                int(fields["count"])
            )  # fmt: skip
        elif problem == "failing" and fields.get("cause") == "unprocessed":
            text = _(
                "🛑 <b>{source} is failing</b>: its last {count} request could not be processed ({reason}). "
                "It is kept in the journal, for the next start or leadline replay; the log says why. "
                "Leads may be late.",
                "🛑 <b>{source} is failing</b>: its last {count} requests could not be processed ({reason}). "
                "They are kept in the journal, for the next start or leadline replay; the log says why. "
                "Leads may be late.",
                int(fields["count"])
            )  # fmt: skip
        elif problem == "failing":
            text = _(
                "🛑 <b>{source} is failing</b>: its last {count} request was refused ({reason}). "
                "Check its secret or token and the provider's settings: leads may be lost.",
                "🛑 <b>{source} is failing</b>: its last {count} requests were refused ({reason}). "
                "Check its secret or token and the provider's settings: leads may be lost.",
                int(fields["count"])
            )  # fmt: skip
        else:
            text = _("✅ <b>{source} works again</b>: a request was accepted at {at}.")
    return {"text": text.format(**safe), "parse_mode": "HTML"}
