"""The floor for ``bench/ingest.py``: the form mix received the obvious way with the same libraries.

aiohttp parses the form, phonenumbers and email-validator normalise, and a writer on the event
loop commits whatever requests wait (group commit) to SQLite in WAL with ``synchronous=FULL``: a
journal row, the contact its identifiers point to or a new one, the identifiers and the touch; each
request is answered after the commit that holds it and logged in one line. No signatures beyond a
token, no replay, no merges, no metrics: what is left of Leadline's cost once its features are gone.
Run: ``python bench/floor.py PORT DATABASE``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import phonenumbers
from aiohttp import web
from email_validator import EmailNotValidError, validate_email

from leadline.serve import event_loop

log = logging.getLogger("floor")

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY, source TEXT, method TEXT, path TEXT,
  query_string TEXT, headers TEXT, body BLOB, received_at REAL, status TEXT);
CREATE TABLE IF NOT EXISTS contacts (id INTEGER PRIMARY KEY, name TEXT, created_at REAL);
CREATE TABLE IF NOT EXISTS identifiers (id INTEGER PRIMARY KEY, contact_id INTEGER, kind TEXT,
  value TEXT, raw TEXT, valid INTEGER, UNIQUE (contact_id, kind, value));
CREATE INDEX IF NOT EXISTS identifiers_value ON identifiers (kind, value);
CREATE TABLE IF NOT EXISTS touches (id INTEGER PRIMARY KEY, source TEXT, external_id TEXT,
  contact_id INTEGER, journal_id INTEGER, occurred_at REAL, name TEXT, message TEXT, utm TEXT,
  UNIQUE (source, external_id));
"""

Ident = tuple[str, str, str, int]


def normalise_phone(raw: str) -> Ident:
    try:
        number = phonenumbers.parse(raw, "RU")
    except phonenumbers.NumberParseException:
        return ("phone", raw, raw, 0)
    if not phonenumbers.is_valid_number(number):
        return ("phone", raw, raw, 0)
    return ("phone", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), raw, 1)


def normalise_email(raw: str) -> Ident:
    value = raw.strip().lower()
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return ("email", value, raw, 0)
    return ("email", value, raw, 1)


class Floor:
    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.executescript(SCHEMA)
        self.waiting: list[tuple[dict[str, Any], asyncio.Future[int]]] = []
        self.wake = asyncio.Event()

    def store(self, item: dict[str, Any]) -> int:
        db, form = self.db, item["form"]
        journal_id = db.execute(
            "INSERT INTO journal (source, method, path, query_string, headers, body, received_at, status)"
            " VALUES ('form', ?, ?, ?, ?, ?, ?, 'processed')",
            (item["method"], item["path"], item["query"], item["headers"], item["body"], item["at"]),
        ).lastrowid
        contact_id = None
        for kind, value, _, valid in item["idents"]:
            row = (
                valid
                and db.execute(
                    "SELECT contact_id FROM identifiers WHERE kind = ? AND value = ? AND valid = 1",
                    (kind, value),
                ).fetchone()
            )
            if row:
                contact_id = row[0]
                break
        if contact_id is None:
            contact_id = db.execute(
                "INSERT INTO contacts (name, created_at) VALUES (?, ?)", (form.get("name"), item["at"])
            ).lastrowid
        db.executemany(
            "INSERT OR IGNORE INTO identifiers (contact_id, kind, value, raw, valid) VALUES (?, ?, ?, ?, ?)",
            [(contact_id, *ident) for ident in item["idents"]],
        )
        db.execute(
            "INSERT OR IGNORE INTO touches (source, external_id, contact_id, journal_id, occurred_at, name,"
            " message, utm) VALUES ('form', ?, ?, ?, ?, ?, ?, ?)",
            (
                form.get("submission_id"),
                contact_id,
                journal_id,
                item["at"],
                form.get("name"),
                form.get("message"),
                json.dumps({k: v for k, v in form.items() if k.startswith("utm_")}),
            ),
        )
        return int(journal_id or 0)

    async def writer(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.waiting = self.waiting, []
            self.db.execute("BEGIN IMMEDIATE")
            ids = [self.store(item) for item, _ in batch]
            self.db.execute("COMMIT")
            for (_, future), journal_id in zip(batch, ids, strict=True):
                future.set_result(journal_id)

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        if request.method == "GET":  # the bench's health check
            return web.Response(text="ok")
        if request.query.get("token") != "bench-token":
            return web.Response(status=401)
        body = await request.read()
        form = await request.post()
        idents = [normalise_phone(str(p)) for p in form.getall("phone", [])]
        idents += [normalise_email(str(e)) for e in form.getall("email", [])]
        item = {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "headers": json.dumps(list(request.headers.items())),
            "body": body,
            "at": time.time(),
            "form": {k: str(v) for k, v in form.items()},
            "idents": idents,
        }
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting.append((item, future))
        self.wake.set()
        journal_id = await future
        ms = round((time.perf_counter() - started) * 1000, 2)
        log.info(json.dumps({"msg": "request", "source": "form", "journal_id": journal_id, "ms": ms}))
        return web.Response(text="ok")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    floor = Floor(sys.argv[2])

    async def writer_ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(floor.writer())
        yield
        task.cancel()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", floor.handle)
    app.cleanup_ctx.append(writer_ctx)
    # Leadline's event loop (uvloop where installed): the floor differs in the work, not the loop.
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=event_loop())


if __name__ == "__main__":
    main()
