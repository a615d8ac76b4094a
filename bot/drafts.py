"""Unsaved card drafts about a person who was erased: dropped from the bot's memory with them.

A draft (bot/cards.py ``CardDraft``) holds what someone started typing on a card (a name, a need)
under the card's message in aiogram's FSM storage; so does the state that routes their next typed
message into it. An erasure made through the bot or the API of the process that runs the bot drops
both; a card tapped later finds its contact erased and says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage

#: The FSM destiny a card's draft is kept under (bot/routers/registration.py ``card_state``).
CARD = "card:"


async def drop_drafts(storage: BaseStorage, contact_ids: Sequence[int], touch_ids: Sequence[int]) -> int:
    """Forget every draft about these contacts or touches, and any typing routed into one; returns
    how many drafts went. Only the in-memory storage the bot uses can be searched."""
    if not isinstance(storage, MemoryStorage):
        return 0
    contacts, touches = set(contact_ids), set(touch_ids)
    cards: set[tuple[int, int]] = set()
    dropped = 0
    for key, record in list(storage.storage.items()):
        if record.data.get("contact") in contacts or record.data.get("touch") in touches:
            if key.destiny.startswith(CARD) and key.destiny[len(CARD) :].isdigit():
                cards.add((key.chat_id, int(key.destiny[len(CARD) :])))
            del storage.storage[key]
            dropped += 1
    for key, record in list(storage.storage.items()):
        if (record.data.get("chat"), record.data.get("card")) in cards:
            del storage.storage[key]
    return dropped


def drafts_dropper(storage: BaseStorage) -> Callable[[Sequence[int], Sequence[int]], Awaitable[int]]:
    """:func:`drop_drafts` on this storage, for an erasure made outside the bot (the API)."""

    async def drop(contact_ids: Sequence[int], touch_ids: Sequence[int]) -> int:
        return await drop_drafts(storage, contact_ids, touch_ids)

    return drop
