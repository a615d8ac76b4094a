"""WhatsApp Business Cloud API (Meta): the ``messages`` webhook of a WhatsApp Business Account.

Saving the callback URL sends a GET handshake (``hub.mode=subscribe``, ``hub.verify_token``,
``hub.challenge``): a matching ``verify_token`` gets the challenge back as a plain body, anything
else a 403 (FORMATS §8.2, VERIFIED). Notifications are POSTs signed with the app's secret:
``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``. Whether Meta signs the body as
sent or its ``\\u``-escaped form is disputed (UNVERIFIED), so a body with non-ASCII bytes that fails
the raw check is checked once more escaped; on an ASCII body the two are the same.

Each of ``messages[]`` is a chat message: ``from`` is the sender's phone without ``+`` (so it
deduplicates with calls and forms), ``from_user_id`` the business-scoped user id a user who took a
username has instead. ``statuses[]`` tell how our own messages fared: the request is journalled
and answered 200 with the note "statuses", and makes no touch, as a form builder's test ping does.
A ``reaction`` (an emoji put on or taken off a message) and a ``system`` notice (the customer
changed their number) are in ``messages[]`` too, but nobody wrote them: they make no touch either,
and the journal's note says so. The changed number a notice names is left in the journal: every
event that names a person makes a touch, and this one must not.
The message id (``wamid``) makes a retry a no-op.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from capture.chats import CONVERSATION_URL, conversation_key, items, obj, scalar, shared_contact, unix_time
from capture.providers.base import (
    BadRequest,
    ContactEvent,
    Forbidden,
    MissingCredentials,
    ParseResult,
    RawRequest,
    Reply,
    Unauthorized,
)
from leadline.config import SourceConfig

SIGNATURE_HEADER = "X-Hub-Signature-256"
#: Meta's challenge is a number; nothing longer is echoed.
MAX_CHALLENGE = 256
#: ``messages[]`` kinds nobody wrote, with the journal's note for each: LRR counts people who wrote.
NOT_TOUCHES = {"reaction": "reaction: not a touch", "system": "system message: not a touch"}
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


@dataclass(frozen=True)
class WhatsApp:
    methods: frozenset[str] = frozenset({"GET", "POST"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        if raw.method == "GET":
            query = raw.query
            given = query.get("hub.verify_token", "")
            expected = source.secret_value("verify_token")
            if query.get("hub.mode") != "subscribe" or not hmac.compare_digest(
                given.encode("utf-8", "surrogateescape"), expected.encode()
            ):
                raise Forbidden(
                    "hub.mode is not subscribe, or hub.verify_token is not the source's verify_token"
                )
            return
        given = raw.headers.get(SIGNATURE_HEADER, "").strip()
        if not given.startswith("sha256="):
            raise MissingCredentials(f"missing {SIGNATURE_HEADER} header: Meta signs every notification")
        key = source.secret_value("app_secret").encode()
        digest = given.removeprefix("sha256=").lower().encode("ascii", "replace")
        if hmac.compare_digest(digest, _hex(key, raw.body)):
            return
        if not raw.body.isascii() and hmac.compare_digest(digest, _hex(key, escaped(raw.body))):
            return
        raise Unauthorized(f"{SIGNATURE_HEADER} does not match the body and the source's app_secret")

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        if raw.method == "GET":
            challenge = raw.query.get("hub.challenge", "")
            if not challenge or len(challenge) > MAX_CHALLENGE:
                raise BadRequest("hub.challenge is missing or longer than Meta ever sends")
            return ParseResult(
                reply=Reply(200, challenge.encode(), "text/plain"), note="verification handshake"
            )
        body = raw.json()
        if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
            raise BadRequest("expected a JSON object with object 'whatsapp_business_account'")
        events: list[ContactEvent] = []
        statuses: Counter[str] = Counter()
        skipped: dict[str, None] = {}
        for entry in items(body.get("entry")):
            for change in items(entry.get("changes")):
                value = obj(change.get("value"))
                events += _messages(value, skipped)
                statuses.update(scalar(s, "status") or "?" for s in items(value.get("statuses")))
        notes = list(skipped)
        if events:
            return ParseResult(events=events, note="; ".join(notes) or None)
        if statuses:
            notes.append("statuses: " + ", ".join(f"{k} {n}" for k, n in sorted(statuses.items())))
        return ParseResult(note="; ".join(notes) or "no messages")


def _hex(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).hexdigest().encode()


def escaped(body: bytes) -> bytes:
    """The body with each non-ASCII character as ``\\uXXXX`` (lowercase, UTF-16 units): what Meta's
    docs say its signature covers (FORMATS §8.2)."""
    text = body.decode("utf-8", "surrogateescape")
    return _NON_ASCII.sub(_escape, text).encode("ascii", "replace")


def _escape(match: re.Match[str]) -> str:
    units = match[0].encode("utf-16-be", "surrogatepass")
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))


def _messages(value: dict[str, Any], skipped: dict[str, None]) -> list[ContactEvent]:
    """The touches of ``value``'s messages; the notes of those that make none go into ``skipped``."""
    metadata = obj(value.get("metadata"))
    account = scalar(metadata, "phone_number_id") or scalar(metadata, "display_phone_number") or ""
    profiles = {
        key: obj(c.get("profile"))
        for c in items(value.get("contacts"))
        for key in (scalar(c, "wa_id"), scalar(c, "user_id"))
        if key
    }
    events = []
    for message in items(value.get("messages")):
        wamid = scalar(message, "id")
        sender = scalar(message, "from")
        user_id = scalar(message, "from_user_id")
        if not wamid or not (sender or user_id):
            raise BadRequest("a message has no id, or neither from nor from_user_id")
        if (note := NOT_TOUCHES.get(scalar(message, "type") or "")) is not None:
            skipped[note] = None
            continue
        profile = profiles.get(sender or "") or profiles.get(user_id or "") or {}
        handles = [("whatsapp_id", user_id)] if user_id else []
        if username := scalar(profile, "username"):
            handles.append(("whatsapp_username", username))
        digits = re.sub(r"\D", "", sender or "")
        events.append(
            ContactEvent(
                channel="chat",
                external_id=f"whatsapp:{wamid}",
                occurred_at=unix_time(message.get("timestamp"), "messages[].timestamp"),
                phones=(f"+{digits}",) if digits else (),
                name=scalar(profile, "name"),
                message=_text(message),
                handles=tuple(handles),
                conversation=conversation_key("whatsapp", account, sender or user_id),
                fields={
                    "type": scalar(message, "type"),
                    "phone_number_id": account,
                    "wamid": wamid,
                    **({CONVERSATION_URL: f"https://wa.me/{digits}"} if digits else {}),
                },
            )
        )
    return events


def _text(message: dict[str, Any]) -> str | None:
    """What the person wrote: a text's body, a medium's caption, the words of a button they tapped,
    the numbers of contacts they shared, else the kind of message in brackets."""
    kind = scalar(message, "type") or "unknown"
    if kind == "contacts":
        cards = [
            shared_contact(
                scalar(obj(c.get("name")), "formatted_name"),
                [p for n in items(c.get("phones")) if (p := scalar(n, "phone"))],
            )
            for c in items(message.get("contacts"))
        ]
        return "\n".join(cards) or "[contacts]"
    content = obj(message.get(kind))
    return (
        scalar(content, "body")
        or scalar(content, "caption")
        or scalar(content, "text")  # a template's quick-reply button
        or scalar(obj(content.get("button_reply")), "title")
        or scalar(obj(content.get("list_reply")), "title")
        or f"[{kind}]"
    )


PROVIDER = WhatsApp()
