"""Warnings about a config that is valid but not ready for real traffic.

They are not errors: ``config.example.toml`` must pass and run as shipped, with its example token.
``leadline check-config`` and ``leadline serve`` print them, each with its key path.
"""

from __future__ import annotations

import re

from pydantic import SecretStr

from leadline.config import Config

#: How the example config and the docs spell a value to be replaced (``change-me-site-form-token``).
EXAMPLE_VALUE = re.compile(r"change-?me", re.IGNORECASE)


#: A prefix this short or shorter is a country code (or most of one): every caller from there is blocked.
COUNTRY_PREFIX_DIGITS = 3


def warnings(config: Config) -> list[str]:
    """``key.path: what to do`` for each secret still holding an example value, for chats that cannot
    arrive as configured, for a Binotel source whose numbers are not read as Ukrainian, for each
    ``[[block]]`` rule that is valid but likely blocks more than meant, and for each outgoing
    webhook whose secret cannot sign."""
    return _source_warnings(config) + _block_warnings(config) + _webhook_warnings(config)


def _webhook_warnings(config: Config) -> list[str]:
    """A secret the signing library cannot read fails every delivery to that CRM (each recorded and
    retried, the others unharmed). A warning, not an error: a CRM's key must never stop capture."""
    if not config.webhooks:
        return []
    from standardwebhooks import Webhook  # only a config with webhooks pays for it

    found: list[str] = []
    for i, hook in enumerate(config.webhooks):
        try:
            Webhook(hook.secret.get_secret_value())
        except Exception:
            found.append(
                f"webhooks[{i}].secret: not a Standard Webhooks secret: write whsec_ followed by base64,"
                " as the receiver gives it; until then every delivery to it fails"
            )
    return found


def _block_warnings(config: Config) -> list[str]:
    found: list[str] = []
    short_calls = [i for i, rule in enumerate(config.block) if rule.short_call_seconds is not None]
    for i, rule in enumerate(config.block):
        if rule.prefix is not None and len(rule.prefix) - 1 <= COUNTRY_PREFIX_DIGITS:
            found.append(
                f"block[{i}].prefix: {rule.prefix} is a country code or little more: it blocks every"
                " caller whose number starts with it; give more digits (e.g. +7800)"
            )
    for i in short_calls[1:]:
        found.append(
            f"block[{i}].short_call_seconds: block[{short_calls[0]}] gives one too; the longest applies"
        )
    return found


def _source_warnings(config: Config) -> list[str]:
    found: list[str] = []
    business = [i for i, s in enumerate(config.sources) if s.provider == "telegram_business"]
    if business and not config.telegram.token.get_secret_value():
        found.append(
            f"sources[{business[0]}]: telegram_business updates reach Leadline through its bot:"
            " set [telegram] token, or nothing arrives"
        )
    for extra in business[1:]:
        found.append(
            f"sources[{extra}]: only the first telegram_business source (sources[{business[0]}]) takes"
            " the bot's business updates"
        )
    for i, source in enumerate(config.sources):
        region = source.region or config.leadline.region
        if source.provider == "binotel" and region != "UA":
            # docs/telephony.md: read elsewhere, 0440000012 is not the caller's number, so it matches
            # no contact and the dialled line no tracking number.
            found.append(
                f"sources[{i}].region: Binotel sends Ukrainian numbers in national format (0440000012);"
                f" read in region {region} they are not the callers' numbers, so calls lose their contact"
                ' and campaign: set region = "UA"'
            )
        for key, value in source:
            if isinstance(value, SecretStr) and EXAMPLE_VALUE.match(value.get_secret_value().strip()):
                found.append(
                    f"sources[{i}].{key}: still the example's value (change-me-…); anyone who read the"
                    " example can post to this source: set a long random one before going live"
                )
    return found
