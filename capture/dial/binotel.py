"""Binotel: ``calls/internal-number-to-external-number`` (API 4.0), the extension first, then the client.

From the clients of Binotel's API 4.0 in the index (``binotel-api`` packages for Laravel and
Python): POST ``https://api.binotel.com/api/4.0/calls/internal-number-to-external-number.json`` a
JSON body ``{"internalNumber", "externalNumber", "pbxNumber"?, "key", "secret"}`` (4.0 sends the key
and secret in the body; 2.0 signed with ``md5(secret + json)``); the answer is ``{"status":
"success", "generalCallID"}`` or ``{"status": "error", "code", "message"}``. Numbers are written
nationally, ten digits for Ukraine (``0671234567``).

Verified (second-hand: client libraries, not Binotel's own page): the path, the fields, the answer.
UNVERIFIED: the national form for numbers outside Ukraine (this sends the national digits).
"""

from __future__ import annotations

import aiohttp
import phonenumbers

from capture.dial import Call, Refused, answer_json
from leadline.config import SourceConfig

API_URL = "https://api.binotel.com/api/4.0"


def ring(source: SourceConfig, extension: str | None, phone: str | None) -> str | None:
    """The call starts from an internal line (``internalNumber`` is required)."""
    return extension


def national(number: str) -> str:
    """``+380671234567`` as Binotel writes it, ``0671234567``."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return "".join(c for c in number if c.isdigit())
    written = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(c for c in written if c.isdigit())


async def dial(http: aiohttp.ClientSession, source: SourceConfig, call: Call) -> None:
    if call.staff_is_number:
        raise Refused("Binotel rings an internal line: give this staff member extensions in the config")
    body: dict[str, object] = {
        "internalNumber": call.staff,
        "externalNumber": national(call.client),
        "key": source.secret_value("api_key"),
        "secret": source.secret_value("api_secret"),
    }
    if call.line:
        body["pbxNumber"] = national(call.line)
    url = f"{source.api_url or API_URL}/calls/internal-number-to-external-number.json"
    call.progress.sent = True
    async with http.post(url, json=body) as response:
        answer = await answer_json(response)
    if answer.get("status") != "success":
        code = answer.get("code")
        raise Refused(
            f"Binotel{f' {code}' if code else ''}: {answer.get('message') or f'HTTP {response.status}'}"
        )
