"""Telegram Business: the messages of the owner's own Telegram account, through the bot Leadline runs.

The owner connects the bot in Telegram (Settings → Telegram Business → Chatbots); Telegram then
sends the bot ``business_connection``, ``business_message`` and ``edited_business_message``
updates with the others (FORMATS §8.1, VERIFIED, Bot API 7.2+). The bot takes them by long polling
or its own webhook, checked as every update is, so nothing reaches this module over HTTP: the bot
hands each update's JSON to the capture pipeline (``leadline/app.py``), which journals it as a
request of the ``telegram_business`` source and parses it here, as a webhook's body would be.

A business chat is private, and its ``chat.id`` is the customer's user id: a message whose sender is
someone else is the business's. Typed by the owner in their app, it is their reply: not a touch,
but the answer speed to lead measures (kept against the conversation, storage/chats.py). Sent by a
bot answering for them (``sender_business_bot``), or by Telegram itself as the account's away,
greeting or scheduled message (``is_from_offline``), it is neither: the customer still waits for a
person. So no state is needed to tell them apart. The customer is
known by their user id (their username, when they have one, is kept to find them by but matches
nobody: storage/identifiers.py); a phone only when they share their own contact (``contact.user_id``
is theirs); anyone else's contact is the message's text, ``[contact: name phone]``, for staff to
see. The message's key, ``business_connection_id:chat.id:
message_id``, as a digest, makes a re-delivered update and an edit a no-op.

Anyone with Telegram Premium can connect the bot to their own account: then their customers'
messages would come here too. The bot says whose account each update's connection is, in the
:data:`ACCOUNT_HEADER` of the request it hands over (as Telegram says it: the connection's user);
an update without one (a connection Telegram does not know) is refused here, and the pipeline takes
an account only when it is a staff member's or in the source's ``accounts`` (capture/pipeline.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from capture.chats import CONVERSATION_URL, conversation_key, obj, scalar, shared_contact, unix_time
from capture.providers.base import BadRequest, ContactEvent, Forbidden, ParseResult, RawRequest, ReplyEvent
from leadline.config import SourceConfig

#: The Telegram user id whose business connection the update came through; set by the bot.
ACCOUNT_HEADER = "X-Leadline-Business-Account"

MESSAGE_KINDS = ("business_message", "edited_business_message")
#: Update kinds that carry no touch, with the journal's note for each.
NOT_TOUCHES = {
    "business_connection": "business connection",
    "deleted_business_messages": "deleted business messages",
}
#: What a message without text holds, in the order Telegram's Message lists them.
MEDIA = ("photo", "video", "voice", "video_note", "audio", "document", "sticker", "location")


@dataclass(frozen=True)
class TelegramBusiness:
    #: None over HTTP: the bot takes these updates (and Telegram's secret token is checked there).
    methods: frozenset[str] = frozenset()

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        """The update came through the bot's own authenticated connection; whose account it is the
        pipeline judges, once it can ask who is on the staff. Telegram knows every connection."""
        if self.account(raw) is None:
            raise Forbidden("a business connection Telegram does not know")

    def account(self, raw: RawRequest) -> int | None:
        """The account the bot named; None in a row journalled before it named one (then it was
        taken). The pipeline judges it whether or not the update parses, so that a foreign
        account's update a parser refuses is not a replayable 400 a later parser turns into a touch."""
        value = raw.headers.get(ACCOUNT_HEADER, "")
        return int(value) if value.isascii() and value.isdigit() else None

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        update = raw.json()
        if not isinstance(update, dict):
            raise BadRequest("expected a Telegram update: a JSON object")
        for kind, note in NOT_TOUCHES.items():
            if kind in update:
                return ParseResult(note=note)
        message = next((update[k] for k in MESSAGE_KINDS if isinstance(update.get(k), dict)), None)
        if message is None:
            return ParseResult(note="not a business update")
        return _message(message)


def _message(message: dict[str, Any]) -> ParseResult:
    sender, chat = obj(message.get("from")), obj(message.get("chat"))
    user, chat_id = scalar(sender, "id"), scalar(chat, "id")
    connection, message_id = scalar(message, "business_connection_id"), scalar(message, "message_id")
    if not (user and chat_id and connection and message_id):
        raise BadRequest("a business message needs from.id, chat.id, business_connection_id and message_id")
    if chat.get("type") not in (None, "private"):
        return ParseResult(note="not a private chat")
    key = f"{connection}:{chat_id}:{message_id}"
    external_id = "telegram:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    conversation = conversation_key("telegram", connection, chat_id)
    occurred_at = unix_time(message.get("date"), "message.date")
    if "sender_business_bot" in message or sender.get("is_bot"):
        return ParseResult(note="a bot's message for the business: not a touch, nor a person's answer")
    if message.get("is_from_offline"):
        return ParseResult(note="an away, greeting or scheduled message: not a touch, nor a person's answer")
    if user != chat_id:
        return ParseResult(
            events=[ReplyEvent(external_id, conversation, occurred_at)],
            note="the business owner's reply: not a touch",
        )
    username = scalar(sender, "username")
    contact = obj(message.get("contact"))
    own_phone = scalar(contact, "phone_number") if scalar(contact, "user_id") == user else None
    name = " ".join(filter(None, (scalar(sender, "first_name"), scalar(sender, "last_name"))))
    return ParseResult(
        events=[
            ContactEvent(
                channel="chat",
                external_id=external_id,
                occurred_at=occurred_at,
                phones=(_plus(own_phone),) if own_phone else (),
                name=name or None,
                message=_text(message, own=own_phone is not None),
                handles=(("telegram_id", user),) + ((("telegram_username", username),) if username else ()),
                conversation=conversation,
                fields={
                    CONVERSATION_URL: f"https://t.me/{username}" if username else f"tg://user?id={user}",
                },
            )
        ]
    )


def _plus(phone: str) -> str:
    """Telegram's clients send a shared contact's number with or without its ``+``: it is international."""
    return phone if phone.startswith("+") else "+" + phone


def _text(message: dict[str, Any], *, own: bool) -> str | None:
    text = scalar(message, "text") or scalar(message, "caption")
    if text:
        return text
    contact = obj(message.get("contact"))
    if not own and (phone := scalar(contact, "phone_number")):
        name = " ".join(filter(None, (scalar(contact, "first_name"), scalar(contact, "last_name"))))
        return shared_contact(name, [_plus(phone)])
    kind = next((k for k in MEDIA if k in message), None)
    return f"[{kind}]" if kind else None


PROVIDER = TelegramBusiness()
