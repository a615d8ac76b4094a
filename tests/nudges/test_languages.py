"""Nudges and source alerts in each reader's language: their staff ``language``, else the office's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.catalogues import speaking_locale
from bot.nudge_texts import render, render_source_alert
from bot.touch_text import when
from storage.nudges.cards import Card, MessageView, TouchLine
from tests.conftest import BASE, StartServer
from tests.fake_telegram import FakeTelegram
from tests.nudges.conftest import ANNA, BORIS, MSK, TUESDAY, Clock, Office, msk, office_config
from tests.nudges.test_source_health import alerts, post

CALLER = "+79161234567"
CAROL = 333


def staff(anna: str | None, boris: str | None, *more: dict[str, Any]) -> list[dict[str, Any]]:
    people = [dict(person) for person in BASE["staff"]]
    for person, language in zip(people, (anna, boris), strict=True):
        if language:
            person["language"] = language
    return [*people, *more]


async def test_a_nudge_reaches_each_person_in_telegram_in_their_language(
    tg: FakeTelegram, start_server: StartServer, tmp_path: Path
) -> None:
    """Boris reads English, Anna Russian (the office's language, as she has none of her own)."""
    config = office_config(
        tmp_path, telegram={"token": tg.token, "api_url": tg.api_url}, staff=staff(None, "en")
    )
    clock = Clock(msk(TUESDAY, 8, 0))
    office = Office(await start_server(config, clock=clock), clock)
    await tg.wait_long_poll()
    await office.call("m1", CALLER, msk(TUESDAY, 10, 0), answered=False, extension="102")

    await office.sweep(msk(TUESDAY, 10, 30))
    nudge = await tg.wait_for("sendMessage", chat_id=BORIS)
    assert nudge.params["text"] == f"📞 <b>Call back</b>\n{CALLER}\nmissed call 14 Apr, 10:00 MSK"
    assert [b["text"] for row in nudge.params["reply_markup"]["inline_keyboard"] for b in row] == [
        "📞 Call back",
        "Called back",
        "Can't reach",
    ]

    await office.sweep(msk(TUESDAY, 11, 30))  # nobody called back: Anna, the owner, is told
    escalation = await tg.wait_for("sendMessage", chat_id=ANNA)
    assert escalation.params["text"] == (
        f"⚠️ <b>Не перезвонили</b> — просили: Boris\n{CALLER}\nпропущенный звонок 14 апр., 10:00 MSK"
    )
    assert [b["text"] for row in escalation.params["reply_markup"]["inline_keyboard"] for b in row] == [
        "📞 Перезвонить",
        "Перезвонил(а)",
        "Не дозвониться",
    ]


async def test_an_english_office_nudges_in_english_and_a_russian_member_in_russian(
    start_server: StartServer, tmp_path: Path
) -> None:
    config = office_config(tmp_path, leadline={**BASE["leadline"], "language": "en"}, staff=staff("ru", None))
    clock = Clock(msk(TUESDAY, 8, 0))
    office = Office(await start_server(config, clock=clock), clock)
    await office.call("m1", CALLER, msk(TUESDAY, 10, 0), answered=True, extension="102")
    await office.call("m2", "+79162223344", msk(TUESDAY, 10, 5), answered=True, extension="101")
    await office.sweep(msk(TUESDAY, 10, 20))
    [to_boris] = office.texts(BORIS)
    [to_anna] = office.texts(ANNA)
    assert to_boris == f"📝 <b>Register this contact</b>\n{CALLER}\ncall 14 Apr, 10:00 MSK"
    assert to_anna == "📝 <b>Зарегистрируйте контакт</b>\n+79162223344\nзвонок 14 апр., 10:05 MSK"


async def test_a_failing_source_alerts_each_owner_in_their_language(
    start_server: StartServer, tmp_path: Path
) -> None:
    carol = {"name": "Carol", "telegram_id": CAROL, "role": "owner", "language": "en"}
    config = office_config(tmp_path, staff=staff("ru", None, carol))
    clock = Clock(msk(TUESDAY, 8, 0))
    office = Office(await start_server(config, clock=clock), clock)
    assert (await post(office, msk(TUESDAY, 10, 0))).status == 200
    for minute in (1, 2, 3):
        assert (await post(office, msk(TUESDAY, 10, minute), token="bad-secret-123")).status == 401
    await office.sweep(msk(TUESDAY, 10, 5))
    [russian] = alerts(office, ANNA)
    [english] = alerts(office, CAROL)
    assert russian.startswith("🛑 <b>site не работает</b>: последние 3 запроса отклонены (")
    assert english.startswith("🛑 <b>site is failing</b>: its last 3 requests were refused (")


async def test_a_source_alert_writes_its_times_as_the_readers_cards_do(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Carol reads English: her cards say "14 Apr, 11:50 MSK" while the alert said "14.04 11:50 MSK"."""
    carol = {"name": "Carol", "telegram_id": CAROL, "role": "owner", "language": "en"}
    config = office_config(tmp_path, staff=staff("ru", None, carol))
    clock = Clock(msk(TUESDAY, 8, 0))
    office = Office(await start_server(config, clock=clock), clock)
    for i in range(12):  # a request every ten minutes, 10:00 to 11:50
        at = msk(TUESDAY, 10, 0) + timedelta(minutes=10 * i)
        assert (await post(office, at, phone=f"+7916000{i:04d}")).status == 200
    await office.sweep(msk(TUESDAY, 12, 51))
    assert (await post(office, msk(TUESDAY, 14, 10), phone="+79169999999")).status == 200
    await office.sweep(msk(TUESDAY, 14, 11))

    quiet, again = alerts(office, CAROL)
    assert "nothing since 14 Apr, 11:50 MSK (61 working minutes;" in quiet
    assert again == "✅ <b>site works again</b>: a request was accepted at 14 Apr, 14:10 MSK."
    quiet, again = alerts(office, ANNA)
    assert "ничего с 14 апр., 11:50 MSK (61 рабочая минута;" in quiet
    assert again == "✅ <b>site снова работает</b>: запрос принят в 14 апр., 14:10 MSK."


def test_counts_take_the_russian_plural_forms() -> None:
    """1, 21: one; 2-4, 22: few; 5, 11, 12: many; and English's one and other."""

    def failing(language: str, count: int) -> str:
        fields = {"source": "site", "count": count, "reason": "401"}
        text = render_source_alert(language, "failing", fields, tz=MSK)["text"]
        return str(text).split(" (")[0]

    assert [failing("ru", n) for n in (1, 21, 3, 22, 5, 11, 12)] == [
        "🛑 <b>site не работает</b>: последний 1 запрос отклонён",
        "🛑 <b>site не работает</b>: последний 21 запрос отклонён",
        "🛑 <b>site не работает</b>: последние 3 запроса отклонены",
        "🛑 <b>site не работает</b>: последние 22 запроса отклонены",
        "🛑 <b>site не работает</b>: последние 5 запросов отклонены",
        "🛑 <b>site не работает</b>: последние 11 запросов отклонены",
        "🛑 <b>site не работает</b>: последние 12 запросов отклонены",
    ]
    assert failing("en", 1) == "🛑 <b>site is failing</b>: its last 1 request was refused"
    assert failing("en", 3) == "🛑 <b>site is failing</b>: its last 3 requests were refused"

    silent = {"source": "site", "since": msk(TUESDAY, 10, 0).isoformat(), "usual": 60}
    for minutes, words in ((61, "61 рабочая минута"), (62, "62 рабочие минуты"), (65, "65 рабочих минут")):
        text = render_source_alert("ru", "silent", {**silent, "minutes": minutes}, tz=MSK)["text"]
        assert text.startswith(
            f"🛑 <b>site замолчал</b>: ничего с 14 апр., 10:00 MSK ({words}; обычно пауза не дольше 60 мин)"
        )


def test_a_language_without_a_catalogue_falls_back_to_the_office_language() -> None:
    """A member approved from the bot keeps Telegram's language code ("uk"): the office's Russian is
    the closer guess than the catalogue's English."""
    card = Card(
        kind="register", level=0, nudge_id=1, round=0, contact_id=1, touch_id=1, name=None,
        phones=(CALLER,), emails=(),
        touches=(TouchLine("call", datetime(2026, 4, 14, 7, 0, tzinfo=UTC), "mango", True),),
    )  # fmt: skip
    view = MessageView(
        chat_id=1, staff_id=1, language="uk", tz=ZoneInfo("Europe/Moscow"), cards=(card,), more=0,
        max_tries=3, stale_days=7, office_language="ru",
    )  # fmt: skip
    assert render(view)["text"] == f"📝 <b>Зарегистрируйте контакт</b>\n{CALLER}\nзвонок 14 апр., 10:00 MSK"


def test_a_nudge_writes_a_time_as_the_card_does_in_the_readers_language() -> None:
    """ "05.12" is 12 May to an American: a nudge said it while the card of the same touch said "5 Dec"."""
    at = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    card = Card(
        kind="callback", level=0, nudge_id=1, round=0, contact_id=1, touch_id=1, name=None,
        phones=(CALLER,), emails=(), touches=(TouchLine("call", at, "mango", False),),
    )  # fmt: skip
    said = {}
    for language in ("en", "ru"):
        view = MessageView(
            chat_id=1, staff_id=1, language=language, tz=ZoneInfo("Europe/Moscow"), cards=(card,), more=0,
            max_tries=3, stale_days=7, office_language="ru",
        )  # fmt: skip
        said[language] = render(view)["text"].splitlines()[-1]
        with speaking_locale(language):
            assert when(at.isoformat(), ZoneInfo("Europe/Moscow")) in said[language]  # the card's way
    assert said == {"en": "missed call 5 Dec, 13:00 MSK", "ru": "пропущенный звонок 5 дек., 13:00 MSK"}


def test_a_source_alert_for_a_language_without_a_catalogue_is_in_the_office_language() -> None:
    payload = render_source_alert(
        "uk", "failing", {"source": "site", "count": 3, "reason": "401"}, tz=MSK, office_language="ru"
    )
    assert "последние 3 запроса отклонены" in payload["text"]
