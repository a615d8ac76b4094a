"""Russian and English through aiogram's i18n, with catalogues read straight from the ``.po`` files.

The ``.po`` files under ``bot/locales`` are the only source: they are compiled in memory at start-up
(Babel's ``read_po`` + ``write_mo``), so a stale compiled ``.mo`` can never show an old text. A
person's language is their staff record's, else the one their Telegram app reports, else the
config's ``[leadline] language``.
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from storage.staff import StaffMember

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "messages"


class CatalogueI18n(I18n):
    """aiogram's I18n, loading ``<locale>/LC_MESSAGES/messages.po`` compiled in memory."""

    @contextmanager
    def context(self) -> Iterator[I18n]:
        # aiogram keeps "the current I18n" in a context variable per class; its ``gettext`` reads
        # I18n's, so a subclass must set that one, not its own.
        token = I18n.set_current(self)
        try:
            yield self
        finally:
            I18n.reset_current(token)

    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        translations: dict[str, gettext.GNUTranslations] = {}
        for po in sorted(self.path.glob(f"*/LC_MESSAGES/{self.domain}.po")):
            locale = po.parents[1].name
            with po.open("rb") as source:
                catalog = read_po(source, locale=locale, domain=self.domain)
            compiled = BytesIO()
            write_mo(compiled, catalog)
            compiled.seek(0)
            translations[locale] = gettext.GNUTranslations(compiled)
        return translations


def load_i18n(default_locale: str) -> CatalogueI18n:
    return CatalogueI18n(path=LOCALES_DIR, default_locale=default_locale, domain=DOMAIN)


@functools.cache
def catalogues() -> CatalogueI18n:
    """The catalogues for texts written away from a Telegram update (nudges, digests), read once per
    process: the ``.po`` files do not change while it runs, and a sweep writes one message per person,
    so reading them for each would cost more than the message. Use through :func:`written_for`."""
    return load_i18n("en")


def pick_locale(i18n: I18n, *candidates: str | None) -> str:
    """The first candidate language we have a catalogue for (``en-GB`` counts as ``en``)."""
    for code in candidates:
        if code:
            base = code.replace("_", "-").split("-")[0].lower()
            if base in i18n.available_locales:
                return base
    return i18n.default_locale


@contextmanager
def speaking(i18n: I18n, locale: str) -> Iterator[None]:
    """Render texts for someone other than the person in the current update (an owner, a new member)."""
    with i18n.context(), i18n.use_locale(locale):
        yield


@contextmanager
def written_for(*languages: str | None) -> Iterator[str]:
    """Texts for a reader away from an update, in the first of ``languages`` we have (their staff
    record's, then the config's): yields that locale, for what Babel formats (dates, months).

    Safe on the store's threads: it sets the language in the running thread's own context."""
    i18n = catalogues()
    locale = pick_locale(i18n, *languages)
    with speaking(i18n, locale):
        yield locale


class LanguageMiddleware(I18nMiddleware):
    """The staff member's configured language, else Telegram's ``language_code``, else the default."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        staff: StaffMember | None = data.get("staff")
        user: User | None = data.get("event_from_user")
        return pick_locale(self.i18n, staff.language if staff else None, user.language_code if user else None)
