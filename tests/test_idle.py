"""``leadline serve`` without a bot token stays light: what it does not use, it never imports."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from tests.cli import free_port, start_serve

CONFIG = """
[leadline]
database = "{db}"

[http]
host = "127.0.0.1"
port = {port}
workers = 1

[telegram]
token = ""

[notify]
# A card on arrival asks the working-time question at the first touch (tests/bot/test_arrival.py).
on_arrival = false

[[staff]]
name = "Anna"
telegram_id = 111
role = "owner"

# A campaign's address is a lookup key at start; email-validator loads with the first address taken in.
[[campaigns]]
name = "brand"
emails = ["sales@example.com"]

[[sources]]
name = "form"
provider = "generic_form"
token = "idle-token"

[[sources]]
name = "twilio"
provider = "twilio"
auth_token = "idle-twilio-token"
forward_to = "+74950000001"
"""

#: aiogram (~150 MB and seconds), the chart (and numpy, which sqlite-utils would import for it), the
#: export and Twilio's helpers: none is needed to capture a request or to write nudges and digests
#: to the log.
HEAVY = ("aiogram", "matplotlib", "numpy", "openpyxl", "twilio")
#: Our own modules a process that only captures does not need yet.
LATER = (
    "storage.reports.report",
    "storage.erasure",
    "storage.retention",
    "bot.digest",
    "leadline.report_cli",
    "leadline.journal_cli",
    "leadline.privacy_cli",
    "leadline.backup_cli",
    "email_validator",  # with the first address
    "leadline.api",  # with the first API request (leadline/api_routes.py)
    "leadline.api_models",
)


def imported(stderr: str) -> set[str]:
    """Every module the process imported, from Python's own ``-X importtime`` report."""
    return {m[1] for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)$", stderr, re.M)}


@pytest.mark.timeout(180)
async def test_serve_without_a_token_never_imports_the_bot_the_chart_the_export_or_twilio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(db=tmp_path / "idle.db", port=port))
    log = tmp_path / "serve.log"
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # the child reports each import on stderr
    with log.open("w") as stderr:
        proc = await start_serve(config, port, stderr=stderr)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    f"http://127.0.0.1:{port}/hooks/form?token=idle-token",
                    data={"phone": "+7 916 123-45-67", "name": "Ivan"},
                ) as resp:
                    assert resp.status == 200, await resp.text()
                # Loads the Twilio source's module (its methods), which needs no twilio package.
                async with session.put(f"http://127.0.0.1:{port}/hooks/twilio") as resp:
                    assert resp.status == 405, await resp.text()
        finally:
            proc.terminate()
            await proc.wait()
    modules = imported(log.read_text(errors="replace"))
    assert "leadline.scheduler" in modules and "bot.outbox" in modules  # the whole primary started
    assert {m.split(".")[0] for m in modules} & set(HEAVY) == set()
    # What only a report, an erasure, a daily job or another command uses loads with it, not at start.
    assert modules & set(LATER) == set()
    # The public holidays of ~250 countries load with the first working-time question, not at start.
    assert [m for m in modules if m.startswith("holidays.countries")] == []
