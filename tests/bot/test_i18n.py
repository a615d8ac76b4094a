"""Russian and English: every text the bot can show is in both catalogues, and each person reads their own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

from bot.callbacks import CardCB
from bot.catalogues import LOCALES_DIR
from tests.bot.conftest import ANNA, BORIS, BotEnv, staff_with_languages
from tests.bot.test_registration import post_form, the_touch

ROOT = Path(__file__).resolve().parents[2]
#: The extraction command docs/bot.md gives maintainers (``_`` with one argument, or three for plurals).
EXTRACT = ["pybabel", "extract", "--no-default-keywords", "-k", "_:1,2,3t", "-k", "_:1,1t", "--sort-output"]
#: What it reads: the bot, which holds every text a person reads (digests, nudges and alerts too).
SOURCES = [ROOT / "bot"]


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w*)\}", text))


def extracted(tmp_path: Path) -> set[str | tuple[str, str]]:
    """The msgids the documented command extracts (a plural as its pair)."""
    pot = tmp_path / "messages.pot"
    CommandLineInterface().run(["pybabel", "--quiet", *EXTRACT[1:], "-o", str(pot), *map(str, SOURCES)])  # type: ignore[no-untyped-call]
    with pot.open("rb") as f:
        return {m.id for m in read_po(f) if m.id}


def test_every_text_in_the_code_is_translated_in_both_catalogues(tmp_path: Path) -> None:
    wanted = extracted(tmp_path)
    assert len(wanted) > 200
    for locale in ("ru", "en"):
        with (LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as f:
            catalog = read_po(f, locale=locale)
        have = {m.id: m for m in catalog if m.id}
        assert wanted - set(have) == set(), f"{locale}: texts missing from the catalogue"
        assert set(have) - wanted == set(), f"{locale}: texts no longer in the code"
        for msgid, message in have.items():
            assert not message.fuzzy, (locale, msgid)
            forms = (
                [str(f) for f in message.string]
                if isinstance(message.string, (tuple, list))
                else [str(message.string or "")]
            )
            assert all(forms), f"{locale}: no translation for {msgid!r}"
            source = msgid if isinstance(msgid, str) else msgid[0]
            for form in forms:
                assert placeholders(form) == placeholders(source), (locale, msgid, form)
    with (LOCALES_DIR / "ru" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        assert read_po(f, locale="ru").num_plurals == 3


def test_pybabel_sees_every_call_of_the_translation_function(tmp_path: Path) -> None:
    """A call the extractor cannot see is never translated and no catalogue check notices: a plural
    with a trailing comma after its count, or a ``_()`` inside an f-string. Python's own parser sees
    them all; each must be among what pybabel extracted."""
    seen: set[str | tuple[str, str]] = set()
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")) if source.is_dir() else [source]:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (
                    isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_"
                ):
                    continue
                texts = [
                    a.value for a in node.args[:2] if isinstance(a, ast.Constant) and isinstance(a.value, str)
                ]
                if len(node.args) == 3 and len(texts) == 2:
                    seen.add((texts[0], texts[1]))
                elif texts:
                    seen.add(texts[0])
    assert len(seen) > 200
    assert seen - extracted(tmp_path) == set()


async def test_a_russian_and_an_english_staff_member_each_read_their_language(bot_env: BotEnv) -> None:
    srv = await bot_env.start(staff=staff_with_languages(ru=ANNA, en=BORIS))
    # the configured language wins over what the Telegram app says
    anna = await bot_env.says(ANNA, "/start", language="en")
    boris = await bot_env.says(BORIS, "/start", language="ru")
    assert anna.params["text"].startswith("Здравствуйте, Anna! Вы зарегистрированы как владелец.")
    assert boris.params["text"].startswith("Hello, Boris! You are registered as staff.")

    await post_form(srv, name="Ivan", phone="+7 916 123-45-67")
    touch = the_touch(srv)
    ru_card = await bot_env.says(ANNA, "8 916 123-45-67", language="en")
    en_card = await bot_env.says(BORIS, "+79161234567", language="ru")
    assert "Заявка с сайта" in ru_card.params["text"] and "Первое обращение" in ru_card.params["text"]
    assert "Form" in en_card.params["text"] and "First contact" in en_card.params["text"]
    ru_buttons = [b["text"] for b in bot_env.tg.buttons(ANNA, ru_card.result["message_id"])]
    en_buttons = [b["text"] for b in bot_env.tg.buttons(BORIS, en_card.result["message_id"])]
    assert ru_buttons == ["Лид: 🔥 горячий", "Лид: 🌤 тёплый", "Лид: ❄️ холодный", "Не лид"]
    assert en_buttons == ["Lead: 🔥 hot", "Lead: 🌤 warm", "Lead: ❄️ cold", "Not a lead"]

    t, c = touch["id"], touch["contact_id"]
    await bot_env.press(ANNA, ru_card.result["message_id"], CardCB(act="lead", t=t, c=c, v="hot").pack())
    assert "✏️ Введите: потребность (обязательно)." in bot_env.text(ANNA, ru_card.result["message_id"])
    answer = await bot_env.press(BORIS, en_card.result["message_id"], CardCB(act="nal", t=t, c=c).pack())
    assert answer == {"callback_query_id": answer["callback_query_id"]}
    assert "Why is it not a lead?" in bot_env.text(BORIS, en_card.result["message_id"])


async def test_a_stranger_is_answered_in_the_language_of_their_telegram_app(bot_env: BotEnv) -> None:
    await bot_env.start()
    russian = await bot_env.says(555, "привет", language="ru")
    english = await bot_env.says(556, "hi", language="en-GB")
    assert russian.params["text"].startswith("Извините, этот бот только для сотрудников")
    assert english.params["text"].startswith("Sorry, this bot is only for the company's staff.")
