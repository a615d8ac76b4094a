"""Twilio: a REST call from the tracking number that rings the staff member, then bridges the client.

``POST /2010-04-01/Accounts/{AccountSid}/Calls.json`` with ``To`` (the staff member's phone, else
the source's ``forward_to``), ``From`` (the Twilio number the client called, the touch's tracking
number; else ``forward_to`` cannot be used and the call is refused) and ``Twiml`` a ``<Dial>`` of the
client with that number as caller id, by basic auth ``AccountSid:AuthToken``.

A REST call reports nothing by itself (the number's webhooks are for calls to it), so the ``<Dial>``
has ``action="<public_url>/hooks/<source>/dial-action?callback_to=<client's digits>"`` (and the
source's ``token``, when it has one): when the client's leg ends, Twilio requests it, signed like
every Twilio webhook (the signature covers the query), with the REST call's ``CallSid``,
``Direction=outbound-api``, ``From`` our number, ``To`` the staff member, and ``DialCallStatus`` /
``DialCallDuration`` of the client's leg. The provider
(capture/providers/twilio.py) stores that as the office's outgoing call to ``callback_to``, which
closes the missed call like any answered call to the number. The TwiML is the
official ``twilio`` library's ``VoiceResponse`` (it escapes); the one POST is ours, on the dialer's
session: the library's async REST client passes ``auth=`` that aiohttp deprecates and leaves its
session open when a call fails. ``api_url`` replaces ``https://api.twilio.com`` (a test fake).

Verified (the library's own ``calls.create`` and Twilio's Call resource page): the path, the form
fields ``To``, ``From``, ``Twiml``, basic auth, ``201`` with the call, errors as ``{"code",
"message", "status"}``. Verified (Twilio's ``<Dial>`` page, FORMATS.md §1.3, the library's
``direction`` docs): the action URL is requested when the dialled call ends, with the
``DialCallStatus`` extras and the current (REST) call's own parameters, ``outbound-api`` being the
direction of a call made through the REST API. UNVERIFIED against a live account: which codes a
trial account gives, and the action request's ``From``/``To`` (read as the REST call's, which is
what Twilio's request parameters describe; only ``callback_to`` names the client).
"""

from __future__ import annotations

import base64
from urllib.parse import quote

import aiohttp

from capture.dial import Call, Refused, answer_json
from capture.providers.twilio import CALLBACK_TO, dial_action_url
from leadline.config import SourceConfig

API_URL = "https://api.twilio.com"


def twiml(call: Call, caller_id: str, source: SourceConfig) -> str:
    """What Twilio does once the staff member picks up: dial the client, showing our number, and
    report how that leg ended to the source's dial action, naming the client (and carrying the
    source's token, which that webhook needs like every other)."""
    from twilio.twiml.voice_response import Dial, VoiceResponse

    client = "".join(c for c in call.client if c.isdigit())
    response = VoiceResponse()
    action = dial_action_url(call.hooks_url, source, **{CALLBACK_TO: client})
    dial = Dial(caller_id=caller_id, action=action, method="POST")
    dial.number(call.client)
    response.append(dial)
    return str(response)


def ring(source: SourceConfig, extension: str | None, phone: str | None) -> str | None:
    """Twilio has no extensions: the staff member's own phone, else the number the source forwards to."""
    return phone or source.forward_to


async def dial(http: aiohttp.ClientSession, source: SourceConfig, call: Call) -> None:
    staff = call.staff if call.staff_is_number else (source.forward_to or "")
    if not staff.startswith("+"):
        raise Refused("Twilio rings a phone number: give this staff member a phone in the config")
    if not call.line:
        raise Refused("Twilio calls from the number the client dialled, and this call has none")
    sid = source.secret_value("api_key")
    url = f"{source.api_url or API_URL}/2010-04-01/Accounts/{quote(sid, safe='')}/Calls.json"
    form = {"To": staff, "From": call.line, "Twiml": twiml(call, call.line, source)}
    # Basic auth by hand: aiohttp 3.14 deprecates BasicAuth for encode_basic_auth, which 3.9 lacks.
    auth = "Basic " + base64.b64encode(f"{sid}:{source.secret_value('auth_token')}".encode()).decode("ascii")
    call.progress.sent = True
    async with http.post(url, data=form, headers={"Authorization": auth}) as response:
        answer = await answer_json(response)
    if response.status >= 300:
        raise Refused(f"Twilio {answer.get('code') or response.status}: {answer.get('message') or 'refused'}")
