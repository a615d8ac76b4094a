"""The bot's words in each language, read straight from the ``.po`` files, without aiogram.

Digests, nudges and source alerts are written by a process that may have no bot at all (no token:
they go to the log), and aiogram costs such a process seconds and ~150 MB to import. So the
catalogues and the current language live here, on Babel and the standard ``gettext``; aiogram's
I18n (:mod:`bot.i18n`) is handed these same catalogues and sets this same language for an update.

The ``.po`` files are the only source: they are compiled in memory (Babel's ``read_po`` +
``write_mo``), so a stale compiled ``.mo`` can never show an old text.
"""

from __future__ import annotations

import functools
import gettext as stdlib_gettext
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from io import BytesIO
from pathlib import Path

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "messages"
#: The catalogues' own language: the words as the code writes them.
SOURCE_LOCALE = "en"

_locale: ContextVar[str] = ContextVar("leadline_locale", default=SOURCE_LOCALE)


def read_catalogues(
    path: Path = LOCALES_DIR, domain: str = DOMAIN
) -> dict[str, stdlib_gettext.GNUTranslations]:
    """Every ``<locale>/LC_MESSAGES/<domain>.po`` under ``path``, compiled in memory."""
    # Babel's catalogue machinery loads with the first text, not with every process (bench/idle.py).
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    translations: dict[str, stdlib_gettext.GNUTranslations] = {}
    for po in sorted(path.glob(f"*/LC_MESSAGES/{domain}.po")):
        locale = po.parents[1].name
        with po.open("rb") as source:
            catalog = read_po(source, locale=locale, domain=domain)
        compiled = BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        translations[locale] = stdlib_gettext.GNUTranslations(compiled)
    return translations


@functools.cache
def catalogues() -> Mapping[str, stdlib_gettext.GNUTranslations]:
    """Read once per process: the ``.po`` files do not change while it runs, and a sweep writes one
    message per person, so reading them for each would cost more than the message."""
    return read_catalogues()


def current_locale() -> str:
    return _locale.get()


def gettext(singular: str, plural: str | None = None, n: int = 1) -> str:
    """The text in the current language; the same signature and fallbacks as aiogram's ``gettext``,
    so pybabel extracts ``_(one)`` and ``_(one, many, n)`` alike."""
    translator = catalogues().get(_locale.get())
    if translator is None:
        return singular if n == 1 or plural is None else plural
    if plural is None:
        return translator.gettext(singular)
    return translator.ngettext(singular, plural, n)


def pick_locale(available: Collection[str], default: str, *candidates: str | None) -> str:
    """The first candidate language we have a catalogue for (``en-GB`` counts as ``en``), else ``default``."""
    for code in candidates:
        if code:
            base = code.replace("_", "-").split("-")[0].lower()
            if base in available:
                return base
    return default


@contextmanager
def speaking_locale(locale: str) -> Iterator[None]:
    """Texts in ``locale`` inside the block. Safe on the store's threads: it sets the language in the
    running thread's (or task's) own context."""
    token = _locale.set(locale)
    try:
        yield
    finally:
        _locale.reset(token)


@contextmanager
def written_for(*languages: str | None) -> Iterator[str]:
    """Texts for a reader away from an update, in the first of ``languages`` we have (their staff
    record's, then the config's): yields that locale, for what Babel formats (dates, months)."""
    locale = pick_locale(catalogues(), SOURCE_LOCALE, *languages)
    with speaking_locale(locale):
        yield locale
