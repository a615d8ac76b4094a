"""The normalised events that capture hands to storage: what a touch is made of.

Provider modules produce these from the wire formats; storage turns them into touches on
deduplicated contacts. Neither side knows the other's details.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import datetime
from typing import Any, Literal

from storage.records import record

Channel = Literal["call", "form", "email", "manual", "chat"]


@record
class ContactEvent:
    """A form submission, an email or a hand-entered contact: one event is one touch.

    ``external_id`` is the provider's idempotency key (``tilda:<tranid>``, ``email:<Message-ID>``):
    a second event with the same key on the same source changes nothing. Phones and emails are
    kept as written; storage normalises them. ``dropped`` names the rule that makes this event
    not an inbound touch (an auto-reply, spam): it is journalled and kept, but not counted.

    A chat message names its person by the chat's own ids (``handles``: ``(kind, value)`` pairs of
    :data:`storage.identifiers.HANDLE_KINDS`) and carries ``conversation``, the key of the dialogue it
    belongs to: messages on one source with one key are one touch until a gap
    (:func:`storage.chats.record_chat_event`). ``campaign_ref`` is what a chat ad names its campaign
    by (``("vk_form", "3")``, ``("avito_item", "6000000001")``).

    ``former_ids`` are keys an earlier release stored the same event under: a provider whose key
    changed names its old one, so a retry of a delivery stored before the upgrade is still a no-op.
    """

    channel: Channel
    external_id: str
    occurred_at: datetime | None = None
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    name: str | None = None
    message: str | None = None
    utm: Mapping[str, str] = field(default_factory=dict)
    to_address: str | None = None
    tracking_number: str | None = None
    region: str | None = None
    dropped: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    handles: tuple[tuple[str, str], ...] = ()
    conversation: str | None = None
    campaign_ref: tuple[str, str] | None = None
    former_ids: tuple[str, ...] = ()


CallDirection = Literal["in", "out", "internal"]
CallStatus = Literal["ringing", "answered", "missed", "ended", "recording"]


@record
class CallEvent:
    """One telephony notification about one call; many of these fold into one call touch.

    ``call_id`` is the provider's identity of the whole call (Mango ``entry_id``, Zadarma
    ``pbx_call_id``, Twilio ``CallSid``); ``event_key`` identifies this notification for
    idempotency; ``seq`` orders events that arrive out of order (a lower one changes nothing).
    ``final`` marks the event that settles the outcome (Mango's summary, Zadarma's NOTIFY_END).
    ``caller`` is the outside party's number as written (the contact), whatever the direction; a
    provider that writes international digits without their ``+`` (Mango, Zadarma, UIS) gives it
    back (:func:`storage.identifiers.international`), so every later reading, the call-back's too,
    is right.
    ``direction_stated`` is False for a notification that does not say which way the call went
    (Binotel's ``hangupTheCall`` has no ``callType``): its ``direction`` is a guess for a call it
    starts, and never changes one a notification that said it has set.
    """

    call_id: str
    event_key: str
    direction: CallDirection
    status: CallStatus
    caller: str | None = None
    occurred_at: datetime | None = None
    seq: int | None = None
    final: bool = False
    answered: bool | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: int | None = None
    talk_s: int | None = None
    extension: str | None = None
    tracking_number: str | None = None
    line: str | None = None
    recording: str | None = None
    region: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    direction_stated: bool = True


@record
class ReplyEvent:
    """The business's own message in a chat conversation: not a touch, but the answer to one.

    Speed to lead counts from a customer's first message to the first reply after it, so a reply is
    kept with the conversation it was sent in (``conversation``, the key its customer's messages
    carry) and its moment. ``external_id`` is the message's key: a retry of it changes nothing.
    """

    external_id: str
    conversation: str
    occurred_at: datetime | None = None


Event = ContactEvent | CallEvent | ReplyEvent
