"""Avito Messenger API webhook (v3): a buyer's message in a chat, mostly about an item.

Avito signs nothing it documents (FORMATS §8.4: the ``x-avito-messenger-signature`` some deliveries
reportedly carry has no published algorithm, UNVERIFIED): the source's ``token``, put in the URL
registered with ``POST /messenger/v3/webhook`` (``…/hooks/avito?token=…``), which Avito calls back
verbatim, is what guards it; the shared check (``capture.providers.auth``) reads it. Avito checks
a URL before subscribing it by posting ``{}``, which is answered 200 with the note "URL check".

A message is the buyer's when its ``author_id`` is neither our account (``user_id``: our own
replies come to the webhook too) nor 0 (Avito's system bots), and its ``type`` is not ``system``.
Our own reply is no touch but the answer speed to lead measures, kept against its chat's
conversation (storage/chats.py); whether a person or a program sent it, Avito does not say.
The event has no phone, but a buyer may type one into a message: it is a phone, as in a VK
message, so the chat's contact joins the one a call from that number made. The item it is about
goes into the touch's text and names its campaign (``[[campaigns]]
avito_items``). Avito's answer to wait for is 200 within 2 s, with ``{"ok": true}`` as receivers
send it; the message id (``value.id``) makes a retry a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from capture.chats import CONVERSATION_URL, conversation_key, obj, scalar, unix_time
from capture.mail import find_phones
from capture.providers.base import BadRequest, ContactEvent, ParseResult, RawRequest, Reply, ReplyEvent
from leadline.config import SourceConfig

OK = Reply(200, b'{"ok": true}', "application/json")
CHAT_URL = "https://www.avito.ru/profile/messenger/channel/"


@dataclass(frozen=True)
class Avito:
    methods: frozenset[str] = frozenset({"POST"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        """Nothing of Avito's own: the source's ``token`` is checked before this (auth.check_access)."""

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        body = raw.json()
        if body == {}:
            # Avito's own check of a URL before it subscribes it: ``curl … -d '{}'`` must get 200.
            return ParseResult(reply=OK, note="URL check")
        payload = obj(body.get("payload")) if isinstance(body, dict) else {}
        if not payload:
            raise BadRequest("expected a JSON object with a 'payload' object")
        if payload.get("type") != "message":
            return ParseResult(reply=OK, note=f"{str(payload.get('type'))[:40]}: not a touch")
        value = obj(payload.get("value"))
        message_id, chat_id = scalar(value, "id"), scalar(value, "chat_id")
        if not message_id or not chat_id:
            raise BadRequest("payload.value has no id or no chat_id")
        author, account = scalar(value, "author_id"), scalar(value, "user_id")
        if author in (None, "0") or value.get("type") == "system":
            return ParseResult(reply=OK, note="Avito's message: not a touch")
        conversation = conversation_key("avito", account, chat_id)
        created = unix_time(value.get("created"), "payload.value.created")
        if author == account:
            return ParseResult(
                events=[ReplyEvent(f"avito:{message_id}", conversation, created)],
                reply=OK,
                note="our own reply: not a touch",
            )
        item = scalar(value, "item_id")
        typed = scalar(obj(value.get("content")), "text") if value.get("type") == "text" else None
        return ParseResult(
            events=[
                ContactEvent(
                    channel="chat",
                    external_id=f"avito:{message_id}",
                    occurred_at=created,
                    phones=tuple(find_phones(typed, source.region or "RU")) if typed else (),
                    message=_text(value, item),
                    handles=(("avito_id", author),) if author else (),
                    conversation=conversation,
                    campaign_ref=("avito_item", item) if item else None,
                    fields={
                        "chat_id": chat_id,
                        "chat_type": scalar(value, "chat_type"),
                        "item_id": item,
                        "type": scalar(value, "type"),
                        CONVERSATION_URL: CHAT_URL + chat_id,
                    },
                )
            ],
            reply=OK,
        )


def _text(value: dict[str, Any], item: str | None) -> str:
    """What the buyer wrote, after the item it is about; a message with no text says its kind."""
    content = obj(value.get("content"))
    kind = scalar(value, "type") or "?"
    text = scalar(content, "text")
    if kind == "call":
        text = f"[call: {scalar(obj(content.get('call')), 'status') or '?'}]"
    text = text or f"[{kind}]"
    return f"[item {item}] {text}" if item else text


PROVIDER = Avito()
