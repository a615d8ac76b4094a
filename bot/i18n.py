"""Russian and English in the bot's updates, through aiogram's i18n middleware.

The catalogues and the current language are :mod:`bot.catalogues`'s, which the texts written away
from an update (digests, nudges) use without aiogram; this is the part only the running bot needs.
A person's language is their staff record's, else the one their Telegram app reports, else the
config's ``[leadline] language``.
"""

from __future__ import annotations

import gettext
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware

from bot import catalogues
from storage.staff import StaffMember


class CatalogueI18n(I18n):
    """aiogram's I18n on :func:`bot.catalogues.catalogues`, whose language it sets along with its own,
    so that every ``_`` in the bot (aiogram's or :func:`bot.catalogues.gettext`) reads the same."""

    @contextmanager
    def context(self) -> Iterator[I18n]:
        # aiogram keeps "the current I18n" in a context variable per class; its ``gettext`` reads
        # I18n's, so a subclass must set that one, not its own.
        token = I18n.set_current(self)
        try:
            with catalogues.speaking_locale(self.current_locale):
                yield self
        finally:
            I18n.reset_current(token)

    @contextmanager
    def use_locale(self, locale: str) -> Iterator[None]:
        with super().use_locale(locale), catalogues.speaking_locale(locale):
            yield

    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        return dict(catalogues.catalogues())


def load_i18n(default_locale: str) -> CatalogueI18n:
    return CatalogueI18n(path=catalogues.LOCALES_DIR, default_locale=default_locale, domain=catalogues.DOMAIN)


def pick_locale(i18n: I18n, *candidates: str | None) -> str:
    """The first candidate language we have a catalogue for (``en-GB`` counts as ``en``)."""
    return catalogues.pick_locale(i18n.available_locales, i18n.default_locale, *candidates)


@contextmanager
def speaking(i18n: I18n, locale: str) -> Iterator[None]:
    """Render texts for someone other than the person in the current update (an owner, a new member)."""
    with i18n.context(), i18n.use_locale(locale):
        yield


class LanguageMiddleware(I18nMiddleware):
    """The staff member's configured language, else Telegram's ``language_code``, else the default."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        staff: StaffMember | None = data.get("staff")
        user: User | None = data.get("event_from_user")
        return pick_locale(self.i18n, staff.language if staff else None, user.language_code if user else None)
