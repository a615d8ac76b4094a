"""Outgoing Standard Webhooks: signed, retried with backoff from the durable queue, stable ids."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from standardwebhooks import Webhook

from leadline import webhooks_out
from leadline.config import Config, WebhookConfig
from leadline.logs import JsonFormatter, ScrubFilter
from leadline.webhooks_out import deliver_due, keep_trying
from storage.db import Store, now_utc
from storage.registrations import change_lead
from storage.registrations import record_registration as register
from tests.cli import run_cli
from tests.numbers.month import month_config, open_month
from tests.test_logs import lines as log_lines

SECRET = "whsec_dGVzdC1vdXRnb2luZy13ZWJob29rcy1zZWNyZXQtMzJieXRlcw=="
TOKEN = "crm-token-0123456789"


class Receiver:
    """A CRM's webhook endpoint on 127.0.0.1 that fails the first ``failures`` requests."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._came = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        self._came.set()
        if len(self.requests) <= self.failures:
            return web.Response(status=500)
        return web.Response(status=204)

    async def got(self, n: int) -> None:
        """Return once ``n`` requests have come."""
        while len(self.requests) < n:
            self._came.clear()
            await self._came.wait()

    async def start(self) -> TestServer:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        return server


class Silent:
    """A CRM that takes the connection and the request, and never answers."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.holding = asyncio.Event()  # a request came, and is held unanswered till close()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        if await reader.read(1 << 20):
            self.holding.set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def close(self) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()


async def started(srv: Any, endpoints: int) -> None:
    """Wait until serve's sender has marked where each endpoint starts (a cursor per feed)."""
    for _ in range(100):
        if srv.scalar("SELECT COUNT(*) FROM webhook_cursors") == 2 * endpoints:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the webhook sender never started")


async def registered_by_api(srv: Any, phone: str) -> None:
    async with srv.session.post(
        f"{srv.url}/api/registrations",
        json={"phone": phone, "disposition": "not_a_lead", "reason": "spam"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as resp:
        assert resp.status == 201


def petr(db: Any) -> int:
    """The hand-counted month's contact Petr (petr@example.net), never registered in it."""
    return int(
        db.execute("SELECT contact_id FROM identifiers WHERE value = 'petr@example.net'").fetchone()[0]
    )


def refuse_petr(db: Any, at: datetime, reason: str = "spam") -> None:
    """Petr registered from the command line as not a lead: one registration event for the CRMs."""
    register(db, petr(db), "not_a_lead", at=at, reason=reason, origin="cli")


def config_for(tmp_path: Path, url: str) -> Config:
    config = month_config(
        tmp_path, webhooks=[{"url": url, "secret": SECRET}], api_clients=[{"name": "crm", "token": TOKEN}]
    )
    open_month(config.database_path, config).db.close()
    return config


async def test_each_registration_and_lead_change_is_signed_retried_and_delivered_once(tmp_path: Path):
    receiver = Receiver(failures=1)
    server = await receiver.start()
    config = config_for(tmp_path, str(server.make_url("/hook")))
    store = Store.open(config.database_path)
    session = aiohttp.ClientSession()
    try:
        now = now_utc()
        # The first round only marks where the webhook starts: the month's history is not sent.
        assert await deliver_due(store, config.webhooks, session, lambda: now) == {
            "delivered": 0,
            "retry": 0,
            "failed": 0,
        }

        def work(db: Any) -> int:
            contact = petr(db)
            lead = register(db, contact, "lead", at=now, temperature="warm", origin="cli").lead_id
            change_lead(db, lead, at=now, stage="qualified")
            return int(contact)

        contact = await store.write(work)
        # Three events: the registration, the lead's "new" stage and its move to qualified. The
        # first fails, and the two behind it wait for it.
        first = await deliver_due(store, config.webhooks, session, lambda: now)
        assert first == {"delivered": 0, "retry": 1, "failed": 0}
        pending = await store.read(
            lambda db: db.execute(
                "SELECT webhook_id, attempts, next_attempt_at, last_error FROM webhook_deliveries"
                " WHERE status = 'pending' ORDER BY id"
            ).fetchall()
        )
        assert len(pending) == 3 and pending[0][1:] == (
            1,
            (now + timedelta(seconds=5)).isoformat(timespec="microseconds"),
            "HTTP 500",
        )
        assert [row[1] for row in pending[1:]] == [0, 0]  # never tried yet
        # Not due yet: nothing is sent.
        assert await deliver_due(store, config.webhooks, session, lambda: now + timedelta(seconds=4)) == {
            "delivered": 0,
            "retry": 0,
            "failed": 0,
        }
        assert await deliver_due(store, config.webhooks, session, lambda: now + timedelta(seconds=5)) == {
            "delivered": 3,
            "retry": 0,
            "failed": 0,
        }
    finally:
        await session.close()
        await store.close()
        await server.close()

    ids = [headers["webhook-id"] for headers, _ in receiver.requests]
    assert ids[0] == ids[1] == pending[0][0]  # the retry carries the same id
    assert sorted(set(ids)) == sorted(ids[1:])  # each event delivered once after the retry
    hook = Webhook(SECRET)
    for headers, body in receiver.requests:
        stamp = int(headers["webhook-timestamp"])
        expected = hook.sign(headers["webhook-id"], datetime.fromtimestamp(stamp, UTC), body.decode())
        assert headers["webhook-signature"] == expected
    hook.verify(
        receiver.requests[1][1], receiver.requests[1][0]
    )  # a fresh one passes the library's own check
    events = [json.loads(body) for _, body in receiver.requests[1:]]
    registration = next(e for e in events if e["type"] == "registration.created")
    assert registration["data"]["contact_id"] == contact and registration["data"]["disposition"] == "lead"
    assert registration["data"]["temperature"] == "warm" and registration["data"]["lead_id"] is not None
    assert sorted(e["data"]["new"] for e in events if e["type"] == "lead.changed") == ["new", "qualified"]


async def test_a_registration_through_the_api_reaches_the_crm(tmp_path: Path, start_server: Any):
    receiver = Receiver()
    server = await receiver.start()
    try:
        srv = await start_server(config_for(tmp_path, str(server.make_url("/hook"))))
        await started(srv, 1)  # let the sender mark its starting point, then register
        async with srv.session.post(
            f"{srv.url}/api/registrations",
            json={"phone": "+79160000009", "disposition": "not_a_lead", "reason": "spam"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as resp:
            assert resp.status == 201
        for _ in range(150):
            if receiver.requests:
                break
            await asyncio.sleep(0.1)
        assert receiver.requests, "the webhook never arrived"
        event = json.loads(receiver.requests[0][1])
        assert (event["type"], event["data"]["reason"], event["data"]["origin"]) == (
            "registration.created",
            "spam",
            "api",
        )
        assert srv.scalar("SELECT status FROM webhook_deliveries") == "delivered"
    finally:
        await server.close()


async def test_one_delivery_that_cannot_be_signed_is_recorded_and_the_others_go(tmp_path: Path):
    """A key the library refuses made the whole batch raise before anything was recorded: every poll
    tried it again, and no webhook, the good ones included, got anything."""
    receiver = Receiver()
    server = await receiver.start()
    config = config_for(tmp_path, str(server.make_url("/hook")))
    # check-config refuses such a key (tests/test_cli.py); this one stands for any item that cannot go.
    broken = WebhookConfig.model_construct(url="http://127.0.0.1:9/old-crm", secret=SecretStr("mysecret1"))
    hooks = [broken, *config.webhooks]
    store = Store.open(config.database_path)
    session = aiohttp.ClientSession()
    try:
        now = now_utc()
        await deliver_due(store, hooks, session, lambda: now)  # marks where the webhooks start

        await store.write(partial(refuse_petr, at=now))
        assert await deliver_due(store, hooks, session, lambda: now) == {
            "delivered": 1,
            "retry": 1,
            "failed": 0,
        }
        rows = await store.read(
            lambda db: db.execute(
                "SELECT endpoint, status, attempts, last_error FROM webhook_deliveries ORDER BY endpoint"
            ).fetchall()
        )
    finally:
        await session.close()
        await store.close()
        await server.close()
    assert len(receiver.requests) == 1
    assert json.loads(receiver.requests[0][1])["data"]["reason"] == "spam"
    [(_, bad_status, bad_attempts, bad_error)] = [r for r in rows if r[0] == broken.url]
    assert (bad_status, bad_attempts) == ("pending", 1) and bad_error.startswith("Error: Invalid base64")
    assert [r[1:3] for r in rows if r[0] != broken.url] == [("delivered", 1)]


async def test_a_redirect_is_not_followed_but_retried_as_an_error(tmp_path: Path):
    """aiohttp followed a 301 as a GET without the body, and that GET's 200 marked the event delivered."""
    seen: list[tuple[str, str, int]] = []

    async def moved(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, len(await request.read())))
        raise web.HTTPMovedPermanently("/hook/")

    async def page(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, len(await request.read())))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", moved)
    app.router.add_get("/hook/", page)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    config = config_for(tmp_path, str(server.make_url("/hook")))
    store = Store.open(config.database_path)
    session = aiohttp.ClientSession()
    try:
        now = now_utc()
        await deliver_due(store, config.webhooks, session, lambda: now)  # marks where the webhook starts

        await store.write(partial(refuse_petr, at=now))
        assert await deliver_due(store, config.webhooks, session, lambda: now) == {
            "delivered": 0,
            "retry": 1,
            "failed": 0,
        }
        rows = await store.read(
            lambda db: db.execute("SELECT status, attempts, last_error FROM webhook_deliveries").fetchall()
        )
    finally:
        await session.close()
        await store.close()
        await server.close()
    assert rows == [("pending", 1, "HTTP 301")]
    assert [(method, path) for method, path, _ in seen] == [("POST", "/hook")]


def lead_with_changes(db: Any, at: datetime, changes: int) -> None:
    """A registration, its lead's "new" stage and ``changes`` edits: 2 + ``changes`` events."""
    contact = petr(db)
    lead = register(db, contact, "lead", at=at, temperature="warm", origin="cli").lead_id
    for n in range(changes):
        change_lead(db, lead, at=at, need=f"need {n}")


async def test_each_attempt_is_signed_when_sent_and_a_hanging_crm_holds_back_no_other(
    tmp_path: Path, monkeypatch: Any
):
    """The round was signed with the time it began and sent one delivery after another: behind a CRM
    that never answered, another's deliveries came minutes late with timestamps its 5-minute check
    refused."""
    monkeypatch.setattr(webhooks_out, "TIMEOUT", aiohttp.ClientTimeout(total=600))
    silent, healthy = Silent(), Receiver()
    server = await healthy.start()
    config = month_config(
        tmp_path,
        webhooks=[
            {"url": await silent.start(), "secret": SECRET},
            {"url": str(server.make_url("/hook")), "secret": SECRET},
        ],
    )
    open_month(config.database_path, config).db.close()
    start, ticks = now_utc(), [0]

    def clock() -> datetime:
        """Each reading a second after the last: an attempt signed at any other moment shows."""
        ticks[0] += 1
        return start + timedelta(seconds=ticks[0])

    store = Store.open(config.database_path)
    session = aiohttp.ClientSession()
    try:
        await deliver_due(store, config.webhooks, session, clock)  # marks where the webhooks start
        await store.write(lambda db: lead_with_changes(db, clock(), 4))
        round_ = asyncio.create_task(deliver_due(store, config.webhooks, session, clock))
        await silent.holding.wait()
        await healthy.got(6)  # none waited for the silent one ...
        assert not round_.done() and len(silent.writers) == 1  # ... which still holds its first event
        await silent.close()  # the hanging CRM lets go at last: its attempt failed, to be tried again
        counts = await round_
    finally:
        await session.close()
        await store.close()
        await server.close()
        await silent.close()
    # The silent CRM's first event failed, and its other five wait behind it.
    assert counts == {"delivered": 6, "retry": 1, "failed": 0}
    events = [json.loads(body) for _, body in healthy.requests]
    assert [(e["type"], e["data"].get("new")) for e in events] == [  # all of them, in order
        ("registration.created", None),
        ("lead.changed", "new"),
        *[("lead.changed", f"need {n}") for n in range(4)],
    ]
    hook = Webhook(SECRET)
    stamps = [int(headers["webhook-timestamp"]) for headers, _ in healthy.requests]
    assert stamps == sorted(set(stamps))  # each signed when it was sent, not when the round began
    for headers, body in healthy.requests:
        expected = hook.sign(
            headers["webhook-id"],
            datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC),
            body.decode(),
        )
        assert headers["webhook-signature"] == expected


async def test_a_crm_that_hangs_does_not_delay_another_in_serve(
    tmp_path: Path, start_server: Any, monkeypatch: Any
):
    """While one CRM's attempt waits out its timeout, the other hears of the next event at once."""
    monkeypatch.setattr(webhooks_out, "TIMEOUT", aiohttp.ClientTimeout(total=60))
    silent, healthy = Silent(), Receiver()
    server = await healthy.start()
    try:
        config = month_config(
            tmp_path,
            webhooks=[
                {"url": await silent.start(), "secret": SECRET},
                {"url": str(server.make_url("/hook")), "secret": SECRET},
            ],
            api_clients=[{"name": "crm", "token": TOKEN}],
        )
        open_month(config.database_path, config).db.close()
        srv = await start_server(config)
        await started(srv, 2)
        for n, phone in enumerate(("+79160000031", "+79160000032"), start=1):
            async with srv.session.post(
                f"{srv.url}/api/registrations",
                json={"phone": phone, "disposition": "not_a_lead", "reason": "spam"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as resp:
                assert resp.status == 201
            for _ in range(100):
                if len(healthy.requests) == n:
                    break
                await asyncio.sleep(0.1)
            assert len(healthy.requests) == n, f"event {n} waited behind the silent CRM"
        assert len(silent.writers) == 1  # still waiting for its answer to the first
    finally:
        await server.close()
        await silent.close()


async def test_a_registration_after_a_restore_has_a_webhook_id_never_sent_before(tmp_path: Path):
    """The id was msg_registration_<row id>, and a restore rolls the row ids back: the first
    registration after it went out under the id of one the CRM had, which it dropped as a repeat."""
    from storage.backup import copy, restore

    receiver = Receiver()
    server = await receiver.start()
    config = config_for(tmp_path, str(server.make_url("/hook")))
    session = aiohttp.ClientSession()

    async def registered(reason: str) -> None:
        store = Store.open(config.database_path)
        try:
            await store.write(partial(refuse_petr, at=now_utc(), reason=reason))
            await deliver_due(store, config.webhooks, session, now_utc)
        finally:
            await store.close()

    try:
        store = Store.open(config.database_path)
        await deliver_due(store, config.webhooks, session, now_utc)  # marks where the webhook starts
        await store.close()
        copy(config.database_path, tmp_path / "nightly.db")
        await registered("spam")
        restore(tmp_path / "nightly.db", config.database_path)
        await registered("partner")
    finally:
        await session.close()
        await server.close()
    events = [json.loads(body)["data"] for _, body in receiver.requests]
    assert [(e["id"], e["reason"]) for e in events] == [
        (events[0]["id"], "spam"),
        (events[0]["id"], "partner"),
    ]
    ids = [headers["webhook-id"] for headers, _ in receiver.requests]
    assert ids[0] != ids[1], ids


async def test_a_webhook_put_back_or_added_after_a_spell_without_any_hears_only_what_follows(
    tmp_path: Path, start_server: Any
):
    """The cursor was one for all webhooks and stayed put while serve ran with none: the webhook
    added (or put back) after that spell was sent every registration of it."""
    old, new = Receiver(), Receiver()
    old_server, new_server = await old.start(), await new.start()
    old_hook = {"url": str(old_server.make_url("/hook")), "secret": SECRET}
    new_hook = {"url": str(new_server.make_url("/hook")), "secret": SECRET}
    clients = [{"name": "crm", "token": TOKEN}]
    try:
        config = month_config(tmp_path, webhooks=[old_hook], api_clients=clients)
        open_month(config.database_path, config).db.close()
        srv = await start_server(config)
        await started(srv, 1)
        await registered_by_api(srv, "+79160000041")
        for _ in range(100):
            if old.requests:
                break
            await asyncio.sleep(0.1)
        await srv.stop()
        assert len(old.requests) == 1

        # A month without [[webhooks]]: five registrations nobody is to hear of.
        srv = await start_server(month_config(tmp_path, api_clients=clients))
        for n in range(5):
            await registered_by_api(srv, f"+7916000005{n}")
        await srv.stop()

        # The old CRM's webhook is put back and a new CRM's added.
        srv = await start_server(month_config(tmp_path, webhooks=[old_hook, new_hook], api_clients=clients))
        await started(srv, 2)
        await registered_by_api(srv, "+79160000061")
        for _ in range(100):
            if len(old.requests) == 2 and new.requests:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # anything more would be on its way by now
    finally:
        await old_server.close()
        await new_server.close()
    after = [json.loads(body)["data"]["created_at"] for _, body in [*old.requests[1:], *new.requests]]
    assert len(old.requests) == 2 and len(new.requests) == 1, (len(old.requests), len(new.requests))
    assert after[0] == after[1]  # both heard of the one registration made once they were there


def test_an_endpoint_that_was_sent_to_before_the_upgrade_goes_on_where_it_was(tmp_path: Path):
    """m018 moves the one cursor in meta to each endpoint that had deliveries, so none of them
    misses what was made between its last collect and the upgrade, nor hears it twice."""
    from storage.db import open_database
    from storage.schema import migrate
    from storage.webhook_deliveries import collect

    config = config_for(tmp_path, "https://crm.example.com/hook")
    db = open_database(config.database_path)
    db.execute("DROP TABLE webhook_cursors")
    db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm018_webhook_cursors'")
    top = db.execute("SELECT MAX(id) FROM registrations").fetchone()[0]
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('webhooks_out.registration_id', ?),"
        " ('webhooks_out.lead_change_id', ?)",
        [str(top - 1), str(db.execute("SELECT MAX(id) FROM lead_changes").fetchone()[0])],
    )
    db.execute(
        "INSERT INTO webhook_deliveries (webhook_id, endpoint, event_type, payload, next_attempt_at,"
        " created_at, status) VALUES ('msg_registration_1', ?, 'registration.created', '{}', '', '', 'delivered')",
        [config.webhooks[0].url],
    )
    migrate(db)
    with db.atomic():
        assert collect(db, config.webhooks, now_utc()) == 1  # the registration after the old cursor
    assert db.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'webhooks_out.%'").fetchone()[0] == 0
    db.close()


async def test_after_a_failure_the_crm_hears_each_lead_change_in_the_order_it_was_made(tmp_path: Path):
    """A failed delivery was retried after the ones behind it had gone: the CRM heard new→qualified
    (500), qualified→accepted, then new→qualified again, and ended on a lead qualified that was accepted."""
    receiver = Receiver()
    server = await receiver.start()
    config = config_for(tmp_path, str(server.make_url("/hook")))
    store = Store.open(config.database_path)
    session = aiohttp.ClientSession()
    try:
        now = now_utc()
        await deliver_due(store, config.webhooks, session, lambda: now)  # marks where the webhook starts
        lead = await store.write(
            lambda db: register(db, petr(db), "lead", at=now, temperature="warm", origin="cli").lead_id
        )
        assert (await deliver_due(store, config.webhooks, session, lambda: now))["delivered"] == 2
        receiver.failures = 3  # the next request gets a 500
        await store.write(lambda db: change_lead(db, lead, at=now, stage="qualified"))
        assert await deliver_due(store, config.webhooks, session, lambda: now) == {
            "delivered": 0,
            "retry": 1,
            "failed": 0,
        }
        await store.write(lambda db: change_lead(db, lead, at=now, stage="accepted"))
        # The qualified event waits its 5 s, and the accepted one waits behind it.
        assert await deliver_due(store, config.webhooks, session, lambda: now + timedelta(seconds=4)) == {
            "delivered": 0,
            "retry": 0,
            "failed": 0,
        }
        assert await deliver_due(store, config.webhooks, session, lambda: now + timedelta(seconds=5)) == {
            "delivered": 2,
            "retry": 0,
            "failed": 0,
        }
    finally:
        await session.close()
        await store.close()
        await server.close()
    heard = [json.loads(body)["data"].get("new", "registered") for _, body in receiver.requests]
    assert heard == ["registered", "new", "qualified", "qualified", "accepted"]


async def next_attempt(store: Store) -> datetime:
    """When the pending delivery is tried next: the clock a test jumps to."""
    text = await store.read(
        lambda db: db.execute(
            "SELECT next_attempt_at FROM webhook_deliveries WHERE status = 'pending'"
        ).fetchone()
    )
    assert text is not None, "nothing is pending"
    return datetime.fromisoformat(text[0])


async def test_a_crm_down_over_a_weekend_gets_the_event_when_it_is_back(tmp_path: Path):
    """After eight attempts (17 h 36 min) the delivery was failed and never sent again: a CRM down
    from Friday night to Monday morning lost every event of the weekend, with no sign."""
    receiver = Receiver(failures=10**6)  # down
    server = await receiver.start()
    config = config_for(tmp_path, str(server.make_url("/hook")))
    store = Store.open(config.database_path)
    session = aiohttp.ClientSession()
    try:
        now = now_utc()
        await deliver_due(store, config.webhooks, session, lambda: now)  # marks where the webhook starts
        await store.write(partial(refuse_petr, at=now))
        at = now
        while at - now < timedelta(hours=60):
            await deliver_due(store, config.webhooks, session, lambda at=at: at)
            following = await next_attempt(store)
            assert following - at <= timedelta(hours=10)  # never more than the top delay apart
            at = following
        tried = len(receiver.requests)
        assert tried == 12  # 8 in the first 17 h 36 min, then one each 10 h
        receiver.failures = 0  # Monday morning
        assert await deliver_due(store, config.webhooks, session, lambda: at) == {
            "delivered": 1,
            "retry": 0,
            "failed": 0,
        }
    finally:
        await session.close()
        await store.close()
        await server.close()
    assert len(receiver.requests) == tried + 1
    assert json.loads(receiver.requests[-1][1])["data"]["reason"] == "spam"


async def status_of(store: Store) -> str:
    return str(await store.read(lambda db: db.execute("SELECT status FROM webhook_deliveries").fetchone()[0]))


async def test_a_delivery_given_up_after_the_journal_days_is_counted_listed_and_sent_again(
    tmp_path: Path, start_server: Any
):
    """A delivery given up on left no sign: /metrics had no webhook series, and no command listed or
    resent it."""
    receiver = Receiver(failures=10**6)  # down
    server = await receiver.start()
    hook = {"url": f"{server.make_url('/hook')}?token=crm-path-secret", "secret": SECRET}
    config = month_config(tmp_path, webhooks=[hook], retention={"journal_days": 2})
    open_month(config.database_path, config).db.close()
    give_up_after = keep_trying(config.retention.journal_days)
    store = Store.open(config.database_path)
    session = aiohttp.ClientSession()
    try:
        now = now_utc()
        await deliver_due(store, config.webhooks, session, lambda: now)  # marks where the webhook starts
        await store.write(partial(refuse_petr, at=now))
        await deliver_due(store, config.webhooks, session, lambda: now, give_up_after=give_up_after)
        at = now
        while await status_of(store) == "pending":
            at = await next_attempt(store)
            await deliver_due(store, config.webhooks, session, lambda at=at: at, give_up_after=give_up_after)
        assert at - now >= timedelta(days=2)  # tried until it was as old as the journal's retention
        # A later event, waiting: the CRM is still down.
        later = at + timedelta(minutes=1)
        await store.write(partial(refuse_petr, at=later, reason="partner"))
        await deliver_due(store, config.webhooks, session, lambda: later, give_up_after=give_up_after)
        failed_id = await store.read(
            lambda db: db.execute("SELECT id FROM webhook_deliveries WHERE status = 'failed'").fetchone()[0]
        )
    finally:
        await store.close()

    try:
        srv = await start_server(month_config(tmp_path), clock=lambda: later + timedelta(hours=1))
        async with srv.session.get(f"{srv.url}/metrics") as resp:
            text = await resp.text()
        await srv.stop()
        assert 'leadline_webhook_deliveries{status="failed"} 1.0' in text
        assert 'leadline_webhook_deliveries{status="pending"} 1.0' in text
        assert 'leadline_webhook_deliveries{status="delivered"} 0.0' in text
        assert "leadline_webhook_oldest_pending_seconds 3600.0" in text

        cfg = str(tmp_path / "config.toml")
        listed = await run_cli("webhooks", "--config", cfg)
        assert listed.code == 0, listed.output
        lines = listed.output.splitlines()
        assert len(lines) == 2 and lines[0].startswith(f"#{failed_id} "), listed.output
        assert "failed, " in lines[0] and "HTTP 500" in lines[0] and "pending, 1 attempt," in lines[1]
        assert f"127.0.0.1:{server.port}" in lines[0] and "crm-path-secret" not in listed.output

        requeued = await run_cli("webhooks", "requeue", str(failed_id), "--config", cfg)
        assert requeued.code == 0, requeued.output
        again = await run_cli("webhooks", "requeue", str(failed_id), "--config", cfg)
        assert again.code == 1 and f"#{failed_id}" in again.output

        receiver.failures = 0  # the CRM is back: both go, the older first
        store = Store.open(config.database_path)
        try:
            back = later + timedelta(hours=2)
            assert await deliver_due(store, config.webhooks, session, lambda: back) == {
                "delivered": 2,
                "retry": 0,
                "failed": 0,
            }
        finally:
            await store.close()
    finally:
        await session.close()
        await server.close()
    reasons = [json.loads(body)["data"]["reason"] for _, body in receiver.requests[-2:]]
    assert reasons == ["spam", "partner"]


async def test_a_webhook_with_a_name_keeps_its_queue_when_its_url_changes(tmp_path: Path):
    """The docs say to change the URL after a 301; the events that had failed with it stayed tied to
    the old URL, were given up as "no longer in the config" and never reached the new one."""
    arrived: list[bytes] = []

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/new")

    async def new(request: web.Request) -> web.Response:
        arrived.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/old", moved)
    app.router.add_post("/new", new)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    old, new_url = str(server.make_url("/old")), str(server.make_url("/new"))

    def hooks(**hook: str) -> list[WebhookConfig]:
        config = month_config(tmp_path, webhooks=[{**hook, "secret": SECRET}])
        return config.webhooks

    config = month_config(tmp_path, webhooks=[{"url": old, "secret": SECRET}])
    open_month(config.database_path, config).db.close()
    store = Store.open(config.database_path)
    session = aiohttp.ClientSession()
    try:
        now = now_utc()
        unnamed = hooks(url=old)
        await deliver_due(store, unnamed, session, lambda: now)  # marks where the webhook starts
        await store.write(partial(refuse_petr, at=now))
        assert (await deliver_due(store, unnamed, session, lambda: now))["retry"] == 1  # HTTP 301
        # First the webhook is given a name: it keeps the queue and the place its URL had.
        named = hooks(name="crm", url=old)
        await store.write(partial(refuse_petr, at=now, reason="partner"))
        later = now + timedelta(minutes=1)
        assert await deliver_due(store, named, session, lambda: later) == {
            "delivered": 0,
            "retry": 1,
            "failed": 0,
        }
        # Then its URL is changed to where the redirect points.
        moved_on = hooks(name="crm", url=new_url)
        assert await deliver_due(store, moved_on, session, lambda: later + timedelta(minutes=5)) == {
            "delivered": 2,
            "retry": 0,
            "failed": 0,
        }
        await store.write(partial(refuse_petr, at=now, reason="job_seeker"))
        assert (await deliver_due(store, moved_on, session, lambda: later + timedelta(minutes=5)))[
            "delivered"
        ] == 1
        statuses = await store.read(
            lambda db: db.execute("SELECT DISTINCT endpoint, status FROM webhook_deliveries").fetchall()
        )
    finally:
        await session.close()
        await store.close()
        await server.close()
    assert [json.loads(body)["data"]["reason"] for body in arrived] == ["spam", "partner", "job_seeker"]
    assert statuses == [("crm", "delivered")]


def test_two_webhooks_cannot_share_a_name(tmp_path: Path):
    import pytest

    from leadline.config import ConfigError

    with pytest.raises(ConfigError) as raised:
        month_config(
            tmp_path,
            webhooks=[
                {"name": "crm", "url": "https://a.example.com/hook", "secret": SECRET},
                {"name": "crm", "url": "https://b.example.com/hook", "secret": SECRET},
            ],
        )
    assert "duplicate name crm" in str(raised.value.problems)


async def test_a_failed_delivery_is_logged_with_its_id_and_its_webhook_and_nothing_masked(
    tmp_path: Path,
):
    """The line carried msg_registration_10_e357****57ad4f57, its random part masked as a phone
    number, and never said which webhook had failed."""
    receiver = Receiver(failures=2)
    server = await receiver.start()
    base, host = str(server.make_url("/hook")), f"127.0.0.1:{server.port}"
    config = month_config(
        tmp_path,
        webhooks=[
            {"name": "crm", "url": f"{base}?key=crm-path-secret", "secret": SECRET},
            {"url": f"{base}?key=other-path-secret", "secret": SECRET},
        ],
    )
    open_month(config.database_path, config).db.close()
    # The sender's lines as serve writes them: JSON, through the scrubber.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ScrubFilter(config.secret_values()))
    logging.getLogger("leadline.webhooks").addHandler(handler)
    store = Store.open(config.database_path)
    session = aiohttp.ClientSession()
    try:
        now = now_utc()
        await deliver_due(store, config.webhooks, session, lambda: now)  # marks where the webhooks start
        await store.write(partial(refuse_petr, at=now))
        assert (await deliver_due(store, config.webhooks, session, lambda: now))["retry"] == 2
        rows = await store.read(
            lambda db: db.execute("SELECT endpoint, id, webhook_id FROM webhook_deliveries").fetchall()
        )
    finally:
        logging.getLogger("leadline.webhooks").removeHandler(handler)
        await session.close()
        await store.close()
        await server.close()
    ids = {endpoint: (delivery, webhook_id) for endpoint, delivery, webhook_id in rows}
    failed = sorted(
        (line for line in log_lines(stream) if line["msg"] == "webhook delivery failed"),
        key=lambda line: str(line["webhook"]),
    )
    assert [(line["webhook"], line["delivery"], line["error"]) for line in failed] == [
        (host, ids[config.webhooks[1].url][0], "HTTP 500"),
        ("crm", ids["crm"][0], "HTTP 500"),
    ]
    text = stream.getvalue()
    assert "***" not in text and "path-secret" not in text and "/hook" not in text
