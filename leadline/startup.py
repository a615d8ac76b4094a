"""What ``leadline serve`` tells its operator at start: the URLs to paste, the bot, the processes.

These lines go to stdout with ``click.echo`` and never through the log. In a terminal they carry
each source's token on purpose (the operator owns it and must paste it into the provider). A stdout
that is not a terminal is a log in all but name (systemd sends it to the journal, Docker and nohup
to a file), so there each secret is masked as the log masks it, and the line names
``leadline check-config --urls``, which prints the URLs in full when the operator asks.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote, urlsplit

from capture.providers import PROVIDERS
from leadline.config import Config, SourceConfig
from leadline.config_checks import warnings
from leadline.logs import scrub, spellings
from leadline.summary import VIA_BOT, public_base


def paste_address(config: Config, source: SourceConfig, base_url: str | None = None) -> str:
    """Where a source's requests must go, secrets included: exactly what the operator pastes."""
    if PROVIDERS[source.provider].via_bot:
        return VIA_BOT
    base = f"{base_url or config.http.public_url}/hooks/{source.name}"
    token = source.secret_value("token")
    query = f"?token={quote(token, safe='')}" if token else ""
    match source.provider:
        case "smtp":
            from capture.providers.smtp import DEFAULT_PORT as SMTP_PORT

            port = SMTP_PORT if source.port is None else source.port
            return f"Leadline takes mail over SMTP on {source.host or '127.0.0.1'}:{port}"
        case "imap":
            port = source.port or (993 if source.security == "tls" else 143)
            return f"Leadline fetches mail from {source.host or '127.0.0.1'}:{port} ({source.mailbox})"
        case "asterisk_ami":
            from capture.providers.asterisk_ami import DEFAULT_PORT as AMI_PORT

            return f"Leadline connects to AMI at {source.host or '127.0.0.1'}:{source.port or AMI_PORT}"
        case "postmark":
            parts = urlsplit(base)
            user = quote(source.username or "", safe="")
            password = quote(source.secret_value("password"), safe="")
            return parts._replace(netloc=f"{user}:{password}@{parts.netloc}").geturl() + query
        case "twilio":
            return f"voice {base}/voice{query}, status callback {base}/status{query}"
        case "mango":
            # No query: the config refuses a token here, as Mango appends its paths after the URL.
            return f"{base} (Mango adds {', '.join(PROVIDERS['mango'].appends_paths)})"
        case _:
            return base + query


def source_lines(config: Config, base_url: str, *, terminal: bool) -> list[str]:
    """Each source's URL to paste, its secrets shown only when ``terminal`` says a person reads them."""
    if not config.sources:
        return ["Sources: none; add a [[sources]] table to the config (README, Sources)."]
    count = len(config.sources)
    lines = [
        f"Sources ({count}; paste each URL into its provider):"
        if terminal
        else f"Sources ({count}; secrets shown as *** because stdout is not a terminal:"
        " `leadline check-config --urls` prints each URL to paste in full):"
    ]
    hidden = spellings(config.secret_values())
    for source in config.sources:
        address = paste_address(config, source, base_url)
        lines.append(
            f"  {source.name} ({source.provider}): {address if terminal else scrub(address, hidden)}"
        )
    return lines


def bot_line(config: Config, config_file: Path) -> str:
    """Whether the bot runs, how, and if not, what in the config keeps it off."""
    telegram = config.telegram
    if telegram.token.get_secret_value():
        api = f", Bot API at {telegram.api_url}" if telegram.api_url else ""
        if telegram.webhook_url:
            return f"Bot: on, Telegram posts updates to {telegram.webhook_url}{api}"
        return f"Bot: on, long polling{api}"
    return f"Bot: off: {_why_no_token(config_file)}; nudges and digests go to the log"


def _why_no_token(config_file: Path) -> str:
    """The token as written (``env:NAME`` or nothing), which the validated config no longer holds."""
    try:
        written = tomllib.loads(config_file.read_text("utf-8")).get("telegram", {}).get("token", "")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        written = ""
    if isinstance(written, str) and written.startswith("env:"):
        name = written[4:]
        state = "is empty" if name in os.environ else "is not set"
        return f"[telegram] token reads the environment variable {name}, which {state}"
    return "[telegram] token is empty"


def start_lines(
    config: Config,
    config_file: Path,
    listening: Sequence[tuple[str, int]],
    log_level: str,
    *,
    terminal: bool,
) -> list[str]:
    """The operator's summary, printed once the port is bound and every part has started.

    ``terminal``: whether stdout is one; only then are the sources' secrets shown."""
    where = ", ".join(f"http://{f'[{h}]' if ':' in h else h}:{p}" for h, p in listening)
    lines = [f"Leadline is listening on {where} (Ctrl+C stops it)."]
    lines += source_lines(config, public_base(config, listening), terminal=terminal)
    lines.append(bot_line(config, config_file))
    workers = config.http.workers
    lines.append(
        "Workers: 1 process (set [http] workers to use more cores)"
        if workers == 1
        else f"Workers: {workers} processes on port {listening[0][1]}; this one also runs the bot,"
        " the scheduler and the mail and AMI sources"
    )
    lines.append(f"Database: {config.database_path}")
    lines.append(f"Log: JSON lines on stderr, level {log_level.lower()}")
    lines += [f"Warning: {w}" for w in warnings(config)]
    return lines
