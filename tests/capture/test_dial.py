"""Each PBX client of ``capture/dial`` against a fake of its provider's API on 127.0.0.1.

The fakes (tests/fake_pbx.py) check the signing and parameters each provider documents and refuse
what is signed wrong, so a call-back that passes here is one the provider would take. What the
person who pressed the button sees is the dialer's answer: None (the PBX took it) or the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import aiohttp
import pytest

from capture.dial import TAKEN, Outcome, PbxDialer, dialable
from leadline.config import ConfigError
from tests.conftest import build_config
from tests.fake_ami import FakeAmi
from tests.fake_esl import FakeEsl
from tests.fake_pbx import FakeBinotel, FakeTwilio, FakeUis, FakeZadarma

CLIENT = "+79160000013"
LINE = "+74950000055"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def refused(reason: str) -> Outcome:
    """The PBX will not ring: the button is free again, and the person reads why."""
    return Outcome("refused", reason)


def dialer(tmp_path: Path, http: aiohttp.ClientSession, source: dict[str, Any]) -> PbxDialer:
    return PbxDialer(build_config(tmp_path, sources=[source]), http)


# ---------------------------------------------------------------------- Zadarma

ZADARMA_KEY, ZADARMA_SECRET = "zd-api-key-0001", "zd-api-secret-0001"


@pytest.fixture
async def zadarma_api() -> AsyncIterator[FakeZadarma]:
    async with FakeZadarma(key=ZADARMA_KEY, secret=ZADARMA_SECRET) as fake:
        yield fake


def zadarma_source(url: str, **keys: str) -> dict[str, Any]:
    source = {"name": "zd", "provider": "zadarma", "api_secret": ZADARMA_SECRET, "api_key": ZADARMA_KEY}
    return {**source, "api_url": url, **keys}


async def test_zadarma_request_callback_is_signed_with_the_api_key_and_names_both_ends(
    tmp_path: Path, http: aiohttp.ClientSession, zadarma_api: FakeZadarma, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "leadline.dial")
    pbx = dialer(tmp_path, http, zadarma_source(zadarma_api.url))
    assert await pbx.dial("zd", "101", CLIENT, LINE) == TAKEN
    [command] = zadarma_api.commands
    assert command.path == "/v1/request/callback/"
    assert command.params == {"from": "101", "to": "79160000013", "format": "json"}
    [record] = [r for r in caplog.records if r.getMessage() == "call-back requested"]
    logged = str(record.__dict__["fields"])
    assert "79160000013" not in logged and ZADARMA_SECRET not in logged and "101" in logged


async def test_zadarma_signed_with_another_secret_is_refused_with_zadarmas_words(
    tmp_path: Path, http: aiohttp.ClientSession, zadarma_api: FakeZadarma
) -> None:
    pbx = dialer(tmp_path, http, zadarma_source(zadarma_api.url, api_key="zd-api-key-0002"))
    assert await pbx.dial("zd", "101", CLIENT, None) == refused("Zadarma: Not authorized")
    assert zadarma_api.commands == []


async def test_zadarma_refusing_the_call_back_gives_its_reason(
    tmp_path: Path, http: aiohttp.ClientSession, zadarma_api: FakeZadarma
) -> None:
    zadarma_api.refuse = "Not enough money"
    pbx = dialer(tmp_path, http, zadarma_source(zadarma_api.url))
    assert await pbx.dial("zd", "+79161112233", CLIENT, None) == refused("Zadarma: Not enough money")
    assert zadarma_api.commands[0].params["from"] == "79161112233"


# ---------------------------------------------------------------------- Twilio

TWILIO_SID, TWILIO_TOKEN = "AC" + "1" * 32, "twilio-auth-token-0001"


@pytest.fixture
async def twilio_api() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN) as fake:
        yield fake


def twilio_source(url: str, **keys: str) -> dict[str, Any]:
    source = {"name": "tw", "provider": "twilio", "auth_token": TWILIO_TOKEN, "api_key": TWILIO_SID}
    return {**source, "forward_to": "+74957770000", "api_url": url, **keys}


async def test_twilio_calls_the_staff_member_from_the_tracking_number_and_dials_the_client(
    tmp_path: Path, http: aiohttp.ClientSession, twilio_api: FakeTwilio
) -> None:
    pbx = dialer(tmp_path, http, twilio_source(twilio_api.url))
    assert await pbx.dial("tw", "+79161112233", CLIENT, LINE) == TAKEN
    [command] = twilio_api.commands
    assert (command.params["To"], command.params["From"]) == ("+79161112233", LINE)
    dial = ElementTree.fromstring(command.params["Twiml"]).find("Dial")
    assert dial is not None and dial.get("callerId") == LINE
    assert [n.text for n in dial.findall("Number")] == [CLIENT]
    # How the client's leg ended comes back to the source's webhook, naming the client.
    assert twilio_api.dial_actions == [
        "https://hooks.example.com/hooks/tw/dial-action?callback_to=79160000013"
    ]


async def test_twilio_reports_a_call_back_with_the_token_of_a_token_source(
    tmp_path: Path, http: aiohttp.ClientSession, twilio_api: FakeTwilio
) -> None:
    """The source refuses a request without its token, the call-back's dial action included."""
    pbx = dialer(tmp_path, http, twilio_source(twilio_api.url, token="tw-token-0001"))
    assert await pbx.dial("tw", "+79161112233", CLIENT, LINE) == TAKEN
    assert twilio_api.dial_actions == [
        "https://hooks.example.com/hooks/tw/dial-action?callback_to=79160000013&token=tw-token-0001"
    ]


async def test_twilio_rings_forward_to_for_a_staff_member_with_only_an_extension(
    tmp_path: Path, http: aiohttp.ClientSession, twilio_api: FakeTwilio
) -> None:
    pbx = dialer(tmp_path, http, twilio_source(twilio_api.url))
    assert await pbx.dial("tw", "101", CLIENT, LINE) == TAKEN
    assert twilio_api.commands[0].params["To"] == "+74957770000"


async def test_twilio_refusing_the_call_gives_its_code_and_message(
    tmp_path: Path, http: aiohttp.ClientSession, twilio_api: FakeTwilio
) -> None:
    twilio_api.refuse = "The number is unverified"
    pbx = dialer(tmp_path, http, twilio_source(twilio_api.url))
    assert await pbx.dial("tw", "+79161112233", CLIENT, LINE) == refused(
        "Twilio 21210: The number is unverified"
    )
    wrong = dialer(tmp_path, http, twilio_source(twilio_api.url, auth_token="another-token-0002"))
    assert await wrong.dial("tw", "+79161112233", CLIENT, LINE) == refused("Twilio 20003: Authenticate")


# ---------------------------------------------------------------------- Asterisk AMI


@pytest.fixture
async def ami() -> AsyncIterator[FakeAmi]:
    fake = FakeAmi()
    await fake.start()
    yield fake
    await fake.stop()


def ami_source(fake: FakeAmi, **keys: Any) -> dict[str, Any]:
    source = {"name": "pbx", "provider": "asterisk_ami", "host": fake.host, "port": fake.port}
    return {**source, "username": fake.username, "secret": fake.secret, **keys}


async def test_asterisk_originate_rings_the_extension_in_the_context_then_dials_the_client(
    tmp_path: Path, http: aiohttp.ClientSession, ami: FakeAmi
) -> None:
    pbx = dialer(tmp_path, http, ami_source(ami, dial_context="office"))
    assert await pbx.dial("pbx", "101", CLIENT, LINE) == TAKEN
    [originate] = ami.originates
    assert (originate["channel"], originate["exten"], originate["context"], originate["priority"]) == (
        "Local/101@office",
        CLIENT,
        "office",
        "1",
    )
    assert originate["async"] == "true"
    assert ami.actions == ["Login", "Originate", "Logoff"]


async def test_asterisk_refusing_the_originate_or_the_login_gives_its_message(
    tmp_path: Path, http: aiohttp.ClientSession, ami: FakeAmi
) -> None:
    ami.refuse_originate = "Originate failed"
    pbx = dialer(tmp_path, http, ami_source(ami))
    assert await pbx.dial("pbx", "101", CLIENT, None) == refused("Asterisk: Originate failed")
    wrong = dialer(tmp_path, http, ami_source(ami, secret="not-the-secret"))
    assert await wrong.dial("pbx", "101", CLIENT, None) == refused("AMI login: Authentication failed")


# ---------------------------------------------------------------------- UIS / CoMagic

UIS_TOKEN = "uis-access-token-0001"


@pytest.fixture
async def uis_api() -> AsyncIterator[FakeUis]:
    async with FakeUis(token=UIS_TOKEN) as fake:
        yield fake


def uis_source(url: str, **keys: str) -> dict[str, Any]:
    return {
        "name": "uis",
        "provider": "uis_comagic",
        "token": "hook-token",
        "api_key": UIS_TOKEN,
        "api_url": f"{url}/v4.0",
        **keys,
    }


async def test_uis_simple_call_rings_the_operator_then_the_client_from_the_virtual_number(
    tmp_path: Path, http: aiohttp.ClientSession, uis_api: FakeUis
) -> None:
    pbx = dialer(tmp_path, http, uis_source(uis_api.url))
    assert pbx.rings("uis", "101", "+79161112233") == "+79161112233"
    assert await pbx.dial("uis", "+79161112233", CLIENT, LINE) == TAKEN
    [command] = uis_api.commands
    assert command.path == "/v4.0"
    assert {k: command.params[k] for k in ("first_call", "virtual_phone_number", "contact", "operator")} == {
        "first_call": "operator",
        "virtual_phone_number": "74950000055",
        "contact": "79160000013",
        "operator": {"phone_number": "79161112233"},
    }


async def test_uis_refusals_name_the_mnemonic_and_a_call_without_a_line_is_not_sent(
    tmp_path: Path, http: aiohttp.ClientSession, uis_api: FakeUis
) -> None:
    uis_api.refuse = "Virtual phone number 74950000055 not found"
    pbx = dialer(tmp_path, http, uis_source(uis_api.url))
    assert await pbx.dial("uis", "+79161112233", CLIENT, LINE) == refused(
        "UIS virtual_phone_number_not_found: Virtual phone number 74950000055 not found"
    )
    wrong = dialer(tmp_path, http, uis_source(uis_api.url, api_key="another-token"))
    denied = await wrong.dial("uis", "+79161112233", CLIENT, LINE)
    assert denied.status == "refused" and denied.reason.startswith("UIS access_token_invalid")
    before = len(uis_api.received)
    unsent = await pbx.dial("uis", "+79161112233", CLIENT, None)
    assert unsent.status == "refused" and "virtual numbers" in unsent.reason
    assert len(uis_api.received) == before


# ---------------------------------------------------------------------- Binotel

BINOTEL_KEY, BINOTEL_SECRET = "bn-key-0001", "bn-secret-0001"
UA_CLIENT = "+380671234567"


@pytest.fixture
async def binotel_api() -> AsyncIterator[FakeBinotel]:
    async with FakeBinotel(key=BINOTEL_KEY, secret=BINOTEL_SECRET) as fake:
        yield fake


def binotel_source(url: str, **keys: str) -> dict[str, Any]:
    source = {"name": "bn", "provider": "binotel", "token": "hook-token", "region": "UA"}
    return {
        **source,
        "api_key": BINOTEL_KEY,
        "api_secret": BINOTEL_SECRET,
        "api_url": f"{url}/api/4.0",
        **keys,
    }


async def test_binotel_connects_the_internal_line_to_the_client_in_national_form(
    tmp_path: Path, http: aiohttp.ClientSession, binotel_api: FakeBinotel
) -> None:
    pbx = dialer(tmp_path, http, binotel_source(binotel_api.url))
    assert pbx.rings("bn", None, "+380671112233") is None  # an internal line or nothing
    assert await pbx.dial("bn", "901", UA_CLIENT, "+380443334023") == TAKEN
    [command] = binotel_api.commands
    assert command.path == "/api/4.0/calls/internal-number-to-external-number.json"
    assert {k: command.params[k] for k in ("internalNumber", "externalNumber", "pbxNumber")} == {
        "internalNumber": "901",
        "externalNumber": "0671234567",
        "pbxNumber": "0443334023",
    }


async def test_binotel_refusing_gives_its_code_and_message(
    tmp_path: Path, http: aiohttp.ClientSession, binotel_api: FakeBinotel
) -> None:
    binotel_api.refuse = "Calls by API are not enabled on this line"
    pbx = dialer(tmp_path, http, binotel_source(binotel_api.url))
    assert await pbx.dial("bn", "901", UA_CLIENT, None) == refused(
        "Binotel 104: Calls by API are not enabled on this line"
    )
    wrong = dialer(tmp_path, http, binotel_source(binotel_api.url, api_secret="bn-secret-0002"))
    assert await wrong.dial("bn", "901", UA_CLIENT, None) == refused("Binotel 120: Wrong key or secret")


# ---------------------------------------------------------------------- FreeSWITCH


@pytest.fixture
async def esl() -> AsyncIterator[FakeEsl]:
    async with FakeEsl(password="esl-password-0001") as fake:
        yield fake


def freeswitch_source(fake: FakeEsl, **keys: Any) -> dict[str, Any]:
    source = {"name": "fs", "provider": "freeswitch", "token": "hook-token", "host": fake.host}
    return {**source, "port": fake.port, "password": fake.password, **keys}


async def test_freeswitch_originate_rings_the_user_then_sends_the_leg_to_the_client(
    tmp_path: Path, http: aiohttp.ClientSession, esl: FakeEsl
) -> None:
    pbx = dialer(tmp_path, http, freeswitch_source(esl, dial_context="office"))
    assert await pbx.dial("fs", "101", CLIENT, LINE) == TAKEN
    assert esl.jobs == [
        "originate {origination_caller_id_number=79160000013,leadline_callback=true}user/101 79160000013 XML office"
    ]


async def test_freeswitch_refusals_and_a_wrong_password_are_told(
    tmp_path: Path, http: aiohttp.ClientSession, esl: FakeEsl
) -> None:
    esl.refuse = "USER_NOT_REGISTERED"
    pbx = dialer(tmp_path, http, freeswitch_source(esl))
    assert await pbx.dial("fs", "101", CLIENT, None) == refused("FreeSWITCH: -ERR USER_NOT_REGISTERED")
    wrong = dialer(tmp_path, http, freeswitch_source(esl, password="not-it"))
    assert await wrong.dial("fs", "101", CLIENT, None) == refused("FreeSWITCH auth: -ERR invalid")
    assert esl.jobs == []


# ---------------------------------------------------------------------- the config


def test_the_config_names_the_missing_half_of_a_providers_call_back_keys(tmp_path: Path) -> None:
    binotel = {"name": "bn", "provider": "binotel", "token": "hook-token", "api_key": BINOTEL_KEY}
    with pytest.raises(ConfigError) as caught:
        build_config(tmp_path, sources=[binotel])
    assert caught.value.problems == [
        "sources[0]: provider binotel calls back with api_key and api_secret: set api_secret too, or remove the others"
    ]
    # Zadarma's api_secret signs its notifications too: without api_key the source simply cannot call back.
    config = build_config(tmp_path, sources=[zadarma_source("https://api.zadarma.com", api_key="")])
    assert dialable(config) == frozenset()


def test_call_back_keys_are_secrets_and_addresses_and_staff_phones_are_checked(tmp_path: Path) -> None:
    config = build_config(tmp_path, sources=[zadarma_source("https://api-sandbox.zadarma.com/")])
    assert {ZADARMA_KEY, ZADARMA_SECRET} <= config.secret_values()
    assert dialable(config) == frozenset({"zd"})
    assert config.sources[0].api_url == "https://api-sandbox.zadarma.com"
    with pytest.raises(ConfigError) as caught:
        build_config(tmp_path, sources=[zadarma_source("api.zadarma.com")])
    assert caught.value.problems == [
        "sources[0].api_url: write the API's address as http(s)://host/path, e.g. https://api.zadarma.com"
    ]
    staff = [{"name": "Anna", "telegram_id": 111, "phone": "8 916 111-22-33"}]
    with pytest.raises(ConfigError) as caught:
        build_config(tmp_path, staff=staff)
    assert caught.value.problems == [
        "staff[0].phone: '8 916 111-22-33' is not a valid phone number: write it in full, e.g. +79161234567"
    ]
    config = build_config(tmp_path, staff=[{**staff[0], "phone": "+7 916 111-22-33"}])
    assert config.staff[0].phone == "+79161112233"


async def test_a_pbx_that_cannot_be_reached_or_cuts_its_answer_is_a_reason_not_a_crash(
    tmp_path: Path, http: aiohttp.ClientSession, unused_tcp_port: int
) -> None:
    down = dialer(tmp_path, http, zadarma_source(f"http://127.0.0.1:{unused_tcp_port}"))
    assert await down.dial("zd", "101", CLIENT, None) == refused(
        "cannot reach the PBX (ClientConnectorError)"
    )

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"Content-Type: auth/request\n\nContent-Type: command/reply\nContent-Length: 50\n\nshort"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        source = {"name": "fs", "provider": "freeswitch", "token": "t", "host": "127.0.0.1", "port": port}
        cut = dialer(tmp_path, http, {**source, "password": "ClueCon"})
        assert await cut.dial("fs", "101", CLIENT, None) == refused(
            "the PBX's answer could not be read (IncompleteReadError)"
        )
    finally:
        server.close()
        await server.wait_closed()


async def test_a_command_sent_but_not_answered_may_still_ring_and_is_not_a_refusal(
    tmp_path: Path,
    http: aiohttp.ClientSession,
    zadarma_api: FakeZadarma,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A loaded PBX takes the command and answers late; a socket cut after the command went out
    leaves no answer at all. Either way the PBX may ring, which a refusal says it will not."""
    monkeypatch.setattr("capture.dial.TIMEOUT_SECONDS", 0.2)
    zadarma_api.delay = 1.0
    slow = dialer(tmp_path, http, zadarma_source(zadarma_api.url))
    assert await slow.dial("zd", "101", CLIENT, None) == Outcome(
        "unconfirmed", "the PBX did not answer within 0.2 s"
    )
    assert len(zadarma_api.commands) == 1  # it has the command

    async def take_the_originate_and_hang_up(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"Content-Type: auth/request\n\n")
        await reader.readuntil(b"\n\n")  # auth
        writer.write(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
        await reader.readuntil(b"\n\n")  # bgapi originate
        writer.close()

    server = await asyncio.start_server(take_the_originate_and_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        source = {"name": "fs", "provider": "freeswitch", "token": "t", "host": "127.0.0.1", "port": port}
        cut = dialer(tmp_path, http, {**source, "password": "ClueCon"})
        assert await cut.dial("fs", "101", CLIENT, None) == Outcome(
            "unconfirmed", "FreeSWITCH closed the event socket"
        )
    finally:
        server.close()
        await server.wait_closed()
