"""The one-screen summary ``leadline check-config`` prints for a valid config."""

from __future__ import annotations

from collections.abc import Sequence

from capture.providers import PROVIDERS
from leadline.config import Config, SourceConfig

#: Where a source whose messages come through the bot (``telegram_business``) is reached, as
#: check-config and ``leadline serve`` both say it: it has no URL, and its ``/hooks/`` path answers 405.
VIA_BOT = (
    "the Telegram bot (nothing to paste: the owner connects the bot in Telegram,"
    " Settings → Telegram Business → Chatbots)"
)


def public_base(config: Config, listening: Sequence[tuple[str, int]]) -> str:
    """The address providers reach: ``[http] public_url`` when the config gives one, else where this
    process listens (``--host``/``--port`` included), not the default's port."""
    if "public_url" in config.http.model_fields_set or not listening:
        return config.http.public_url
    host, port = listening[0]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def summarize(config: Config) -> str:
    # Without [http] public_url, the address of [http] host and port, as `serve` names it.
    base = public_base(config, [(config.http.host, config.http.port)])
    lines = [
        "Config is valid.",
        f"  database:   {config.database_path}",
        f"  timezone:   {config.leadline.timezone}, phone region {config.leadline.region},"
        f" language {config.leadline.language}",
        f"  http:       {config.http.host}:{config.http.port}, public URL {base},"
        f" workers: {config.http.workers}"
        + (
            f", X-Forwarded-For believed from {', '.join(map(str, config.http.trusted_proxies))}"
            if config.http.trusted_proxies
            else ""
        ),
        "  telegram:   "
        + (
            "bot token set"
            if config.telegram.token.get_secret_value()
            else "no token: nudges and digests go to the log"
        ),
        f"  working:    {', '.join(config.working_time.days)} {config.working_time.hours},"
        f" holidays {config.working_time.holidays or 'none'}",
        f"  SLA:        register {config.sla.registration_minutes} min, call back {config.sla.callback_minutes} min,"
        f" escalate {config.sla.escalation_minutes} min",
        f"  staff:      {len(config.staff)}" + "".join(f"\n    - {s.name} ({s.role})" for s in config.staff),
        f"  campaigns:  {len(config.campaigns)}"
        + "".join(f"\n    - {c.name} ({c.kind})" for c in config.campaigns),
        f"  sources:    {len(config.sources)}",
    ]
    for s in config.sources:
        where = (
            f"{base}/hooks/{s.name}"
            if PROVIDERS[s.provider].over_http
            else VIA_BOT
            if PROVIDERS[s.provider].via_bot
            else f"{s.host or '?'}:{s.port or '?'}"
        )
        campaign = f", campaign {s.campaign}" if s.campaign else ""
        lines.append(f"    - {s.name} ({s.provider}) at {where}{campaign}{_guards(s)}")
    return "\n".join(lines)


def _guards(source: SourceConfig) -> str:
    """What a source asks of a request besides its provider's own check, so a missing one shows."""
    guards = (["token"] if source.token is not None else []) + (
        [f"allow_ips {', '.join(map(str, source.allow_ips))}"] if source.allow_ips else []
    )
    return f"; needs {' and '.join(guards)}" if guards else ""
