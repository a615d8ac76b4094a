"""Channel ``chat`` in the report (JSON, CSV), the API and the export: people who wrote, not lines."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.digest import compose
from storage.db import connect
from storage.reports.scope import Period
from tests.capture.chat_payloads import (
    AVITO_TEXT,
    VK_MESSAGE,
    WA_TEXT,
    avito_body,
    post_avito,
    post_wa,
    wa_body,
)
from tests.cli import run_cli
from tests.conftest import BASE
from tests.numbers.month import month_config
from tests.samples import sample

LEAD = sample("vk_lead_forms_new.json")
TOKEN = "crm-token-chat-0123456789"
#: Noon (UTC) two days ago: the day's messages fall on one local day in Moscow.
DAY = (datetime.now(UTC) - timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)


async def test_a_report_with_chats_gives_the_channel_chat_its_own_row(
    tmp_path: Path, start_server: Any
) -> None:
    sources = [
        *BASE["sources"],
        {"name": "whatsapp", "provider": "whatsapp", **WA_TEXT.secrets},
        {"name": "vk", "provider": "vk", **VK_MESSAGE.secrets},
        {"name": "avito", "provider": "avito", **AVITO_TEXT.secrets},
    ]
    config = month_config(tmp_path, sources=sources, api_clients=[{"name": "crm", "token": TOKEN}])
    srv = await start_server(config)
    for n in range(3):  # one person, three lines: one touch
        assert (
            await post_wa(srv, wa_body(f"wamid.R{n}", DAY + timedelta(minutes=n), f"строка {n}"))
        ).status == 200
    assert (await post_avito(srv, avito_body("r-avito", DAY, "Диван продаётся?"))).status == 200
    lead = await srv.session.post(f"{srv.url}{LEAD.path}", data=LEAD.body, headers=LEAD.headers)
    assert lead.status == 200
    cfg = str(tmp_path / "config.toml")
    day = DAY.astimezone(config.tz).date().isoformat()
    period = ("--from", day, "--to", day, "--as-of", (datetime.now(UTC) + timedelta(minutes=1)).isoformat())

    result = await run_cli("report", "--config", cfg, "--json", *period)
    assert result.code == 0, result.output
    data = json.loads(result.output)
    assert {k: data["by_channel"]["chat"][k] for k in ("inbound_touches", "inbound_contacts")} == {
        "inbound_touches": 2,
        "inbound_contacts": 2,
    }
    assert set(data["by_channel"]) == {"chat"}  # the VK lead form came today, a form

    table = await run_cli("report", "--config", cfg, "--csv", *period)
    assert table.code == 0, table.output
    rows = list(csv.reader(io.StringIO(table.output)))
    [chat_row] = [row for row in rows if row[2:4] == ["channel", "chat"]]
    assert chat_row[4:6] == ["2", "2"]  # inbound touches, inbound contacts

    only = await run_cli("report", "--config", cfg, "--json", "--channel", "chat", *period)
    assert json.loads(only.output)["inbound_touches"] == 2

    # The owner's digest names the channel too, with its registration rate (nobody registered yet).
    db = connect(config.database_path)
    try:
        digest = compose(db, config, Period.day(date.fromisoformat(day), config.tz), datetime.now(UTC), "en")
    finally:
        db.close()
    assert "By channel: Chat 2 (LRR 0 %)\n" in digest.text

    exported = await run_cli("export", "--config", cfg, "--out", str(tmp_path / "out"))
    assert exported.code == 0, exported.output
    with (tmp_path / "out" / "contacts.csv").open(encoding="utf-8") as fh:
        contacts = list(csv.DictReader(fh))
    assert sorted((c["phones"], c["chat_ids"]) for c in contacts) == [
        ("", "avito_id 500000002"),
        ("+74950000032", "whatsapp_id RU.1000000000000000001"),
        ("+74950000035", "vk_id 300000002"),
    ]
    with (tmp_path / "out" / "touches.csv").open(encoding="utf-8") as fh:
        assert sorted(t["channel"] for t in csv.DictReader(fh)) == ["chat", "chat", "form"]

    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with srv.session.get(f"{srv.url}/api/touches?channel=chat", headers=auth) as resp:
        assert resp.status == 200
        assert len((await resp.json())["touches"]) == 2
