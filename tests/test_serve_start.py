"""What ``leadline serve`` tells its operator at start, and how it says no."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import socket
from pathlib import Path

import aiohttp

from leadline.load import load_config
from leadline.logs import spellings
from tests.cli import ROOT, free_port, run_cli_sync, start_serve, terminal

CONFIG = """
[leadline]
database = "{db}"

[http]
host = "127.0.0.1"
port = {port}
public_url = "https://hooks.example.com"

[telegram]
token = "env:LEADLINE_TEST_UNSET_BOT_TOKEN"

[log]
level = "warning"

[[sources]]
name = "site-form"
provider = "generic_form"
token = "s3cret/token&1"

[[sources]]
name = "mango"
provider = "mango"
vpbx_api_key = "mango-key"
vpbx_api_salt = "mango-salt"

[[sources]]
name = "mail"
provider = "postmark"
username = "pm"
password = "p@ss"

[[sources]]
name = "tg"
provider = "telegram_business"
"""


async def serve_once(
    tmp_path: Path, *args: str, in_terminal: bool = True
) -> tuple[str, list[dict[str, object]], int, Path]:
    """Start ``leadline serve`` with its stdout a terminal (as a person runs it) or a file (as
    systemd's journal takes it), post one form, stop it; its stdout and JSON log lines."""
    port = free_port()
    db = tmp_path / "start.db"
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(db=db, port=port))
    err = tmp_path / "stderr.txt"
    with contextlib.ExitStack() as stack:
        stderr = stack.enter_context(err.open("w"))
        if in_terminal:
            stdout, printed = stack.enter_context(terminal())
        else:
            out = tmp_path / "stdout.txt"
            stdout, printed = stack.enter_context(out.open("w")), out.read_text
        proc = await start_serve(config, port, stderr=stderr, stdout=stdout, args=args)
        try:
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{port}/hooks/site-form?token=s3cret%2Ftoken%261"
                async with session.post(url, data={"phone": "+7 916 123-45-67"}) as resp:
                    assert resp.status == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout=90)
        text = printed()
    lines = [json.loads(line) for line in err.read_text().splitlines() if line.startswith("{")]
    return text, lines, port, db


async def test_the_start_names_each_url_to_paste_the_bot_the_workers_and_the_database(tmp_path: Path):
    printed, log, port, db = await serve_once(tmp_path)
    assert printed.splitlines() == [
        f"Leadline is listening on http://127.0.0.1:{port} (Ctrl+C stops it).",
        "Sources (4; paste each URL into its provider):",
        "  site-form (generic_form): https://hooks.example.com/hooks/site-form?token=s3cret%2Ftoken%261",
        "  mango (mango): https://hooks.example.com/hooks/mango"
        " (Mango adds /events/call, /events/summary, /events/recording)",
        "  mail (postmark): https://pm:p%40ss@hooks.example.com/hooks/mail",
        "  tg (telegram_business): the Telegram bot (nothing to paste: the owner connects the bot in"
        " Telegram, Settings → Telegram Business → Chatbots)",
        "Bot: off: [telegram] token reads the environment variable LEADLINE_TEST_UNSET_BOT_TOKEN,"
        " which is not set; nudges and digests go to the log",
        "Workers: 1 process (set [http] workers to use more cores)",
        f"Database: {db}",
        "Log: JSON lines on stderr, level warning",
        "Warning: sources[3]: telegram_business updates reach Leadline through its bot: set [telegram] token,"
        " or nothing arrives",
    ]
    # [log] level = "warning": the info line of each request is not written.
    assert not [line for line in log if line.get("msg") == "request"], log


async def test_a_stdout_that_is_not_a_terminal_gets_each_secret_masked_and_where_to_see_them(
    tmp_path: Path,
):
    """Under the shipped unit systemd sends stdout to the journal: the tokens and Postmark's
    password went there in the clear on every start. A file stands in for the journal here."""
    printed, _, _, _ = await serve_once(tmp_path, in_terminal=False)
    assert printed.splitlines()[1:5] == [
        "Sources (4; secrets shown as *** because stdout is not a terminal:"
        " `leadline check-config --urls` prints each URL to paste in full):",
        "  site-form (generic_form): https://hooks.example.com/hooks/site-form?token=***",
        "  mango (mango): https://hooks.example.com/hooks/mango"
        " (Mango adds /events/call, /events/summary, /events/recording)",
        "  mail (postmark): https://pm:***@hooks.example.com/hooks/mail",
    ]
    written = load_config(tmp_path / "config.toml").secret_values()
    assert written == {"s3cret/token&1", "mango-key", "mango-salt", "p@ss"}
    assert not [s for s in spellings(written) if s in printed], printed
    # What the line names prints what a terminal would have shown.
    urls = run_cli_sync("check-config", "--urls", "--config", str(tmp_path / "config.toml"))
    assert urls.code == 0, urls.output
    assert (
        "  site-form (generic_form): https://hooks.example.com/hooks/site-form?token=s3cret%2Ftoken%261\n"
        in urls.output
    )
    assert "  mail (postmark): https://pm:p%40ss@hooks.example.com/hooks/mail\n" in urls.output


async def test_log_level_on_the_command_line_wins_and_the_scheduler_keeps_quiet(tmp_path: Path):
    printed, log, _, _ = await serve_once(tmp_path, "--log-level", "info")
    assert "Log: JSON lines on stderr, level info" in printed
    [request] = [line for line in log if line.get("msg") == "request"]
    assert request["status"] == 200
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(request["time"])), request
    # APScheduler said "Added job", "Scheduler started" and two lines per run at info.
    assert not [line for line in log if str(line.get("logger", "")).startswith("apscheduler")], log
    assert "s3cret" not in json.dumps(log)


def test_a_busy_port_is_one_line_naming_it_and_a_documented_exit_code(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.toml"
        config.write_text(CONFIG.format(db=tmp_path / "busy.db", port=port))
        result = run_cli_sync("serve", "--config", str(config))
    assert result.code == 4, result.output
    assert result.output.strip().splitlines() == [
        f"Port {port} on 127.0.0.1 is in use by another program: stop it, or choose another port"
        " with --port or [http] port."
    ]


def test_an_smtp_port_that_is_taken_is_one_line_naming_the_source_and_exit_4(tmp_path: Path):
    """Like the HTTP port: no traceback, and an exit code the unit's restart rule understands."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.toml"
        mx = f'\n[[sources]]\nname = "mx"\nprovider = "smtp"\nport = {port}\naddresses = ["leads@example.com"]\n'
        config.write_text(CONFIG.format(db=tmp_path / "mx.db", port=free_port()) + mx)
        result = run_cli_sync("serve", "--config", str(config))
    assert result.code == 4, result.output
    assert result.output.strip().splitlines() == [
        f"SMTP source 'mx' cannot listen on 127.0.0.1:{port}: the port is in use by another program;"
        " stop it, or set another port for the source."
    ]


async def test_without_a_public_url_the_urls_to_paste_use_the_port_it_listens_on(tmp_path: Path):
    """``--port`` (the config says 8080 here) is where a provider reaches a Leadline with no
    ``[http] public_url``: the start names that port, not the default's."""
    port = free_port()
    config = tmp_path / "config.toml"
    text = CONFIG.format(db=tmp_path / "start.db", port=8080).replace(
        'public_url = "https://hooks.example.com"\n', ""
    )
    config.write_text(text)
    with terminal() as (stdout, printed_so_far), (tmp_path / "stderr.txt").open("w") as stderr:
        proc = await start_serve(config, port, stderr=stderr, stdout=stdout, args=("--port", str(port)))
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=90)
        printed = printed_so_far()
    assert f"  site-form (generic_form): http://127.0.0.1:{port}/hooks/site-form?token=" in printed, printed


async def test_the_example_config_on_another_port_names_that_port_in_the_urls_to_paste(tmp_path: Path):
    """README suggests ``--port`` when 8080 is busy: the example said it listened on that port and
    then told to paste ``http://127.0.0.1:8080/hooks/site-form``, its ``public_url``'s port."""
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text((ROOT / "config.example.toml").read_text())
    with terminal() as (stdout, printed_so_far), (tmp_path / "stderr.txt").open("w") as stderr:
        proc = await start_serve(config, port, stderr=stderr, stdout=stdout, args=("--port", str(port)))
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=90)
        printed = printed_so_far()
    assert f"Leadline is listening on http://127.0.0.1:{port} (Ctrl+C stops it)." in printed, printed
    assert (
        f"  site-form (generic_form): http://127.0.0.1:{port}/hooks/site-form?token=change-me-site-form-token"
        in printed
    ), printed
