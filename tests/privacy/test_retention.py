"""The daily retention pass: old raw requests and dormant people go, November's figures stay."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadline import keys
from leadline.scheduler import retention_job
from tests.capture.chat_payloads import chat_config, post_vk, vk_reply_body
from tests.capture.test_mango import mango_config, post_mango, post_sample, signed_mango, summary
from tests.capture.test_smtp import auto_reply, send, smtp_config
from tests.cli import run_cli
from tests.conftest import Running, StartServer
from tests.nudges.conftest import until
from tests.numbers.month import MSK
from tests.privacy.people import API_AUTH, privacy_config
from tests.samples import sample


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def form(srv: Running, phone: str, name: str) -> None:
    body = {"phone": phone, "name": name, "message": f"{name} would like a quote"}
    async with srv.session.post(f"{srv.url}/hooks/form?token=form-token", json=body) as resp:
        assert resp.status == 200, await resp.text()


async def call(srv: Running, clock: Clock, number: str, *, answered: bool) -> None:
    payload = summary(f"entry-{number}", number, start=int(clock().timestamp()), answered=answered)
    resp = await post_mango(srv, "/events/summary", signed_mango(payload))
    assert resp.status == 200, await resp.text()


async def register(srv: Running, phone: str, **fields: str) -> None:
    async with srv.session.post(
        f"{srv.url}/api/registrations", json={"phone": phone, **fields}, headers=API_AUTH
    ) as resp:
        assert resp.status == 201, await resp.text()


async def november(cfg: Path) -> dict[str, Any]:
    result = await run_cli(
        "report", "--config", str(cfg), "--json", "--period", "2026-11", "--as-of", "2026-12-01T09:00"
    )
    assert result.code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


async def test_a_pass_missed_while_the_process_was_down_runs_once_when_it_starts(
    tmp_path: Path, start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The pass runs at ``[retention] time`` (03:30); a process that was down then (a machine off at
    night, a nightly restart) used to keep a raw request past journal_days until a night it was up."""
    clock = Clock(datetime(2026, 8, 3, 12, 0, tzinfo=MSK))
    config = privacy_config(tmp_path)
    srv = await start_server(config, clock=clock)
    await form(srv, "+7 901 111-11-11", "Alma Lead")
    await srv.stop()

    clock.at = datetime(2026, 12, 1, 17, 3, tzinfo=MSK)  # 120 days on, the afternoon after a missed pass
    srv = await start_server(config, clock=clock)
    await until(lambda: srv.scalar("SELECT length(body) FROM journal") == 0)
    assert srv.scalar("SELECT redacted FROM journal") == "expired"
    last_pass = "SELECT value FROM meta WHERE key = 'retention_last_pass'"
    await until(lambda: srv.scalar(last_pass) is not None)  # the pass has finished
    ran = srv.scalar(last_pass)
    await srv.stop()

    clock.at = datetime(2026, 12, 1, 18, 0, tzinfo=MSK)  # restarted the same evening: nothing owed
    with caplog.at_level(logging.INFO, logger="leadline.scheduler"):
        srv = await start_server(config, clock=clock)
        await until(lambda: any(r.getMessage() == "no retention pass owed" for r in caplog.records))
    assert srv.scalar(last_pass) == ran


async def test_a_retention_pass_keeps_the_months_figures_and_drops_raw_requests_and_dormant_people(
    tmp_path: Path, start_server: StartServer
) -> None:
    clock = Clock(datetime(2026, 11, 2, 10, 0, tzinfo=MSK))
    srv = await start_server(privacy_config(tmp_path), clock=clock)
    await form(srv, "+7 901 111-11-11", "Alma Lead")
    clock.at += timedelta(minutes=5)
    await register(srv, "+79011111111", disposition="lead", temperature="hot", need="A kitchen")
    clock.at = datetime(2026, 11, 3, 11, 0, tzinfo=MSK)
    await form(srv, "+7 902 222-22-22", "Bruno Nobody")  # never registered
    # His second try, on a form whose phone field the parser did not know: refused, kept for a replay.
    refused = {"contact_number": "8 902 222-22-22", "name": "Bruno Nobody"}
    async with srv.session.post(f"{srv.url}/hooks/site?token=site-token", json=refused) as resp:
        assert resp.status == 400
    clock.at = datetime(2026, 11, 4, 12, 0, tzinfo=MSK)
    await call(srv, clock, "79033333333", answered=False)
    clock.at += timedelta(minutes=10)
    await register(srv, "+79033333333", disposition="not_a_lead", reason="spam")
    clock.at = datetime(2026, 11, 5, 13, 0, tzinfo=MSK)
    await call(srv, clock, "79044444444", answered=True)
    await register(srv, "+79044444444", disposition="not_a_lead", reason="partner")
    clock.at = datetime(2026, 11, 6, 14, 0, tzinfo=MSK)
    await form(srv, "+7 905 555-55-55", "Ella Returns")
    cfg = tmp_path / "config.toml"
    before = await november(cfg)
    figures = ("inbound_contacts", "registered", "leads", "not_a_lead")
    assert [before[f] for f in figures] == [5, 3, 1, 2]

    # More than a year later Ella writes again; then the night's pass runs.
    clock.at = datetime(2027, 12, 14, 12, 0, tzinfo=MSK)
    # Bruno tries the unknown form again: refused, it may yet become his touch once the field is mapped.
    async with srv.session.post(f"{srv.url}/hooks/site?token=site-token", json=refused) as resp:
        assert resp.status == 400
    clock.at = datetime(2027, 12, 15, 3, 30, tzinfo=MSK)
    await form(srv, "+7 905 555-55-55", "Ella Returns")
    rows = srv.scalar("SELECT COUNT(*) FROM journal")
    await retention_job(srv.config, srv.server.app[keys.STORE], clock)

    assert await november(cfg) == before
    assert srv.scalar("SELECT COUNT(*) FROM journal") == rows
    cutoff = (clock() - timedelta(days=90)).isoformat()
    kept = srv.rows(
        "SELECT received_at < ? AS old, length(body) > 0 AS body, headers != '[]' AS headers, redacted FROM journal",
        [cutoff],
    )
    # Every old request has lost its raw data: the processed ones as expired, Bruno's refused one
    # with him (a refused request of someone still known keeps its body for a replay).
    assert [r for r in kept if r["old"]] and all(not r["body"] and not r["headers"] for r in kept if r["old"])
    assert srv.rows(
        "SELECT status, http_status, redacted FROM journal WHERE source = 'site' ORDER BY id"
    ) == [
        {"status": "rejected", "http_status": 410, "redacted": "erased"},
        {"status": "rejected", "http_status": 400, "redacted": None},
    ]
    # Bruno's second refused form and Ella's new one keep their bodies
    assert [(r["body"], r["redacted"]) for r in kept if not r["old"]] == [(1, None), (1, None)]
    fields = srv.rows("SELECT occurred_at < ? AS old, payload != '{}' AS fields FROM touches", [cutoff])
    assert sorted((r["old"], r["fields"]) for r in fields) == [(0, 1)] + [(1, 0)] * 5

    people = {
        r["value"]: r["contact_id"]
        for r in srv.rows("SELECT value, contact_id FROM identifiers WHERE kind = 'phone'")
    }
    assert set(people) == {"+79011111111", "+79044444444", "+79055555555"}  # the lead, the partner, Ella
    erased = srv.rows("SELECT reason, actor FROM erasures ORDER BY reason")
    assert erased == [
        {"reason": "refused", "actor": "retention: refused_days"},
        {"reason": "unregistered", "actor": "retention: unregistered_days"},
    ]
    names = [r["name"] for r in srv.rows("SELECT name FROM contacts WHERE erased_at IS NOT NULL")]
    assert names == [None, None]
    gone = "SELECT COUNT(*) FROM touches WHERE name = 'Bruno Nobody' OR phone_raw = '79033333333'"
    assert srv.scalar(gone) == 0


async def test_a_touch_dropped_without_a_contact_loses_its_text_after_journal_days(
    tmp_path: Path, start_server: StartServer
) -> None:
    """An auto-reply reaches no contact, so no erasure of a person finds it: after ``journal_days``
    only its count is left. A person's own touch of the same day keeps its columns."""
    clock = Clock(datetime(2026, 11, 2, 10, 0, tzinfo=MSK))
    srv = await start_server(smtp_config(tmp_path), clock=clock)
    assert await send(srv, auto_reply("Ivan Petrov <ivan@example.com>", "<ooo-1@example.com>")) == {}
    await form(srv, "+7 901 111-11-11", "Alma Lead")
    text = (
        "SELECT name, message, phone_raw, email_raw, dropped IS NOT NULL AS dropped FROM touches ORDER BY id"
    )
    assert srv.rows(text)[0] == {
        "name": "Ivan Petrov",
        "message": "I am away until Monday. Call +7 916 000-00-77.",
        "phone_raw": "+7 916 000-00-77",
        "email_raw": "ivan@example.com",
        "dropped": 1,
    }

    clock.at += timedelta(days=91)
    await retention_job(srv.config, srv.server.app[keys.STORE], clock)
    assert srv.rows(text) == [
        {"name": None, "message": None, "phone_raw": None, "email_raw": None, "dropped": 1},
        {
            "name": "Alma Lead",
            "message": "Alma Lead would like a quote",
            "phone_raw": "+7 901 111-11-11",
            "email_raw": None,
            "dropped": 0,
        },
    ]


async def test_a_recording_still_waiting_for_its_call_after_journal_days_is_dropped(
    tmp_path: Path, start_server: StartServer
) -> None:
    """A recording can come before its call; one whose call never came was held for nobody."""
    clock = Clock(datetime(2026, 11, 2, 10, 0, tzinfo=MSK))
    srv = await start_server(mango_config(tmp_path), clock=clock)
    assert (await post_sample(srv, sample("mango_events_recording_completed.txt"))).status == 200
    store = srv.server.app[keys.STORE]
    clock.at += timedelta(days=89)
    await retention_job(srv.config, store, clock)
    assert srv.scalar("SELECT COUNT(*) FROM pending_recordings") == 1  # its call may yet come
    clock.at += timedelta(days=2)
    await retention_job(srv.config, store, clock)
    assert srv.scalar("SELECT COUNT(*) FROM pending_recordings") == 0


async def test_a_chat_reply_still_waiting_for_a_message_after_journal_days_loses_its_dialogue_key(
    tmp_path: Path, start_server: StartServer
) -> None:
    """A reply sent before the person ever wrote waits with its dialogue's key, a digest of their
    chat ids; after journal_days no message of theirs will be answered by it."""
    clock = Clock(datetime.now(UTC))
    srv = await start_server(chat_config(tmp_path), clock=clock)
    sent = clock() - timedelta(minutes=5)
    assert (await post_vk(srv, vk_reply_body("e-out", sent, "Здравствуйте! Ждём вас"))).status == 200
    waiting = "SELECT COUNT(*) FROM chat_replies WHERE touch_id IS NULL AND conversation IS NOT NULL"
    assert srv.scalar(waiting) == 1
    store = srv.server.app[keys.STORE]
    clock.at += timedelta(days=89)
    await retention_job(srv.config, store, clock)
    assert srv.scalar(waiting) == 1
    clock.at += timedelta(days=2)
    await retention_job(srv.config, store, clock)
    assert srv.scalar(waiting) == 0
    assert srv.scalar("SELECT COUNT(*) FROM chat_replies") == 1  # the reply itself is still counted
