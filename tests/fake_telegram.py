"""A fake Telegram Bot API server for tests, spoken to over real HTTP on 127.0.0.1.

Why a server and not mocks: the bot must be exercised through aiogram's real client code (URL building,
multipart encoding, JSON decoding, error classification). Patching aiogram would test our guesses about
aiogram instead of aiogram. This module has no aiogram import on purpose: it only speaks the Bot API, so
the same fake also serves a raw-HTTP client, a webhook receiver or a benchmark.

Typical use::

    async with FakeTelegram() as tg:
        session = AiohttpSession(api=TelegramAPIServer.from_base(tg.api_url))
        bot = Bot(tg.token, session=session)
        ...
        tg.user_sends_text(111, "/start")
        call = await tg.wait_for("sendMessage", chat_id=111)

Behaviour follows the real Bot API where a test could notice the difference: updates stay queued until
confirmed by ``offset``, a second ``getUpdates`` terminates the first with 409, ``getUpdates`` conflicts
with an active webhook, HTML ``parse_mode`` is parsed (bad markup is a 400 "can't parse entities", just
as an unescaped ``<`` in a lead's name would be in production), editing a message to the same content is
a 400 "message is not modified", and ``editMessageText`` without ``reply_markup`` drops the inline
keyboard. MarkdownV2 and Markdown texts are stored as sent, unchecked.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import math
import re
import secrets
import struct
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

JSON = dict[str, Any]
MethodHandler = Callable[[JSON], Awaitable[Any]]
CallMatcher = str | Callable[["CallRecord"], bool]

DEFAULT_TOKEN = "123456:TEST-TOKEN"

#: Methods whose successful calls are counted by the rate monitor and limited by ``set_rate_limits``.
RATE_COUNTED_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument"})

#: Multipart/urlencoded fields that are strings in the Bot API. aiogram sends ``str`` values raw and
#: everything else JSON-encoded, so ``text="123"`` and ``chat_id=123`` look alike on the wire; these
#: names must not be JSON-decoded.
STRING_FIELDS = frozenset(
    {
        "action", "address", "business_connection_id", "callback_query_id", "caption", "currency",
        "custom_title", "description", "emoji", "explanation", "file_id", "first_name", "foursquare_id",
        "game_short_name", "inline_message_id", "ip_address", "language_code", "last_name",
        "message_effect_id", "name", "parse_mode", "payload", "phone_number", "provider_token",
        "question", "result_id", "secret_token", "short_description", "start_parameter", "text",
        "title", "url", "vcard", "photo", "document", "audio", "video", "voice", "animation",
        "sticker", "video_note", "thumbnail",
    }
)  # fmt: skip

#: Telegram's answer to ``answerCallbackQuery`` once a press may no longer be answered (or twice).
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"

#: Update types Telegram sends when ``allowed_updates`` was never set (or set to an empty list).
_DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

_NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
)
_HTTP_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class BotAPIError(Exception):
    """Raised inside a method handler to answer ``{"ok": false, ...}`` with this status and description."""

    def __init__(self, status: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


class WaitTimeout(AssertionError):
    """``FakeTelegram.wait_for`` gave up; an AssertionError so pytest reports it as a test failure."""


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request; it replaces ``attach://...`` references in recorded params."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class StoredFile:
    """A file the fake knows by file_id: uploaded by the bot, or given as a URL (then ``data`` is empty)."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    filename: str
    content_type: str


@dataclass
class CallRecord:
    """One Bot API request as the fake saw it and answered it."""

    method: str
    params: JSON
    status: int
    at: float
    """``time.monotonic()`` when the answer was decided."""
    result: Any = None
    description: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class _Failure:
    status: int
    retry_after: int
    description: str | None
    html: bool
    delay: float


@dataclass
class _RateLimits:
    per_chat: int | None = None
    overall: int | None = None
    window_s: float = 1.0


@dataclass
class _Chat:
    info: JSON
    next_message_id: int = 1
    messages: dict[int, JSON] = field(default_factory=dict)
    reply_keyboard: JSON | None = None
    blocked: bool = False
    restricted: bool = False
    migrated_to: int | None = None


class FakeTelegram:
    """Bot API server on 127.0.0.1 with a scriptable user side. Use as ``async with FakeTelegram() as tg``."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "leadline_test_bot",
        bot_first_name: str = "Leadline Test",
        strict_chats: bool = False,
        webhook_retry_s: float = 0.2,
    ) -> None:
        """``strict_chats``: sending to a chat no update ever came from is "chat not found", as in real
        Telegram for a user who never opened the bot. Off by default so nudges can go to configured staff
        without each test introducing them first."""
        self.token = token
        self.strict_chats = strict_chats
        self.webhook_retry_s = webhook_retry_s
        bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1
        self.bot_user: JSON = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.records: list[CallRecord] = []
        self.updates: list[JSON] = []
        """Every update ever injected, in order (delivered or not)."""
        self.files: dict[str, StoredFile] = {}
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        """setMyCommands state keyed by (scope as canonical JSON, language_code)."""
        self.callback_answers: dict[str, JSON] = {}
        self.webhook: JSON = {}
        """setWebhook params while a webhook is set; empty otherwise."""
        self.webhook_errors: list[str] = []
        self.users: dict[int, JSON] = {}
        self.business_connections: dict[str, JSON] = {}
        """The business connections Telegram knows, by id (``getBusinessConnection``): each one an update
        announced, and any a test adds (one made before the bot was listening)."""

        self._chats: dict[int, _Chat] = {}
        self._queue: list[JSON] = []
        self._update_ids = itertools.count(1)
        self._confirmed_offset = 0
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._polls_waiting = 0
        self._callback_queries: dict[str, bool] = {}
        self._callback_ids = itertools.count(4_000_000_000_001)
        self._file_ids = itertools.count(1)
        self._failures: dict[str, deque[_Failure]] = defaultdict(deque)
        self._limits = _RateLimits()
        self._send_log: list[tuple[float, int]] = []
        # "Pulse" events: set and replaced on every change, so any number of waiters wake without polling.
        self._records_changed = asyncio.Event()
        self._updates_changed = asyncio.Event()
        self._poll_started = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._methods: dict[str, tuple[str, MethodHandler]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "sendMessage": self._send_message,
                "sendPhoto": self._send_photo,
                "sendDocument": self._send_document,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "sendChatAction": self._send_chat_action,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "getChat": self._get_chat,
                "getFile": self._get_file,
                "getBusinessConnection": self._get_business_connection,
            }.items()
        }

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=60 * 1024 * 1024)  # Bot API accepts 50 MB documents
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Wake long polls and the webhook deliverer first, so the server shuts down without waiting them out.
        self._closing = True
        self._pulse_updates()
        if self._webhook_task is not None:
            await self._webhook_task
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeTelegram is not started; use 'async with FakeTelegram() as tg'")
        return self._port

    @property
    def api_url(self) -> str:
        """Base URL for ``TelegramAPIServer.from_base``."""
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ inspecting what the bot did

    @property
    def calls(self) -> list[tuple[str, JSON]]:
        """Every authorised-or-not request as (method, params), failed ones included; see ``records``."""
        return [(r.method, r.params) for r in self.records]

    def sent(self, method: str = "sendMessage", chat_id: int | str | None = None) -> list[JSON]:
        """Params of the *successful* calls of ``method`` (optionally to one chat), oldest first."""
        return [r.params for r in self._matching(method, chat_id)]

    def results(self, method: str = "sendMessage", chat_id: int | str | None = None) -> list[Any]:
        """What the fake answered to the successful calls of ``method``: e.g. the sent Message dicts."""
        return [r.result for r in self._matching(method, chat_id)]

    def attempts(self, method: str) -> list[CallRecord]:
        """All calls of ``method`` including injected failures: what an outbox retry test counts."""
        return [r for r in self.records if r.method == method]

    def clear_calls(self) -> None:
        self.records.clear()
        self._send_log.clear()

    def chat_messages(self, chat_id: int, *, include_user: bool = False) -> list[str]:
        """Current texts (captions for media) of the bot's messages in a chat, oldest first, after edits
        and deletions: what the user sees."""
        msgs = self.messages(chat_id, include_user=include_user)
        return [str(m.get("text", m.get("caption", ""))) for m in msgs]

    def messages(self, chat_id: int, *, include_user: bool = False) -> list[JSON]:
        """Stored Message dicts of a chat (bot's only unless ``include_user``), oldest first."""
        chat = self._chats.get(int(chat_id))
        if chat is None:
            return []
        return [
            copy.deepcopy(m)
            for _, m in sorted(chat.messages.items())
            if include_user or m["from"]["id"] == self.bot_user["id"]
        ]

    def message(self, chat_id: int, message_id: int) -> JSON | None:
        chat = self._chats.get(int(chat_id))
        msg = chat.messages.get(int(message_id)) if chat else None
        return copy.deepcopy(msg) if msg is not None else None

    def last_message(self, chat_id: int) -> JSON | None:
        """The bot's newest surviving message in the chat."""
        msgs = self.messages(chat_id)
        return msgs[-1] if msgs else None

    def buttons(self, chat_id: int, message_id: int) -> list[JSON]:
        """The inline buttons of a stored message, flattened row by row."""
        msg = self.message(chat_id, message_id) or {}
        return [b for row in msg.get("reply_markup", {}).get("inline_keyboard", []) for b in row]

    def reply_keyboard(self, chat_id: int) -> JSON | None:
        """The custom (reply) keyboard the user currently sees, e.g. with a request_contact button."""
        chat = self._chats.get(int(chat_id))
        return copy.deepcopy(chat.reply_keyboard) if chat else None

    def my_commands(self, scope: JSON | None = None, language_code: str = "") -> list[JSON]:
        return copy.deepcopy(self.commands.get((_scope_key(scope), language_code), []))

    @property
    def long_polling(self) -> bool:
        """A getUpdates request is waiting in the server right now."""
        return self._polls_waiting > 0

    async def wait_long_poll(self, *, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - as wait_for
        """Wait until a getUpdates request is waiting in the server (the bot is idle and listening)."""
        try:
            async with asyncio.timeout(timeout):
                while not self._polls_waiting:
                    await self._poll_started.wait()
        except TimeoutError:
            raise WaitTimeout("no getUpdates long poll is waiting") from None

    @property
    def pending_updates(self) -> int:
        """Updates injected and not yet confirmed by the bot."""
        return len(self._queue)

    async def wait_for(
        self,
        match: CallMatcher,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - the documented test-facing signature
        count: int = 1,
        chat_id: int | str | None = None,
    ) -> CallRecord:
        """Wait until ``count`` recorded calls match, and return the ``count``-th one.

        ``match`` is a method name (successful calls only) or a predicate over ``CallRecord`` (sees
        failures too; check ``.ok``). Calls recorded before the wait count, so pass ``count`` to wait for
        a further one."""
        deadline = time.monotonic() + timeout
        while True:
            changed = self._records_changed
            found = [r for r in self.records if self._record_matches(r, match, chat_id)]
            if len(found) >= count:
                return found[count - 1]
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await changed.wait()
            except TimeoutError:
                break
        what = match if isinstance(match, str) else getattr(match, "__name__", "predicate")
        recent = ", ".join(f"{r.method}:{r.status}" for r in self.records[-15:])
        raise WaitTimeout(
            f"no call matching {what!r} (x{count}, chat_id={chat_id}); recent calls: [{recent}]"
        )

    async def wait_until_confirmed(
        self,
        update_id: int | None = None,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - same convention as wait_for
    ) -> None:
        """Wait until the bot confirmed ``update_id`` (default: the last injected) with a later getUpdates
        offset. With ``handle_as_tasks=False`` polling that means its handler has finished."""
        target = (
            update_id if update_id is not None else (self.updates[-1]["update_id"] if self.updates else 0)
        )
        try:
            async with asyncio.timeout(timeout):
                while self._confirmed_offset <= target:
                    await self._records_changed.wait()
        except TimeoutError:
            raise WaitTimeout(f"update {target} not confirmed; offset is {self._confirmed_offset}") from None

    # ------------------------------------------------------------------ rate monitor and failure injection

    def fail_next(
        self,
        method: str,
        count: int = 1,
        *,
        status: int = 429,
        retry_after: int = 1,
        description: str | None = None,
        html: bool | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``count`` calls of ``method`` (``"*"``: any method) with an error instead.

        429 uses Telegram's shape with ``parameters.retry_after``; 502/503/504 default to a bare nginx
        HTML page (``html=True``), as a proxy in front of the Bot API answers, which aiogram reports as
        ClientDecodeError, not TelegramServerError; ``html=False`` gives the JSON error instead. Other
        statuses answer Bot API error JSON. ``status=0`` closes the connection without answering (aiogram:
        TelegramNetworkError). ``delay`` seconds pass before the answer (provoke client timeouts)."""
        use_html = html if html is not None else status in (502, 503, 504)
        for _ in range(count):
            self._failures[method.lower()].append(_Failure(status, retry_after, description, use_html, delay))

    def set_rate_limits(
        self, *, per_chat: int | None = None, overall: int | None = None, window_s: float = 1.0
    ) -> None:
        """Simulate flood control: a send beyond ``per_chat`` messages to one chat, or ``overall`` messages,
        within a sliding ``window_s`` gets 429 with the retry_after (whole seconds, at least 1) after which
        it would pass. Real Telegram allows about 1/s per chat (short bursts tolerated), 20/min in groups
        and 30/s overall. ``None`` disables a limit."""
        self._limits = _RateLimits(per_chat, overall, window_s)

    def send_times(self, chat_id: int | None = None) -> list[float]:
        """``time.monotonic()`` of each successful counted send (``RATE_COUNTED_METHODS``)."""
        return [t for t, c in self._send_log if chat_id is None or c == int(chat_id)]

    def max_rate_per_chat(self, window_s: float = 1.0) -> float:
        """Highest number of sends to any single chat within any ``window_s`` window, per second."""
        by_chat: dict[int, list[float]] = defaultdict(list)
        for t, c in self._send_log:
            by_chat[c].append(t)
        best = max((_max_in_window(ts, window_s) for ts in by_chat.values()), default=0)
        return best / window_s

    def max_rate_overall(self, window_s: float = 1.0) -> float:
        """Highest number of sends, all chats together, within any ``window_s`` window, per second."""
        return _max_in_window([t for t, _ in self._send_log], window_s) / window_s

    def block_bot(self, user_id: int, blocked: bool = True) -> None:
        """The user blocks (or unblocks) the bot: sends to them get 403, as for a member who left."""
        self._chat_state(int(user_id)).blocked = blocked

    def restrict_bot(self, chat_id: int, restricted: bool = True) -> None:
        """A group's admin takes away (or gives back) the bot's right to post: the bot stays in the
        group, and its sends there get 400 "have no rights to send a message"."""
        self._chat_state(int(chat_id)).restricted = restricted

    def upgrade_group(self, chat_id: int, new_chat_id: int) -> None:
        """Telegram makes the group a supergroup with a new id: from now on every call naming the old
        id gets 400 "group chat was upgraded to a supergroup chat" with ``migrate_to_chat_id``, and the
        new chat is a supergroup of the same title. Its history stays behind, as in a real upgrade."""
        old = self._chat_state(int(chat_id))
        title = old.info.get("title", f"Chat {chat_id}")
        self._chats[int(new_chat_id)] = _Chat(
            info={"id": int(new_chat_id), "type": "supergroup", "title": title}
        )
        old.migrated_to = int(new_chat_id)

    def add_chat(self, chat_id: int, *, kind: str = "supergroup", title: str = "Team") -> None:
        """Make a group chat known with this Chat.type and title (e.g. the team chat)."""
        self._chats[int(chat_id)] = _Chat(info={"id": int(chat_id), "type": kind, "title": title})

    def register_method(self, name: str, handler: MethodHandler) -> None:
        """Serve another Bot API method: ``handler(params)`` returns the ``result`` or raises BotAPIError."""
        self._methods[name.lower()] = (name, handler)

    # ------------------------------------------------------------------ the user's side

    def inject_update(self, update: JSON) -> int:
        """Queue a raw update (``update_id`` is assigned); the escape hatch for update types not covered."""
        update = {"update_id": next(self._update_ids), **copy.deepcopy(update)}
        if isinstance(connection := update.get("business_connection"), dict):
            self.business_connections[str(connection["id"])] = copy.deepcopy(connection)
        self.updates.append(update)
        self._queue.append(update)
        self._pulse_updates()
        return int(update["update_id"])

    def user_sends(self, user_id: int, fields: JSON, *, chat_id: int | None = None, **user: Any) -> int:
        """The user sends a message with arbitrary content ``fields`` (e.g. ``{"voice": {...}}``)."""
        msg = self._user_message(user_id, chat_id, user)
        msg.update(copy.deepcopy(fields))
        return self.inject_update({"message": msg})

    def user_sends_text(
        self,
        user_id: int,
        text: str,
        chat_id: int | None = None,
        language_code: str | None = "ru",
        first_name: str | None = None,
        username: str | None = None,
    ) -> int:
        """The user types ``text``; a leading ``/command`` gets its bot_command entity as in Telegram."""
        user = {"language_code": language_code, "first_name": first_name, "username": username}
        msg = self._user_message(user_id, chat_id, user)
        msg["text"] = text
        if command := re.match(r"/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?", text):
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": _utf16_len(command.group())}]
        return self.inject_update({"message": msg})

    def user_presses_button(
        self,
        user_id: int,
        message_id: int,
        callback_data: str,
        chat_id: int | None = None,
        *,
        strict: bool = True,
    ) -> int:
        """The user taps an inline button of the stored bot message. ``strict``: the button must exist, so a
        test cannot press what the user could not see."""
        chat = self._chats.get(int(chat_id if chat_id is not None else user_id))
        msg = chat.messages.get(int(message_id)) if chat else None
        if msg is None or msg["from"]["id"] != self.bot_user["id"]:
            where = chat_id if chat_id is not None else user_id
            raise ValueError(f"no bot message {message_id} in chat {where}")
        if strict and callback_data not in {
            b.get("callback_data")
            for row in msg.get("reply_markup", {}).get("inline_keyboard", [])
            for b in row
        }:
            raise ValueError(f"message {message_id} has no inline button with data {callback_data!r}")
        query_id = str(next(self._callback_ids))
        self._callback_queries[query_id] = False
        return self.inject_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": self._user(user_id, {}),
                    "message": copy.deepcopy(msg),
                    "chat_instance": str(-abs(hash((self.bot_user["id"], msg["chat"]["id"])))),
                    "data": callback_data,
                }
            }
        )

    def user_shares_contact(
        self,
        user_id: int,
        phone_number: str,
        first_name: str | None = None,
        *,
        last_name: str | None = None,
        contact_user_id: int | None = None,
        chat_id: int | None = None,
    ) -> int:
        """A contact message. ``contact_user_id`` defaults to the sender: their own number, as sent by a
        ``request_contact`` keyboard button; pass another id (or 0 for none) for someone else's card."""
        msg = self._user_message(user_id, chat_id, {})
        contact: JSON = {"phone_number": phone_number, "first_name": first_name or msg["from"]["first_name"]}
        if last_name:
            contact["last_name"] = last_name
        owner = user_id if contact_user_id is None else contact_user_id
        if owner:
            contact["user_id"] = owner
        msg["contact"] = contact
        return self.inject_update({"message": msg})

    def user_forwards(
        self,
        user_id: int,
        text: str,
        from_name: str,
        *,
        from_user_id: int | None = None,
        chat_id: int | None = None,
    ) -> int:
        """The user forwards someone's message. Without ``from_user_id`` the origin is a hidden user (the
        common case: forwarding privacy on), carrying only ``from_name``."""
        msg = self._user_message(user_id, chat_id, {})
        msg["text"] = text
        origin: JSON = {"type": "hidden_user", "sender_user_name": from_name, "date": msg["date"] - 60}
        if from_user_id is not None:
            first, _, last = from_name.partition(" ")
            sender: JSON = {"id": from_user_id, "is_bot": False, "first_name": first}
            if last:
                sender["last_name"] = last
            origin = {"type": "user", "sender_user": sender, "date": msg["date"] - 60}
        msg["forward_origin"] = origin
        return self.inject_update({"message": msg})

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw_method = request.match_info["method"]
        name, handler = self._methods.get(raw_method.lower(), (raw_method, None))
        try:
            params = await _read_params(request)
        except ValueError as exc:
            return self._finish(name, {}, BotAPIError(400, f"Bad Request: {exc}"))
        if request.match_info["token"] != self.token:
            return self._finish(name, params, BotAPIError(401, "Unauthorized"))
        if handler is None:
            return self._finish(name, params, BotAPIError(404, "Not Found: method not found"))

        failure = self._take_failure(name)
        if failure is not None:
            return await self._fail(request, name, params, failure)
        try:
            if name in RATE_COUNTED_METHODS:
                self._check_rate(params)
            result = await handler(params)
        except BotAPIError as err:
            return self._finish(name, params, err)
        return self._finish(name, params, result)

    def _finish(self, method: str, params: JSON, outcome: Any) -> web.Response:
        if isinstance(outcome, BotAPIError):
            body: JSON = {"ok": False, "error_code": outcome.status, "description": outcome.description}
            if outcome.parameters:
                body["parameters"] = outcome.parameters
            self._record(
                CallRecord(method, params, outcome.status, time.monotonic(), None, outcome.description)
            )
            return web.json_response(body, status=outcome.status)
        self._record(CallRecord(method, params, 200, time.monotonic(), outcome))
        return web.json_response({"ok": True, "result": outcome})

    async def _fail(self, request: web.Request, method: str, params: JSON, f: _Failure) -> web.StreamResponse:
        if f.delay:
            await asyncio.sleep(f.delay)
        if f.status == 0:
            self._record(CallRecord(method, params, 0, time.monotonic(), None, "connection dropped"))
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        if f.html:
            self._record(CallRecord(method, params, f.status, time.monotonic(), None, "HTML error page"))
            reason = f"{f.status} {_HTTP_DESCRIPTIONS.get(f.status, 'Error')}"
            body = _NGINX_502.replace("502 Bad Gateway", reason)
            return web.Response(status=f.status, text=body, content_type="text/html")
        if f.status == 429:
            desc = f.description or f"Too Many Requests: retry after {f.retry_after}"
            return self._finish(method, params, BotAPIError(429, desc, {"retry_after": f.retry_after}))
        desc = f.description or _HTTP_DESCRIPTIONS.get(f.status, "Error")
        return self._finish(method, params, BotAPIError(f.status, desc))

    def _take_failure(self, method: str) -> _Failure | None:
        for key in (method.lower(), "*"):
            if self._failures.get(key):
                return self._failures[key].popleft()
        return None

    def _record(self, record: CallRecord) -> None:
        self.records.append(record)
        if record.ok and record.method in RATE_COUNTED_METHODS and isinstance(record.result, dict):
            self._send_log.append((record.at, int(record.result["chat"]["id"])))
        self._pulse_records()

    def _pulse_records(self) -> None:
        self._records_changed.set()
        self._records_changed = asyncio.Event()

    def _pulse_updates(self) -> None:
        self._updates_changed.set()
        self._updates_changed = asyncio.Event()

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            unauthorized = {"ok": False, "error_code": 401, "description": "Unauthorized"}
            return web.json_response(unauthorized, status=401)
        path = request.match_info["path"]
        for stored in self.files.values():
            if stored.file_path == path:
                return web.Response(body=stored.data, content_type=stored.content_type)
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    def _check_rate(self, params: JSON) -> None:
        limits = self._limits
        now = time.monotonic()
        recent = [(t, c) for t, c in self._send_log if now - t < limits.window_s]
        chat_id = self._chat_id(params)
        checks = (
            (limits.per_chat, [t for t, c in recent if c == chat_id]),
            (limits.overall, [t for t, _ in recent]),
        )
        for limit, times in checks:
            if limit is not None and len(times) >= limit:
                wait = times[len(times) - limit] + limits.window_s - now
                retry_after = max(1, math.ceil(wait))
                raise BotAPIError(
                    429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
                )

    def _matching(self, method: str, chat_id: int | str | None) -> list[CallRecord]:
        return [r for r in self.records if self._record_matches(r, method, chat_id)]

    def _record_matches(self, record: CallRecord, match: CallMatcher, chat_id: int | str | None) -> bool:
        if chat_id is not None and str(record.params.get("chat_id")) != str(chat_id):
            return False
        if isinstance(match, str):
            return record.ok and record.method == match
        return match(record)

    # ------------------------------------------------------------------ chats, users, messages

    def _user(self, user_id: int, given: JSON) -> JSON:
        user = self.users.setdefault(
            int(user_id), {"id": int(user_id), "is_bot": False, "first_name": f"User {user_id}"}
        )
        for key in ("first_name", "last_name", "username", "language_code"):
            if given.get(key) is not None:
                user[key] = given[key]
        return copy.deepcopy(user)

    def _chat_state(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_id > 0:
                user = self.users.get(chat_id, {"first_name": f"User {chat_id}"})
                info: JSON = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
                if "username" in user:
                    info["username"] = user["username"]
            else:
                kind = "supergroup" if str(chat_id).startswith("-100") else "group"
                info = {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}
            chat = self._chats[chat_id] = _Chat(info=info)
        return chat

    def _user_message(self, user_id: int, chat_id: int | None, user_fields: JSON) -> JSON:
        sender = self._user(user_id, user_fields)
        target = int(chat_id) if chat_id is not None else int(user_id)
        chat = self._chat_state(target)
        if chat.info["type"] == "private":  # keep the private chat's name in step with the user's
            chat.info.update({k: sender[k] for k in ("first_name", "last_name", "username") if k in sender})
        msg: JSON = {
            "message_id": chat.next_message_id,
            "from": sender,
            "chat": copy.deepcopy(chat.info),
            "date": int(time.time()),
        }
        chat.next_message_id += 1
        chat.messages[msg["message_id"]] = msg
        return copy.deepcopy(msg)

    def _chat_id(self, params: JSON) -> int:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise BotAPIError(400, "Bad Request: chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            for cid, chat in self._chats.items():
                if chat.info.get("username", "").lower() == raw[1:].lower():
                    return cid
            raise BotAPIError(400, "Bad Request: chat not found")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError):
            raise BotAPIError(400, "Bad Request: chat not found") from None
        moved = self._chats.get(chat_id)
        if moved is not None and moved.migrated_to is not None:
            raise BotAPIError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": moved.migrated_to},
            )
        return chat_id

    def _target_chat(self, params: JSON) -> _Chat:
        chat_id = self._chat_id(params)
        if self.strict_chats and chat_id not in self._chats:
            raise BotAPIError(400, "Bad Request: chat not found")
        chat = self._chat_state(chat_id)
        if chat.blocked:
            raise BotAPIError(403, "Forbidden: bot was blocked by the user")
        if chat.restricted:
            raise BotAPIError(400, "Bad Request: have no rights to send a message")
        return chat

    def _store_bot_message(self, chat: _Chat, content: JSON, params: JSON) -> JSON:
        msg: JSON = {
            "message_id": chat.next_message_id,
            "from": copy.deepcopy(self.bot_user),
            "chat": copy.deepcopy(chat.info),
            "date": int(time.time()),
            **content,
        }
        if thread := params.get("message_thread_id"):
            msg["message_thread_id"] = int(thread)
        reply_parameters = params.get("reply_parameters") or {}
        reply_to = reply_parameters.get("message_id") or params.get("reply_to_message_id")
        if reply_to and int(reply_to) in chat.messages:
            msg["reply_to_message"] = copy.deepcopy(chat.messages[int(reply_to)])
            msg["reply_to_message"].pop("reply_to_message", None)
        markup = params.get("reply_markup")
        if isinstance(markup, dict):
            if "inline_keyboard" in markup:
                msg["reply_markup"] = markup
            elif "keyboard" in markup:
                chat.reply_keyboard = markup
            elif markup.get("remove_keyboard"):
                chat.reply_keyboard = None
        chat.next_message_id += 1
        chat.messages[msg["message_id"]] = msg
        return copy.deepcopy(msg)

    def _bot_message(self, params: JSON, verb: str) -> JSON | None:
        """The stored bot message an edit refers to, or None for inline messages (not stored)."""
        if params.get("inline_message_id"):
            return None
        chat = self._chats.get(self._chat_id(params))
        msg = chat.messages.get(int(params.get("message_id") or 0)) if chat else None
        if msg is None:
            raise BotAPIError(400, f"Bad Request: message to {verb} not found")
        if msg["from"]["id"] != self.bot_user["id"]:
            raise BotAPIError(400, "Bad Request: message can't be edited")
        return msg

    def _store_file(self, value: Any, kind: str, default_name: str) -> StoredFile:
        if isinstance(value, UploadedFile):
            n = next(self._file_ids)
            ext = value.filename.rsplit(".", 1)[-1] if "." in value.filename else "bin"
            stored = StoredFile(
                file_id=f"{kind[:2].upper()}AC{secrets.token_urlsafe(24)}",
                file_unique_id=f"AQAD{secrets.token_urlsafe(8)}",
                file_path=f"{kind}s/file_{n}.{ext}",
                data=value.data,
                filename=value.filename or default_name,
                content_type=value.content_type,
            )
        elif isinstance(value, str) and value in self.files:
            return self.files[value]
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            stored = StoredFile(
                file_id=f"{kind[:2].upper()}AC{secrets.token_urlsafe(24)}",
                file_unique_id=f"AQAD{secrets.token_urlsafe(8)}",
                file_path=f"{kind}s/file_{next(self._file_ids)}",
                data=b"",
                filename=value.rsplit("/", 1)[-1] or default_name,
                content_type="application/octet-stream",
            )
        elif value is None or value == "":
            raise BotAPIError(400, f"Bad Request: there is no {kind} in the request")
        else:
            raise BotAPIError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        self.files[stored.file_id] = stored
        return stored

    # ------------------------------------------------------------------ Bot API methods

    async def _get_me(self, params: JSON) -> JSON:
        return copy.deepcopy(self.bot_user)

    async def _get_updates(self, params: JSON) -> list[JSON]:
        if self.webhook.get("url"):
            raise BotAPIError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = min(100, max(1, int(params.get("limit") or 100)))
        timeout = max(0.0, float(params.get("timeout") or 0))
        if params.get("allowed_updates") is not None:
            self._allowed_updates = list(params["allowed_updates"]) or None
        if offset < 0:
            self._queue = self._queue[offset:]
        elif offset:
            self._queue = [u for u in self._queue if u["update_id"] >= offset]
            self._confirmed_offset = max(self._confirmed_offset, offset)
            self._pulse_records()  # wakes wait_until_confirmed
        # Like Telegram, a newer getUpdates terminates the one still waiting.
        self._poll_generation += 1
        generation = self._poll_generation
        self._pulse_updates()
        deadline = time.monotonic() + timeout
        while True:
            changed = self._updates_changed
            if generation != self._poll_generation:
                raise BotAPIError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            batch = self._deliverable()[:limit]
            remaining = deadline - time.monotonic()
            if batch or self._closing or remaining <= 0:
                return copy.deepcopy(batch)
            self._polls_waiting += 1
            self._poll_started.set()
            self._poll_started = asyncio.Event()
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await changed.wait()
            finally:
                self._polls_waiting -= 1

    def _deliverable(self) -> list[JSON]:
        """Queued updates of allowed types; like Telegram, updates of other types are dropped."""

        def allowed(update: JSON) -> bool:
            kind = next(k for k in update if k != "update_id")
            if self._allowed_updates is None:
                return kind not in _DEFAULT_EXCLUDED_UPDATES
            return kind in self._allowed_updates

        self._queue = [u for u in self._queue if allowed(u)]
        return self._queue

    async def _set_webhook(self, params: JSON) -> bool:
        url = params.get("url") or ""
        if not url:
            return await self._delete_webhook(params)
        if not url.startswith(("http://", "https://")):
            raise BotAPIError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        if params.get("drop_pending_updates"):
            self._queue.clear()
        if params.get("allowed_updates") is not None:
            self._allowed_updates = list(params["allowed_updates"]) or None
        self.webhook = dict(params)
        self._poll_generation += 1  # a waiting getUpdates loses to the webhook
        self._pulse_updates()
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(self._deliver_webhooks())
        return True

    async def _delete_webhook(self, params: JSON) -> bool:
        if params.get("drop_pending_updates"):
            self._queue.clear()
        self.webhook = {}
        self._pulse_updates()
        return True

    async def _get_webhook_info(self, params: JSON) -> JSON:
        info: JSON = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }
        if self.webhook_errors:
            info["last_error_date"] = int(time.time())
            info["last_error_message"] = self.webhook_errors[-1]
        if self.webhook.get("allowed_updates"):
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    async def _deliver_webhooks(self) -> None:
        """POST queued updates one by one to the webhook URL; an update leaves the queue on a 2xx answer.
        A method in the answer body (aiogram's reply-in-webhook) is executed like a request."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        while self.webhook.get("url") and not self._closing:
            changed = self._updates_changed
            batch = self._deliverable()
            if not batch:
                await changed.wait()
                continue
            update = batch[0]
            headers = {}
            if secret := self.webhook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = secret
            try:
                async with self._http.post(self.webhook["url"], json=update, headers=headers) as resp:
                    if 200 <= resp.status < 300:
                        if update in self._queue:
                            self._queue.remove(update)
                        await self._run_webhook_reply(resp)
                        continue
                    error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
                    self.webhook_errors.append(error)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.webhook_errors.append(f"Connection failed: {type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.webhook_retry_s):
                    while not self._closing:
                        await self._updates_changed.wait()

    async def _run_webhook_reply(self, resp: aiohttp.ClientResponse) -> None:
        params: JSON = {}
        if resp.content_type == "application/json":
            body = await resp.json()
            params = body if isinstance(body, dict) else {}
        elif resp.content_type.startswith("multipart/"):
            params = await _read_multipart(aiohttp.MultipartReader(resp.headers, resp.content))
        method = str(params.pop("method", ""))
        if not method:
            return
        name, handler = self._methods.get(method.lower(), (method, None))
        if handler is None:
            self._record(CallRecord(name, params, 404, time.monotonic(), None, "Not Found: method not found"))
            return
        try:
            result = await handler(params)
        except BotAPIError as err:
            self._record(CallRecord(name, params, err.status, time.monotonic(), None, err.description))
        else:
            self._record(CallRecord(name, params, 200, time.monotonic(), result))

    async def _send_message(self, params: JSON) -> JSON:
        chat = self._target_chat(params)
        if not params.get("text"):
            raise BotAPIError(400, "Bad Request: message text is empty")
        text, entities = _format(params["text"], params.get("parse_mode"), params.get("entities"))
        if not text.strip():
            raise BotAPIError(400, "Bad Request: message text is empty")
        if _utf16_len(text) > 4096:
            raise BotAPIError(400, "Bad Request: message is too long")
        content: JSON = {"text": text}
        if entities:
            content["entities"] = entities
        return self._store_bot_message(chat, content, params)

    def _caption(self, params: JSON) -> JSON:
        if not params.get("caption"):
            return {}
        caption, entities = _format(
            params["caption"], params.get("parse_mode"), params.get("caption_entities")
        )
        if _utf16_len(caption) > 1024:
            raise BotAPIError(400, "Bad Request: message caption is too long")
        return {"caption": caption, **({"caption_entities": entities} if entities else {})}

    async def _send_photo(self, params: JSON) -> JSON:
        chat = self._target_chat(params)
        stored = self._store_file(params.get("photo"), "photo", "photo.jpg")
        width, height = _image_size(stored.data)
        size = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "width": width,
            "height": height,
        }
        return self._store_bot_message(chat, {"photo": [size], **self._caption(params)}, params)

    async def _send_document(self, params: JSON) -> JSON:
        chat = self._target_chat(params)
        stored = self._store_file(params.get("document"), "document", "document")
        document = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": stored.filename,
            "mime_type": stored.content_type,
            "file_size": len(stored.data),
        }
        return self._store_bot_message(chat, {"document": document, **self._caption(params)}, params)

    async def _edit_message_text(self, params: JSON) -> JSON | bool:
        msg = self._bot_message(params, "edit")
        if not params.get("text"):
            raise BotAPIError(400, "Bad Request: message text is empty")
        text, entities = _format(params["text"], params.get("parse_mode"), params.get("entities"))
        if msg is None:
            return True
        if "text" not in msg:
            raise BotAPIError(400, "Bad Request: there is no text in the message to edit")
        markup = _inline_markup(params)
        if (msg["text"], msg.get("entities"), msg.get("reply_markup")) == (text, entities or None, markup):
            raise _not_modified()
        msg["text"] = text
        _set_or_pop(msg, "entities", entities or None)
        _set_or_pop(msg, "reply_markup", markup)
        msg["edit_date"] = int(time.time())
        return copy.deepcopy(msg)

    async def _edit_message_reply_markup(self, params: JSON) -> JSON | bool:
        msg = self._bot_message(params, "edit")
        if msg is None:
            return True
        markup = _inline_markup(params)
        if msg.get("reply_markup") == markup:
            raise _not_modified()
        _set_or_pop(msg, "reply_markup", markup)
        msg["edit_date"] = int(time.time())
        return copy.deepcopy(msg)

    async def _delete_message(self, params: JSON) -> bool:
        chat = self._chats.get(self._chat_id(params))
        message_id = int(params.get("message_id") or 0)
        if chat is None or chat.messages.pop(message_id, None) is None:
            raise BotAPIError(400, "Bad Request: message to delete not found")
        return True

    async def _answer_callback_query(self, params: JSON) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if self._callback_queries.get(query_id, True):  # unknown or already answered
            raise BotAPIError(400, QUERY_TOO_OLD)
        self._callback_queries[query_id] = True
        self.callback_answers[query_id] = dict(params)
        return True

    async def _send_chat_action(self, params: JSON) -> bool:
        self._target_chat(params)
        return True

    async def _set_my_commands(self, params: JSON) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise BotAPIError(400, "Bad Request: can't parse commands JSON object")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise BotAPIError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise BotAPIError(400, "Bad Request: command description is empty")
        key = (_scope_key(params.get("scope")), params.get("language_code") or "")
        self.commands[key] = copy.deepcopy(commands)
        return True

    async def _get_my_commands(self, params: JSON) -> list[JSON]:
        key = (_scope_key(params.get("scope")), params.get("language_code") or "")
        return copy.deepcopy(self.commands.get(key, []))

    async def _delete_my_commands(self, params: JSON) -> bool:
        self.commands.pop((_scope_key(params.get("scope")), params.get("language_code") or ""), None)
        return True

    async def _get_business_connection(self, params: JSON) -> JSON:
        connection = self.business_connections.get(str(params.get("business_connection_id")))
        if connection is None:
            raise BotAPIError(400, "Bad Request: BUSINESS_CONNECTION_INVALID")
        return copy.deepcopy(connection)

    async def _get_chat(self, params: JSON) -> JSON:
        chat_id = self._chat_id(params)
        if chat_id not in self._chats and (self.strict_chats or chat_id not in self.users):
            raise BotAPIError(400, "Bad Request: chat not found")
        info = self._chat_state(chat_id).info
        return {
            **copy.deepcopy(info),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    async def _get_file(self, params: JSON) -> JSON:
        stored = self.files.get(str(params.get("file_id", "")))
        if stored is None:
            raise BotAPIError(400, "Bad Request: invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }


# ---------------------------------------------------------------------- request parsing


async def _read_params(request: web.Request) -> JSON:
    """Decode a Bot API request the way Telegram accepts them: query string, JSON, urlencoded or multipart."""
    params: JSON = {k: _decode_field(k, v) for k, v in request.query.items()}
    if not request.body_exists:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            raise ValueError("can't parse JSON request body") from exc
        if isinstance(body, dict):
            params.update(body)
    elif request.content_type == "multipart/form-data":
        params.update(await _read_multipart(await request.multipart()))
    elif request.content_type == "application/x-www-form-urlencoded":
        text = await request.text()
        params.update({k: _decode_field(k, v) for k, v in parse_qsl(text, keep_blank_values=True)})
    return params


async def _read_multipart(reader: aiohttp.MultipartReader) -> JSON:
    """Fields are strings (complex ones JSON-encoded, see STRING_FIELDS); file parts replace the
    ``attach://<name>`` references to them, or, unreferenced, appear under their own field name."""
    fields: JSON = {}
    uploads: dict[str, UploadedFile] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
            continue
        if part.filename is not None:
            data = bytes(await part.read(decode=True))
            ctype = part.headers.get(aiohttp.hdrs.CONTENT_TYPE, "application/octet-stream")
            uploads[part.name] = UploadedFile(part.filename, ctype, data)
        else:
            fields[part.name] = _decode_field(part.name, await part.text())
    used: set[str] = set()

    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("attach://") and value[9:] in uploads:
            used.add(value[9:])
            return uploads[value[9:]]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    params: JSON = {k: resolve(v) for k, v in fields.items()}
    params.update({name: upload for name, upload in uploads.items() if name not in used})
    return params


def _decode_field(name: str, value: str) -> Any:
    if name in STRING_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


# ---------------------------------------------------------------------- formatting


_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*?)?)\s*>")
_ATTR_RE = re.compile(r"""([a-zA-Z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_CHAR_REF_RE = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|lt|gt|amp|quot);")
_HTML_ENTITY_TYPES = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
    "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}  # fmt: skip


def _format(text: str, parse_mode: str | None, entities: Any) -> tuple[str, list[JSON]]:
    if isinstance(entities, list) and entities:
        return text, entities
    if parse_mode and parse_mode.lower() == "html":
        return _parse_html(text)
    return text, []


def _parse_html(source: str) -> tuple[str, list[JSON]]:
    """Telegram's HTML subset to (plain text, entities with UTF-16 offsets); bad markup is a 400."""

    def error(detail: str) -> BotAPIError:
        return BotAPIError(400, f"Bad Request: can't parse entities: {detail}")

    out: list[str] = []
    length = 0  # UTF-16 code units emitted so far
    stack: list[tuple[str, JSON | None, int]] = []
    entities: list[JSON] = []
    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "<":
            offset = len(source[:i].encode())
            tag = _TAG_RE.match(source, i)
            if tag is None:
                raise error(f"Unexpected end of name token at byte offset {offset}")
            closing, name, attr_text = tag.group(1) == "/", tag.group(2).lower(), tag.group(3)
            attrs = {m[0].lower(): m[1] or m[2] or m[3] for m in _ATTR_RE.findall(attr_text)}
            if name not in _HTML_ENTITY_TYPES:
                raise error(f'Unsupported start tag "{name}" at byte offset {offset}')
            if closing:
                if not stack or stack[-1][0] != name:
                    expected = f', expected "</{stack[-1][0]}>"' if stack else ""
                    raise error(f'Unmatched end tag at byte offset {offset}{expected}, found "</{name}>"')
                _, opened, start = stack.pop()
                if opened is not None and length > start:
                    entities.append({**opened, "offset": start, "length": length - start})
            else:
                entity: JSON | None = {"type": _HTML_ENTITY_TYPES[name]}
                if name == "span" and attrs.get("class") != "tg-spoiler":
                    raise error(f'Unsupported start tag "span" at byte offset {offset}')
                if name == "a":
                    entity = {"type": "text_link", "url": attrs.get("href", "")}
                elif name == "tg-emoji":
                    entity = {"type": "custom_emoji", "custom_emoji_id": attrs.get("emoji-id", "")}
                elif name == "blockquote" and "expandable" in attr_text:
                    entity = {"type": "expandable_blockquote"}
                elif name == "code" and stack and stack[-1][0] == "pre":
                    # <pre><code class="language-x"> is one pre entity with a language
                    language = attrs.get("class", "").removeprefix("language-")
                    if language and stack[-1][1] is not None:
                        stack[-1][1]["language"] = language
                    entity = None
                stack.append((name, entity, length))
            i = tag.end()
            continue
        if ch == "&" and (ref := _CHAR_REF_RE.match(source, i)):
            body = ref.group(1)
            if body.startswith("#x"):
                ch = chr(int(body[2:], 16))
            elif body.startswith("#"):
                ch = chr(int(body[1:]))
            else:
                ch = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}[body]
            i = ref.end()
        else:
            i += 1
        out.append(ch)
        length += _utf16_len(ch)
    if stack:
        raise error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


# ---------------------------------------------------------------------- small helpers


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _scope_key(scope: Any) -> str:
    return json.dumps(scope or {"type": "default"}, sort_keys=True)


def _inline_markup(params: JSON) -> JSON | None:
    markup = params.get("reply_markup")
    return markup if isinstance(markup, dict) and "inline_keyboard" in markup else None


def _set_or_pop(msg: JSON, key: str, value: Any) -> None:
    if value is None:
        msg.pop(key, None)
    else:
        msg[key] = value


def _not_modified() -> BotAPIError:
    return BotAPIError(
        400,
        "Bad Request: message is not modified: specified new message content and reply markup are exactly "
        "the same as a current content and reply markup of the message",
    )


def _max_in_window(times: Iterable[float], window_s: float) -> int:
    """Most events inside any half-open window of ``window_s`` seconds (two pointers over sorted times)."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG or JPEG, (0, 0) for anything else: enough for realistic PhotoSize."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data) and data[i] == 0xFF:
            marker, seg_len = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(width), int(height)
            i += 2 + seg_len
    return 0, 0
