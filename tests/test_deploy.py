"""The files under deploy/ are what the README tells a user to install: they must be valid as shipped."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leadline.workers import STOP_GRACE_SECONDS

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "leadline.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """``systemd-analyze verify`` accepts the unit once its ExecStart points at a real leadline."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: scripts/test.sh installs Debian's systemd package"
    leadline = Path(sys.prefix) / "bin" / "leadline"
    unit = tmp_path / "leadline.service"
    unit.write_text(UNIT.read_text().replace("/opt/leadline/.venv/bin/leadline", str(leadline)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (done.stdout + done.stderr).splitlines() if "leadline.service" in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr


def test_systemd_unit_is_hardened_and_waits_for_the_drain() -> None:
    service = _unit()["Service"]
    assert service["User"] == "leadline"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ReadWritePaths"] == "/var/lib/leadline"
    assert "--config /etc/leadline/config.toml" in service["ExecStart"]
    # systemd must not kill the process before a stopping worker has had its time to finish.
    assert int(service["TimeoutStopSec"]) > STOP_GRACE_SECONDS


@pytest.mark.parametrize("path", ["deploy/Caddyfile", "deploy/nginx/leadline.conf"])
def test_proxy_configs_forward_to_the_example_port_and_keep_tokens_out_of_logs(path: str) -> None:
    text = (ROOT / path).read_text()
    assert "127.0.0.1:8080" in text
    assert "X-Forwarded-For" in text
    assert "token" in text  # the access log drops the query string or its token


def _nginx_directives() -> list[str]:
    text = (ROOT / "deploy" / "nginx" / "leadline.conf").read_text()
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def test_nginx_site_loads_on_debian_12s_nginx() -> None:
    """Debian 12 ships nginx 1.22, whose ``nginx -t`` refuses ``http2 on;`` (nginx 1.25.1 and later)."""
    directives = _nginx_directives()
    assert not [line for line in directives if line.startswith("http2 ")]
    assert "listen 443 ssl http2;" in directives


def test_nginx_error_log_does_not_quote_tokens() -> None:
    """nginx's error lines (a 502 while Leadline restarts) carry the request line, query token included."""
    assert "error_log /var/log/nginx/leadline.error.log crit;" in _nginx_directives()


def test_caddy_error_log_does_not_quote_tokens() -> None:
    """Caddy's error lines carry the request's URI with its token; the access log's filter misses them."""
    text = (ROOT / "deploy" / "Caddyfile").read_text()
    options = text[text.index("{") : text.index("hooks.example.com {")]
    assert "exclude http.log.error" in options
