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


def warnings(config: Config) -> list[str]:
    """``key.path: what to do`` for each secret still holding an example value, and for chats that
    cannot arrive as configured."""
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
        for key, value in source:
            if isinstance(value, SecretStr) and EXAMPLE_VALUE.match(value.get_secret_value().strip()):
                found.append(
                    f"sources[{i}].{key}: still the example's value (change-me-…); anyone who read the"
                    " example can post to this source: set a long random one before going live"
                )
    return found
