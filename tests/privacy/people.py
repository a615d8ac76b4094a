"""One person with a trail through Leadline, and a byte search of the database for what names them."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from leadline.config import Config
from tests.capture.test_mango import MANGO_SOURCE, post_mango, signed_mango, summary
from tests.conftest import BASE, Running
from tests.numbers.month import month_config

API_TOKEN = "crm-token-0123456789"
API_AUTH = {"Authorization": f"Bearer {API_TOKEN}"}

#: The person who asks to be forgotten, with a name nobody else in any test has.
NAME = "Ottilie Zwanziger"
PHONE_TYPED = "+7 916 123-45-67"
E164 = "+79161234567"
EMAIL = "Ottilie.Z@example.org"
#: Every way the person's data may sit in the file: E.164, as typed, as Mango sends it (digits),
#: the national number, the email in both cases and URL-encoded, the name's words.
TRACES = [
    E164,
    PHONE_TYPED,
    "79161234567",
    "9161234567",
    EMAIL,
    EMAIL.lower(),
    "Ottilie.Z%40example.org",
    "Ottilie",
    "Zwanziger",
]
#: Someone else, who stays.
OTHER_PHONE = "+7 925 000-11-22"

#: The site-form source that refuses the person's first try: its phone field has a name the
#: parser does not know until ``field_map`` names it.
SITE = {"name": "site", "provider": "generic_form", "token": "site-token"}


def privacy_config(tmp_path: Path, **overrides: Any) -> Config:
    """The test config with Mango, a CRM's API token and the ``site`` form; written to config.toml,
    and to fixed.toml with the ``site`` form's field map that makes its refused request readable."""
    sources = [*BASE["sources"], MANGO_SOURCE]
    common = {"api_clients": [{"name": "crm", "token": API_TOKEN}], **overrides}
    month_config(tmp_path, sources=[*sources, {**SITE, "field_map": {"phone": ["contact_number"]}}], **common)
    shutil.move(tmp_path / "config.toml", tmp_path / "fixed.toml")
    return month_config(tmp_path, sources=[*sources, SITE], **common)


async def leave_a_trail(srv: Running) -> None:
    """The person's form (JSON, so the journal keeps the number as typed), a missed call from the
    same number, a form the ``site`` source refused, a registration as a lead from a CRM; and a
    stranger's form."""
    form = {
        "name": NAME,
        "phone": PHONE_TYPED,
        "email": EMAIL,
        "message": f"Please call {NAME} about a kitchen",
    }
    async with srv.session.post(f"{srv.url}/hooks/form?token=form-token", json=form) as resp:
        assert resp.status == 200, await resp.text()
    call = summary("entry-forget-1", E164.lstrip("+"), start=int(time.time()) - 60, answered=False)
    resp = await post_mango(srv, "/events/summary", signed_mango(call))
    assert resp.status == 200, await resp.text()
    refused = {"contact_number": "8 (916) 123-45-67", "name": NAME}
    async with srv.session.post(f"{srv.url}/hooks/site?token=site-token", json=refused) as resp:
        assert resp.status == 400
    registration = {
        "phone": E164,
        "disposition": "lead",
        "temperature": "hot",
        "need": f"A kitchen for {NAME}",
        "note": f"{NAME} prefers mornings",
    }
    async with srv.session.post(f"{srv.url}/api/registrations", json=registration, headers=API_AUTH) as resp:
        assert resp.status == 201, await resp.text()
    other = {"name": "Karl Other", "phone": OTHER_PHONE, "message": "A quote, please"}
    async with srv.session.post(f"{srv.url}/hooks/form?token=form-token", json=other) as resp:
        assert resp.status == 200, await resp.text()


#: Reads the files in a process of its own: closing a file in the server's process would drop the
#: POSIX locks SQLite holds on it there (and let another process delete the write-ahead log).
_SEARCH = """
import json, os, sys
traces = json.loads(sys.argv[2])
found = {}
for path in (sys.argv[1], sys.argv[1] + "-wal"):
    data = open(path, "rb").read() if os.path.exists(path) else b""
    found[os.path.basename(path)] = [t for t in traces if t.encode() in data]
print(json.dumps(found))
"""


async def traces_in(database: Path, traces: list[str] = TRACES) -> dict[str, list[str]]:
    """Which of ``traces`` the database file and its write-ahead log hold, byte for byte."""
    search = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SEARCH, str(database), json.dumps(traces), stdout=subprocess.PIPE
    )
    out, _ = await search.communicate()
    assert search.returncode == 0
    found: dict[str, list[str]] = json.loads(out)
    return found
