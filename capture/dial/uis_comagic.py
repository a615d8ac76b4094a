"""UIS / CoMagic: the Call API's ``start.simple_call`` (JSON-RPC 2.0), operator first, then the client.

From the Call API v4.0 reference (comagic.ru ``index-doc-call-api.html``, mirrored in
``andrey149502/comagic-api`` ``call-api.md``): POST ``https://callapi.uiscom.ru/v4.0`` a JSON-RPC
request ``{"jsonrpc": "2.0", "id", "method": "start.simple_call", "params": {"access_token",
"first_call": "operator", "switch_at_once": true, "virtual_phone_number", "contact", "operator":
{"phone_number"}, "direction": "out"}}``; numbers in E.164 without ``+``. The answer is ``{"result":
{"data": {"call_session_id"}}}`` or ``{"error": {"code", "message", "data": {"mnemonic"}}}``.
``start.employee_call`` would need UIS's own employee id, which Leadline does not know.

Verified: the method, its parameters and answers, from that reference. UNVERIFIED: whether
``operator.phone_number`` takes an extension (the reference allows one for ``employee``, and says
the operator "is not an employee"); Leadline sends the staff member's own number when it has one.
"""

from __future__ import annotations

import uuid

import aiohttp

from capture.dial import Call, Refused, answer_json
from leadline.config import SourceConfig

API_URL = "https://callapi.uiscom.ru/v4.0"


def ring(source: SourceConfig, extension: str | None, phone: str | None) -> str | None:
    """The operator leg is a number: the staff member's own, else their extension."""
    return phone or extension


def digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())


async def dial(http: aiohttp.ClientSession, source: SourceConfig, call: Call) -> None:
    if not call.line:
        raise Refused("UIS calls from one of your virtual numbers, and this call came in on none")
    request = {
        "jsonrpc": "2.0",
        "id": f"leadline-{uuid.uuid4().hex}",
        "method": "start.simple_call",
        "params": {
            "access_token": source.secret_value("api_key"),
            "first_call": "operator",
            "switch_at_once": True,
            "virtual_phone_number": digits(call.line),
            "contact": digits(call.client),
            "operator": {"phone_number": digits(call.staff) if call.staff_is_number else call.staff},
            "direction": "out",
        },
    }
    call.progress.sent = True
    async with http.post(source.api_url or API_URL, json=request) as response:
        answer = await answer_json(response)
    error = answer.get("error")
    if isinstance(error, dict):
        data = error.get("data")
        mnemonic = data.get("mnemonic") if isinstance(data, dict) else None
        raise Refused(f"UIS {mnemonic or error.get('code')}: {error.get('message')}")
    result = answer.get("result")
    if not isinstance(result, dict):
        raise Refused(f"UIS answered HTTP {response.status} without a result")
