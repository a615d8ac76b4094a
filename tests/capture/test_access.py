"""What any source may add to its provider's own check, through a running server: a ``token``
beside a signature, ``allow_ips``, and whose ``X-Forwarded-For`` is believed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.capture.test_calls import Clock
from tests.capture.test_mail_webhooks import MAILGUN_KEY, SAMPLE_CLOCK
from tests.capture.test_zadarma import SAMPLE_DAY, SECRET
from tests.conftest import BASE, Running, StartServer, build_config
from tests.samples import sample

MAIL = sample("mailgun_route_forward.txt")
ZADARMA_END = sample("zadarma_notify_end_answered.txt")
TOKEN = "leadline-extra-token-0123456789"


def config(tmp_path: Path, source: dict[str, Any], **http: Any) -> Any:
    return build_config(
        tmp_path,
        sources=[*BASE["sources"], source],
        http={"public_url": "https://hooks.example.com", **http},
    )


def form_source(allow_ips: list[str]) -> dict[str, Any]:
    return {"name": "site", "provider": "generic_form", "token": TOKEN, "allow_ips": allow_ips}


async def post_form(
    srv: Running, forwarded_for: str | None = None, phone: str = "+79160000051"
) -> tuple[int, str]:
    headers = {"X-Leadline-Token": TOKEN}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    resp = await srv.session.post(
        f"{srv.url}/hooks/site", data={"name": "Ирина", "phone": phone}, headers=headers
    )
    return resp.status, await resp.text()


def journal(srv: Running) -> list[dict[str, Any]]:
    return srv.rows("SELECT status, http_status, reason, remote FROM journal ORDER BY id")


async def test_a_mailgun_source_with_a_token_needs_it_beside_the_signature(
    start_server: StartServer, tmp_path: Path
) -> None:
    source = {"name": "mailgun", "provider": "mailgun", "webhook_signing_key": MAILGUN_KEY, "token": TOKEN}
    srv = await start_server(config(tmp_path, source), clock=lambda: SAMPLE_CLOCK)
    url = f"{srv.url}{MAIL.path}"
    # correctly signed by Mailgun, but without the token (the signature covers no mail)
    resp = await srv.session.post(url, data=MAIL.body, headers=MAIL.headers)
    assert resp.status == 401
    assert "missing token" in await resp.text()
    resp = await srv.session.post(url, params={"token": "not-it"}, data=MAIL.body, headers=MAIL.headers)
    assert (resp.status, await resp.text()) == (401, "wrong token\n")
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 0
    # a refusal does not use up Mailgun's one-time token: the real delivery still gets through
    resp = await srv.session.post(url, params={"token": TOKEN}, data=MAIL.body, headers=MAIL.headers)
    assert resp.status == 200, await resp.text()
    [touch] = srv.rows("SELECT external_id FROM touches")
    assert touch["external_id"] == f"email:{MAIL.expected['external_id']}"
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [
        ("rejected", 401),
        ("rejected", 401),
        ("processed", 200),
    ]
    assert TOKEN not in str(srv.rows("SELECT query_string, headers FROM journal"))


async def test_a_zadarma_source_with_a_token_needs_it_beside_the_signature(
    start_server: StartServer, tmp_path: Path
) -> None:
    source = {"name": "zadarma", "provider": "zadarma", "api_secret": SECRET, "token": TOKEN}
    srv = await start_server(config(tmp_path, source), clock=Clock(SAMPLE_DAY))
    url = f"{srv.url}{ZADARMA_END.path}"
    resp = await srv.session.post(url, data=ZADARMA_END.body, headers=ZADARMA_END.headers)
    assert resp.status == 401
    assert "missing token" in await resp.text()
    headers = {**ZADARMA_END.headers, "X-Leadline-Token": TOKEN}
    resp = await srv.session.post(url, data=ZADARMA_END.body, headers=headers)
    assert resp.status == 200, await resp.text()
    assert srv.scalar("SELECT call_status FROM touches") == "answered"


async def test_allow_ips_refuses_an_address_outside_with_403_and_takes_one_inside(
    start_server: StartServer, tmp_path: Path
) -> None:
    outside = await start_server(config(tmp_path / "a", form_source(["203.0.113.0/24", "2001:db8::/32"])))
    status, reason = await post_form(outside)
    assert status == 403
    assert (
        reason == "requests from 127.0.0.1 are not taken here: the address is not in the source's allow_ips\n"
    )
    assert journal(outside) == [
        {"status": "rejected", "http_status": 403, "reason": reason.strip(), "remote": "127.0.0.1"}
    ]
    assert outside.scalar("SELECT COUNT(*) FROM touches") == 0
    # anyone can send a refused request: the journal keeps enough to diagnose it, not the whole body
    resp = await outside.session.post(
        f"{outside.url}/hooks/site",
        data={"phone": "1", "message": "x" * 20_000},
        headers={"X-Leadline-Token": TOKEN},
    )
    assert resp.status == 403
    row = outside.rows("SELECT body_size, length(body) AS kept FROM journal ORDER BY id DESC LIMIT 1")[0]
    assert row["body_size"] > 20_000 and row["kept"] == 4096

    inside = await start_server(config(tmp_path / "b", form_source(["2001:db8::/32", "127.0.0.0/8"])))
    assert await post_form(inside) == (200, "")
    assert inside.scalar("SELECT COUNT(*) FROM touches") == 1


async def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(
    start_server: StartServer, tmp_path: Path
) -> None:
    source = form_source(["203.0.113.0/24"])
    # no trusted proxy: the peer (127.0.0.1) is the client, whatever the header claims
    direct = await start_server(config(tmp_path / "a", source))
    status, reason = await post_form(direct, forwarded_for="203.0.113.9")
    assert (status, "127.0.0.1" in reason) == (403, True)

    proxied = await start_server(config(tmp_path / "b", source, trusted_proxies=["127.0.0.1", "10.0.0.0/8"]))
    # the proxy appended the address it was reached from; a chain of trusted proxies is walked back
    assert await post_form(proxied, forwarded_for="203.0.113.9") == (200, "")
    assert await post_form(proxied, forwarded_for="203.0.113.10, 10.1.2.3", phone="+79160000052") == (200, "")
    # what the client wrote itself (left of the address the proxy saw) proves nothing
    status, reason = await post_form(proxied, forwarded_for="203.0.113.9, 198.51.100.4")
    assert status == 403
    assert "requests from 198.51.100.4 are not taken here" in reason
    status, reason = await post_form(proxied, forwarded_for="203.0.113.9, unknown")
    assert status == 403
    assert "X-Forwarded-For entry 'unknown' from a trusted proxy is not an IP address" in reason
    assert proxied.scalar("SELECT COUNT(*) FROM touches") == 2
    assert [r["http_status"] for r in journal(proxied)] == [200, 200, 403, 403]
