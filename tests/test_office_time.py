"""Every time a person reads is on the office clock and names its zone: 22:59 MSK, never a bare 19:59."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from leadline.logs import JsonFormatter
from tests.capture.test_core_http import write_config
from tests.cli import run_cli
from tests.conftest import StartServer

#: 22:59 on the office clock in Moscow.
AT = datetime(2026, 11, 23, 19, 59, 30, tzinfo=UTC)


async def test_contacts_prints_times_in_the_office_zone(start_server: StartServer, tmp_path: Path):
    srv = await start_server(clock=lambda: AT)
    resp = await srv.session.post(
        f"{srv.url}/hooks/form?token=form-token", data={"name": "Ivan", "phone": "8 (916) 123-45-67"}
    )
    assert resp.status == 200
    result = await run_cli("contacts", "--config", str(write_config(tmp_path, srv.config)), "9161234567")
    assert result.code == 0, result.output
    assert "Contact #1: Ivan  (since 2026-11-23 22:59 MSK)" in result.output
    assert "    2026-11-23 22:59 MSK  form   via form" in result.output
    assert "19:59" not in result.output


def test_log_lines_carry_utc_with_milliseconds_and_z():
    record = logging.makeLogRecord({"name": "leadline.http", "msg": "request", "levelno": logging.INFO})
    record.created = AT.timestamp() + 0.123
    line = json.loads(JsonFormatter().format(record))
    assert line["time"] == "2026-11-23T19:59:30.123Z"
