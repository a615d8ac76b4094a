"""Request mixes for ``bench/ingest.py``: what is sent, as a wrk Lua script and as Python."""

from __future__ import annotations

import hashlib
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


MANGO_KEY = "bench_vpbx_api_key"
MANGO_SALT = "bench_vpbx_api_salt"


class MangoMix(Mix):
    """A Mango call as Mango sends it: appeared, connected, disconnected, summary, recording.

    One call in ten has its 'connected' sent before 'appeared' (out of order), and one in ten has
    its summary sent twice (a retry). Mango's signature is a SHA-256 that wrk's Lua cannot compute,
    so the requests are signed here beforehand and the script replays them from a file, each wrk
    thread taking its own half.
    """

    name = "mango"
    description = "Mango calls: 5 signed events per call, 10% out of order, 10% retried summaries"
    calls = 40_000

    def __init__(self) -> None:
        self.file: Path | None = None
        self._requests: list[tuple[str, bytes]] | None = None

    def config(self, *, database: str, port: int) -> str:
        return (
            f'[leadline]\ndatabase = "{database}"\n\n[http]\nhost = "127.0.0.1"\nport = {port}\n\n'
            f'[[sources]]\nname = "mango"\nprovider = "mango"\nvpbx_api_key = "{MANGO_KEY}"\n'
            f'vpbx_api_salt = "{MANGO_SALT}"\n'
        )

    def requests(self) -> list[tuple[str, bytes]]:
        if self._requests is None:
            rng = random.Random(7)
            out: list[tuple[str, bytes]] = []
            for n in range(self.calls):
                out.extend(self._call(n, rng))
            self._requests = out
        return self._requests

    def _call(self, n: int, rng: random.Random) -> list[tuple[str, bytes]]:
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
        return [(f"/hooks/mango/events/{kind}", _mango_body(payload)) for kind, payload in legs]

    def prepare(self, workdir: Path) -> None:
        self.file = workdir / "mango-requests.txt"
        with self.file.open("wb") as f:
            for path, body in self.requests():
                f.write(path.encode() + b"\t" + body + b"\n")

    def request(self, n: int) -> tuple[str, str, dict[str, str], bytes]:
        requests = self.requests()
        path, body = requests[n % len(requests)]
        return "POST", path, {"Content-Type": "application/x-www-form-urlencoded"}, body

    def lua(self) -> str:
        if self.file is None:
            return ""
        return (
            r"""
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
      local tab = string.find(line, "	", 1, true)
      table.insert(reqs, wrk.format("POST", string.sub(line, 1, tab - 1),
        {["Content-Type"] = "application/x-www-form-urlencoded"}, string.sub(line, tab + 1)))
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
        ).replace("FILE", str(self.file))

    def summary(self, rps: float) -> str:
        per_call = len(self.requests()) / self.calls
        return f"calls per second: {rps / per_call:.0f} ({per_call:.2f} requests per call)"


def _mango_body(payload: dict[str, object]) -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    sign = hashlib.sha256((MANGO_KEY + data + MANGO_SALT).encode()).hexdigest()
    return urlencode({"vpbx_api_key": MANGO_KEY, "sign": sign, "json": data}).encode()


MIXES: dict[str, Callable[[], Mix]] = {"form": FormMix, "mango": MangoMix}
