"""VK Callback API: a community's messages and its lead-ads forms.

Nothing is signed: the JSON body's ``secret`` must be the secret set on the community's Callback
API server (FORMATS §8.3, VERIFIED), compared in constant time, and checked before anything else,
the confirmation included, as SevereCloud/vksdk does. ``confirmation`` (sent when the server address
is saved) is answered with the source's ``confirmation`` string; every other event with the plain
``ok`` VK wants, or it repeats the event and, after several errors in a row, stops sending.

``message_new`` from a person (``out`` 0, a private dialogue: ``peer_id`` below 2 000 000 000) is a
chat message of the VK user ``from_id``; a number typed in its text is a phone. The community's own
message in such a dialogue (``message_reply``, when the Callback API server has that event on, or
``out`` 1) is no touch but the answer speed to lead measures, kept against the dialogue
(storage/chats.py). ``lead_forms_new``
is a form: its answers give the phone, name and email, the rest is the message, and the form's id
its campaign (``[[campaigns]] vk_forms``). ``event_id`` is the retry key: VK resends the same event
with ``X-Retry-Counter`` until it is answered ``ok``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from capture.chats import CONVERSATION_URL, conversation_key, items, obj, scalar, unix_time
from capture.mail import find_phones
from capture.providers.base import (
    BadRequest,
    ContactEvent,
    MissingCredentials,
    ParseResult,
    RawRequest,
    Reply,
    ReplyEvent,
    Unauthorized,
)
from leadline.config import SourceConfig

OK = Reply(200, b"ok", "text/plain")
#: Peers from here up are group chats, not a person's dialogue with the community.
GROUP_CHATS = 2_000_000_000
#: Answer keys of a VK lead form (FORMATS §8.3, VERIFIED: leadForms docs).
NAME_KEYS = ("first_name", "patronymic_name", "last_name")
CONTACT_KEYS = frozenset({*NAME_KEYS, "phone_number", "email"})


@dataclass(frozen=True)
class Vk:
    methods: frozenset[str] = frozenset({"POST"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        body = raw.json()
        given = body.get("secret") if isinstance(body, dict) else None
        if not isinstance(given, str) or not given:
            raise MissingCredentials(
                "no 'secret' in the body: set the source's secret on the community's Callback API"
            )
        if not hmac.compare_digest(given.encode(), source.secret_value("secret").encode()):
            raise Unauthorized("'secret' is not the source's secret")

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        body = raw.json()
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            raise BadRequest("expected a JSON object with a 'type'")
        kind = body["type"]
        if kind == "confirmation":
            answer = source.secret_value("confirmation").encode()
            return ParseResult(reply=Reply(200, answer, "text/plain"), note="confirmation")
        event_id = scalar(body, "event_id")
        if not event_id:
            raise BadRequest(f"a {kind[:40]!r} event without an event_id")
        group = scalar(body, "group_id") or ""
        event_object = obj(body.get("object"))
        if kind in ("message_new", "message_reply"):
            # API versions before 5.103 send the message itself as the object (FORMATS §8.3), as
            # ``message_reply`` always does.
            message = obj(event_object.get("message")) or event_object
            if kind == "message_reply" or message.get("out") in (1, "1", True):
                return _reply(event_id, group, message)
            return _message(event_id, group, message, source)
        if kind == "lead_forms_new":
            return ParseResult(events=[_lead(event_id, group, event_object)], reply=OK)
        return ParseResult(reply=OK, note=f"{kind[:40]}: not a touch")


def _message(event_id: str, group: str, message: dict[str, Any], source: SourceConfig) -> ParseResult:
    sender = scalar(message, "from_id") or ""
    peer = scalar(message, "peer_id") or sender
    if not _id(sender):
        return ParseResult(reply=OK, note="not from a person")
    if _id(peer) >= GROUP_CHATS:
        return ParseResult(reply=OK, note="a group chat, not a dialogue")
    text = scalar(message, "text")
    return ParseResult(
        events=[
            ContactEvent(
                channel="chat",
                external_id=f"vk:{event_id}",
                occurred_at=unix_time(message.get("date"), "object.message.date"),
                phones=tuple(find_phones(text, source.region or "RU")) if text else (),
                message=text or _attachments(message),
                handles=(("vk_id", sender),),
                conversation=conversation_key("vk", group, sender),
                fields={
                    "vk_group_id": group,
                    "message_id": scalar(message, "id"),
                    CONVERSATION_URL: f"https://vk.com/gim{group}?sel={sender}",
                },
            )
        ],
        reply=OK,
    )


def _reply(event_id: str, group: str, message: dict[str, Any]) -> ParseResult:
    """The community's own message in a person's dialogue: the answer, kept against the dialogue."""
    peer = _id(scalar(message, "peer_id"))
    if not peer or peer >= GROUP_CHATS:
        return ParseResult(reply=OK, note="the community's own message, not in a dialogue")
    return ParseResult(
        events=[
            ReplyEvent(
                f"vk:{event_id}",
                conversation_key("vk", group, str(peer)),
                unix_time(message.get("date"), "object.date"),
            )
        ],
        reply=OK,
        note="the community's own message: not a touch",
    )


def _id(value: str | None) -> int:
    """A VK id as a number; a community's (negative), a missing or an absurd one as 0."""
    return int(value) if value and value.isascii() and value.isdigit() and len(value) <= 18 else 0


def _attachments(message: dict[str, Any]) -> str | None:
    kinds = [scalar(a, "type") or "?" for a in items(message.get("attachments"))]
    return ", ".join(f"[{k}]" for k in kinds) or None


def _lead(event_id: str, group: str, lead: dict[str, Any]) -> ContactEvent:
    answers = {
        key: answer
        for a in items(lead.get("answers"))
        if (key := scalar(a, "key")) and (answer := scalar(a, "answer"))
    }
    questions = {scalar(a, "key"): scalar(a, "question") for a in items(lead.get("answers"))}
    user = scalar(lead, "user_id")
    form = scalar(lead, "form_id")
    rest = [f"{questions.get(k) or k}: {v}" for k, v in answers.items() if k not in CONTACT_KEYS]
    name = " ".join(answers[k] for k in NAME_KEYS if k in answers) or None
    return ContactEvent(
        channel="form",
        external_id=f"vk:{event_id}",
        phones=(answers["phone_number"],) if "phone_number" in answers else (),
        emails=(answers["email"],) if "email" in answers else (),
        name=name,
        message="\n".join(rest) or None,
        handles=(("vk_id", user),) if user else (),
        campaign_ref=("vk_form", form) if form else None,
        fields={
            "vk_group_id": group,
            "lead_id": scalar(lead, "lead_id"),
            "form_id": form,
            "form_name": scalar(lead, "form_name"),
            "ad_id": scalar(lead, "ad_id"),
            "answers": answers,
            **({CONVERSATION_URL: f"https://vk.com/gim{group}?sel={user}"} if user and group else {}),
        },
    )


PROVIDER = Vk()
