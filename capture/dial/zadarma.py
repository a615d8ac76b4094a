"""Zadarma (and Novofon API v1): ``GET /v1/request/callback/``, signed with the API key and secret.

From the official clients (``zadarma/user-api-py-v1`` ``zadarma/api.py``; ``zadarma/user-api-v1``
``lib/Api.php::requestCallback``): parameters ``from`` (the PBX extension, SIP or phone rung first),
``to`` (the number called once ``from`` answers, digits only) and ``format=json``; the header
``Authorization: <api_key>:<sign>`` where ``sign = base64(hex(hmac_sha1(secret, method + query +
md5(query))))``, ``method`` the path (``/v1/request/callback/``) and ``query`` the parameters sorted
by name and URL-encoded. The answer is ``{"status": "success", ...}`` or ``{"status": "error",
"message": ...}``.

Verified: all of the above, from both official clients. UNVERIFIED: whether an extension must be
written as ``101`` or as the PBX's ``<account>-101`` (the PHP docblock says "the PBX extension
number"; this sends it as the staff member's ``extensions`` has it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode

import aiohttp

from capture.dial import Call, Refused, answer_json
from leadline.config import SourceConfig

API_URL = "https://api.zadarma.com"
METHOD = "/v1/request/callback/"


def digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())


def authorization(method: str, params: dict[str, str], key: str, secret: str) -> str:
    query = urlencode(sorted(params.items()))
    data = method + query + hashlib.md5(query.encode("utf-8")).hexdigest()
    sign = hmac.new(secret.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).hexdigest()
    return f"{key}:{base64.b64encode(sign.encode('ascii')).decode('ascii')}"


async def dial(http: aiohttp.ClientSession, source: SourceConfig, call: Call) -> None:
    params = {
        "format": "json",
        "from": digits(call.staff) if call.staff_is_number else call.staff,
        "to": digits(call.client),
    }
    auth = authorization(METHOD, params, source.secret_value("api_key"), source.secret_value("api_secret"))
    query = urlencode(sorted(params.items()))
    url = f"{source.api_url or API_URL}{METHOD}?{query}"
    call.progress.sent = True
    async with http.get(url, headers={"Authorization": auth}) as response:
        answer = await answer_json(response)
    if answer.get("status") != "success":
        raise Refused(f"Zadarma: {answer.get('message') or f'HTTP {response.status}'}")
