"""``📞 Call back`` through the office line: the press reaches the PBX's API, the call comes back on its webhooks.

A missed Mango call (the manifest's sample, over HTTP) is nudged after the call-back SLA; its owner
presses ``📞 Call back`` in the fake Telegram; the signed ``commands/callback`` reaches a fake Mango
API on 127.0.0.1; Mango then reports the outbound call like any other, and that closes the item.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from bot.callbacks import OpenCB
from leadline import keys
from tests.bot.conftest import ANNA, BORIS, BotEnv, button_data
from tests.bot.test_arrival import mango_call, post_form
from tests.capture.test_mango import KEY, MANGO_SOURCE, SALT, post_mango, post_sample, signed_mango, summary
from tests.conftest import BASE, Running
from tests.fake_pbx import FakeMango, FakeTwilio
from tests.nudges.conftest import Clock, msk
from tests.samples import PUBLIC_URL, sample

MISSED = sample("mango_events_summary_missed.txt")
#: The sample's call: 2024-03-05 18:20 Moscow, a Tuesday evening, from +79160000013 to extension 101 (Anna).
CALLER = "79160000013"
#: Two minutes after the call, when each test's clock starts.
EVENING = msk(datetime(2024, 3, 5).date(), 18, 22)
#: The next working morning, once the call-back SLA (30 working minutes from 09:00) has passed.
MORNING = msk(datetime(2024, 3, 6).date(), 9, 31)
#: What Anna's press answers when it dials.
CALLING_ANNA = "📞 Calling you on 101, then +7 916 ***-**-13."


@pytest.fixture
async def mango_api() -> AsyncIterator[FakeMango]:
    async with FakeMango(key=KEY, salt=SALT) as fake:
        yield fake


async def missed_call_nudged(
    bot_env: BotEnv, mango_api: FakeMango, clock: Clock, **overrides: Any
) -> tuple[Running, int]:
    """The sample's missed call, nudged to Anna in Telegram; returns the server and the message id."""
    source = {**MANGO_SOURCE, "api_url": f"{mango_api.url}/vpbx"}
    srv = await bot_env.start(clock=clock, sources=[*BASE["sources"], source], **overrides)
    assert (await post_sample(srv, MISSED)).status == 200
    clock.now = MORNING
    await srv.server.app[keys.SWEEPER].run()
    bot_env.wake_outbox()
    message = await bot_env.tg.wait_for("sendMessage", chat_id=ANNA)
    await bot_env.types(ANNA, "/help", language="en")
    return srv, int(message.result["message_id"])


async def test_call_back_rings_the_extension_through_mango_and_the_outbound_call_closes_the_item(
    bot_env: BotEnv, mango_api: FakeMango
) -> None:
    clock = Clock(EVENING)
    srv, message_id = await missed_call_nudged(bot_env, mango_api, clock)
    [missed] = srv.rows("SELECT id FROM touches WHERE external_id = ?", [MISSED.expected["external_id"]])
    data = button_data(bot_env.tg, ANNA, message_id, "📞")
    assert data == f"d:{missed['id']}"

    answer = await bot_env.press(ANNA, message_id, data)
    assert answer["text"] == CALLING_ANNA
    [command] = mango_api.commands
    assert command.path == "/vpbx/commands/callback"
    assert command.params["from"] == {"extension": "101"}
    assert command.params["to_number"] == CALLER
    assert command.params["line_number"] == "74950000001"  # the line the client called
    assert str(command.params["command_id"]).startswith("leadline-")
    assert srv.scalar("SELECT closed_at FROM nudges WHERE kind = 'callback'") is None  # asking is not calling

    # Mango rings 101, Anna picks up, Mango dials the client, they talk; its summary comes as usual.
    clock.now = msk(MORNING.date(), 9, 34)
    outbound = summary(
        "out-1", CALLER, start=int(msk(MORNING.date(), 9, 32).timestamp()), answered=True, direction=2
    )
    assert (await post_mango(srv, "/events/summary", signed_mango(outbound))).status == 200
    await srv.server.app[keys.SWEEPER].run()
    anna = srv.scalar("SELECT id FROM staff WHERE telegram_id = ?", [ANNA])
    assert srv.rows("SELECT outcome, acted_by, closed_at IS NOT NULL AS closed FROM nudges") == [
        {"outcome": "called_back", "acted_by": anna, "closed": 1}
    ]


async def test_a_call_back_the_pbx_refuses_tells_the_staff_member_why(
    bot_env: BotEnv, mango_api: FakeMango
) -> None:
    mango_api.refuse = "extension 101 is busy"
    clock = Clock(EVENING)
    _srv, message_id = await missed_call_nudged(bot_env, mango_api, clock)

    answer: dict[str, Any] = await bot_env.press(
        ANNA, message_id, button_data(bot_env.tg, ANNA, message_id, "📞")
    )
    assert answer["text"] == "The PBX did not call: Mango result 3300: extension 101 is busy"
    assert answer["show_alert"] is True
    assert len(mango_api.commands) == 1


async def test_a_staff_member_the_pbx_has_nothing_to_ring_is_told_and_nothing_is_sent(
    bot_env: BotEnv, mango_api: FakeMango
) -> None:
    # Anna has no extension (Mango rings only extensions): the missed call to 101 is the owner's to call back.
    staff = [{**BASE["staff"][0], "extensions": [], "phone": "+79161112233"}, BASE["staff"][1]]
    clock = Clock(EVENING)
    source = {**MANGO_SOURCE, "api_url": f"{mango_api.url}/vpbx"}
    srv = await bot_env.start(clock=clock, sources=[*BASE["sources"], source], staff=staff)
    assert (await post_sample(srv, MISSED)).status == 200
    clock.now = MORNING
    await srv.server.app[keys.SWEEPER].run()
    bot_env.wake_outbox()
    message = await bot_env.tg.wait_for("sendMessage", chat_id=ANNA)
    await bot_env.types(ANNA, "/help", language="en")
    message_id = int(message.result["message_id"])

    answer = await bot_env.press(ANNA, message_id, button_data(bot_env.tg, ANNA, message_id, "📞"))
    assert answer["text"] == (
        "The PBX has nothing to ring you on: ask the owner to give you an extension or a phone in the config."
    )
    assert mango_api.received == []


async def test_the_missed_calls_card_opened_from_the_list_calls_back_too(
    bot_env: BotEnv, mango_api: FakeMango
) -> None:
    clock = Clock(EVENING)
    source = {**MANGO_SOURCE, "api_url": f"{mango_api.url}/vpbx"}
    srv = await bot_env.start(clock=clock, sources=[*BASE["sources"], source])
    assert (await post_sample(srv, MISSED)).status == 200
    clock.now = msk(datetime(2024, 3, 5).date(), 18, 25)
    listing = await bot_env.says(ANNA, "/missed", language="en")
    [missed] = srv.rows("SELECT id FROM touches")
    before = len(bot_env.tg.sent("sendMessage", chat_id=ANNA))
    await bot_env.press(ANNA, listing.result["message_id"], OpenCB(kind="touch", id=missed["id"]).pack())
    card = await bot_env.tg.wait_for("sendMessage", chat_id=ANNA, count=before + 1)
    card_id = int(card.result["message_id"])
    assert "+7 916 000-00-13" in bot_env.text(ANNA, card_id)

    answer = await bot_env.press(ANNA, card_id, button_data(bot_env.tg, ANNA, card_id, "📞"))
    assert answer["text"] == CALLING_ANNA
    assert [c.params["to_number"] for c in mango_api.commands] == [CALLER]


async def test_the_card_on_arrival_of_a_missed_call_calls_back_through_mango(
    bot_env: BotEnv, mango_api: FakeMango
) -> None:
    """The card a missed call gets at once carries 📞 too, and its press is the same signed command."""
    source = {**MANGO_SOURCE, "api_url": f"{mango_api.url}/vpbx"}
    srv = await bot_env.start(
        clock=Clock(MORNING), sources=[*BASE["sources"], source], notify={"on_arrival": True}
    )
    assert (await post_sample(srv, MISSED)).status == 200
    card = await bot_env.tg.wait_for("sendMessage", chat_id=ANNA)
    message_id = int(card.result["message_id"])
    [missed] = srv.rows("SELECT id FROM touches WHERE external_id = ?", [MISSED.expected["external_id"]])
    assert button_data(bot_env.tg, ANNA, message_id, "📞") == f"d:{missed['id']}"

    await bot_env.press(ANNA, message_id, f"d:{missed['id']}")
    [command] = mango_api.commands
    assert command.params["from"] == {"extension": "101"} and command.params["to_number"] == CALLER


async def taps_at_once(bot_env: BotEnv, taps: list[tuple[int, int, str]]) -> list[str]:
    """Several taps queued before the bot handles the first (a double tap, two people); their answers."""
    update_ids = [bot_env.tg.user_presses_button(user, message_id, data) for user, message_id, data in taps]
    for update_id in update_ids:
        await bot_env.tg.wait_until_confirmed(update_id)
    queries = {u["update_id"]: u["callback_query"]["id"] for u in bot_env.tg.updates if "callback_query" in u}
    return [str(bot_env.tg.callback_answers[queries[update_id]]["text"]) for update_id in update_ids]


async def test_a_double_tap_on_call_back_dials_once_and_the_second_tap_says_so(
    bot_env: BotEnv, mango_api: FakeMango
) -> None:
    clock = Clock(EVENING)
    _srv, message_id = await missed_call_nudged(bot_env, mango_api, clock)
    data = button_data(bot_env.tg, ANNA, message_id, "📞")

    answers = await taps_at_once(bot_env, [(ANNA, message_id, data), (ANNA, message_id, data)])
    assert answers == [
        CALLING_ANNA,
        "📞 Already calling +7 916 ***-**-13 (started 09:31 by Anna).",
    ]
    assert len(mango_api.commands) == 1  # 101 rings once, the client is dialled once


async def test_two_staff_members_pressing_call_back_for_one_client_dial_once(
    bot_env: BotEnv, mango_api: FakeMango
) -> None:
    """Anna on her nudge, Boris (a manager, reading Russian) on the card he opened from /missed."""
    staff = [BASE["staff"][0], {**BASE["staff"][1], "role": "manager"}]
    clock = Clock(EVENING)
    srv, anna_message = await missed_call_nudged(bot_env, mango_api, clock, staff=staff)
    listing = await bot_env.says(BORIS, "/missed", language="ru")
    [missed] = srv.rows("SELECT id FROM touches")
    before = len(bot_env.tg.sent("sendMessage", chat_id=BORIS))
    await bot_env.press(BORIS, listing.result["message_id"], OpenCB(kind="touch", id=missed["id"]).pack())
    card = await bot_env.tg.wait_for("sendMessage", chat_id=BORIS, count=before + 1)
    boris_message = int(card.result["message_id"])
    data = button_data(bot_env.tg, BORIS, boris_message, "📞")
    assert data == button_data(bot_env.tg, ANNA, anna_message, "📞")

    answers = await taps_at_once(bot_env, [(ANNA, anna_message, data), (BORIS, boris_message, data)])
    [command] = mango_api.commands
    if command.params["from"] == {"extension": "101"}:
        assert answers == [
            CALLING_ANNA,
            "📞 Уже звоним +7 916 ***-**-13 (начато в 09:31, Anna).",
        ]
    else:
        assert command.params["from"] == {"extension": "102"}
        assert answers == [
            "📞 Already calling +7 916 ***-**-13 (started 09:31 by Boris).",
            "📞 Звоним вам на 102, затем +7 916 ***-**-13.",
        ]


async def test_a_press_after_the_calling_window_dials_again(bot_env: BotEnv, mango_api: FakeMango) -> None:
    clock = Clock(EVENING)
    _srv, message_id = await missed_call_nudged(bot_env, mango_api, clock)
    data = button_data(bot_env.tg, ANNA, message_id, "📞")
    assert (await bot_env.press(ANNA, message_id, data))["text"].startswith("📞 Calling you on 101")

    clock.now = MORNING + timedelta(minutes=1, seconds=59)  # the PBX may still be ringing
    assert (await bot_env.press(ANNA, message_id, data))["text"] == (
        "📞 Already calling +7 916 ***-**-13 (started 09:31 by Anna)."
    )
    clock.now = MORNING + timedelta(minutes=2)  # nothing came back: a new attempt
    assert (await bot_env.press(ANNA, message_id, data))["text"] == CALLING_ANNA
    assert len(mango_api.commands) == 2


async def test_the_outbound_calls_webhook_ends_the_call_back_so_a_press_dials_again(
    bot_env: BotEnv, mango_api: FakeMango
) -> None:
    clock = Clock(EVENING)
    srv, message_id = await missed_call_nudged(bot_env, mango_api, clock)
    data = button_data(bot_env.tg, ANNA, message_id, "📞")
    await bot_env.press(ANNA, message_id, data)
    assert (await bot_env.press(ANNA, message_id, data))["text"].startswith("📞 Already calling")

    # The client did not pick up; Mango's summary of the outbound call comes a minute later.
    clock.now = MORNING + timedelta(minutes=1)
    outbound = summary("out-1", CALLER, start=int(MORNING.timestamp()), answered=False, direction=2)
    assert (await post_mango(srv, "/events/summary", signed_mango(outbound))).status == 200
    assert (await bot_env.press(ANNA, message_id, data))["text"] == CALLING_ANNA
    assert len(mango_api.commands) == 2


async def test_a_call_back_the_pbx_refused_can_be_pressed_again_at_once(
    bot_env: BotEnv, mango_api: FakeMango
) -> None:
    mango_api.refuse = "extension 101 is busy"
    clock = Clock(EVENING)
    _srv, message_id = await missed_call_nudged(bot_env, mango_api, clock)
    data = button_data(bot_env.tg, ANNA, message_id, "📞")
    assert (await bot_env.press(ANNA, message_id, data))["text"].startswith("The PBX did not call")

    mango_api.refuse = None  # Anna hung up on the other line
    assert (await bot_env.press(ANNA, message_id, data))["text"] == CALLING_ANNA
    assert len(mango_api.commands) == 2


async def test_a_pbx_that_takes_the_call_back_but_answers_late_may_still_ring_so_a_press_waits(
    bot_env: BotEnv, mango_api: FakeMango, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mango takes the command and answers after the dialer has stopped waiting: it will ring, so
    the person is told it may, and another press within the calling window dials nothing."""
    monkeypatch.setattr("capture.dial.TIMEOUT_SECONDS", 0.2)
    mango_api.delay = 1.0
    clock = Clock(EVENING)
    srv, message_id = await missed_call_nudged(bot_env, mango_api, clock)
    data = button_data(bot_env.tg, ANNA, message_id, "📞")

    answer = await bot_env.press(ANNA, message_id, data)
    assert answer["text"] == (
        "📞 The PBX did not confirm the call-back: it may still ring you on 101, then +7 916 ***-**-13."
        " If nothing rings, press again after 09:33."
    )
    assert answer["show_alert"] is True
    assert srv.scalar("SELECT COUNT(*) FROM dial_claims") == 1
    assert (await bot_env.press(ANNA, message_id, data))["text"] == (
        "📞 Already calling +7 916 ***-**-13 (started 09:31 by Anna)."
    )
    assert len(mango_api.commands) == 1  # 101 rings once, the client is dialled once

    clock.now = MORNING + timedelta(minutes=2)  # the time the alert gave
    mango_api.delay = 0.0
    assert (await bot_env.press(ANNA, message_id, data))["text"] == CALLING_ANNA
    assert len(mango_api.commands) == 2


async def card_from_missed(bot_env: BotEnv, user: int, touch_id: int) -> int:
    """The card of a missed call, opened from ``/missed`` as a person would; its message id."""
    listing = await bot_env.says(user, "/missed", language="en")
    before = len(bot_env.tg.sent("sendMessage", chat_id=user))
    await bot_env.press(user, listing.result["message_id"], OpenCB(kind="touch", id=touch_id).pack())
    card = await bot_env.tg.wait_for("sendMessage", chat_id=user, count=before + 1)
    return int(card.result["message_id"])


async def test_call_back_dials_the_number_that_called_not_the_clients_first(
    bot_env: BotEnv, mango_api: FakeMango
) -> None:
    """Ivan left a form with his old number, then one with his new number and the same email (one
    contact, two numbers); he calls from the new one, then from the old one, and nobody answers."""
    clock = Clock(EVENING)
    source = {**MANGO_SOURCE, "api_url": f"{mango_api.url}/vpbx"}
    srv = await bot_env.start(clock=clock, sources=[*BASE["sources"], source])
    await post_form(srv, name="Ivan", phone="+7 916 111-11-11", email="ivan@example.com")
    await post_form(srv, name="Ivan", phone="+7 926 222-22-22", email="ivan@example.com")
    start = EVENING - timedelta(minutes=2)
    await mango_call(srv, "from-new", "79262222222", start, answered=False, extension="101")
    await mango_call(srv, "from-old", "79161111111", start, answered=False, extension="101")
    assert srv.scalar("SELECT COUNT(DISTINCT contact_id) FROM touches") == 1
    calls = {
        r["external_id"]: r["id"]
        for r in srv.rows("SELECT id, external_id FROM touches WHERE channel = 'call'")
    }

    new_card = await card_from_missed(bot_env, ANNA, calls["from-new"])
    answer = await bot_env.press(ANNA, new_card, button_data(bot_env.tg, ANNA, new_card, "📞"))
    assert answer["text"] == "📞 Calling you on 101, then +7 926 ***-**-22."
    assert [c.params["to_number"] for c in mango_api.commands] == ["79262222222"]

    # The other missed call's 📞 while that call-back is under way names the number being dialled.
    old_card = await card_from_missed(bot_env, ANNA, calls["from-old"])
    answer = await bot_env.press(ANNA, old_card, button_data(bot_env.tg, ANNA, old_card, "📞"))
    assert answer["text"] == "📞 Already calling +7 926 ***-**-22 (started 18:22 by Anna)."
    assert len(mango_api.commands) == 1


async def test_call_back_reads_the_caller_in_its_sources_region(
    bot_env: BotEnv, mango_api: FakeMango
) -> None:
    """A PBX in Belarus writes its callers the Belarusian way; the client also left a Russian number."""
    clock = Clock(EVENING)
    source = {**MANGO_SOURCE, "api_url": f"{mango_api.url}/vpbx", "region": "BY"}
    srv = await bot_env.start(clock=clock, sources=[*BASE["sources"], source])
    await post_form(srv, name="Olga", phone="+7 916 333-33-33", email="olga@example.com")
    await post_form(srv, name="Olga", phone="+375 29 123-45-67", email="olga@example.com")
    await mango_call(
        srv, "from-minsk", "8 029 123-45-67", EVENING - timedelta(minutes=2), answered=False, extension="101"
    )
    assert srv.scalar("SELECT COUNT(DISTINCT contact_id) FROM touches") == 1
    missed = int(srv.scalar("SELECT id FROM touches WHERE channel = 'call'"))

    card = await card_from_missed(bot_env, ANNA, missed)
    answer = await bot_env.press(ANNA, card, button_data(bot_env.tg, ANNA, card, "📞"))
    assert answer["text"] == "📞 Calling you on 101, then +375 29 ***-**-67."
    assert [c.params["to_number"] for c in mango_api.commands] == ["375291234567"]


async def missed_through_call_tracking(bot_env: BotEnv, mango_api: FakeMango) -> tuple[Running, int]:
    """A missed call that came in on the line 74950000001 through the dynamic call-tracking number
    74950000055 (a pool number a site shows one visitor at a time); its card, opened from /missed."""
    source = {**MANGO_SOURCE, "api_url": f"{mango_api.url}/vpbx"}
    srv = await bot_env.start(clock=Clock(EVENING), sources=[*BASE["sources"], source])
    start = int((EVENING - timedelta(minutes=2)).timestamp())
    payload = summary("m-dct", CALLER, start=start, answered=False, dct="74950000055")
    assert (await post_mango(srv, "/events/summary", signed_mango(payload))).status == 200
    missed = int(srv.scalar("SELECT id FROM touches"))
    return srv, await card_from_missed(bot_env, ANNA, missed)


async def test_call_back_goes_out_on_the_line_the_client_called_not_the_call_tracking_number(
    bot_env: BotEnv, mango_api: FakeMango
) -> None:
    srv, card = await missed_through_call_tracking(bot_env, mango_api)

    answer = await bot_env.press(ANNA, card, button_data(bot_env.tg, ANNA, card, "📞"))
    assert answer["text"] == "📞 Calling you on 101, then +7 916 ***-**-13."
    [command] = mango_api.commands
    assert command.params["to_number"] == CALLER
    assert command.params["line_number"] == "74950000001"
    # The tracking number still names the campaign that brought the call.
    assert srv.rows("SELECT tracking_number, campaign, line FROM touches") == [
        {"tracking_number": "74950000055", "campaign": "brand_msk", "line": "74950000001"}
    ]


async def test_a_call_stored_before_lines_were_is_called_back_from_its_tracking_number(
    bot_env: BotEnv, mango_api: FakeMango
) -> None:
    """Touches from before m021 have no line: the call-back goes out as it did, from the tracking number."""
    _srv, card = await missed_through_call_tracking(bot_env, mango_api)
    await bot_env.write(lambda db: db.execute("UPDATE touches SET line = NULL"))

    await bot_env.press(ANNA, card, button_data(bot_env.tg, ANNA, card, "📞"))
    [command] = mango_api.commands
    assert command.params["line_number"] == "74950000055"


TWILIO_TOKEN = "twilio-auth-token-0001"
TWILIO_SID = "AC" + "1" * 32
#: The Twilio number the client called, Anna's own phone, the client (a US office).
TWILIO_LINE, ANNAS_PHONE, US_CLIENT = "+12025550100", "+12025550199", "+12025550123"


async def post_twilio(srv: Running, url: str, params: dict[str, str]) -> Any:
    """A request as Twilio sends it to ``url`` (a public URL): signed over that URL and the form."""
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, params)
    return await srv.session.post(
        srv.url + url.removeprefix(PUBLIC_URL),
        data=urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )


async def test_a_twilio_call_back_reports_back_and_closes_the_missed_call(bot_env: BotEnv) -> None:
    """A REST call reports nothing unless told where: the TwiML's <Dial action> brings the client's
    leg back to the source's webhook, as the office's outgoing call to the client."""
    async with FakeTwilio(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN) as api:
        source = {"name": "twilio", "provider": "twilio", "auth_token": TWILIO_TOKEN, "api_key": TWILIO_SID}
        source |= {"forward_to": "+12025550111", "api_url": api.url, "region": "US"}
        staff = [{**BASE["staff"][0], "phone": ANNAS_PHONE}, BASE["staff"][1]]
        clock = Clock(EVENING)
        srv = await bot_env.start(clock=clock, sources=[*BASE["sources"], source], staff=staff)
        hook = f"{PUBLIC_URL}/hooks/twilio"
        inbound = {"AccountSid": TWILIO_SID, "CallSid": "CA" + "9" * 32, "Direction": "inbound"}
        inbound |= {"From": US_CLIENT, "To": TWILIO_LINE}
        assert (await post_twilio(srv, f"{hook}/voice", {**inbound, "CallStatus": "ringing"})).status == 200
        nobody = {"CallStatus": "in-progress", "DialCallStatus": "no-answer", "DialCallDuration": "0"}
        assert (await post_twilio(srv, f"{hook}/dial-action", {**inbound, **nobody})).status == 200
        missed = int(srv.scalar("SELECT id FROM touches WHERE channel = 'call'"))
        card = await card_from_missed(bot_env, ANNA, missed)

        answer = await bot_env.press(ANNA, card, button_data(bot_env.tg, ANNA, card, "📞"))
        assert answer["text"] == "📞 Calling you on +1 202-555-0199, then +1 202-555-0123."
        [command] = api.commands
        assert (command.params["To"], command.params["From"]) == (ANNAS_PHONE, TWILIO_LINE)
        assert api.dial_actions == [f"{hook}/dial-action?callback_to=12025550123"]

        # Anna picks up, Twilio dials the client, they talk for a minute; the <Dial> ends and Twilio
        # requests its action with the REST call's parameters and the client's leg's outcome.
        clock.now = EVENING + timedelta(minutes=2)
        rest_call = {"AccountSid": TWILIO_SID, "CallSid": "CA" + "0" * 32, "Direction": "outbound-api"}
        rest_call |= {"From": TWILIO_LINE, "To": ANNAS_PHONE, "CallStatus": "in-progress"}
        talked = {"DialCallStatus": "completed", "DialCallSid": "CA" + "8" * 32, "DialCallDuration": "60"}
        [action] = api.dial_actions
        assert action is not None
        assert (await post_twilio(srv, action, {**rest_call, **talked})).status == 200

        listing = await bot_env.says(ANNA, "/missed", language="en")
        assert listing.params["text"] == (
            "<b>Missed calls not called back</b>\n\nEvery missed call has been called back."
        )
        [call_back] = srv.rows(
            "SELECT t.direction, t.answered, t.talk_s, i.value AS phone FROM touches t"
            " JOIN identifiers i ON i.contact_id = t.contact_id WHERE t.external_id = ?",
            ["CA" + "0" * 32],
        )
        assert call_back == {"direction": "out", "answered": 1, "talk_s": 60, "phone": US_CLIENT}
        assert srv.scalar("SELECT called_back_at IS NOT NULL FROM touches WHERE id = ?", [missed]) == 1
        assert srv.scalar("SELECT COUNT(*) FROM dial_claims") == 0  # a press now dials again
