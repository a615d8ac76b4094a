"""Chat payloads the tests need beyond ../shared/samples: more messages of one conversation.

Each builder writes what the provider's documented wire format says (FORMATS.md §8: WhatsApp §8.2,
VK §8.3, Avito §8.4, Telegram Business §8.1), with the shared samples' ids and secrets, and signs
it as the provider does; only the message id, the time and the text change from the samples.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

from leadline.config import Config
from tests.capture.test_mango import MANGO_SOURCE
from tests.conftest import BASE, Running, build_config
from tests.samples import sample

WA_TEXT = sample("whatsapp_messages_text.json")
VK_MESSAGE = sample("vk_message_new.json")
AVITO_TEXT = sample("avito_message_text.json")

WA_SECRET = WA_TEXT.secrets["app_secret"]
VK_SECRET = VK_MESSAGE.secrets["secret"]
AVITO_TOKEN = AVITO_TEXT.secrets["token"]
#: The API client every chat config has, to read the report as a CRM would.
REPORT_TOKEN = "crm-token-chat-0123456789"


def chat_config(tmp_path: Path, **source_extra: Any) -> Config:
    """Mango for calls, and one source of each chat provider named as the samples' URLs name them."""
    return build_config(
        tmp_path,
        sources=[
            *BASE["sources"],
            MANGO_SOURCE,
            {"name": "whatsapp", "provider": "whatsapp", **WA_TEXT.secrets, **source_extra},
            {"name": "vk", "provider": "vk", **VK_MESSAGE.secrets, **source_extra},
            {"name": "avito", "provider": "avito", **AVITO_TEXT.secrets, **source_extra},
            {"name": "telegram_business", "provider": "telegram_business", **source_extra},
        ],
        campaigns=[
            *BASE["campaigns"],
            {"name": "vk_leads", "vk_forms": [3]},
            {"name": "avito_sofa", "avito_items": ["6000000001"]},
        ],
        api_clients=[{"name": "crm", "token": REPORT_TOKEN}],
    )


async def day_report(srv: Running, day: date) -> dict[str, Any]:
    """``GET /api/report`` for one office day, seen now."""
    async with srv.session.get(
        f"{srv.url}/api/report?from={day}&to={day}", headers={"Authorization": f"Bearer {REPORT_TOKEN}"}
    ) as resp:
        assert resp.status == 200, await resp.text()
        report: dict[str, Any] = await resp.json()
    return report


def response(report: dict[str, Any]) -> tuple[Any, ...]:
    """The report's response figures: contacts, median minutes, share within 5 min, not answered."""
    keys = ("inbound_contacts", "response_p50_min", "responded_within_5_min", "not_responded")
    return tuple(report[k] for k in keys)


def wa_body(wamid: str, at: datetime, text: str, sender: str = "74950000032") -> bytes:
    """A WhatsApp text message from ``sender`` (digits, no ``+``), compact and \\u-escaped as Meta sends."""
    payload = json.loads(WA_TEXT.body)
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = sender
    message = value["messages"][0]
    message.update(
        {"from": sender, "id": wamid, "timestamp": str(int(at.timestamp())), "text": {"body": text}}
    )
    return json.dumps(payload, separators=(",", ":")).encode()


def wa_kind_body(wamid: str, at: datetime, kind: str, content: Any, sender: str = "74950000032") -> bytes:
    """A WhatsApp message of another ``type`` than text (``reaction``, ``button``…) holding ``content``."""
    payload = json.loads(wa_body(wamid, at, "", sender))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message.update({"type": kind, kind: content})
    return json.dumps(payload, separators=(",", ":")).encode()


def wa_signature(body: bytes, secret: str = WA_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


async def post_wa(srv: Running, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return await srv.session.post(
        f"{srv.url}/hooks/whatsapp", data=body, headers=wa_signature(body) if headers is None else headers
    )


def vk_body(event_id: str, at: datetime, text: str, user: int = 300000001, secret: str = VK_SECRET) -> bytes:
    payload = json.loads(VK_MESSAGE.body)
    payload.update({"event_id": event_id, "secret": secret})
    payload["object"]["message"].update(
        {"date": int(at.timestamp()), "text": text, "from_id": user, "peer_id": user}
    )
    return json.dumps(payload, ensure_ascii=False).encode()


def vk_reply_body(event_id: str, at: datetime, text: str, user: int = 300000001) -> bytes:
    """The community's own message to ``user`` (``message_reply``: the message itself is the object)."""
    payload = json.loads(VK_MESSAGE.body)
    group = payload["group_id"]
    payload.update({"type": "message_reply", "event_id": event_id, "secret": VK_SECRET})
    payload["object"] = {
        "date": int(at.timestamp()),
        "from_id": -group,
        "id": 1300,
        "out": 1,
        "peer_id": user,
        "text": text,
        "attachments": [],
    }
    return json.dumps(payload, ensure_ascii=False).encode()


async def post_vk(srv: Running, body: bytes) -> Any:
    return await srv.session.post(
        f"{srv.url}/hooks/vk", data=body, headers={"Content-Type": "application/json"}
    )


def avito_body(message_id: str, at: datetime, text: str, author: int = 500000002) -> bytes:
    payload = json.loads(AVITO_TEXT.body)
    payload["payload"]["value"].update(
        {"id": message_id, "created": int(at.timestamp()), "content": {"text": text}, "author_id": author}
    )
    return json.dumps(payload, ensure_ascii=False).encode()


async def post_avito(srv: Running, body: bytes, token: str | None = AVITO_TOKEN) -> Any:
    query = f"?token={token}" if token else ""
    return await srv.session.post(
        f"{srv.url}/hooks/avito{query}", data=body, headers={"Content-Type": "application/json"}
    )


def chat_touches(srv: Running, source: str) -> list[dict[str, Any]]:
    return srv.rows("SELECT * FROM touches WHERE source = ? ORDER BY id", [source])


def kinds(srv: Running, contact_id: int) -> dict[str, str]:
    rows = srv.rows("SELECT kind, value FROM identifiers WHERE contact_id = ? ORDER BY id", [contact_id])
    return {r["kind"]: r["value"] for r in rows}
