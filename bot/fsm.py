"""aiogram's FSM storage over the database, instead of ``MemoryStorage``: a card half filled in
(bot/cards.py ``CardDraft``) and the question the bot is waiting to have answered outlive a restart.

The SQL is storage/bot_states.py's; this is the adapter. Data whose ``contact`` and ``touch`` are
ids (a card's draft) is recorded as about that person, so erasing them (storage/erasure.py)
deletes it in the same transaction. Writes go through the store's writer, reads through its readers.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey

from storage import bot_states
from storage.db import Clock, Store


def _id(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class DatabaseStorage(BaseStorage):
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store, self._clock = store, clock
        self._keys = DefaultKeyBuilder(with_bot_id=True, with_business_connection_id=True, with_destiny=True)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._store.write(
            partial(bot_states.put_state, key=self._keys.build(key), state=value, at=self._clock())
        )

    async def get_state(self, key: StorageKey) -> str | None:
        return await self._store.read(partial(bot_states.state_of, key=self._keys.build(key)))

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._store.write(
            partial(
                bot_states.put_data,
                key=self._keys.build(key),
                data=data,
                contact_id=_id(data.get("contact")),
                touch_id=_id(data.get("touch")),
                at=self._clock(),
            )
        )

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        return await self._store.read(partial(bot_states.data_of, key=self._keys.build(key)))

    async def close(self) -> None:
        """The store is the application's, closed by it."""


async def stop_asking(state: FSMContext, chat_id: int, message_id: int) -> None:
    """Stop routing the person's typing into this card, and only this one: the route is the person's,
    the drafts are the cards', and another card still open may be the one waiting for an answer."""
    route = await state.get_data()
    if (route.get("chat"), route.get("card")) == (chat_id, message_id):
        await state.clear()
