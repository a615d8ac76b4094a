"""Request mixes for ``bench/ingest.py``: what is sent, as a wrk Lua script and as Python."""

from __future__ import annotations

from collections.abc import Callable
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
        return "POST", "/hooks/form?token=bench-token", {"Content-Type": "application/x-www-form-urlencoded"}, body

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


MIXES: dict[str, Callable[[], Mix]] = {"form": FormMix}
