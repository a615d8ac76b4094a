"""The JSON API on a real server: bearer tokens, the numbers, registrations from a CRM, OpenAPI."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from leadline import keys
from leadline.app import init_app
from leadline.config import Config
from storage.registrations import REASONS
from storage.reports.report import build_report
from storage.reports.scope import CHANNELS, Period, Rules, Scope
from tests.cli import run_cli
from tests.numbers.month import AS_OF, CAMPAIGNS, MSK, NOVEMBER, month_config, open_month
from tests.test_logs import raw_request

TOKEN = "crm-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def api_config(tmp_path: Path) -> Config:
    config = month_config(tmp_path, api_clients=[{"name": "crm", "token": TOKEN}])
    open_month(config.database_path, config).db.close()
    return config


async def test_every_route_but_the_document_needs_a_known_bearer_token(tmp_path: Path, start_server: Any):
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    async with srv.session.get(f"{srv.url}/api/report") as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="leadline"'
        refusal = await resp.json()
        assert refusal["error"] == "auth_required" and "Authorization: Bearer" in refusal["detail"]
    async with srv.session.get(f"{srv.url}/api/leads", headers={"Authorization": "Bearer nope"}) as resp:
        assert (resp.status, await resp.json()) == (
            401,
            {"error": "unknown_token", "detail": "unknown token"},
        )
    async with srv.session.get(f"{srv.url}/api/openapi.json") as resp:
        assert resp.status == 200 and (await resp.json())["openapi"].startswith("3.")


async def test_report_contacts_touches_and_leads(tmp_path: Path, start_server: Any):
    config = api_config(tmp_path)
    srv = await start_server(config, clock=lambda: AS_OF)
    async with srv.session.get(f"{srv.url}/api/report?period=2026-11", headers=AUTH) as resp:
        data = await resp.json()
    db = srv.db()
    expected = build_report(db, Scope(Period.month(NOVEMBER, MSK), as_of=AS_OF), Rules.from_config(config))
    db.close()
    assert data == expected
    assert (data["lrr"], data["by_campaign"]["brand_msk"]["lead_cost"]) == (0.75, 22500)
    async with srv.session.get(
        f"{srv.url}/api/report?from=2026-11-16&to=2026-11-16&staff=Boris", headers=AUTH
    ) as resp:
        assert (await resp.json())["inbound_touches"] == 1
    async with srv.session.get(f"{srv.url}/api/report?period=soon", headers=AUTH) as resp:
        refusal = await resp.json()
        assert resp.status == 400 and refusal["error"] == "bad_period"
        assert "unknown period 'soon'" in refusal["detail"]

    async with srv.session.get(
        f"{srv.url}/api/contacts", params={"q": "8 916 000-00-07"}, headers=AUTH
    ) as resp:
        found = (await resp.json())["contacts"]
    assert [i["value"] for i in found[0]["identifiers"]] == ["+79160000007"]
    assert len(found[0]["touches"]) == 2

    page = await (
        await srv.session.get(f"{srv.url}/api/touches?period=2026-11&limit=10", headers=AUTH)
    ).json()
    rest = await (
        await srv.session.get(
            f"{srv.url}/api/touches?period=2026-11&after_id={page['next_after_id']}", headers=AUTH
        )
    ).json()
    assert len(page["touches"]) == 10 and len(rest["touches"]) == 5  # 15 touches in November
    assert rest["touches"][-1]["id"] == rest["next_after_id"]
    won = await (await srv.session.get(f"{srv.url}/api/leads?stage=won", headers=AUTH)).json()
    assert [(lead["stage"], lead["won_amount"]) for lead in won["leads"]] == [("won", 100000)]


async def test_the_report_takes_as_of_as_the_cli_does_and_refuses_a_parameter_it_does_not_take(
    tmp_path: Path, start_server: Any
):
    """docs/report.md: GET /api/report takes the parameters of `leadline report --json`. It dropped
    as_of, and any parameter it did not know (as-of, a misspelt chanel), and answered the month as of
    now with a 200."""
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    config_path = str(tmp_path / "config.toml")
    for cli_args, query in [
        (
            ["--period", "2026-11", "--as-of", "2026-11-03T12:00+03:00"],
            {"period": "2026-11", "as_of": "2026-11-03T12:00+03:00"},
        ),
        (
            ["--period", "2026-11", "--as-of", "2026-11-03T12:00"],
            {"period": "2026-11", "as_of": "2026-11-03T12:00"},
        ),
        (["--period", "last-week", "--as-of", "2026-11-20"], {"period": "last-week", "as_of": "2026-11-20"}),
        (
            ["--from", "2026-11-16", "--as-of", "2026-11-20T10:00"],
            {"from": "2026-11-16", "as_of": "2026-11-20T10:00"},
        ),
    ]:
        cli = await run_cli("report", "--config", config_path, "--json", *cli_args)
        assert cli.code == 0, cli.output
        async with srv.session.get(f"{srv.url}/api/report", params=query, headers=AUTH) as resp:
            assert resp.status == 200, await resp.text()
            assert await resp.json() == json.loads(cli.output), query
    async with srv.session.get(
        f"{srv.url}/api/report", params={"period": "2026-11", "as_of": "2026-11-03T12:00+03:00"}, headers=AUTH
    ) as resp:
        early = await resp.json()
    assert (early["registered"], early["leads"]) == (2, 1)

    for url, unknown, takes in [
        (
            "/api/report?period=2026-11&as-of=2026-11-03",
            ["as-of"],
            "period, from, to, channel, campaign, staff, as_of",
        ),
        ("/api/touches?chanel=call&limt=5", ["chanel", "limt"], "period, from, to, after_id, limit, channel"),
        ("/api/contacts/1?fields=all", ["fields"], "none"),
    ]:
        async with srv.session.get(f"{srv.url}{url}", headers=AUTH) as resp:
            refusal = await resp.json()
        assert resp.status == 400, url
        assert refusal["error"] == "bad_parameter" and refusal["parameters"] == unknown
        assert refusal["parameter"] == unknown[0] and refusal["detail"].endswith(
            f"this operation takes {takes}"
        )
    async with srv.session.get(
        f"{srv.url}/api/report", params={"as_of": "2026-11-03T12:00:00 03:00"}, headers=AUTH
    ) as resp:  # a + sent unescaped reads as a space
        refusal = await resp.json()
    assert resp.status == 400 and refusal["parameter"] == "as_of" and "%2B" in refusal["detail"]


async def test_a_parameter_given_twice_is_refused_not_read_once(tmp_path: Path, start_server: Any):
    """`campaign=brand_msk&campaign=vk_ads` answered brand_msk's figures alone with a 200, and
    `channel=form&channel=call` listed the forms alone: answers that look like the ones asked for."""
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    for url, repeated in [
        ("/api/touches?channel=form&channel=call", ["channel"]),
        ("/api/report?period=2026-11&campaign=brand_msk&campaign=vk_ads", ["campaign"]),
        ("/api/leads?period=2026-11&limit=5&period=2026-10&limit=9", ["period", "limit"]),
    ]:
        async with srv.session.get(f"{srv.url}{url}", headers=AUTH) as resp:
            assert (resp.status, await resp.json()) == (
                400,
                {
                    "error": "bad_parameter",
                    "detail": f"give {', '.join(repeated)} once: an operation takes one value of each parameter",
                    "parameter": repeated[0],
                    "parameters": repeated,
                },
            ), url


async def test_a_report_for_a_campaign_takes_it_in_any_case_and_refuses_one_there_is_not(
    tmp_path: Path, start_server: Any
):
    """`campaign=BRAND_MSK` or a typo answered 200 with zeros, which read as a campaign with no
    activity, where `staff=Nobody` is a 404; the CLI's --campaign did the same."""
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)

    async def report(campaign: str) -> tuple[int, dict[str, Any]]:
        params = {"period": "2026-11", "campaign": campaign}
        async with srv.session.get(f"{srv.url}/api/report", params=params, headers=AUTH) as resp:
            return resp.status, await resp.json()

    status, brand = await report("brand_msk")
    assert (status, brand["inbound_contacts"], brand["leads"], brand["cost"]) == (200, 3, 2, 45000)
    assert await report("BRAND_MSK") == (200, brand)
    assert await report("brnd_msk") == (
        404,
        {
            "error": "no_campaign",
            "detail": "no campaign named 'brnd_msk'; the campaigns are: brand_msk, vk_ads",
            "campaign": "brnd_msk",
            "campaigns": ["brand_msk", "vk_ads"],
        },
    )
    config_path = str(tmp_path / "config.toml")
    cli = await run_cli("report", "--config", config_path, "--period", "2026-11", "--campaign", "brnd_msk")
    assert cli.code == 2
    assert "no campaign named 'brnd_msk'; the campaigns are: brand_msk, vk_ads" in cli.output
    args = ["--json", "--as-of", AS_OF.isoformat(), "--period", "2026-11", "--campaign", "Brand_MSK"]
    cli = await run_cli("report", "--config", config_path, *args)
    assert cli.code == 0 and json.loads(cli.output) == brand

    # vk_ads taken out of the config: its November is still there to ask for.
    status, vk = await report("vk_ads")
    await srv.stop()
    config = month_config(tmp_path, api_clients=[{"name": "crm", "token": TOKEN}], campaigns=CAMPAIGNS[:1])
    srv = await start_server(config, clock=lambda: AS_OF)
    status, after = await report("VK_ADS")
    assert status == 200 and vk["leads"] > 0
    assert (after["inbound_contacts"], after["leads"]) == (vk["inbound_contacts"], vk["leads"])


async def test_an_unknown_path_or_a_wrong_method_gets_the_apis_json_refusal(
    tmp_path: Path, start_server: Any
):
    """They got aiohttp's text/plain '404: Not Found' and '405: Method Not Allowed', which a client
    that branches on `error` cannot read."""
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    for method, path in [("GET", "/api/nothing"), ("GET", "/api/contacts/1/touches"), ("POST", "/api/")]:
        async with srv.session.request(method, f"{srv.url}{path}", headers=AUTH) as resp:
            assert (resp.status, resp.content_type) == (404, "application/json"), path
            refusal = await resp.json()
        assert refusal["error"] == "not_found" and "/api/openapi.json" in refusal["detail"]
    for method, path, allowed in [
        ("PUT", "/api/touches", "GET"),
        ("POST", "/api/contacts/5", "DELETE, GET, PATCH"),
        ("GET", "/api/registrations", "POST"),
    ]:
        async with srv.session.request(method, f"{srv.url}{path}", headers=AUTH) as resp:
            assert (resp.status, resp.content_type) == (405, "application/json"), path
            assert resp.headers["Allow"] == allowed
            refusal = await resp.json()
        assert refusal == {
            "error": "method_not_allowed",
            "detail": f"{method} is not allowed here: use {allowed}",
            "allowed": allowed.split(", "),
        }
    async with srv.session.get(f"{srv.url}/nothing") as resp:  # outside the API, as before
        assert resp.status == 404 and resp.content_type == "text/plain"


async def test_a_crm_registers_a_contact_by_email_or_phone(tmp_path: Path, start_server: Any):
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    url = f"{srv.url}/api/registrations"
    # C5 mailed on 11 Nov and was never registered: the CRM registers them by their address.
    async with srv.session.post(
        url,
        json={"email": "Petr@Example.net", "disposition": "lead", "temperature": "warm", "need": "a quote"},
        headers=AUTH,
    ) as resp:
        assert resp.status == 201
        made = await resp.json()
    assert made["contact_created"] is False and made["lead_id"] is not None
    row = srv.rows("SELECT origin, campaign FROM registrations WHERE id = ?", [made["registration_id"]])[0]
    assert row == {"origin": "api", "campaign": "brand_msk"}  # the campaign of C5's first touch
    async with srv.session.get(f"{srv.url}/api/report?period=2026-11", headers=AUTH) as resp:
        assert (await resp.json())["registered"] == 7
    # Someone Leadline has not seen yet: a contact is made for them.
    async with srv.session.post(
        url,
        json={"phone": "8 (903) 123-45-67", "disposition": "not_a_lead", "reason": "job_seeker"},
        headers=AUTH,
    ) as resp:
        assert resp.status == 201 and (await resp.json())["contact_created"] is True
    contacts = srv.rows("SELECT id FROM contacts")
    for body, refusal in (
        (
            {"disposition": "lead", "temperature": "hot"},
            {"error": "identifier_required", "detail": "give the contact's phone or email"},
        ),
        (
            {"phone": "+79160000009", "disposition": "lead"},
            {
                "error": "bad_temperature",
                "detail": "a lead needs a temperature: hot, warm or cold",
                "temperature": None,
            },
        ),
        (
            {"phone": "+79160000009", "disposition": "not_a_lead", "reason": "bored"},
            {
                "error": "reason_required",
                "detail": "a not-a-lead needs a reason: partner, job_seeker, spam, wrong_number,"
                " existing_client, other",
                "reasons": ["partner", "job_seeker", "spam", "wrong_number", "existing_client", "other"],
            },
        ),
        (
            {"phone": "+79160000009", "disposition": "maybe"},
            {
                "error": "bad_disposition",
                "detail": "disposition must be lead or not_a_lead",
                "disposition": "maybe",
            },
        ),
        (
            {"phone": 79160000009, "disposition": "lead", "temperature": "hot"},
            {"error": "bad_parameter", "detail": "phone must be a string", "parameter": "phone"},
        ),
    ):
        async with srv.session.post(url, json=body, headers=AUTH) as resp:
            assert (resp.status, await resp.json()) == (400, refusal), body
    assert srv.rows("SELECT id FROM contacts") == contacts  # a refused registration makes no contact
    async with srv.session.post(
        url, data=b"[1", headers={**AUTH, "Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400


async def test_a_lead_from_a_crm_has_the_fields_the_config_requires_and_keeps_the_others(
    tmp_path: Path, start_server: Any
):
    """[lead_fields] holds for the API as for the bot's form: a lead without a required field is a
    400 naming what it lacks and leaves nothing behind; the others are kept under their names."""
    config = month_config(
        tmp_path,
        api_clients=[{"name": "crm", "token": TOKEN}],
        lead_fields={"required": ["need", "company"], "desirable": ["Размер компании"]},
    )
    open_month(config.database_path, config).db.close()
    srv = await start_server(config, clock=lambda: AS_OF)
    url = f"{srv.url}/api/registrations"
    counts = (
        "SELECT (SELECT COUNT(*) FROM contacts), (SELECT COUNT(*) FROM touches), (SELECT COUNT(*) FROM leads)"
    )
    before = srv.rows(counts)
    body = {"phone": "8 (903) 123-45-67", "disposition": "lead", "temperature": "hot"}
    for sent, missing in (
        (body, ["need", "company"]),
        ({**body, "need": "a quote", "fields": {"company": "  ", "Размер компании": "50"}}, ["company"]),
    ):
        async with srv.session.post(url, json=sent, headers=AUTH) as resp:
            assert (resp.status, await resp.json()) == (
                400,
                {
                    "error": "field_required",
                    "detail": f"a lead needs these fields ([lead_fields] required): {', '.join(missing)}",
                    "fields": missing,
                },
            ), sent
    async with srv.session.post(
        url, json={**body, "need": "a quote", "fields": {"company": "Acme", "compnay": "Acme"}}, headers=AUTH
    ) as resp:
        assert (resp.status, await resp.json()) == (
            400,
            {
                "error": "bad_parameter",
                "detail": "fields: [lead_fields] has no compnay; it has company, Размер компании"
                " (send need and name beside fields)",
                "parameter": "fields",
            },
        )
    assert srv.rows(counts) == before  # a refused registration makes no contact, touch or lead
    fields = {"company": "Acme", "Размер компании": "50"}
    async with srv.session.post(
        url, json={**body, "need": "a quote", "fields": fields}, headers=AUTH
    ) as resp:
        assert resp.status == 201, await resp.text()
        made = await resp.json()
    lead = srv.rows("SELECT need, fields FROM leads WHERE id = ?", [made["lead_id"]])[0]
    assert (lead["need"], json.loads(lead["fields"])) == ("a quote", fields)
    # A not-a-lead is no lead: it needs a reason, not the lead's fields.
    not_a_lead = {"phone": "+7 903 765-43-21", "disposition": "not_a_lead", "reason": "partner"}
    async with srv.session.post(url, json=not_a_lead, headers=AUTH) as resp:
        assert resp.status == 201, await resp.text()


async def test_a_registration_with_a_key_the_api_does_not_take_is_refused_by_name(
    tmp_path: Path, start_server: Any
):
    """A misspelt "campain" (or "amount", which the API does not take) was dropped with a 201: the lead
    had no campaign, and the CRM could not tell. Refused as a query's unknown parameter is."""
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    counts = (
        "SELECT (SELECT COUNT(*) FROM contacts), (SELECT COUNT(*) FROM touches), (SELECT COUNT(*) FROM leads)"
    )
    before = srv.rows(counts)
    body = {"phone": "+7 903 777-00-01", "disposition": "lead", "temperature": "warm", "need": "a quote"}
    takes = "phone, email, name, disposition, temperature, reason, campaign, need, fields, note"
    for extra, unknown in (
        ({"campain": "vk_ads"}, ["campain"]),
        ({"amount": 50000, "nmae": "Ivan"}, ["amount", "nmae"]),
    ):
        async with srv.session.post(
            f"{srv.url}/api/registrations", json={**body, **extra}, headers=AUTH
        ) as resp:
            assert (resp.status, await resp.json()) == (
                400,
                {
                    "error": "bad_parameter",
                    "detail": f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}:"
                    f" the body takes {takes} ([lead_fields] other than need and name go under fields)",
                    "parameter": unknown[0],
                    "parameters": unknown,
                },
            ), extra
    assert srv.rows(counts) == before  # a refused registration makes no contact, touch or lead


async def test_someone_with_no_touch_registered_through_the_api_counts_as_an_inbound_contact(
    tmp_path: Path, start_server: Any
):
    """DESIGN.md, "touch": registering someone who has no touch yet records a touch entered by hand,
    through the API as from the bot, so the report counts them like everyone else."""
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    config_path = str(tmp_path / "config.toml")

    async def report() -> dict[str, Any]:
        result = await run_cli(
            "report",
            "--config",
            config_path,
            "--json",
            "--period",
            "2026-12-01",
            "--as-of",
            AS_OF.isoformat(),
        )
        assert result.code == 0, result.output
        return dict(json.loads(result.output))

    before = await report()
    async with srv.session.post(
        f"{srv.url}/api/registrations",
        json={"phone": "8 (903) 123-45-67", "disposition": "lead", "temperature": "hot", "need": "a quote"},
        headers=AUTH,
    ) as resp:
        assert resp.status == 201
        made = await resp.json()
    assert made["contact_created"] is True
    async with srv.session.get(f"{srv.url}/api/touches?channel=manual", headers=AUTH) as resp:
        manual = (await resp.json())["touches"]
    assert [(t["direction"], t["contact_id"]) for t in manual] == [("in", made["contact_id"])]
    after = await report()
    assert (after["inbound_contacts"], after["registered"]) == (
        before["inbound_contacts"] + 1,
        before["registered"] + 1,
    )
    assert after["by_channel"]["manual"]["inbound_contacts"] == 1
    assert after["leads"] == before["leads"] + 1


async def test_registering_our_own_tracking_number_is_refused_and_leaves_no_touch(
    tmp_path: Path, start_server: Any
):
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    counts = "SELECT (SELECT COUNT(*) FROM touches), (SELECT COUNT(*) FROM contacts)"
    before = srv.rows(counts)
    async with srv.session.post(
        f"{srv.url}/api/registrations",
        json={"phone": "8 495 000-00-55", "disposition": "lead", "temperature": "hot"},
        headers=AUTH,
    ) as resp:
        assert resp.status == 400
        refusal = await resp.json()
        assert refusal["error"] == "own_number" and "not one of our tracking numbers" in refusal["detail"]
    assert srv.rows(counts) == before


async def test_a_registrations_campaign_is_taken_in_any_case_and_an_unknown_one_is_refused(
    tmp_path: Path, start_server: Any
):
    """A CRM's "Brand_MSK" was stored as sent, and so was a typo: December's report showed brand_msk
    with its cost and no lead beside "Brand_MSK" and "no_such_campaign" with a lead and no cost."""
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    url = f"{srv.url}/api/registrations"
    body = {
        "phone": "+7 916 555-00-01",
        "disposition": "lead",
        "temperature": "warm",
        "need": "A kitchen",
        "campaign": "Brand_MSK",
    }
    async with srv.session.post(url, json=body, headers=AUTH) as resp:
        assert resp.status == 201
        made = await resp.json()
    assert srv.scalar("SELECT campaign FROM leads WHERE id = ?", [made["lead_id"]]) == "brand_msk"
    async with srv.session.get(f"{srv.url}/api/report?period=2026-12", headers=AUTH) as resp:
        by_campaign = (await resp.json())["by_campaign"]
    assert by_campaign["brand_msk"]["leads"] == 1 and "Brand_MSK" not in by_campaign

    counts = "SELECT (SELECT COUNT(*) FROM touches), (SELECT COUNT(*) FROM contacts)"
    before = srv.rows(counts)
    typo = {**body, "phone": "+7 916 555-00-02", "campaign": "no_such_campaign"}
    async with srv.session.post(url, json=typo, headers=AUTH) as resp:
        assert (resp.status, await resp.json()) == (
            404,
            {
                "error": "no_campaign",
                "detail": "no campaign named 'no_such_campaign'; the campaigns are: brand_msk, vk_ads",
                "campaign": "no_such_campaign",
                "campaigns": ["brand_msk", "vk_ads"],
            },
        )
    assert srv.rows(counts) == before  # a refused registration makes no contact


async def test_a_compressed_registration_is_read_and_one_cut_off_is_refused(
    tmp_path: Path, start_server: Any
):
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    url = f"{srv.url}/api/registrations"
    body = {"phone": "8 (903) 123-45-67", "disposition": "not_a_lead", "reason": "job_seeker"}
    compressed = gzip.compress(json.dumps(body).encode())
    headers = {**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    async with srv.session.post(url, data=compressed[:-6], headers=headers) as resp:
        refusal = await resp.json()
        assert resp.status == 400 and refusal["error"] == "bad_body" and "cut off" in refusal["detail"]
    async with srv.session.post(url, data=compressed, headers=headers) as resp:
        assert resp.status == 201 and (await resp.json())["contact_created"] is True


async def test_a_retried_registration_makes_one_lead_and_a_reused_key_is_refused(
    tmp_path: Path, start_server: Any
):
    """draft-ietf-httpapi-idempotency-key-header: the same key and body get the first answer and
    register nothing more; the same key with another body is a 422; keys expire after a day."""
    now = [AS_OF]
    srv = await start_server(api_config(tmp_path), clock=lambda: now[0])
    url = f"{srv.url}/api/registrations"
    body = {"phone": "8 (903) 123-45-67", "disposition": "lead", "temperature": "hot", "need": "a quote"}
    leads = "SELECT COUNT(*) FROM leads"
    before = srv.scalar(leads)

    async def post(key: str, sent: dict[str, Any]) -> tuple[int, dict[str, Any], str | None]:
        async with srv.session.post(url, json=sent, headers={**AUTH, "Idempotency-Key": key}) as resp:
            return resp.status, await resp.json(), resp.headers.get("Idempotent-Replayed")

    status, first, replayed = await post('"8e03978e-40d5-43e8-bc93-6894a57f9324"', body)
    assert (status, replayed) == (201, None) and first["contact_created"] is True
    # The CRM timed out and sends it again: the key bare this time, the fields in another order.
    again = await post("8e03978e-40d5-43e8-bc93-6894a57f9324", dict(reversed(body.items())))
    assert again == (201, first, "true")
    assert srv.scalar(leads) == before + 1

    status, refusal, _ = await post("8e03978e-40d5-43e8-bc93-6894a57f9324", {**body, "temperature": "cold"})
    assert (status, refusal["error"]) == (422, "idempotency_key_reused")
    assert "different request" in refusal["detail"]
    assert srv.scalar(leads) == before + 1
    status, refusal, _ = await post('"not closed', body)
    assert (status, refusal["error"]) == (400, "bad_idempotency_key")

    status, other, _ = await post("another-key", {**body, "phone": "+7 903 765-43-21"})
    assert status == 201 and other["lead_id"] != first["lead_id"]
    now[0] = AS_OF + timedelta(hours=25)  # the key has expired: the same request is a new one
    status, later, replayed = await post("8e03978e-40d5-43e8-bc93-6894a57f9324", body)
    assert (status, replayed) == (201, None) and later["lead_id"] not in (first["lead_id"], other["lead_id"])
    assert srv.scalar(leads) == before + 3
    assert srv.scalar("SELECT COUNT(*) FROM idempotency_keys") == 1  # the expired ones went

    # Erasing the person drops the key that answered about them.
    async with srv.session.delete(f"{srv.url}/api/contacts/{later['contact_id']}", headers=AUTH) as resp:
        assert resp.status == 200 and (await resp.json())["rows"]["idempotency_keys"] == 1
    assert srv.scalar("SELECT COUNT(*) FROM idempotency_keys") == 0


async def test_bare_keys_that_differ_after_a_semicolon_are_two_keys(tmp_path: Path, start_server: Any):
    """A bare key such as ``acme;lead=1`` parses as the Structured Field Token ``acme`` with a
    parameter: it was cut at the ``;``, so ``acme;lead=2`` for another person got a 422, and
    ``acme;lead=3`` a replay of the first answer, registering nobody."""
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    url = f"{srv.url}/api/registrations"
    leads = srv.scalar("SELECT COUNT(*) FROM leads")
    answers = []
    for n, key in enumerate(("acme;lead=1", "acme;lead=2"), start=1):
        body = {
            "phone": f"+7 903 123-45-6{n}",
            "disposition": "lead",
            "temperature": "hot",
            "need": "a quote",
        }
        async with srv.session.post(url, json=body, headers={**AUTH, "Idempotency-Key": key}) as resp:
            answers.append((resp.status, resp.headers.get("Idempotent-Replayed")))
    assert answers == [(201, None), (201, None)]
    assert srv.scalar("SELECT COUNT(*) FROM leads") == leads + 2
    assert srv.rows("SELECT key FROM idempotency_keys ORDER BY key") == [
        {"key": "acme;lead=1"},
        {"key": "acme;lead=2"},
    ]


@pytest.mark.parametrize(
    "written",
    ["%D9%A3", "1_0", "+3", "%203", "9" * 5000],
    ids=["arabic-indic 3", "1_0", "+3", "space 3", "5000 digits"],
)
async def test_an_id_not_written_in_ascii_digits_is_refused_and_names_no_record(
    tmp_path: Path, start_server: Any, written: str
):
    """int() reads '٣' as 3 and '1_0' as 10: an erasure must act on the record the caller wrote, or on none."""
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    for method, url in [("GET", "contacts"), ("DELETE", "contacts"), ("DELETE", "blocked")]:
        async with srv.session.request(method, f"{srv.url}/api/{url}/{written}", headers=AUTH) as resp:
            assert (resp.status, (await resp.json())["error"]) == (400, "bad_parameter")
    assert srv.scalar("SELECT COUNT(*) FROM contacts WHERE erased_at IS NOT NULL") == 0


async def test_a_lone_surrogate_in_a_registration_is_a_400_that_says_so(tmp_path: Path, start_server: Any):
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    body = '{"phone": "+79031234567", "disposition": "lead", "temperature": "hot", "name": "\\ud800"}'
    async with srv.session.post(
        f"{srv.url}/api/registrations", data=body, headers={**AUTH, "Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["detail"].startswith("the body holds a lone surrogate")


async def test_a_registration_body_over_the_limit_is_a_413_with_a_reason(tmp_path: Path, start_server: Any):
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    limit = srv.server.app[keys.CONFIG].http.max_body_bytes
    body = json.dumps({"phone": "8 903 123-45-67", "note": "x" * limit}).encode()
    headers = {**AUTH, "Content-Type": "application/json"}
    contacts = srv.rows("SELECT id FROM contacts")
    async with srv.session.post(
        f"{srv.url}/api/registrations", data=io.BytesIO(body), headers=headers
    ) as resp:
        refusal = await resp.json()
        assert resp.status == 413 and refusal["error"] == "bad_body" and "over the limit" in refusal["detail"]
    assert srv.rows("SELECT id FROM contacts") == contacts


async def test_the_openapi_document_is_valid_and_names_and_tags_every_operation(
    tmp_path: Path, start_server: Any
):
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    async with srv.session.get(f"{srv.url}/api/openapi.json") as resp:
        document = await resp.json()
    validate(document)  # OpenAPI 3.1, its JSON schemas included
    operations = [op for path in document["paths"].values() for op in path.values()]
    ids = [op.get("operationId") for op in operations]
    assert None not in ids and len(set(ids)) == len(ids) == 11
    tags = {tag["name"] for tag in document["tags"]}
    assert all(op.get("tags") and set(op["tags"]) <= tags for op in operations)

    # The document's own parameter takes the months and days the server reads, as the CLI does.
    [period] = [p for p in document["paths"]["/api/report"]["get"]["parameters"] if p["name"] == "period"]
    check = OAS31Validator(period["schema"], format_checker=OAS31Validator.FORMAT_CHECKER)
    for value in ("2026-11", "2026-11-16", "last-month", "9999-12", "0001-01-01"):
        assert check.is_valid(value), value
        async with srv.session.get(f"{srv.url}/api/report", params={"period": value}, headers=AUTH) as resp:
            assert resp.status == 200, value
    assert not check.is_valid("2026-13") and not check.is_valid("soon")
    # Its enums are storage's spellings.
    schemas = document["components"]["schemas"]
    assert schemas["NewRegistration"]["properties"]["reason"]["enum"] == list(REASONS)
    assert schemas["Touch"]["properties"]["channel"]["enum"] == list(CHANNELS)


async def test_flags_are_booleans_in_the_document_and_in_the_answers(tmp_path: Path, start_server: Any):
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    async with srv.session.get(f"{srv.url}/api/openapi.json") as resp:
        schemas = (await resp.json())["components"]["schemas"]
    assert schemas["Touch"]["properties"]["hidden_caller"]["type"] == "boolean"
    assert schemas["Touch"]["properties"]["blocked"]["type"] == "boolean"
    assert schemas["Contact"]["properties"]["blocked"]["type"] == "boolean"
    assert schemas["Identifier"]["properties"]["valid"]["type"] == "boolean"

    async with srv.session.get(f"{srv.url}/api/touches?channel=call", headers=AUTH) as resp:
        calls = (await resp.json())["touches"]
    assert {type(t["hidden_caller"]) for t in calls} == {type(t["blocked"]) for t in calls} == {bool}
    assert {t["answered"] for t in calls} == {True, False}
    async with srv.session.get(f"{srv.url}/api/contacts/{calls[0]['contact_id']}", headers=AUTH) as resp:
        contact = await resp.json()
    assert contact["blocked"] is False and [i["valid"] for i in contact["identifiers"]] == [True]


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app served from a thread of its own, for schemathesis's synchronous client."""
    config = api_config(tmp_path_factory.mktemp("api"))
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(init_app(config, clock=lambda: AS_OF))
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def test_the_server_does_what_its_openapi_document_says(live_api: str) -> None:
    """Schemathesis generates requests for every operation and checks each answer against the document."""
    schema = schemathesis.openapi.from_url(f"{live_api}/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "GET /api/report",
        "POST /api/registrations",
        "GET /api/touches",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            if case.headers and "Idempotency-Key" in case.headers:
                # A key says "the request I sent before": a generated case is a new request, so it gets
                # a new key (the retry and the reuse are test_a_retried_registration_makes_one_lead…).
                case.headers["Idempotency-Key"] = uuid.uuid4().hex
            case.call_and_validate(base_url=live_api, headers=AUTH)

        check()


async def test_every_route_names_a_handler_and_the_document_describes_every_route(
    tmp_path: Path, start_server: Any
) -> None:
    """The routes load their handlers by name (leadline/api_routes.py): a renamed handler fails here,
    not at a client's first request."""
    import inspect

    from leadline import api
    from leadline.api_routes import ROUTES

    assert all(inspect.iscoroutinefunction(getattr(api, name, None)) for _, _, name in ROUTES)
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    async with srv.session.get(f"{srv.url}/api/openapi.json") as resp:
        document = await resp.json()
    described = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert described == {(method, path) for method, path, _ in ROUTES}


async def test_a_bearer_token_that_is_not_utf8_is_an_unknown_token(
    tmp_path: Path, start_server: Any, caplog: pytest.LogCaptureFixture
):
    srv = await start_server(api_config(tmp_path), clock=lambda: AS_OF)
    answer = await raw_request(
        srv,
        b"GET /api/contacts?q=9 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 401 Unauthorized"
    assert json.loads(body) == {"error": "unknown_token", "detail": "unknown token"}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
