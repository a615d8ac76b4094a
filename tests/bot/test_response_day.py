"""Response figures on a hand-built day, all four ways of answering: through the webhooks, the bot and
the API on a test clock, then read back as ``leadline report --json`` gives them (the API's report)."""

from __future__ import annotations

from typing import Any

from leadline import keys
from tests.bot.conftest import BORIS, BotEnv
from tests.capture.test_mango import MANGO_SOURCE, post_mango, signed_mango, summary
from tests.conftest import BASE, Running
from tests.fake_telegram import CallRecord
from tests.nudges.conftest import TUESDAY, Clock, msk

TOKEN = "crm-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DAY = TUESDAY.isoformat()

# The day (Tuesday 14 April 2026, Moscow; every time below is the office's clock):
#
#   A  10:00 calls, Anna (101) answers                        -> answered at once:          0 min
#   B  10:05 sends the form; Boris calls B back, answered 10:09 -> an answered call out:     4 min
#   C  10:10 calls, nobody answers; the call-back nudge comes at 10:41 and Boris presses
#            "Called back" at 10:52                           -> a Called back press:      42 min
#   D  11:00 sends the form with an email only; the CRM registers D at 12:30 -> by a person: 90 min
#   F  13:00 calls, missed; F calls again at 13:03 and Boris answers -> an answered call in: 3 min
#   E  12:00 sends the form; nobody answers it                -> not responded
#
# Six inbound contacts; answered ones in order: 0, 3, 4, 42, 90.
#   p50, nearest rank: the ceil(0.5 * 5) = 3rd = 4 min; p90: the ceil(0.9 * 5) = 5th = 90 min.
#   Within 5 min: A, F, B = 3 of 6 = 0.5; within 60 min: and C = 4 of 6 = 0.6667; not responded: E = 1.
# By channel: calls A, C, F = 0, 3, 42 -> p50 the 2nd = 3, p90 the 3rd = 42, within 5 min 2 of 3,
#   within 60 min 3 of 3; forms B, D, E = 4, 90 and none -> p50 the 1st = 4, p90 the 2nd = 90,
#   within 5 min 1 of 3, within 60 min 1 of 3, one not responded.
# By staff (the extension that rang): Anna has A (0); Boris has C and F (42, 3): p50 3, p90 42.


async def call(srv: Running, clock: Clock, entry: str, number: str, hh: int, mm: int, **how: Any) -> None:
    """Mango posts the call's summary a minute after it ended."""
    start = msk(TUESDAY, hh, mm)
    clock.now = msk(TUESDAY, hh, mm + 2)
    body = signed_mango(summary(entry, number, start=int(start.timestamp()), **how))
    resp = await post_mango(srv, "/events/summary", body)
    assert resp.status == 200, await resp.text()


async def form(srv: Running, clock: Clock, hh: int, mm: int, **fields: str) -> None:
    clock.now = msk(TUESDAY, hh, mm)
    resp = await srv.session.post(f"{srv.url}/hooks/form?token=form-token", data=fields)
    assert resp.status == 200, await resp.text()


def response(figures: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        figures[key]
        for key in (
            "inbound_contacts",
            "response_p50_min",
            "response_p90_min",
            "responded_within_5_min",
            "responded_within_60_min",
            "not_responded",
        )
    )


async def the_day(bot_env: BotEnv, clock: Clock, srv: Running, after: Any = None) -> dict[str, Any]:
    """The day above, through the webhooks, the bot and the API; ``after`` is awaited after each
    inbound touch. Returns the day's report as the API gives it at 18:00."""

    async def settled() -> None:
        if after is not None:
            await after()

    await call(srv, clock, "a-1", "79160000001", 10, 0, answered=True, extension="101")
    await settled()
    await form(srv, clock, 10, 5, name="B", phone="+7 916 000-00-02")
    await settled()
    await call(srv, clock, "b-out", "79160000002", 10, 9, answered=True, extension="102", direction=2)
    await call(srv, clock, "c-1", "79160000003", 10, 10, answered=False, extension="102")
    await settled()

    clock.now = msk(TUESDAY, 10, 41)  # the call-back SLA (30 working minutes) has passed
    await srv.server.app[keys.SWEEPER].run()
    bot_env.wake_outbox()
    nudge = await bot_env.tg.wait_for(
        lambda r: r.ok and r.method == "sendMessage" and "n:called:" in str(r.params), chat_id=BORIS
    )
    [row] = srv.rows("SELECT id FROM nudges WHERE kind = 'callback'")
    await bot_env.types(BORIS, "/help", language="en")
    clock.now = msk(TUESDAY, 10, 52)
    answer = await bot_env.press(BORIS, nudge.result["message_id"], f"n:called:{row['id']}:")
    assert answer["text"] == "Marked as called back."

    await form(srv, clock, 11, 0, name="D", email="d@example.net")
    await settled()
    await form(srv, clock, 12, 0, name="E", phone="+7 916 000-00-05")
    await settled()
    clock.now = msk(TUESDAY, 12, 30)
    async with srv.session.post(
        f"{srv.url}/api/registrations",
        json={"email": "d@example.net", "disposition": "lead", "temperature": "warm", "need": "a quote"},
        headers=AUTH,
    ) as resp:
        assert resp.status == 201, await resp.text()
    await call(srv, clock, "f-1", "79160000006", 13, 0, answered=False, extension="102")
    await settled()
    await call(srv, clock, "f-2", "79160000006", 13, 3, answered=True, extension="102")

    clock.now = msk(TUESDAY, 18, 0)
    async with srv.session.get(f"{srv.url}/api/report?from={DAY}&to={DAY}", headers=AUTH) as resp:
        assert resp.status == 200
        report: dict[str, Any] = await resp.json()
    return report


async def test_response_figures_on_a_hand_built_day_all_four_ways_of_answering(bot_env: BotEnv) -> None:
    clock = Clock(msk(TUESDAY, 9, 0))
    srv = await bot_env.start(
        clock=clock,
        sources=[*BASE["sources"], MANGO_SOURCE],
        api_clients=[{"name": "crm", "token": TOKEN}],
    )
    report = await the_day(bot_env, clock, srv)
    assert response(report) == (6, 4.0, 90.0, 0.5, 0.6667, 1)
    assert response(report["by_channel"]["call"]) == (3, 3.0, 42.0, 0.6667, 1.0, 0)
    assert response(report["by_channel"]["form"]) == (3, 4.0, 90.0, 0.3333, 0.3333, 1)
    assert response(report["by_staff"]["Anna"]) == (1, 0.0, 0.0, 1.0, 1.0, 0)
    assert response(report["by_staff"]["Boris"]) == (2, 3.0, 42.0, 0.5, 1.0, 0)

    # Seen at 10:30, before anyone had answered C, D or E, the day stood at A and B answered.
    clock.now = msk(TUESDAY, 10, 30)
    async with srv.session.get(f"{srv.url}/api/report?from={DAY}&to={DAY}", headers=AUTH) as resp:
        early = await resp.json()
    assert response(early) == (6, 0.0, 4.0, 0.3333, 0.3333, 4)


async def test_the_day_with_cards_on_arrival_every_contact_reaches_a_person_at_once(bot_env: BotEnv) -> None:
    """Speed to lead's acceptance day: with cards on arrival on, each of the six contacts has its card
    in Telegram before anything else happens (on the test clock), to the extension that rang or the
    assignee, and the day's response figures stand."""
    clock = Clock(msk(TUESDAY, 9, 0))
    srv = await bot_env.start(
        clock=clock,
        sources=[*BASE["sources"], MANGO_SOURCE],
        api_clients=[{"name": "crm", "token": TOKEN}],
        notify={"on_arrival": True},
    )
    cards = 0

    def is_card(r: CallRecord) -> bool:
        """A card on arrival: its buttons register (``t:``) or close (``r:``) a touch; the nudge's
        (``n:``) and the /help reply are other messages, which must not count as cards."""
        markup = r.params.get("reply_markup") or {}
        data = {b.get("callback_data", "")[:2] for row in markup.get("inline_keyboard", []) for b in row}
        return r.ok and r.method == "sendMessage" and bool(data & {"t:", "r:"}) and "n:" not in data

    async def card_sent() -> None:
        nonlocal cards
        cards += 1
        await bot_env.tg.wait_for(is_card, count=cards)

    # ``card_sent`` waited, after each inbound contact's first touch, for one more card to reach
    # Telegram before the clock moved on: every contact reached a person at once.
    report = await the_day(bot_env, clock, srv, after=card_sent)
    inbound = {r["contact_id"] for r in srv.rows("SELECT contact_id FROM touches WHERE direction = 'in'")}
    carded = {r["contact_id"] for r in srv.rows("SELECT contact_id FROM arrival_cards")}
    assert len(inbound) == 6 and carded == inbound
    # A rang Anna's 101, C and F Boris's 102; the forms B, D and E are the form source's owner's, Anna's.
    to = {(r["contact_id"], r["staff"]) for r in srv.rows(
        "SELECT a.contact_id, s.name AS staff FROM arrival_cards a JOIN staff s ON s.id = a.staff_id"
    )}  # fmt: skip
    assert to == {(1, "Anna"), (2, "Anna"), (3, "Boris"), (4, "Anna"), (5, "Anna"), (6, "Boris")}
    assert response(report) == (6, 4.0, 90.0, 0.5, 0.6667, 1)
    assert response(report["by_channel"]["call"]) == (3, 3.0, 42.0, 0.6667, 1.0, 0)
    assert response(report["by_channel"]["form"]) == (3, 4.0, 90.0, 0.3333, 0.3333, 1)
