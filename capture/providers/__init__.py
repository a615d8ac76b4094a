"""Every provider Leadline takes events from, by the name a source's ``provider`` key gives: the one list.

The pipeline, the app's background runners, the config check at start-up and the README's provider
table (``tests/test_providers.py`` holds it and the samples' manifest to this) all read
:data:`PROVIDERS`. A provider's module is imported when it is first used: importing all of them
adds a quarter to the import time of every ``leadline`` command (``python -X importtime``; aiosmtpd,
twilio and aioimaplib weigh most), which ``check-config`` and the reports would pay for nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from capture.pipeline import Capture
    from capture.providers.base import Provider
    from leadline.config import SourceConfig

#: What runs a source that is not a webhook (SMTP, IMAP, AMI) while the application runs.
Background = Callable[["Capture", "SourceConfig"], AbstractAsyncContextManager[None]]


@dataclass(frozen=True, slots=True)
class Registered:
    """A provider as the config and the app know it before its module ``capture.providers.<name>``
    is imported."""

    name: str
    #: The keys a source of this provider cannot work without; ``"a|b"`` is either.
    secrets: tuple[str, ...]
    #: False for a source Leadline connects to or listens for itself (its module's ``background``).
    over_http: bool = True
    #: The keys a source needs to call a client back (``capture/dial/<name>.py``); empty: it cannot.
    dial: tuple[str, ...] = ()
    #: True for updates the Telegram bot receives and hands to capture (no ``background`` of its own).
    via_bot: bool = False
    #: The paths the provider appends after the URL it is given (Mango's ``/events/summary``): a
    #: ``?token=`` in that URL would end up before them, so such a source cannot take a ``token``.
    appends_paths: tuple[str, ...] = ()

    def _module(self) -> ModuleType:
        return import_module(f"{__name__}.{self.name}")

    def load(self) -> Provider:
        """The module's ``PROVIDER``: what verifies and parses this provider's requests."""
        return cast("Provider", self._module().PROVIDER)

    def background(self) -> Background:
        """The module's ``background``, for a provider that is not over HTTP."""
        return cast(Background, self._module().background)


PROVIDERS: Mapping[str, Registered] = {
    p.name: p
    for p in (
        Registered("generic_form", ("token",)),
        Registered("standard_webhooks", ("secret",)),
        Registered(
            "mango",
            ("vpbx_api_key", "vpbx_api_salt"),
            dial=("vpbx_api_key", "vpbx_api_salt"),
            appends_paths=("/events/call", "/events/summary", "/events/recording"),
        ),
        Registered("zadarma", ("api_secret",), dial=("api_key", "api_secret")),
        Registered("twilio", ("auth_token",), dial=("api_key", "auth_token")),
        Registered("uis_comagic", ("token",), dial=("api_key",)),
        Registered("binotel", ("token",), dial=("api_key", "api_secret")),
        Registered("asterisk_ami", ("username", "secret"), over_http=False, dial=("username", "secret")),
        Registered("freeswitch", ("token",), dial=("host", "password")),
        Registered("tilda", ("token",)),
        Registered("typeform", ("secret",)),
        Registered("jotform", ("token",)),
        Registered("webflow", ("secret|token",)),
        Registered("google_forms", ("token",)),
        Registered("elementor", ("token",)),
        Registered("mailgun", ("webhook_signing_key",)),
        Registered("sendgrid", ("token",)),
        Registered("postmark", ("username", "password")),
        Registered("smtp", (), over_http=False),
        Registered("imap", ("username", "password"), over_http=False),
        Registered("telegram_business", (), over_http=False, via_bot=True),
        Registered("whatsapp", ("app_secret", "verify_token")),
        Registered("vk", ("secret", "confirmation")),
        Registered("avito", ("token",)),
    )
}
