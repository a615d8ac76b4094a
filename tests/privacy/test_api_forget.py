"""DELETE /api/contacts/{id}: a CRM erases a person, with its token, as the OpenAPI document says."""

from __future__ import annotations

from pathlib import Path

from storage.identifiers import HANDLE_KINDS
from tests.capture.chat_payloads import REPORT_TOKEN, WA_TEXT, chat_config, chat_touches, kinds, post_wa
from tests.conftest import StartServer
from tests.privacy.people import API_AUTH, E164, leave_a_trail, privacy_config, traces_in


async def test_a_crm_erases_a_person_by_their_contact_id(tmp_path: Path, start_server: StartServer) -> None:
    srv = await start_server(privacy_config(tmp_path))
    await leave_a_trail(srv)
    url = f"{srv.url}/api/contacts/1"

    async with srv.session.delete(url) as resp:
        assert resp.status == 401
    async with srv.session.delete(f"{srv.url}/api/contacts/999", headers=API_AUTH) as resp:
        assert (resp.status, await resp.json()) == (
            404,
            {"error": "no_contact", "detail": "no contact #999", "contact_id": 999},
        )
    assert srv.scalar("SELECT COUNT(*) FROM identifiers WHERE contact_id = 1") == 2

    async with srv.session.delete(url, headers=API_AUTH) as resp:
        assert resp.status == 200
        erased = await resp.json()
    assert erased["contact_id"] == 1 and erased["kinds"] == ["email", "phone"] and erased["checkpointed"]
    # the form, the call, and the form the site refused before it knew the phone field
    assert (erased["rows"]["journal"], erased["rows"]["touches"], erased["rows"]["identifiers"]) == (3, 2, 2)

    async with srv.session.get(f"{srv.url}/api/contacts", params={"q": E164}, headers=API_AUTH) as resp:
        assert (await resp.json()) == {"contacts": []}
    async with srv.session.get(url, headers=API_AUTH) as resp:
        card = await resp.json()
    assert card["name"] is None and card["identifiers"] == [] and len(card["touches"]) == 2
    [erasure] = srv.rows("SELECT origin, actor, reason FROM erasures")
    assert erasure == {"origin": "api", "actor": "api: crm", "reason": "request"}
    database = srv.config.database_path
    assert await traces_in(database) == {database.name: [], f"{database.name}-wal": []}

    async with srv.session.get(f"{srv.url}/api/openapi.json") as resp:
        operation = (await resp.json())["paths"]["/api/contacts/{id}"]["delete"]
    assert set(operation["responses"]) == {"200", "400", "401", "404"}


async def test_a_crm_erases_a_whatsapp_person_with_their_phone_and_chat_id(
    tmp_path: Path, start_server: StartServer
) -> None:
    """A chat person is known by a chat id beside their number: the answer and the document name both."""
    srv = await start_server(chat_config(tmp_path))
    assert (await post_wa(srv, WA_TEXT.body)).status == 200
    [touch] = chat_touches(srv, "whatsapp")
    contact_id = touch["contact_id"]
    assert set(kinds(srv, contact_id)) == {"phone", "whatsapp_id"}

    auth = {"Authorization": f"Bearer {REPORT_TOKEN}"}
    async with srv.session.delete(f"{srv.url}/api/contacts/{contact_id}", headers=auth) as resp:
        assert resp.status == 200, await resp.text()
        erased = await resp.json()
    assert (erased["contact_id"], erased["kinds"]) == (contact_id, ["phone", "whatsapp_id"])
    assert kinds(srv, contact_id) == {}

    async with srv.session.get(f"{srv.url}/api/openapi.json") as resp:
        document = await resp.json()
    answer = document["paths"]["/api/contacts/{id}"]["delete"]["responses"]["200"]
    name = answer["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    listed = document["components"]["schemas"][name]["properties"]["kinds"]["items"]["enum"]
    assert {"phone", "email", *HANDLE_KINDS} <= set(listed)
