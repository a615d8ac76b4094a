"""Erasure and subject-export of people known only by a chat id: a VK user, a WhatsApp username."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.capture.chat_payloads import (
    AVITO_TEXT,
    VK_MESSAGE,
    WA_TEXT,
    avito_body,
    post_avito,
    post_vk,
    vk_body,
)
from tests.cli import run_cli
from tests.conftest import BASE, StartServer
from tests.numbers.month import month_config
from tests.privacy.people import traces_in
from tests.samples import sample

USERNAME_ONLY = sample("whatsapp_messages_username_only.json")
BASE_TIME = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
#: What the person wrote and who they are, as the database file would hold it.
TRACES = ["300000001", "Ефросинья", "test_sveta", "RU.1000000000000000004", "\\u0421\\u0432\\u0435\\u0442"]


async def test_a_chat_person_is_exported_and_erased_by_their_chat_id_and_the_other_stays(
    tmp_path: Path, start_server: StartServer
) -> None:
    sources = [
        *BASE["sources"],
        {"name": "vk", "provider": "vk", **VK_MESSAGE.secrets},
        {"name": "whatsapp", "provider": "whatsapp", **WA_TEXT.secrets},
    ]
    config = month_config(tmp_path, sources=sources)
    srv = await start_server(config)
    for event, hours, text in (("f1", 0, "Меня зовут Ефросинья"), ("f2", 1, "Ефросинье нужна доставка")):
        assert (await post_vk(srv, vk_body(event, BASE_TIME + timedelta(hours=hours), text))).status == 200
    # a request refused for its secret names the person too, and no touch points at it
    refused = vk_body("f0", BASE_TIME, "Ефросинья без секрета", secret="stale-secret")
    assert (await post_vk(srv, refused)).status == 401
    other = vk_body("f3", BASE_TIME, "Я другой человек", user=300000777)
    assert (await post_vk(srv, other)).status == 200
    wa = await srv.session.post(
        f"{srv.url}{USERNAME_ONLY.path}", data=USERNAME_ONLY.body, headers=USERNAME_ONLY.headers
    )
    assert wa.status == 200
    # a forged request naming the username alone: only the username finds it
    forged = USERNAME_ONLY.body.replace(b"RU.1000000000000000004", b"")
    headers = {**USERNAME_ONLY.headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
    wa = await srv.session.post(f"{srv.url}{USERNAME_ONLY.path}", data=forged, headers=headers)
    assert wa.status == 401
    cfg = str(tmp_path / "config.toml")
    database = config.database_path
    held = {trace for found in (await traces_in(database, TRACES)).values() for trace in found}
    assert held == set(TRACES)  # in the file (or its log) to begin with

    out = tmp_path / "subject.json"
    exported = await run_cli("subject-export", "300000001", "--config", cfg, "--output", str(out))
    assert exported.code == 0, exported.output
    exported_data = json.loads(out.read_text(encoding="utf-8"))
    assert {(i["kind"], i["value"]) for i in exported_data["identifiers"]} == {("vk_id", "300000001")}
    [touch] = exported_data["touches"]
    assert touch["message"] == "Меня зовут Ефросинья\nЕфросинье нужна доставка"
    assert (
        sum("Ефросинь" in r["body"] for r in exported_data["requests"]) == 3
    )  # each message, the refused one

    for who in ("300000001", "@test_sveta"):
        done = await run_cli("forget", who, "--config", cfg, "--yes")
        assert done.code == 0, done.output
    assert await traces_in(database, TRACES) == {database.name: [], f"{database.name}-wal": []}
    kinds = [json.loads(r["kinds"]) for r in srv.rows("SELECT kinds FROM erasures ORDER BY id")]
    assert kinds == [["vk_id"], ["whatsapp_id", "whatsapp_username"]]
    assert srv.scalar("SELECT COUNT(*) FROM identifiers WHERE kind = 'vk_id' AND value = '300000777'") == 1
    assert srv.scalar("SELECT COUNT(*) FROM touches WHERE channel = 'chat'") == 3  # still counted
    # the erased conversation is over: the person writing again is a new touch of nobody known
    assert (await post_vk(srv, vk_body("f4", BASE_TIME + timedelta(hours=2), "Снова"))).status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches WHERE channel = 'chat'") == 4


async def test_forgetting_an_avito_buyer_takes_our_replies_to_them_too(
    tmp_path: Path, start_server: StartServer
) -> None:
    """Our reply's request names the buyer only in its words, not by their id: it goes with their touch."""
    sources = [*BASE["sources"], {"name": "avito", "provider": "avito", **AVITO_TEXT.secrets}]
    config = month_config(tmp_path, sources=sources)
    srv = await start_server(config)
    seller = json.loads(AVITO_TEXT.body)["payload"]["value"]["user_id"]
    assert (await post_avito(srv, avito_body("q1", BASE_TIME, "Диван ещё продаётся?"))).status == 200
    reply = avito_body("a1", BASE_TIME + timedelta(minutes=3), "Ефросинья, да, продаётся", author=seller)
    assert (await post_avito(srv, reply)).status == 200
    database = config.database_path
    assert any((await traces_in(database, ["Ефросинья"])).values())

    done = await run_cli("forget", "500000002", "--config", str(tmp_path / "config.toml"), "--yes")
    assert done.code == 0, done.output
    assert await traces_in(database, ["Ефросинья"]) == {database.name: [], f"{database.name}-wal": []}


async def test_forgetting_an_avito_buyer_takes_a_reply_written_before_they_wrote_too(
    tmp_path: Path, start_server: StartServer
) -> None:
    """A reply sent before the buyer's first message answers nothing and waits in their dialogue,
    with its key (a digest of their chat ids) and its request (their name in its words)."""
    sources = [*BASE["sources"], {"name": "avito", "provider": "avito", **AVITO_TEXT.secrets}]
    config = month_config(tmp_path, sources=sources)
    srv = await start_server(config)
    seller = json.loads(AVITO_TEXT.body)["payload"]["value"]["user_id"]
    early = avito_body("a0", BASE_TIME - timedelta(minutes=1), "Ефросинья, здравствуйте!", author=seller)
    assert (await post_avito(srv, early)).status == 200
    assert (await post_avito(srv, avito_body("q1", BASE_TIME, "Диван ещё продаётся?"))).status == 200
    assert (
        srv.scalar("SELECT COUNT(*) FROM chat_replies WHERE touch_id IS NULL AND conversation IS NOT NULL")
        == 1
    )
    database = config.database_path

    done = await run_cli("forget", "500000002", "--config", str(tmp_path / "config.toml"), "--yes")
    assert done.code == 0, done.output
    assert await traces_in(database, ["Ефросинья"]) == {database.name: [], f"{database.name}-wal": []}
    assert srv.scalar("SELECT COUNT(*) FROM chat_replies WHERE conversation IS NOT NULL") == 0
