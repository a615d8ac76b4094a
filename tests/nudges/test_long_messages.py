"""Long names and many cards: every nudge message fits Telegram's 4096 characters, and no card is lost."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import StartServer
from tests.fake_telegram import FakeTelegram
from tests.nudges.conftest import ANNA, TUESDAY, Clock, Office, msk, office_config, until


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def long_name(i: int) -> str:
    """500 characters: Cyrillic and emoji (two UTF-16 code units each), as people paste them."""
    return (f"Lead{i:02d} " + "Ярослава😀" * 60)[:500]


async def _office(tg: FakeTelegram, start_server: StartServer, tmp_path: Path, **overrides: object) -> Office:
    config = office_config(tmp_path, telegram={"token": tg.token, "api_url": tg.api_url}, **overrides)
    clock = Clock(msk(TUESDAY, 8, 0))
    return Office(await start_server(config, clock=clock), clock)


def _settled(office: Office) -> bool:
    return int(office.srv.scalar("SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')")) == 0


async def test_ten_form_leads_with_500_character_names_all_reach_telegram(
    tg: FakeTelegram, start_server: StartServer, tmp_path: Path
) -> None:
    office = await _office(tg, start_server, tmp_path)
    for i in range(10):
        await office.form(msk(TUESDAY, 10, 0), name=long_name(i), phone=f"+7916000{i:04d}")
    assert len(office.srv.scalar("SELECT name FROM contacts LIMIT 1")) == 500

    await office.sweep(msk(TUESDAY, 10, 15))
    await until(lambda: _settled(office))
    assert office.srv.rows("SELECT last_error FROM outbox WHERE status = 'failed'") == []
    texts = [str(m["text"]) for m in tg.sent("sendMessage", chat_id=ANNA)]
    assert texts and all(utf16(t) <= 4096 for t in texts)
    for i in range(10):
        assert any(f"Lead{i:02d} Ярослава" in t for t in texts), i
    assert "…" in texts[0]  # the names are cut, visibly


async def test_more_cards_than_fit_in_one_message_wait_for_the_next_one(
    tg: FakeTelegram, start_server: StartServer, tmp_path: Path
) -> None:
    office = await _office(tg, start_server, tmp_path, nudges={"max_items": 30})
    for i in range(30):
        await office.form(msk(TUESDAY, 10, 0), name=long_name(i), phone=f"+7916000{i:04d}")

    for mm in range(15, 60):  # a sweep every minute; one message per five minutes
        await office.sweep(msk(TUESDAY, 10, mm))
    await until(lambda: _settled(office))
    assert office.srv.rows("SELECT last_error FROM outbox WHERE status = 'failed'") == []
    texts = [str(m["text"]) for m in tg.sent("sendMessage", chat_id=ANNA)]
    assert len(texts) > 1 and all(utf16(t) <= 4096 for t in texts)
    assert "в следующем сообщении" in texts[0]
    for i in range(30):
        assert sum(f"Lead{i:02d} Ярослава" in t for t in texts) == 1, i
