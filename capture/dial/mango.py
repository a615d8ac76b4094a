"""Mango Office VPBX: ``commands/callback``, signed as its webhooks are.

From the VPBX API PDF (v1.9/1.10, see FORMATS.md §1.1) and the ``dasshit/Python-Mango-Office-API``
client: POST ``<api_url>/commands/callback`` as a form of ``vpbx_api_key``, ``sign`` and ``json``,
where ``sign = hex(sha256(vpbx_api_key + json + vpbx_api_salt))`` and ``json`` is
``{"command_id", "from": {"extension"} | {"extension", "number"}, "to_number", "line_number"?}``.
Mango rings the employee's extension and then the client, from ``line_number`` when given.

Verified: the path, the form fields, the signature (the same one Leadline checks on Mango's webhooks)
and the command's keys. UNVERIFIED: the synchronous answer; the client above and the PDF's command
results (``result/callback``: ``{"command_id", "result": 1000}``) suggest ``{"result": 1000}`` on
success and another 4-digit code otherwise, which is what this reads.
"""

from __future__ import annotations

import hashlib
import json
import uuid

import aiohttp

from capture.dial import Call, Refused, answer_json
from leadline.config import SourceConfig

API_URL = "https://app.mango-office.ru/vpbx"
#: Mango's result code of a command it accepted.
ACCEPTED = 1000


def command(call: Call) -> dict[str, object]:
    """The ``commands/callback`` body: ring ``from`` (the staff member), then ``to_number``."""
    if call.staff_is_number:
        raise Refused("Mango rings an employee by extension: give this staff member extensions in the config")
    body: dict[str, object] = {
        "command_id": f"leadline-{uuid.uuid4().hex}",
        "from": {"extension": call.staff},
        "to_number": call.client.lstrip("+"),
    }
    if call.line:
        body["line_number"] = call.line.lstrip("+")
    return body


def signed(source: SourceConfig, body: dict[str, object]) -> dict[str, str]:
    key, salt = source.secret_value("vpbx_api_key"), source.secret_value("vpbx_api_salt")
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    sign = hashlib.sha256((key + payload + salt).encode("utf-8")).hexdigest()
    return {"vpbx_api_key": key, "sign": sign, "json": payload}


def ring(source: SourceConfig, extension: str | None, phone: str | None) -> str | None:
    """Mango's callback starts from an employee's extension (``from.extension`` is required)."""
    return extension


async def dial(http: aiohttp.ClientSession, source: SourceConfig, call: Call) -> None:
    url = f"{source.api_url or API_URL}/commands/callback"
    call.progress.sent = True
    async with http.post(url, data=signed(source, command(call))) as response:
        answer = await answer_json(response)
    result = answer.get("result")
    if response.status != 200 or str(result) != str(ACCEPTED):
        message = answer.get("message") or answer.get("description")
        raise Refused(
            f"Mango result {result}" + (f": {message}" if message else f" (HTTP {response.status})")
        )
