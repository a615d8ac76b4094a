"""Fakes of the PBXs' call-back APIs on 127.0.0.1, each checking the signing its provider documents.

A fake answers a request that is signed wrong with the provider's own kind of refusal (and records
it as unsigned), so a test of a call-back sees the PBX refuse rather than a fake that accepts anything.
Their checks are written here from the providers' documents, not imported from ``capture/dial``, so a
signing bug in Leadline cannot hide behind the same bug in the fake. ``refuse`` makes the next
commands fail the way the PBX says no (a busy extension, no money).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode
from xml.etree import ElementTree

from aiohttp import web


@dataclass
class Received:
    """One request as the fake understood it: its path, the parameters, and whether it was signed right."""

    path: str
    params: dict[str, Any]
    signed: bool


@dataclass
class FakeApi:
    """An aiohttp server on 127.0.0.1 whose subclass answers every request in :meth:`answer`."""

    received: list[Received] = field(default_factory=list)
    #: When set, a correctly signed command is refused with this reason.
    refuse: str | None = None
    #: Seconds every answer waits after the request was taken (a loaded PBX, a slow link).
    delay: float = 0.0
    _runner: web.AppRunner | None = None
    _port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def commands(self) -> list[Received]:
        """The correctly signed requests."""
        return [r for r in self.received if r.signed]

    async def answer(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    async def _answer_late(self, request: web.Request) -> web.Response:
        response = await self.answer(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        return response

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer_late)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class FakeMango(FakeApi):
    """Mango's VPBX API: POST /vpbx/commands/callback, a form of vpbx_api_key, sign and json, where
    sign = hex(sha256(vpbx_api_key + json + vpbx_api_salt)) (the VPBX API PDF, FORMATS.md §1.1)."""

    key: str = ""
    salt: str = ""

    async def answer(self, request: web.Request) -> web.Response:
        form = await request.post()
        key, sign, text = (
            str(form.get("vpbx_api_key", "")),
            str(form.get("sign", "")),
            str(form.get("json", "")),
        )
        expected = hashlib.sha256((self.key + text + self.salt).encode()).hexdigest()
        signed = request.method == "POST" and key == self.key and hmac.compare_digest(sign, expected)
        params = json.loads(text) if text else {}
        self.received.append(Received(request.path, params, signed))
        if not signed:
            return web.json_response({"result": 3102, "message": "wrong sign"}, status=401)
        if request.path != "/vpbx/commands/callback" or not {"command_id", "from", "to_number"} <= set(
            params
        ):
            return web.json_response({"result": 3100, "message": "invalid parameters"}, status=400)
        if self.refuse:
            return web.json_response({"result": 3300, "message": self.refuse})
        return web.json_response({"result": 1000})


def zadarma_sign(method: str, params: dict[str, str], key: str, secret: str) -> str:
    """Zadarma's ``Authorization`` header: ``key:base64(hex(hmac_sha1(method + query + md5(query))))``
    over the parameters sorted by name and URL-encoded (its official Python client, user-api-py-v1)."""
    query = urlencode(sorted(params.items()))
    data = method + query + hashlib.md5(query.encode()).hexdigest()
    digest = hmac.new(secret.encode(), data.encode(), hashlib.sha1).hexdigest()
    return key + ":" + base64.b64encode(digest.encode()).decode()


@dataclass
class FakeZadarma(FakeApi):
    """Zadarma's API v1: GET /v1/request/callback/?from=&to=&format=json with its signed header."""

    key: str = ""
    secret: str = ""

    async def answer(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        expected = zadarma_sign(request.path, params, self.key, self.secret)
        signed = hmac.compare_digest(request.headers.get("Authorization", ""), expected)
        self.received.append(Received(request.path, params, signed))
        if not signed:
            return web.json_response({"status": "error", "message": "Not authorized"}, status=401)
        if request.path != "/v1/request/callback/" or not {"from", "to"} <= set(params):
            return web.json_response({"status": "error", "message": "Wrong parameters"}, status=400)
        if self.refuse:
            return web.json_response({"status": "error", "message": self.refuse})
        return web.json_response(
            {"status": "success", "from": params["from"], "to": params["to"], "time": 1709652000}
        )


@dataclass
class FakeTwilio(FakeApi):
    """Twilio's REST API: POST /2010-04-01/Accounts/{AccountSid}/Calls.json, basic auth
    AccountSid:AuthToken, form fields To, From and Twiml (twilio.com/docs/voice/api/call-resource).
    Each call it creates gets the sid ``CA`` + 32 zeros; a test plays what Twilio does next."""

    account_sid: str = ""
    auth_token: str = ""

    @property
    def dial_actions(self) -> list[str | None]:
        """The ``<Dial action>`` of each call's TwiML, which Twilio requests when the dialled leg ends
        (twilio.com/docs/voice/twiml/dial); None for a call whose ``<Dial>`` names none."""
        actions: list[str | None] = []
        for command in self.commands:
            dial = ElementTree.fromstring(command.params.get("Twiml", "<Response/>")).find("Dial")
            actions.append(None if dial is None else dial.get("action"))
        return actions

    async def answer(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        path = f"/2010-04-01/Accounts/{self.account_sid}/Calls.json"
        signed = request.method == "POST" and hmac.compare_digest(
            request.headers.get("Authorization", ""), expected
        )
        self.received.append(Received(request.path, form, signed))
        if not signed:
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401}, status=401)
        if request.path != path or not {"To", "From"} <= set(form) or not ({"Twiml", "Url"} & set(form)):
            return web.json_response(
                {"code": 21201, "message": "No 'To' number is specified", "status": 400}, status=400
            )
        if self.refuse:
            return web.json_response({"code": 21210, "message": self.refuse, "status": 400}, status=400)
        call = {"sid": "CA" + "0" * 32, "status": "queued", "to": form["To"], "from": form["From"]}
        return web.json_response(call, status=201)


@dataclass
class FakeUis(FakeApi):
    """UIS's Call API v4.0: JSON-RPC 2.0 POSTed to /v4.0; ``start.simple_call`` needs access_token,
    first_call, virtual_phone_number, contact and operator (comagic.ru index-doc-call-api)."""

    token: str = ""

    async def answer(self, request: web.Request) -> web.Response:
        body = await request.json()
        params = body.get("params") or {}
        signed = request.method == "POST" and params.get("access_token") == self.token
        self.received.append(Received(request.path, params, signed))

        def error(code: int, mnemonic: str, message: str) -> web.Response:
            return web.json_response(
                {
                    "jsonrpc": "2.0",
                    "id": body.get("id"),
                    "error": {"code": code, "message": message, "data": {"mnemonic": mnemonic}},
                }
            )

        if not signed:
            return error(-32001, "access_token_invalid", "Access token has been blocked or invalid")
        required = {"first_call", "virtual_phone_number", "contact", "operator"}
        if (
            body.get("jsonrpc") != "2.0"
            or body.get("method") != "start.simple_call"
            or not required <= set(params)
        ):
            return error(-32602, "required_parameter_missed", "Required parameter has been missed")
        if self.refuse:
            return error(-32007, "virtual_phone_number_not_found", self.refuse)
        return web.json_response(
            {"jsonrpc": "2.0", "id": body["id"], "result": {"data": {"call_session_id": 237859081}}}
        )


@dataclass
class FakeBinotel(FakeApi):
    """Binotel's API 4.0: POST /api/4.0/calls/internal-number-to-external-number.json, a JSON body
    with internalNumber, externalNumber, key and secret (the API 4.0 clients)."""

    key: str = ""
    secret: str = ""

    async def answer(self, request: web.Request) -> web.Response:
        body = await request.json()
        signed = body.get("key") == self.key and body.get("secret") == self.secret
        self.received.append(Received(request.path, body, signed))
        if not signed:
            return web.json_response({"status": "error", "code": 120, "message": "Wrong key or secret"})
        if request.path != "/api/4.0/calls/internal-number-to-external-number.json" or not {
            "internalNumber",
            "externalNumber",
        } <= set(body):
            return web.json_response({"status": "error", "code": 101, "message": "Missing parameters"})
        if self.refuse:
            return web.json_response({"status": "error", "code": 104, "message": self.refuse})
        return web.json_response({"status": "success", "generalCallID": 5123456789})
