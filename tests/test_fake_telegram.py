"""FakeTelegram is only worth trusting if real aiogram accepts it: these tests drive aiogram's own client,
dispatcher and polling loop against it, and pin the error shapes the outbox's retry logic depends on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandStart
from aiogram.methods import SendMessage
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from tests.fake_telegram import FakeTelegram, UploadedFile, WaitTimeout

USER = 111111111
# 1x1 transparent PNG: real image bytes, so the fake reports real dimensions.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def make_bot(tg: FakeTelegram, token: str | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(tg.api_url))
    return Bot(token or tg.token, session=session)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(tg)
    yield bot
    await bot.session.close()


@asynccontextmanager
async def polling(dp: Dispatcher, bot: Bot, tg: FakeTelegram) -> AsyncIterator[None]:
    """Run aiogram's real polling loop for the block, then stop it and wait for it to finish.

    ``handle_as_tasks=False`` makes handlers run inside the polling task, so stopping it leaves no
    handler task behind; ``handle_signals=False`` keeps pytest's signal handlers alone."""
    task = asyncio.create_task(
        dp.start_polling(
            bot, polling_timeout=5, handle_as_tasks=False, handle_signals=False, close_bot_session=False
        )
    )
    try:
        await tg.wait_long_poll()  # polling is running (stop_polling needs it started)
        yield
    finally:
        if not task.done():
            await dp.stop_polling()
        await task


async def test_start_command_gets_an_answer(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        assert message.from_user is not None
        await message.answer(f"Hello, <b>{message.from_user.first_name}</b>!", parse_mode="HTML")

    dp = Dispatcher()
    dp.include_router(router)
    async with polling(dp, bot, tg):
        update_id = tg.user_sends_text(USER, "/start", first_name="Anna", username="anna")
        call = await tg.wait_for("sendMessage", chat_id=USER)
        await tg.wait_until_confirmed(update_id)

    assert call.params["text"] == "Hello, <b>Anna</b>!"
    assert call.params["parse_mode"] == "HTML"
    assert tg.chat_messages(USER) == ["Hello, Anna!"]
    assert tg.last_message(USER) == call.result
    assert call.result["entities"] == [{"type": "bold", "offset": 7, "length": 4}]
    assert call.result["chat"] == {"id": USER, "type": "private", "first_name": "Anna", "username": "anna"}
    assert [method for method, _ in tg.calls][:3] == ["getMe", "getUpdates", "sendMessage"]
    assert tg.pending_updates == 0


async def test_button_press_is_answered_and_message_edited(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text="Lead", callback_data="reg:lead")],
                [InlineKeyboardButton(text="Spam", callback_data="reg:spam")],
            ]
        )
        await message.answer("New call from +7 916 123-45-67", reply_markup=keyboard)

    @router.callback_query(F.data.startswith("reg:"))
    async def register(callback: CallbackQuery) -> None:
        assert isinstance(callback.message, Message) and callback.data is not None
        await callback.answer("Saved")
        await callback.message.edit_text(f"Registered: {callback.data.removeprefix('reg:')}")

    dp = Dispatcher()
    dp.include_router(router)
    async with polling(dp, bot, tg):
        tg.user_sends_text(USER, "/start")
        sent = await tg.wait_for("sendMessage")
        message_id = sent.result["message_id"]
        assert sent.params["reply_markup"]["inline_keyboard"][0][0] == {
            "text": "Lead",
            "callback_data": "reg:lead",
        }
        assert [b["text"] for b in tg.buttons(USER, message_id)] == ["Lead", "Spam"]

        tg.user_presses_button(USER, message_id, "reg:lead")
        answer = await tg.wait_for("answerCallbackQuery")
        edit = await tg.wait_for("editMessageText")

    assert answer.params["text"] == "Saved"
    assert edit.params["message_id"] == message_id
    assert tg.chat_messages(USER) == ["Registered: lead"]
    # Editing without reply_markup removes the inline keyboard, as in Telegram.
    assert tg.buttons(USER, message_id) == []
    with pytest.raises(ValueError, match="no inline button"):
        tg.user_presses_button(USER, message_id, "reg:nonexistent")


async def test_429_raises_retry_after_with_telegrams_value(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail_next("sendMessage", 1, status=429, retry_after=7)

    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(USER, "nudge")
    assert caught.value.retry_after == 7
    assert "retry after 7" in caught.value.message

    await bot.send_message(USER, "nudge")  # the failure was for one call only
    assert [r.status for r in tg.attempts("sendMessage")] == [429, 200]
    assert len(tg.sent("sendMessage")) == 1
    assert tg.chat_messages(USER) == ["nudge"]


async def test_502_from_a_proxy_and_5xx_from_the_api(tg: FakeTelegram, bot: Bot) -> None:
    # A proxy's bare HTML 502 cannot be decoded as JSON: aiogram raises ClientDecodeError, which is NOT
    # a TelegramAPIError, so an outbox catching only TelegramServerError would miss it.
    tg.fail_next("sendMessage", 1, status=502)
    with pytest.raises(ClientDecodeError):
        await bot.send_message(USER, "digest")

    tg.fail_next("sendMessage", 1, status=502, html=False)
    with pytest.raises(TelegramServerError):
        await bot.send_message(USER, "digest")

    assert tg.chat_messages(USER) == []
    await bot.send_message(USER, "digest")
    assert tg.chat_messages(USER) == ["digest"]


async def test_dropped_connection_is_a_network_error(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail_next("*", 1, status=0)
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(USER, "hello")
    await bot.send_message(USER, "hello")
    assert [r.status for r in tg.attempts("sendMessage")] == [0, 200]


async def test_send_photo_upload_arrives_with_its_bytes(tg: FakeTelegram, bot: Bot) -> None:
    message = await bot.send_photo(USER, BufferedInputFile(PNG, filename="chart.png"), caption="Week")

    [params] = tg.sent("sendPhoto")
    upload = params["photo"]
    assert isinstance(upload, UploadedFile)
    assert (upload.filename, upload.data) == ("chart.png", PNG)
    assert message.caption == "Week" and message.photo is not None
    assert (message.photo[-1].width, message.photo[-1].height) == (1, 1)
    # The file URL layout (/file/bot<token>/<path>) works with aiogram's downloader.
    downloaded = await bot.download(message.photo[-1].file_id)
    assert downloaded is not None and downloaded.read() == PNG
    # Sending again by file_id reuses the stored file.
    again = await bot.send_photo(USER, message.photo[-1].file_id)
    assert again.photo is not None and again.photo[-1].file_id == message.photo[-1].file_id


async def test_send_document_and_delete_message(tg: FakeTelegram, bot: Bot) -> None:
    doc = await bot.send_document(USER, BufferedInputFile(b"id;phone\n1;+79161234567\n", "leads.csv"))
    assert doc.document is not None and doc.document.file_name == "leads.csv"
    assert tg.sent("sendDocument")[0]["document"].data.startswith(b"id;phone")

    assert await bot.delete_message(USER, doc.message_id) is True
    assert tg.messages(USER) == []
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(USER, doc.message_id)


async def test_wrong_token_is_unauthorized(tg: FakeTelegram) -> None:
    intruder = make_bot(tg, token="999:WRONG")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await intruder.get_me()
    finally:
        await intruder.session.close()
    assert tg.calls[-1][0] == "getMe" and tg.records[-1].status == 401


async def test_unknown_method_is_bot_api_404(tg: FakeTelegram) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{tg.api_url}/bot{tg.token}/sendTeleportation", json={"chat_id": 1}) as resp,
    ):
        assert resp.status == 404
        assert await resp.json() == {
            "ok": False,
            "error_code": 404,
            "description": "Not Found: method not found",
        }


async def test_json_and_query_string_requests_are_understood(tg: FakeTelegram) -> None:
    """Not only aiogram's multipart: a raw client using JSON bodies or GET parameters works too."""
    async with aiohttp.ClientSession() as http:
        url = f"{tg.api_url}/bot{tg.token}"
        async with http.post(f"{url}/sendMessage", json={"chat_id": USER, "text": "json"}) as resp:
            assert (await resp.json())["result"]["text"] == "json"
        async with http.get(f"{url}/sendMessage", params={"chat_id": str(USER), "text": "123"}) as resp:
            assert (await resp.json())["result"]["text"] == "123"  # stays a string
    assert tg.chat_messages(USER) == ["json", "123"]


async def test_long_polling_waits_without_blocking_and_honours_offset(tg: FakeTelegram, bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert 0.9 <= time.monotonic() - started < 3

    asyncio.get_running_loop().call_later(0.2, tg.user_sends_text, USER, "hi")
    started = time.monotonic()
    updates = await bot.get_updates(timeout=10)
    assert time.monotonic() - started < 2  # woke up on the new update, not at the timeout
    assert [u.message.text for u in updates if u.message] == ["hi"]

    # Unconfirmed updates come back; an offset past them confirms them.
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [updates[0].update_id]
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == []
    assert tg.pending_updates == 0


async def test_second_get_updates_terminates_the_first(tg: FakeTelegram, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await tg.wait_long_poll()  # the first request is now waiting in the server
    second = asyncio.create_task(bot.get_updates(timeout=1))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await first
    assert await second == []


async def test_html_that_telegram_would_reject_is_rejected(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(USER, "Lead <Ivan> from form", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(USER, "<b>bold <i>both</b></i>", parse_mode="HTML")
    ok = await bot.send_message(
        USER, 'Lead &lt;Ivan&gt; <a href="https://x.test">card</a>', parse_mode="HTML"
    )
    assert ok.text == "Lead <Ivan> card"
    assert ok.entities is not None and ok.entities[0].url == "https://x.test"


async def test_edit_to_same_content_is_not_modified(tg: FakeTelegram, bot: Bot) -> None:
    msg = await bot.send_message(USER, "Lead: hot")
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(text="Lead: hot", chat_id=USER, message_id=msg.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text(text="x", chat_id=USER, message_id=999)
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Call back", callback_data="cb")]]
    )
    edited = await bot.edit_message_reply_markup(chat_id=USER, message_id=msg.message_id, reply_markup=markup)
    assert isinstance(edited, Message) and edited.reply_markup is not None
    assert edited.reply_markup.inline_keyboard[0][0].callback_data == "cb"
    assert tg.buttons(USER, msg.message_id) == [{"text": "Call back", "callback_data": "cb"}]


async def test_contact_and_forward_updates_parse_in_aiogram(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()

    @router.message(F.contact)
    async def contact(message: Message) -> None:
        assert message.contact is not None and message.from_user is not None
        own = message.contact.user_id == message.from_user.id
        await message.answer(f"contact {message.contact.phone_number} own={own}")

    @router.message(F.forward_origin)
    async def forwarded(message: Message) -> None:
        origin = message.forward_origin
        await message.answer(f"forward from {getattr(origin, 'sender_user_name', None)}: {message.text}")

    dp = Dispatcher()
    dp.include_router(router)
    async with polling(dp, bot, tg):
        tg.user_shares_contact(USER, "+79161234567", "Anna")
        tg.user_forwards(USER, "I need 20 chairs", "Ivan Petrov")
        await tg.wait_for("sendMessage", count=2)
    assert tg.chat_messages(USER) == [
        "contact +79161234567 own=True",
        "forward from Ivan Petrov: I need 20 chairs",
    ]


async def test_rate_monitor_and_simulated_flood_control(tg: FakeTelegram, bot: Bot) -> None:
    for i in range(3):
        await bot.send_message(USER, f"m{i}")
    await bot.send_message(USER + 1, "other")
    assert tg.max_rate_per_chat() == 3.0
    assert tg.max_rate_overall() == 4.0
    assert tg.max_rate_per_chat(window_s=2.0) == 1.5

    tg.set_rate_limits(per_chat=3, overall=30)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(USER, "too fast")
    assert caught.value.retry_after == 1
    await bot.send_message(USER + 2, "another chat is fine")


async def test_wait_for_times_out_with_a_useful_message(tg: FakeTelegram, bot: Bot) -> None:
    await bot.get_me()
    with pytest.raises(WaitTimeout, match="getMe:200"):
        await tg.wait_for("sendMessage", timeout=0.1)


async def test_commands_chat_blocked_user_restricted_and_upgraded_groups(tg: FakeTelegram, bot: Bot) -> None:
    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="lead", description="New"),
    ]
    assert await bot.set_my_commands(commands, language_code="ru") is True
    assert [c["command"] for c in tg.my_commands(language_code="ru")] == ["start", "lead"]
    assert [c.command for c in await bot.get_my_commands(language_code="ru")] == ["start", "lead"]

    tg.user_sends_text(USER, "hi", first_name="Anna")
    chat = await bot.get_chat(USER)
    assert (chat.type, chat.first_name) == ("private", "Anna")

    keyboard = ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="Share", request_contact=True)]])
    await bot.send_message(USER, "Your number?", reply_markup=keyboard)
    assert tg.reply_keyboard(USER) == {"keyboard": [[{"text": "Share", "request_contact": True}]]}

    tg.block_bot(USER)
    with pytest.raises(TelegramForbiddenError, match="blocked"):
        await bot.send_message(USER, "nudge")

    tg.restrict_bot(-100500)
    with pytest.raises(TelegramBadRequest, match="have no rights to send a message"):
        await bot.send_message(-100500, "card")
    tg.restrict_bot(-100500, restricted=False)
    assert (await bot.send_message(-100500, "card")).text == "card"

    tg.add_chat(-555, kind="group", title="Team")
    tg.upgrade_group(-555, -100555)
    with pytest.raises(TelegramMigrateToChat) as moved:
        await bot.send_message(-555, "card")
    assert moved.value.migrate_to_chat_id == -100555
    chat = await bot.get_chat(-100555)
    assert (chat.type, chat.title) == ("supergroup", "Team")


async def test_webhook_delivery_and_reply_in_response(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> SendMessage:
        return message.answer("via webhook reply")  # aiogram puts it in the HTTP answer

    dp = Dispatcher()
    dp.include_router(router)
    app = web.Application()
    SimpleRequestHandler(dp, bot, handle_in_background=False, secret_token="s3cret").register(app, "/tg")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        await bot.set_webhook(f"http://127.0.0.1:{port}/tg", secret_token="s3cret")
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates()
        tg.user_sends_text(USER, "/start")
        call = await tg.wait_for("sendMessage")
        assert call.params["text"] == "via webhook reply"
        assert tg.chat_messages(USER) == ["via webhook reply"]
        assert (await bot.get_webhook_info()).pending_update_count == 0
        await bot.delete_webhook()
    finally:
        await runner.cleanup()
