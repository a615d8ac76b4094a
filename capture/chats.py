"""What the four chat providers share: a message as a touch's event, keyed by its conversation.

A chat names its person by the chat's own ids, seldom by a phone, so each message carries
``handles`` (storage/identifiers.py's kinds) and the key of its conversation: messages with one
key on one source fold into one touch until a gap (storage/chats.py). The key is a digest of the
ids that make the dialogue, so the touches table holds no one's number or id in it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from capture.providers.base import BadRequest, quoted

#: The ``fields`` key of the URL that opens the conversation (``https://wa.me/…``): the card's link.
CONVERSATION_URL = "conversation_url"


def conversation_key(provider: str, *parts: object) -> str:
    """The conversation's key: a digest of the provider and the ids that make the dialogue."""
    joined = "\x1f".join([provider, *(str(p) for p in parts)])
    return f"{provider}:{hashlib.sha256(joined.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}"


def unix_time(value: Any, what: str) -> datetime | None:
    """A chat's unix time (a number, or digits in a string); None when absent."""
    if value is None or value == "" or isinstance(value, bool | dict | list):
        return None
    try:
        return datetime.fromtimestamp(int(float(str(value).strip())), UTC)
    except (ValueError, OverflowError, OSError) as exc:  # OSError: past what time_t holds
        raise BadRequest(f"{what} is not unix seconds: {quoted(value)}") from exc


def obj(value: Any) -> dict[str, Any]:
    """A JSON object a sender should have sent; anything else reads as an empty one."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON array; anything else, and whatever in it is no object, is skipped."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def scalar(data: Mapping[str, Any], key: str) -> str | None:
    """A string or number field as text; absent, empty or nested is None."""
    value = data.get(key)
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()
    return text or None


def shared_contact(name: str | None, phones: list[str]) -> str:
    """A contact card a person sent, as its text: the number is what staff call, and may be someone
    else's (a spouse's, a friend's), so it is shown and never taken as the sender's."""
    return "[contact: " + " ".join(filter(None, (name, *phones))) + "]"
