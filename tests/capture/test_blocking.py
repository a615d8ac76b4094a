"""The block list and the config's ``[[block]]`` rules, over HTTP on a real SQLite file: a blocked
touch is journalled and stored, counted apart, and an entry taken off the list counts again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from storage.db import connect
from storage.schema import migrations
from tests.capture.test_binotel import MISSED as BINOTEL_MISSED
from tests.capture.test_binotel import TOKEN as BINOTEL_TOKEN
from tests.capture.test_binotel import post as post_binotel
from tests.capture.test_calls import Clock
from tests.capture.test_mango import mango_config, post_mango, signed_mango, summary
from tests.capture.test_zadarma import SOURCE as ZADARMA_SOURCE
from tests.capture.test_zadarma import post as post_zadarma
from tests.conftest import BASE, Running, StartServer, build_config
from tests.samples import sample

TOKEN = "crm-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLIENTS = [{"name": "crm", "token": TOKEN}]


async def post_form(srv: Running, **fields: str) -> None:
    resp = await srv.session.post(f"{srv.url}/hooks/form?token=form-token", data=fields)
    assert resp.status == 200, await resp.text()


def blocked_of(srv: Running, message: str) -> int:
    return int(srv.scalar("SELECT blocked FROM touches WHERE message = ?", [message]))


async def api(srv: Running, method: str, path: str) -> tuple[int, Any]:
    async with srv.session.request(method, f"{srv.url}{path}", headers=AUTH) as resp:
        return resp.status, await resp.json()


async def test_a_prefix_rule_blocks_and_the_api_lists_the_rules(
    start_server: StartServer, tmp_path: Path
) -> None:
    config = build_config(
        tmp_path, api_clients=CLIENTS, block=[{"prefix": "+7800"}, {"email": "Robot@Spam.example"}]
    )
    srv = await start_server(config)
    await post_form(srv, phone="8 800 555-35-35", message="toll-free robot")
    await post_form(srv, phone="+7 916 123-45-67", message="a person")
    await post_form(srv, email="robot@spam.example", message="mail robot")

    assert (
        blocked_of(srv, "toll-free robot"),
        blocked_of(srv, "a person"),
        blocked_of(srv, "mail robot"),
    ) == (
        1,
        0,
        1,
    )
    assert srv.scalar("SELECT COUNT(*) FROM journal WHERE status = 'processed'") == 3
    status, report = await api(srv, "GET", "/api/report")
    assert status == 200
    assert (report["inbound_touches"], report["inbound_contacts"]) == (1, 1)
    status, listing = await api(srv, "GET", "/api/blocked")
    assert status == 200
    assert listing == {
        "blocked": [],
        "rules": [{"prefix": "+7800"}, {"email": "robot@spam.example"}],
        "next_after_id": None,
    }


async def test_a_short_call_from_a_number_never_seen_before_is_blocked(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(mango_config(tmp_path, block=[{"short_call_seconds": 5}]))

    async def call(entry_id: str, number: str, start: int, seconds: int) -> int:
        payload = summary(entry_id, number, start=start, answered=False)
        payload["end_time"] = start + seconds
        assert (await post_mango(srv, "/events/summary", signed_mango(payload))).status == 200
        return int(srv.scalar("SELECT blocked FROM touches WHERE external_id = ?", [entry_id]))

    start = 1_776_150_000
    assert await call("ping", "+7 916 000-00-01", start, 3) == 1  # a stranger rings once and hangs up
    assert await call("known-long", "+7 916 000-00-02", start, 60) == 0
    assert await call("known-short", "+7 916 000-00-02", start + 600, 3) == 0  # seen before: a person
    assert await call("stranger-long", "+7 916 000-00-03", start, 40) == 0


async def test_the_api_unblocks_a_number_and_its_touches_count_again(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(build_config(tmp_path, api_clients=CLIENTS))
    await post_form(srv, phone="+7 999 000-00-01", message="first")
    db = srv.db()
    try:
        db.execute(
            "INSERT INTO blocklist (kind, value, reason, at) VALUES ('phone', '+79990000001', 'spam', '2026-12-01')"
        )
        db.execute("UPDATE contacts SET blocked = 1")
        db.conn.commit()
    finally:
        db.close()
    await post_form(srv, phone="8 999 000 00 01", message="while blocked")
    assert blocked_of(srv, "while blocked") == 1

    status, listing = await api(srv, "GET", "/api/blocked")
    [entry] = listing["blocked"]
    assert (status, entry["kind"], entry["value"], entry["contact_id"]) == (200, "phone", "+79990000001", 1)
    status, body = await api(srv, "DELETE", f"/api/blocked/{entry['id']}")
    assert (status, body["unblocked"]["value"]) == (200, "+79990000001")
    status, body = await api(srv, "DELETE", f"/api/blocked/{entry['id']}")
    assert (status, body["error"]) == (404, "not_blocked")

    await post_form(srv, phone="+79990000001", message="after")
    assert blocked_of(srv, "after") == 0
    assert srv.scalar("SELECT blocked FROM contacts") == 0
    status, report = await api(srv, "GET", "/api/report")
    assert report["inbound_touches"] == 2  # "first" and "after"; the blocked one stays apart


#: When the Zadarma sample's missed call began (18:01:40 Moscow time).
ZADARMA_START = datetime(2024, 3, 5, 15, 1, 40, tzinfo=UTC)


@pytest.mark.parametrize(("rang_for", "blocked"), [(35, 0), (2, 1)])
async def test_zadarma_measures_a_missed_call_to_its_end_not_its_talk(
    start_server: StartServer, tmp_path: Path, rang_for: int, blocked: int
) -> None:
    # Zadarma's duration is the talk, 0 for every missed call: the call ends when NOTIFY_END comes.
    config = build_config(
        tmp_path, sources=[*BASE["sources"], ZADARMA_SOURCE], block=[{"short_call_seconds": 5}]
    )
    srv = await start_server(config, clock=Clock(ZADARMA_START + timedelta(seconds=rang_for)))
    assert (await post_zadarma(srv, sample("zadarma_notify_end_missed.txt"))).status == 200
    assert srv.rows("SELECT call_status, blocked FROM touches") == [
        {"call_status": "missed", "blocked": blocked}
    ]


@pytest.mark.parametrize(("waitsec", "blocked"), [(None, 0), ("31", 0), ("2", 1)])
async def test_binotel_measures_a_missed_call_by_its_ringing(
    start_server: StartServer, tmp_path: Path, waitsec: str | None, blocked: int
) -> None:
    # Without waitsec the ringing is unknown: the call is not "short" for lack of a figure.
    source = {
        "name": BINOTEL_MISSED.source_name,
        "provider": "binotel",
        "token": BINOTEL_TOKEN,
        "region": "UA",
    }
    srv = await start_server(
        build_config(tmp_path, sources=[*BASE["sources"], source], block=[{"short_call_seconds": 5}])
    )
    pairs = [(k, v) for k, v in parse_qsl(BINOTEL_MISSED.body.decode()) if "waitsec" not in k]
    if waitsec is not None:
        pairs.append(("callDetails[waitsec]", waitsec))
    assert (await post_binotel(srv, BINOTEL_MISSED, body=urlencode(pairs).encode())).status == 200
    assert srv.rows("SELECT call_status, blocked FROM touches") == [
        {"call_status": "missed", "blocked": blocked}
    ]


async def test_an_upgraded_block_list_keeps_its_entries_and_gives_no_id_again(
    start_server: StartServer, tmp_path: Path
) -> None:
    """m028 rebuilds the table with AUTOINCREMENT: the entries of a database from before it keep their
    ids, kinds, reasons and who blocked them, and the newest one's id, once unblocked, is not given again."""
    config = build_config(tmp_path, api_clients=CLIENTS)
    db = connect(config.database_path)
    migrations.apply(db, stop_before="m028_blocklist_ids")
    staff = db.execute("INSERT INTO staff (name, created_at) VALUES ('Olga', '2026-11-01')").lastrowid
    for kind, value, staff_id in (
        ("phone", "+79990000001", staff),
        ("email", "spam@example.com", None),
        ("telegram_id", "4242", staff),
    ):
        db.execute(
            "INSERT INTO blocklist (kind, value, staff_id, reason, at) VALUES (?, ?, ?, 'spam', '2026-11-02')",
            [kind, value, staff_id],
        )
    db.close()

    srv = await start_server(config)
    status, listing = await api(srv, "GET", "/api/blocked")
    assert status == 200
    assert [(e["id"], e["kind"], e["value"], e["staff"], e["reason"]) for e in listing["blocked"]] == [
        (1, "phone", "+79990000001", "Olga", "spam"),
        (2, "email", "spam@example.com", None, "spam"),
        (3, "telegram_id", "4242", "Olga", "spam"),
    ]
    status, _ = await api(srv, "DELETE", "/api/blocked/3")
    assert status == 200
    db = srv.db()
    try:
        db.execute(
            "INSERT INTO blocklist (kind, value, reason, at) VALUES ('phone', '+79990000002', 'spam', '2026-12-01')"
        )
        foreign_keys = db.execute("PRAGMA foreign_key_list(blocklist)").fetchall()
        assert [(f[2], f[3], f[4]) for f in foreign_keys] == [("staff", "staff_id", "id")]
    finally:
        db.close()
    status, listing = await api(srv, "GET", "/api/blocked?after_id=2")
    assert [(e["id"], e["value"]) for e in listing["blocked"]] == [(4, "+79990000002")]
