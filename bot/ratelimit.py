"""Telegram's flood limits as a local gate, so the outbox slows itself down before Telegram does.

Telegram answers 429 to a bot that sends more than about 30 messages a second overall, more than
one a second to one chat, or more than 20 a minute to one group, and a bot that keeps hitting 429s
gets longer bans. Waiting locally costs nothing; a ban delays every nudge.

A send occupies its slot from the moment it starts until its answer arrives, and only then is it
stamped with the time of that answer. Telegram counts a message somewhere between our request
and its answer, so spacing each start a full window after the previous *answer* keeps the rate it
sees within the limit whatever the network's jitter; ``margin`` stretches each window a little more.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    overall: int = 30
    """Messages in any one-second window, all chats together."""
    per_chat_interval_s: float = 1.0
    """Least time between two messages to one chat."""
    group_per_minute: int = 20
    """Messages in any one-minute window to one group chat (negative chat id)."""
    margin: float = 1.02

    @property
    def overall_window_s(self) -> float:
        return 1.0 * self.margin

    @property
    def chat_interval_s(self) -> float:
        return self.per_chat_interval_s * self.margin

    @property
    def group_window_s(self) -> float:
        return 60.0 * self.margin


#: How long to wait when every slot is taken by sends still in flight: a settling send wakes the
#: sender sooner, so this is only the fallback for an answer that never comes.
BUSY_WAIT_S = 1.0


@dataclass
class RateLimiter:
    """Sliding windows over monotonic time; ``wait`` says how long until a send may start."""

    limits: Limits = field(default_factory=Limits)
    _done: deque[float] = field(default_factory=deque)
    _inflight: set[int] = field(default_factory=set)
    _last: dict[int, float] = field(default_factory=dict)
    _groups: dict[int, deque[float]] = field(default_factory=dict)
    _paused: dict[int, float] = field(default_factory=dict)
    _paused_all: float = 0.0

    def overall_wait(self, now: float) -> float:
        """Seconds until any message may start, whatever its chat."""
        window = self.limits.overall_window_s
        while self._done and now - self._done[0] >= window:
            self._done.popleft()
        waits = [self._paused_all - now]
        taken = len(self._done) + len(self._inflight)
        if taken >= self.limits.overall:
            waits.append(self._done[0] + window - now if self._done else BUSY_WAIT_S)
        return max(0.0, *waits)

    def wait(self, chat_id: int, now: float) -> float:
        """Seconds until a message to ``chat_id`` may start; 0 when it may start now."""
        if chat_id in self._inflight:
            return BUSY_WAIT_S
        limits = self.limits
        waits = [self.overall_wait(now), self._paused.get(chat_id, 0.0) - now]
        last = self._last.get(chat_id)
        if last is not None:
            waits.append(last + limits.chat_interval_s - now)
        if chat_id < 0 and (sent := self._groups.get(chat_id)):
            while sent and now - sent[0] >= limits.group_window_s:
                sent.popleft()
            if len(sent) >= limits.group_per_minute:
                waits.append(sent[0] + limits.group_window_s - now)
        return max(0.0, *waits)

    def begin(self, chat_id: int) -> None:
        """A send to ``chat_id`` starts: it holds a slot until :meth:`end`."""
        self._inflight.add(chat_id)

    def end(self, chat_id: int, now: float) -> None:
        """Its answer arrived at ``now`` (success or not: Telegram may have counted it either way)."""
        self._inflight.discard(chat_id)
        self._done.append(now)
        self._last[chat_id] = now
        if chat_id < 0:
            self._groups.setdefault(chat_id, deque()).append(now)
        if len(self._last) > 10_000:  # forget chats quiet for longer than any window
            horizon = now - self.limits.group_window_s
            self._last = {c: t for c, t in self._last.items() if t > horizon}
            self._groups = {c: d for c, d in self._groups.items() if d and d[-1] > horizon}

    def pause_chat(self, chat_id: int, until: float) -> None:
        """Telegram said ``retry_after`` for this chat: nothing more goes to it before then."""
        self._paused[chat_id] = max(self._paused.get(chat_id, 0.0), until)

    def pause_all(self, until: float) -> None:
        """Telegram (or the way to it) is failing: back off for everyone."""
        self._paused_all = max(self._paused_all, until)
