"""Request mixes for ``bench/ingest.py``: what is sent, as a wrk Lua script and as Python."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

FORM_CONFIG = """
[leadline]
database = "{database}"

[http]
host = "127.0.0.1"
port = {port}

[[sources]]
name = "form"
provider = "generic_form"
token = "bench-token"
"""


class Mix:
    name = ""
    description = ""

    def config(self, *, database: str, port: int) -> str:
        raise NotImplementedError

    def request(self, n: int) -> tuple[str, str, dict[str, str], bytes]:
        """Method, path, headers and body of the n-th request (for the Python client)."""
        raise NotImplementedError

    def lua(self) -> str:
        """A wrk script sending the same requests; empty when the mix has none."""
        return ""

    def summary(self, rps: float) -> str:
        return ""

    def prepare(self, workdir: Path) -> None:
        """Write whatever the Lua script reads (pre-signed requests), before the runs."""


class FormMix(Mix):
    name = "form"
    description = "generic form posts, each a new person (phone + email + name + message + UTM)"

    def config(self, *, database: str, port: int) -> str:
        return FORM_CONFIG.format(database=database, port=port)

    def request(self, n: int) -> tuple[str, str, dict[str, str], bytes]:
        body = urlencode(
            {
                "name": "Иван Петров",
                "phone": f"+7916{n % 10_000_000:07d}",
                "email": f"lead{n}@example.com",
                "message": "Перезвоните, пожалуйста",
                "utm_source": "yandex",
                "submission_id": f"py-{n}",
            }
        ).encode()
        return (
            "POST",
            "/hooks/form?token=bench-token",
            {"Content-Type": "application/x-www-form-urlencoded"},
            body,
        )

    def lua(self) -> str:
        return r"""
local counter = 0
local thread_id = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  counter = 0
end
request = function()
  counter = counter + 1
  local n = tid * 5000000 + counter
  local body = "name=%D0%98%D0%B2%D0%B0%D0%BD&phone=%2B7916" .. string.format("%07d", n % 10000000)
    .. "&email=lead" .. n .. "%40example.com&message=%D0%9F%D0%B5%D1%80%D0%B5%D0%B7%D0%B2%D0%BE%D0%BD%D0%B8%D1%82%D0%B5"
    .. "&utm_source=yandex&submission_id=wrk-" .. n
  return wrk.format("POST", "/hooks/form?token=bench-token",
    {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
"""


PRESIGNED_LUA = r"""
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  reqs = {}
  local i = 0
  for line in io.lines("FILE") do
    if i % 2 == tid then
      local a = string.find(line, "\t", 1, true)
      local b = string.find(line, "\t", a + 1, true)
      local headers = {}
      for pair in string.gmatch(string.sub(line, a + 1, b - 1), "[^|]+") do
        local colon = string.find(pair, ":", 1, true)
        headers[string.sub(pair, 1, colon - 1)] = string.sub(pair, colon + 1)
      end
      table.insert(reqs, wrk.format("POST", string.sub(line, 1, a - 1), headers, string.sub(line, b + 1)))
    end
    i = i + 1
  end
  pos = 0
end
request = function()
  pos = pos + 1
  if pos > #reqs then pos = 1 end
  return reqs[pos]
end
"""


class PresignedMix(Mix):
    """Requests signed here beforehand (wrk's Lua has no HMAC or SHA-256) and replayed from a file.

    Each wrk thread takes its own half of the lines, so every request is sent once per pass.
    """

    units = 40_000
    unit = "request"

    def __init__(self) -> None:
        self.file: Path | None = None
        self._requests: list[tuple[str, dict[str, str], bytes]] | None = None

    def build(self, n: int, rng: random.Random) -> list[tuple[str, dict[str, str], bytes]]:
        raise NotImplementedError

    def requests(self) -> list[tuple[str, dict[str, str], bytes]]:
        if self._requests is None:
            rng = random.Random(7)
            self._requests = [r for n in range(self.units) for r in self.build(n, rng)]
        return self._requests

    def prepare(self, workdir: Path) -> None:
        self.file = workdir / f"{self.name}-requests.txt"
        with self.file.open("wb") as f:
            for path, headers, body in self.requests():
                header_text = "|".join(f"{k}:{v}" for k, v in headers.items())
                f.write(path.encode() + b"\t" + header_text.encode() + b"\t" + body + b"\n")

    def request(self, n: int) -> tuple[str, str, dict[str, str], bytes]:
        requests = self.requests()
        path, headers, body = requests[n % len(requests)]
        return "POST", path, headers, body

    def lua(self) -> str:
        return PRESIGNED_LUA.replace("FILE", str(self.file)) if self.file else ""

    def summary(self, rps: float) -> str:
        per_unit = len(self.requests()) / self.units
        return f"{self.unit}s per second: {rps / per_unit:.0f} ({per_unit:.2f} requests per {self.unit})"


MANGO_KEY = "bench_vpbx_api_key"
MANGO_SALT = "bench_vpbx_api_salt"
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


class MangoMix(PresignedMix):
    """A Mango call as Mango sends it: appeared, connected, disconnected, summary, recording.

    One call in ten has its 'connected' sent before 'appeared' (out of order), and one in ten has
    its summary sent twice (a retry).
    """

    name = "mango"
    description = "Mango calls: 5 signed events per call, 10% out of order, 10% retried summaries"
    unit = "call"

    def config(self, *, database: str, port: int) -> str:
        return (
            f'[leadline]\ndatabase = "{database}"\n\n[http]\nhost = "127.0.0.1"\nport = {port}\n\n'
            f'[[sources]]\nname = "mango"\nprovider = "mango"\nvpbx_api_key = "{MANGO_KEY}"\n'
            f'vpbx_api_salt = "{MANGO_SALT}"\n'
        )

    def build(self, n: int, rng: random.Random) -> list[tuple[str, dict[str, str], bytes]]:
        entry = f"bench-entry-{n}"
        caller = f"7916{n % 10_000_000:07d}"
        start = 1_763_000_000 + n
        answered = rng.random() < 0.8
        legs = [
            (
                "call",
                {
                    "entry_id": entry,
                    "call_id": f"{entry}-1",
                    "timestamp": start,
                    "seq": 1,
                    "call_state": "Appeared",
                    "location": "ivr",
                    "from": {"number": caller},
                    "to": {"number": "74950000001"},
                    "dct": {"number": "74950000055", "type": 1},
                },
            ),
            (
                "call",
                {
                    "entry_id": entry,
                    "call_id": f"{entry}-1",
                    "timestamp": start + 5,
                    "seq": 2,
                    "call_state": "Connected",
                    "location": "abonent",
                    "from": {"number": caller},
                    "to": {"extension": "101", "number": "sip:m101@example.mangosip.ru"},
                },
            ),
            (
                "call",
                {
                    "entry_id": entry,
                    "call_id": f"{entry}-1",
                    "timestamp": start + 60,
                    "seq": 3,
                    "call_state": "Disconnected",
                    "location": "abonent",
                    "from": {"number": caller},
                    "to": {"extension": "101"},
                    "disconnect_reason": 1110,
                },
            ),
            (
                "summary",
                {
                    "entry_id": entry,
                    "call_direction": 1,
                    "from": {"number": caller},
                    "to": {"extension": "101"},
                    "line_number": "74950000001",
                    "dct": {"number": "74950000055", "type": 1},
                    "create_time": start,
                    "forward_time": start + 3,
                    "talk_time": start + 5 if answered else 0,
                    "end_time": start + 60,
                    "entry_result": int(answered),
                    "disconnect_reason": 1110,
                },
            ),
            (
                "recording",
                {
                    "entry_id": entry,
                    "call_id": f"{entry}-1",
                    "recording_id": f"rec-{n}",
                    "recording_state": "Completed",
                    "timestamp": start + 61,
                },
            ),
        ]
        if n % 10 == 3:
            legs[0], legs[1] = legs[1], legs[0]
        if n % 10 == 7:
            legs.append(legs[3])
        return [(f"/hooks/mango/events/{kind}", FORM_HEADERS, _mango_body(payload)) for kind, payload in legs]


TYPEFORM_SECRET = "bench-typeform-secret"


class FormsMix(PresignedMix):
    """Tilda and Typeform submissions, alternating; one in ten sent twice (the builders retry)."""

    name = "forms"
    description = "Tilda (token) and Typeform (HMAC-signed JSON) submissions, 10% retried"
    unit = "submission"

    def config(self, *, database: str, port: int) -> str:
        return (
            f'[leadline]\ndatabase = "{database}"\n\n[http]\nhost = "127.0.0.1"\nport = {port}\n\n'
            '[[sources]]\nname = "tilda"\nprovider = "tilda"\ntoken = "bench-token"\n\n'
            f'[[sources]]\nname = "typeform"\nprovider = "typeform"\nsecret = "{TYPEFORM_SECRET}"\n'
        )

    def build(self, n: int, rng: random.Random) -> list[tuple[str, dict[str, str], bytes]]:
        phone = f"+7 (916) {n % 1000:03d}-{n // 1000 % 100:02d}-{n // 100000 % 100:02d}"
        if n % 2:
            body = urlencode(
                {
                    "Name": "Иван Петров",
                    "Phone": phone,
                    "Email": f"t{n}@example.com",
                    "Comment": "Перезвоните",
                    "tranid": f"1234567:{n}",
                    "formid": "form1",
                    "utm_source": "yandex",
                }
            ).encode()
            request = ("/hooks/tilda?token=bench-token", FORM_HEADERS, body)
        else:
            payload = {
                "event_id": f"bench-{n}",
                "event_type": "form_response",
                "form_response": {
                    "form_id": "abc",
                    "token": f"tok-{n}",
                    "submitted_at": "2026-11-20T10:00:00Z",
                    "hidden": {"utm_source": "vk"},
                    "answers": [
                        {
                            "type": "text",
                            "text": "Jane",
                            "field": {"id": "a", "type": "short_text", "ref": "name"},
                        },
                        {
                            "type": "phone_number",
                            "phone_number": phone.replace(" ", "")
                            .replace("(", "")
                            .replace(")", "")
                            .replace("-", ""),
                            "field": {"id": "b", "type": "phone_number", "ref": "p"},
                        },
                        {
                            "type": "email",
                            "email": f"tf{n}@example.com",
                            "field": {"id": "c", "type": "email", "ref": "e"},
                        },
                    ],
                },
            }
            raw = json.dumps(payload, separators=(",", ":")).encode()
            sig = base64.b64encode(hmac.new(TYPEFORM_SECRET.encode(), raw, hashlib.sha256).digest()).decode()
            request = (
                "/hooks/typeform",
                {"Content-Type": "application/json", "Typeform-Signature": f"sha256={sig}"},
                raw,
            )
        return [request, request] if n % 10 == 5 else [request]


def _mango_body(payload: dict[str, object]) -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    sign = hashlib.sha256((MANGO_KEY + data + MANGO_SALT).encode()).hexdigest()
    return urlencode({"vpbx_api_key": MANGO_KEY, "sign": sign, "json": data}).encode()


WA_SECRET = "bench_whatsapp_app_secret"
VK_SECRET = "bench_vk_secret"
AVITO_TOKEN = "bench-avito-token"
JSON_HEADERS = {"Content-Type": "application/json"}


class ChatMix(PresignedMix):
    """Chat conversations as WhatsApp (signed), VK and Avito send them: three messages from one
    person a minute apart (one touch), and one message in ten sent twice (a retry)."""

    name = "chat"
    description = "chats: WhatsApp, VK and Avito conversations of 3 messages, 10% retried"
    unit = "conversation"

    def config(self, *, database: str, port: int) -> str:
        return (
            f'[leadline]\ndatabase = "{database}"\n\n[http]\nhost = "127.0.0.1"\nport = {port}\n\n'
            f'[[sources]]\nname = "whatsapp"\nprovider = "whatsapp"\napp_secret = "{WA_SECRET}"\n'
            'verify_token = "bench-verify"\n\n'
            f'[[sources]]\nname = "vk"\nprovider = "vk"\nsecret = "{VK_SECRET}"\nconfirmation = "bench"\n\n'
            f'[[sources]]\nname = "avito"\nprovider = "avito"\ntoken = "{AVITO_TOKEN}"\n'
        )

    def build(self, n: int, rng: random.Random) -> list[tuple[str, dict[str, str], bytes]]:
        start = 1_763_000_000 + n
        messages = [self._message(n, m, start + 60 * m) for m in range(3)]
        return [*messages, *(messages[-1:] if rng.random() < 0.1 else [])]

    def _message(self, n: int, m: int, at: int) -> tuple[str, dict[str, str], bytes]:
        text = ["Здравствуйте!", "Сколько стоит доставка?", "Перезвоните: +7 916 000-00-00"][m]
        if n % 3 == 0:
            sender = f"7916{n % 10_000_000:07d}"
            value = {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "74950000001", "phone_number_id": "1"},
                "contacts": [{"profile": {"name": "Мария"}, "wa_id": sender}],
                "messages": [
                    {
                        "from": sender,
                        "id": f"wamid.bench{n}.{m}",
                        "timestamp": str(at),
                        "text": {"body": text},
                        "type": "text",
                    }
                ],
            }
            payload = {
                "object": "whatsapp_business_account",
                "entry": [{"id": "1", "changes": [{"value": value, "field": "messages"}]}],
            }
            body = json.dumps(payload, separators=(",", ":")).encode()
            digest = hmac.new(WA_SECRET.encode(), body, hashlib.sha256).hexdigest()
            return "/hooks/whatsapp", {**JSON_HEADERS, "X-Hub-Signature-256": f"sha256={digest}"}, body
        if n % 3 == 1:
            message = {
                "date": at,
                "from_id": 100_000_000 + n,
                "peer_id": 100_000_000 + n,
                "id": m,
                "out": 0,
                "text": text,
            }
            payload = {
                "group_id": 1,
                "type": "message_new",
                "event_id": f"bench{n}x{m}",
                "v": "5.199",
                "object": {"message": message},
                "secret": VK_SECRET,
            }
            return "/hooks/vk", JSON_HEADERS, json.dumps(payload, ensure_ascii=False).encode()
        value = {
            "id": f"bench{n}m{m}",
            "chat_id": f"u2i-bench{n}",
            "user_id": 1,
            "author_id": 100_000_000 + n,
            "created": at,
            "type": "text",
            "chat_type": "u2i",
            "content": {"text": text},
            "item_id": 6_000_000_001,
        }
        payload = {
            "id": f"bench-{n}-{m}",
            "version": "v3.0.0",
            "timestamp": at,
            "payload": {"type": "message", "value": value},
        }
        return (
            f"/hooks/avito?token={AVITO_TOKEN}",
            JSON_HEADERS,
            json.dumps(payload, ensure_ascii=False).encode(),
        )


MIXES: dict[str, Callable[[], Mix]] = {"form": FormMix, "forms": FormsMix, "mango": MangoMix, "chat": ChatMix}
