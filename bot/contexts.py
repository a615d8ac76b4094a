"""What the bot needs from capture, as a type: the context a hand-entered touch is stored with.

Capture's service (``capture.pipeline.Capture``) has this method; the composition root hands it to
the bot, so bot/ and capture/ never import each other and a touch typed in the chat is attributed
exactly as one that arrived from a provider.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from storage.touches import EventContext


class TouchContexts(Protocol):
    def context(self, source_name: str, journal_id: int | None, received_at: datetime) -> EventContext: ...
