"""How handlers send: every new message is an outbox row, so an outage delays it and loses none.

Only answers to a button press within the same update (the callback answer, the card edited in
place) go to Telegram directly; everything else is queued here and the sender is woken at once.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from storage.db import Clock, Store
from storage.outbox import enqueue

if TYPE_CHECKING:  # the nudges' texts use this module in processes that never import aiogram
    from aiogram.types import InlineKeyboardMarkup


def message_payload(text: str, markup: InlineKeyboardMarkup | None = None) -> dict[str, Any]:
    """A ``sendMessage`` payload in the one format every bot text uses (HTML, no link previews)."""
    payload: dict[str, Any] = {
        "text": text,
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
    if markup is not None:
        payload["reply_markup"] = markup.model_dump(mode="json", exclude_none=True)
    return payload


def edit_payload(message_id: int, text: str, markup: InlineKeyboardMarkup | None = None) -> dict[str, Any]:
    return {**message_payload(text, markup), "message_id": message_id}


#: Telegram refuses for good a message whose text is longer than this (in UTF-16 code units).
MESSAGE_LIMIT = 4096
#: A reply quotes at most this much of what was typed: enough to see which words it means, and short
#: enough that the reply around it always reaches Telegram, however long the message it answers.
QUOTE_LIMIT = 100


def clip(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, the cut marked with "…"."""
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def quoted(typed: str) -> str:
    """Text people typed (a command's argument, an answer, a name from a form), to quote in an HTML
    reply: cut first, so the cut never splits an escape, then escaped."""
    return html.escape(clip(typed, QUOTE_LIMIT))


def fits_telegram(payload: Mapping[str, Any]) -> bool:
    """Whether Telegram will take the message. The HTML source is measured: it is never shorter than
    the text Telegram counts once the markup is parsed, so a source that fits is a message that fits."""
    return len(str(payload.get("text", "")).encode("utf-16-le")) // 2 <= MESSAGE_LIMIT


def fit_leading(render: Callable[[int], dict[str, Any]], count: int) -> tuple[dict[str, Any], int]:
    """The message of the most of the first ``count`` items that Telegram takes, and how many it shows.

    Telegram refuses a longer message for good, so the last items wait for the next message; one
    item is always shown, even alone too long, so that the sender records why it was refused.
    """
    shown = count
    payload = render(shown)
    while shown > 1 and not fits_telegram(payload):
        shown -= 1
        payload = render(shown)
    return payload, shown


@dataclass
class Replies:
    store: Store
    clock: Clock
    wake: Callable[[], None]

    async def send(
        self,
        chat_id: int,
        text: str,
        markup: InlineKeyboardMarkup | None = None,
        *,
        dedupe_key: str | None = None,
    ) -> None:
        payload = message_payload(text, markup)
        now = self.clock()

        def queue(db: Database) -> None:
            enqueue(db, chat_id, payload, at=now, dedupe_key=dedupe_key)

        await self.store.write(queue)
        self.wake()

    async def edit(
        self, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        """Redraw a card after typed input: queued too, so it keeps its place after the typed reply."""
        payload = edit_payload(message_id, text, markup)
        now = self.clock()

        def queue(db: Database) -> None:
            enqueue(db, chat_id, payload, at=now, method="editMessageText")

        await self.store.write(queue)
        self.wake()
