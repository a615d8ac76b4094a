"""Do not contact: a flag on a contact, set from the API and the bot, shown on cards, that keeps the
person out of the refusals list (the export's list for later campaigns) while their touches count."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from tests.bot.conftest import ANNA, BORIS, BotEnv
from tests.bot.test_registration import post_form
from tests.cli import run_cli
from tests.conftest import Running, StartServer
from tests.numbers.month import month_config

TOKEN = "crm-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def call_api(srv: Running, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with srv.session.request(method, f"{srv.url}{path}", headers=AUTH, json=body) as resp:
        return resp.status, await resp.json()


async def test_do_not_contact_keeps_a_person_out_of_the_refused_list_and_the_campaign_export(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(month_config(tmp_path, api_clients=[{"name": "crm", "token": TOKEN}]))
    ids = {}
    for phone in ("+79161110001", "+79161110002"):
        status, done = await call_api(
            srv,
            "POST",
            "/api/registrations",
            {"phone": phone, "disposition": "not_a_lead", "reason": "partner"},
        )
        assert status == 201
        ids[phone] = done["contact_id"]

    status, card = await call_api(
        srv, "PATCH", f"/api/contacts/{ids['+79161110002']}", {"do_not_contact": True}
    )
    assert (status, card["do_not_contact"]) == (200, True)
    status, error = await call_api(
        srv, "PATCH", f"/api/contacts/{ids['+79161110002']}", {"do_not_contact": "yes"}
    )
    assert (status, error["error"], error["parameter"]) == (400, "bad_parameter", "do_not_contact")
    status, error = await call_api(srv, "PATCH", "/api/contacts/999", {"do_not_contact": True})
    assert (status, error["error"]) == (404, "no_contact")

    out = tmp_path / "out"
    result = await run_cli(
        "export", "--config", str(tmp_path / "config.toml"), "--out", str(out), "--format", "csv"
    )
    assert result.code == 0, result.output
    with (out / "refusals.csv").open(encoding="utf-8-sig") as fh:
        assert [r["phones"] for r in csv.DictReader(fh)] == ["+79161110001"]
    with (out / "contacts.csv").open(encoding="utf-8-sig") as fh:
        assert {r["phones"]: r["do_not_contact"] for r in csv.DictReader(fh)} == {
            "+79161110001": "no",
            "+79161110002": "yes",
        }

    # cleared, the person is on the list for later campaigns again
    status, card = await call_api(
        srv, "PATCH", f"/api/contacts/{ids['+79161110002']}", {"do_not_contact": False}
    )
    assert (status, card["do_not_contact"]) == (200, False)
    result = await run_cli(
        "export", "--config", str(tmp_path / "config.toml"), "--out", str(out), "--format", "csv"
    )
    with (out / "refusals.csv").open(encoding="utf-8-sig") as fh:
        assert sorted(r["phones"] for r in csv.DictReader(fh)) == ["+79161110001", "+79161110002"]


async def test_a_manager_marks_do_not_contact_on_the_contact_card_and_the_cards_show_it(
    bot_env: BotEnv,
) -> None:
    srv = await bot_env.start()
    await post_form(srv, name="Ivan", phone="+7 916 123-45-67", message="Please never call me again")
    found = await bot_env.says(ANNA, "/find +79161234567", language="en")
    message_id = found.result["message_id"]
    await bot_env.taps(ANNA, message_id, "Do not contact")
    assert "Do not contact: left out of campaigns" in bot_env.text(ANNA, message_id)
    assert srv.scalar("SELECT do_not_contact FROM contacts") == 1

    card = await bot_env.says(ANNA, "89161234567", language="en")  # the touch's registration card
    assert "Do not contact: left out of campaigns" in card.result["text"]

    staff_view = await bot_env.says(BORIS, "/find +79161234567", language="en")
    assert all(
        "contact" not in b["text"].lower() for b in bot_env.tg.buttons(BORIS, staff_view.result["message_id"])
    )

    await bot_env.taps(ANNA, message_id, "May be contacted again")
    assert "Do not contact" not in bot_env.text(ANNA, message_id)
    assert srv.scalar("SELECT do_not_contact FROM contacts") == 0


async def test_a_mark_whose_redraw_telegram_does_not_take_says_marked_and_the_card_follows(
    bot_env: BotEnv,
) -> None:
    srv = await bot_env.start()
    await post_form(srv, name="Ivan", phone="+7 916 123-45-67", message="Please never call me again")
    found = await bot_env.says(ANNA, "/find +79161234567", language="en")
    message_id = found.result["message_id"]
    bot_env.tg.fail_next("editMessageText", status=502, html=False)
    await bot_env.taps(ANNA, message_id, "Do not contact")
    [answer] = bot_env.tg.callback_answers.values()
    assert answer["text"] == "Marked: left out of campaigns from now on."
    assert srv.scalar("SELECT do_not_contact FROM contacts") == 1
    await bot_env.delivered(ANNA)
    assert "Do not contact: left out of campaigns" in bot_env.text(ANNA, message_id)
