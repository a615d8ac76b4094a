"""The words and buttons of nudge messages and source alerts, in Russian and English.

A plain function of a :class:`storage.nudges.MessageView`, so the sweep renders a message inside
its write without reaching for the bot. The strings are a small dict per language for now; they
belong in the bot's gettext catalogues (``bot/locales``) and should move there.

Buttons carry ``callback_data`` in the shape aiogram's ``CallbackData`` packs
(``prefix:field:field``), so the bot can parse them with a factory:

* ``n:<act>:<nudge id>:<value>`` — ``NudgeCB(prefix="n")`` with fields ``act: str``, ``nudge: int``,
  ``v: str = ""``. Acts: ``called`` (Called back), ``cant`` (Can't reach), ``snooze`` (``v`` =
  minutes of working time), ``done``, ``later`` (``v`` = days: 1 or 7), ``lost`` (the bot asks for
  the reason). Each maps to one function in :mod:`storage.nudges`.
* ``o:touch:<touch id>`` and ``o:lead:<lead id>`` — the bot's own ``OpenCB``: "Register" opens the
  touch's registration card, "Open" the lead.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from storage.nudge_cards import Card, MessageView

#: How long "Remind me later" puts a registration card away, in working minutes.
SNOOZE_MINUTES = 60
#: What people typed is cut to these lengths, so ten cards always fit in one message.
NAME_LIMIT = 100
NEED_LIMIT = 200
#: A card lists at most this many of its touches (the latest), then "+N".
TOUCH_LIMIT = 5

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "register": "📝 <b>Register this contact</b>",
        "register_1": "⚠️ <b>Still not registered</b> — {asked} was asked",
        "callback": "📞 <b>Call back</b>",
        "callback_again": "📞 <b>Try calling again</b> (try {n} of {of})",
        "callback_1": "⚠️ <b>Not called back</b> — {asked} was asked",
        "callback_1_unreachable": "⚠️ <b>Could not be reached</b> — {asked} tried {n} times",
        "follow_up": "⏰ <b>Follow up today</b>",
        "stale": "💤 <b>No change for {days} days</b>",
        "stale_1": "⚠️ <b>Lead untouched for {days} days</b> — {asked} was asked",
        "reminder": "🔁 Reminder",
        "asked_team": "the team chat",
        "asked_nobody": "nobody in particular",
        "more": "…and {n} more after this.",
        "more_touches": "+{n} more",
        "header": "🔔 <b>{n} things to do</b>",
        "call": "call",
        "missed": "missed call",
        "form": "form",
        "email": "email",
        "manual": "entered by hand",
        "lead": "{temperature} lead, {stage}",
        "need": "need: {need}",
        "btn_register": "Register",
        "btn_snooze": "Remind in 1 h",
        "btn_called": "Called back",
        "btn_cant": "Can't reach",
        "btn_done": "Done",
        "btn_day": "+1 day",
        "btn_week": "+1 week",
        "btn_lost": "Lost",
        "btn_open": "Open",
        "source_silent": (
            "🛑 <b>{source} has gone quiet</b>: nothing since {since} ({minutes} working minutes; "
            "its usual quiet spell is {usual} minutes at most). Check the integration: leads may be lost."
        ),
        "source_failing": (
            "🛑 <b>{source} is failing</b>: its last {count} requests were refused ({reason}). "
            "Check its secret or token and the provider's settings: leads may be lost."
        ),
        "source_recovered": "✅ <b>{source} works again</b>: a request was accepted at {at}.",
    },
    "ru": {
        "register": "📝 <b>Зарегистрируйте контакт</b>",
        "register_1": "⚠️ <b>До сих пор не зарегистрирован</b> — просили: {asked}",
        "callback": "📞 <b>Перезвоните</b>",
        "callback_again": "📞 <b>Попробуйте дозвониться ещё раз</b> (попытка {n} из {of})",
        "callback_1": "⚠️ <b>Не перезвонили</b> — просили: {asked}",
        "callback_1_unreachable": "⚠️ <b>Не дозвонились</b> — {asked}, попыток: {n}",
        "follow_up": "⏰ <b>Сегодня — связаться с лидом</b>",
        "stale": "💤 <b>Без изменений {days} дн.</b>",
        "stale_1": "⚠️ <b>Лид без движения {days} дн.</b> — просили: {asked}",
        "reminder": "🔁 Напоминание",
        "asked_team": "общий чат",
        "asked_nobody": "никого конкретно",
        "more": "…и ещё {n} — в следующем сообщении.",
        "more_touches": "и ещё {n}",
        "header": "🔔 <b>Дел: {n}</b>",
        "call": "звонок",
        "missed": "пропущенный звонок",
        "form": "заявка",
        "email": "письмо",
        "manual": "внесён вручную",
        "lead": "лид: {temperature}, {stage}",
        "need": "потребность: {need}",
        "btn_register": "Зарегистрировать",
        "btn_snooze": "Напомнить через час",
        "btn_called": "Перезвонил(а)",
        "btn_cant": "Не дозвониться",
        "btn_done": "Готово",
        "btn_day": "+1 день",
        "btn_week": "+1 неделя",
        "btn_lost": "Потерян",
        "btn_open": "Открыть",
        "source_silent": (
            "🛑 <b>{source} замолчал</b>: ничего с {since} ({minutes} рабочих минут; обычно пауза не "
            "дольше {usual} мин). Проверьте интеграцию: заявки могут теряться."
        ),
        "source_failing": (
            "🛑 <b>{source} не работает</b>: последние {count} запросов отклонены ({reason}). "
            "Проверьте секрет или токен и настройки провайдера: заявки могут теряться."
        ),
        "source_recovered": "✅ <b>{source} снова работает</b>: запрос принят в {at}.",
    },
}

TEMPERATURES = {
    "en": {"hot": "hot", "warm": "warm", "cold": "cold"},
    "ru": {"hot": "горячий", "warm": "тёплый", "cold": "холодный"},
}
STAGES = {
    "en": {"new": "new", "qualified": "qualified", "accepted": "accepted", "returned": "returned"},
    "ru": {"new": "новый", "qualified": "квалифицирован", "accepted": "принят", "returned": "возвращён"},
}


def texts(language: str) -> dict[str, str]:
    return TEXTS.get(language, TEXTS["en"])


def nudge_cb(act: str, nudge_id: int, value: str = "") -> str:
    """``n:<act>:<nudge>:<v>``: what aiogram's ``CallbackData`` with prefix ``n`` packs."""
    return f"n:{act}:{nudge_id}:{value}"


def open_cb(kind: str, target: int) -> str:
    """The bot's ``OpenCB(kind=..., id=...)``: opens a touch's registration card or a lead."""
    return f"o:{kind}:{target}"


def clip(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, the cut marked with "…"."""
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def _when(moment: datetime, view: MessageView) -> str:
    return moment.astimezone(view.tz).strftime("%d.%m %H:%M")


def _who(card: Card) -> str:
    parts = [clip(p, NAME_LIMIT) for p in (card.name, *card.phones[:1], *card.emails[:1]) if p]
    return html.escape(" · ".join(parts)) if parts else f"#{card.contact_id}"


def _title(card: Card, view: MessageView, t: dict[str, str]) -> str:
    asked = card.asked if card.asked else (t["asked_team"] if card.asked == "" else t["asked_nobody"])
    asked = html.escape(clip(asked, NAME_LIMIT))
    if card.kind == "register":
        title = t["register_1"].format(asked=asked) if card.level else t["register"]
    elif card.kind == "callback":
        if card.level and card.outcome == "unreachable":
            title = t["callback_1_unreachable"].format(asked=asked, n=card.tries)
        elif card.level:
            title = t["callback_1"].format(asked=asked)
        elif card.tries:
            title = t["callback_again"].format(n=card.tries + 1, of=view.max_tries)
        else:
            title = t["callback"]
    elif card.kind == "follow_up":
        title = t["follow_up"]
    else:
        title = (t["stale_1"] if card.level else t["stale"]).format(days=view.stale_days, asked=asked)
    if card.round and not (card.kind == "callback" and card.tries):
        title = f"{t['reminder']} · {title}"
    return title


def _details(card: Card, view: MessageView, t: dict[str, str]) -> list[str]:
    lines = [_who(card)]
    if card.touches:
        said = []
        hidden = len(card.touches) - TOUCH_LIMIT
        if hidden > 0:
            said.append(t["more_touches"].format(n=hidden))
        for touch in card.touches[-TOUCH_LIMIT:]:
            what = (
                t["missed"]
                if touch.channel == "call" and touch.answered is False
                else t.get(touch.channel, touch.channel)
            )
            said.append(f"{what} {_when(touch.at, view)}")
        lines.append(html.escape(", ".join(said)))
    if card.lead is not None:
        lead = card.lead
        temperature = TEMPERATURES.get(view.language, TEMPERATURES["en"]).get(
            lead.temperature, lead.temperature
        )
        stage = STAGES.get(view.language, STAGES["en"]).get(lead.stage, lead.stage)
        line = t["lead"].format(temperature=temperature, stage=stage)
        if lead.need:
            line += "; " + t["need"].format(need=clip(lead.need, NEED_LIMIT))
        lines.append(html.escape(line))
    return lines


def _buttons(card: Card, t: dict[str, str], label: str) -> list[list[dict[str, str]]]:
    def b(text: str, data: str) -> dict[str, str]:
        return {"text": label + text, "callback_data": data}

    nid = card.nudge_id
    if card.kind == "register":
        row = [b(t["btn_register"], open_cb("touch", card.touch_id))] if card.touch_id else []
        if card.level == 0:
            row.append(b(t["btn_snooze"], nudge_cb("snooze", nid, str(SNOOZE_MINUTES))))
        return [row] if row else []
    if card.kind == "callback":
        if card.outcome == "unreachable" and card.level == 0:
            return [[b(t["btn_called"], nudge_cb("called", nid))]]
        return [[b(t["btn_called"], nudge_cb("called", nid)), b(t["btn_cant"], nudge_cb("cant", nid))]]
    first = [b(t["btn_done"], nudge_cb("done", nid))] if card.kind == "follow_up" else []
    if card.lead is not None:
        first.append(b(t["btn_open"], open_cb("lead", card.lead.id)))
    second = [
        b(t["btn_day"], nudge_cb("later", nid, "1")),
        b(t["btn_week"], nudge_cb("later", nid, "7")),
        b(t["btn_lost"], nudge_cb("lost", nid)),
    ]
    return [first, second] if first else [second]


def render(view: MessageView) -> dict[str, Any]:
    """A ``sendMessage`` payload (Telegram HTML) listing the cards, each with its own buttons."""
    t = texts(view.language)
    numbered = len(view.cards) > 1
    blocks: list[str] = []
    keyboard: list[list[dict[str, str]]] = []
    if numbered:
        blocks.append(t["header"].format(n=len(view.cards) + view.more))
    for i, card in enumerate(view.cards, 1):
        prefix = f"{i}. " if numbered else ""
        blocks.append("\n".join([prefix + _title(card, view, t), *_details(card, view, t)]))
        keyboard += _buttons(card, t, prefix)
    if view.more:
        blocks.append(t["more"].format(n=view.more))
    payload: dict[str, Any] = {"text": "\n\n".join(blocks), "parse_mode": "HTML"}
    if keyboard:
        payload["reply_markup"] = {"inline_keyboard": keyboard}
    return payload


def render_source_alert(language: str, problem: str, fields: dict[str, Any]) -> dict[str, Any]:
    """An owner's alert that a source is silent or failing, or that it recovered."""
    t = texts(language)
    safe = {k: html.escape(clip(str(v), NEED_LIMIT)) for k, v in fields.items()}
    return {"text": t[f"source_{problem}"].format(**safe), "parse_mode": "HTML"}
