"""What ``leadline serve`` tells its operator at start, and how it says no."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.cli import run_cli_sync

CONFIG = """
[leadline]
database = "{db}"

[http]
host = "127.0.0.1"
port = {port}
public_url = "https://hooks.example.com"

[telegram]
token = "env:LEADLINE_TEST_UNSET_BOT_TOKEN"

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
"""


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
