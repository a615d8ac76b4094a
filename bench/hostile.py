"""Hostile input: how long one oversized request stalls the event loop, beside a bare aiohttp app.

Starts ``leadline serve`` on a config with a source of every HTTP provider (the samples' secrets)
and a bare aiohttp app, then sends each, one at a time, a value of 1 KB, 100 KB and 1 MB of
letters: in a field of each provider's sample body that the provider reads (a number, a time or a
phone; the request signed as the provider signs it, so the parser sees it), in a header, in a
query string and as the source name of a 404. A probe polls ``/healthz`` every few milliseconds
on its own connection while the request is processed; the stall is the worst probe latency seen,
and "answered" says whether every poll got its 200. A request unanswered after ``--timeout``
seconds counts as a stall of that long, and the server is restarted for the next one.
Run: ``.venv/bin/python bench/hostile.py`` (``--provider mango --size 1000000`` for one case).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import free_port, wait_healthy  # noqa: E402
from tests.multipart import build_multipart  # noqa: E402
from tests.samples import PUBLIC_URL, Sample, sample  # noqa: E402

TOKEN = "bench-hostile-token"
SIZES = (1_000, 100_000, 1_000_000)
PROBE_EVERY = 0.002
#: Letters in a URL just under aiohttp's 8190-byte request line: longer ones its parser refuses.
URL_LETTERS = 8_000

BARE_SERVER = """
import sys
from aiohttp import web

async def handle(request):
    await request.read()
    return web.Response(status=200)

app = web.Application(client_max_size=4 * 1024 * 1024)
app.router.add_route("*", "/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def _with_token(path: str) -> str:
    return path + ("&" if "?" in path else "?") + urlencode({"token": TOKEN})


def _form_set(body: bytes, key: str, value: str) -> bytes:
    return urlencode(
        [(k, value if k == key else v) for k, v in parse_qsl(body.decode(), keep_blank_values=True)]
    ).encode()


def _json_set(body: bytes, keys: tuple[str, ...], value: str) -> bytes:
    data = json.loads(body)
    node = data
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return json.dumps(data, ensure_ascii=False).encode()


def _plain(s: Sample, body: bytes, *, token: bool = True) -> Request:
    return Request("POST", _with_token(s.path) if token else s.path, s.headers, body)


def mango(s: Sample, value: str) -> Request:
    fields = dict(parse_qsl(s.body.decode(), keep_blank_values=True))
    payload = json.loads(fields["json"])
    payload["seq"] = value
    data = json.dumps(payload, ensure_ascii=False)
    key, salt = s.secrets["vpbx_api_key"], s.secrets["vpbx_api_salt"]
    sign = hashlib.sha256((key + data + salt).encode()).hexdigest()
    return Request(
        "POST", s.path, s.headers, urlencode({"vpbx_api_key": key, "sign": sign, "json": data}).encode()
    )


def twilio(s: Sample, value: str) -> Request:
    from twilio.request_validator import RequestValidator

    params = dict(parse_qsl(s.body.decode(), keep_blank_values=True))
    params["CallDuration"] = value
    signature = RequestValidator(s.secrets["auth_token"]).compute_signature(PUBLIC_URL + s.path, params)
    headers = {**s.headers, "X-Twilio-Signature": signature}
    return Request("POST", s.path, headers, urlencode(params).encode())


def typeform(s: Sample, value: str) -> Request:
    body = _json_set(s.body, ("form_response", "submitted_at"), value)
    digest = hmac.new(s.secrets["secret"].encode(), body, hashlib.sha256).digest()
    return Request(
        "POST",
        s.path,
        {**s.headers, "Typeform-Signature": "sha256=" + base64.b64encode(digest).decode()},
        body,
    )


def webflow(s: Sample, value: str) -> Request:
    body = _json_set(s.body, ("payload", "submittedAt"), value)
    stamp = str(int(time.time() * 1000))
    signature = hmac.new(
        s.secrets["secret"].encode(), stamp.encode() + b":" + body, hashlib.sha256
    ).hexdigest()
    headers = {**s.headers, "x-webflow-timestamp": stamp, "x-webflow-signature": signature}
    return Request("POST", s.path, headers, body)


def mailgun(s: Sample, value: str) -> Request:
    fields = dict(parse_qsl(s.body.decode(), keep_blank_values=True))
    fields["subject"] = value
    fields["timestamp"] = str(int(time.time()))
    fields["token"] = os.urandom(25).hex()  # a token Mailgun used before is a replay
    key = s.secrets["webhook_signing_key"].encode()
    fields["signature"] = hmac.new(
        key, (fields["timestamp"] + fields["token"]).encode(), hashlib.sha256
    ).hexdigest()
    return Request("POST", s.path, s.headers, urlencode(fields).encode())


def standard_webhooks(s: Sample, value: str) -> Request:
    from standardwebhooks.webhooks import Webhook

    body = _json_set(s.body, ("timestamp",), value)
    now = datetime.now(UTC)
    msg_id = s.headers["webhook-id"]
    signature = Webhook(s.secrets["secret"]).sign(msg_id, now, body.decode())
    headers = {**s.headers, "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}
    return Request("POST", s.path, headers, body)


def multipart(part: str, inner: tuple[str, ...] = ()) -> Callable[[Sample, str], Request]:
    def build(s: Sample, value: str) -> Request:
        parts: dict[str, str] = json.loads(s.body)["parts"]
        if inner:
            parts[part] = _json_set(parts[part].encode(), inner, value).decode()
        else:
            parts[part] = value
        body, content_type = build_multipart(parts)
        return Request("POST", _with_token(s.path), {"Content-Type": content_type}, body)

    return build


def postmark(s: Sample, value: str) -> Request:
    auth = base64.b64encode(b"user:pass").decode()
    return Request(
        "POST",
        s.path,
        {**s.headers, "Authorization": f"Basic {auth}"},
        _json_set(s.body, ("Subject",), value),
    )


#: provider -> (sample, how the value goes into a valid request, the field it lands in)
PROVIDERS: dict[str, tuple[str, Callable[[Sample, str], Request], str]] = {
    "generic_form": (
        "generic_html_form_post.txt",
        lambda s, v: _plain(s, _form_set(s.body, "phone", v)),
        "phone",
    ),
    "standard_webhooks": ("standard_webhooks_contact_created.json", standard_webhooks, "timestamp"),
    "mango": ("mango_events_call_appeared.txt", mango, "json.seq"),
    "zadarma": (
        "zadarma_notify_end_answered.txt",
        lambda s, v: _plain(s, _form_set(s.body, "duration", v), token=False),
        "duration",
    ),
    "twilio": ("twilio_status_callback_completed.txt", twilio, "CallDuration"),
    "uis_comagic": (
        "uis_call_ended.json",
        lambda s, v: _plain(s, _json_set(s.body, ("talk_time_duration",), v)),
        "talk_time_duration",
    ),
    "binotel": (
        "binotel_api_call_completed.txt",
        lambda s, v: _plain(s, _form_set(s.body, "callDetails[billsec]", v)),
        "callDetails[billsec]",
    ),
    "freeswitch": (
        "freeswitch_json_cdr.json",
        lambda s, v: _plain(s, _json_set(s.body, ("variables", "billsec"), v)),
        "variables.billsec",
    ),
    "tilda": ("tilda_form_submission.txt", lambda s, v: _plain(s, _form_set(s.body, "Phone", v)), "Phone"),
    "typeform": ("typeform_form_response.json", typeform, "form_response.submitted_at"),
    "jotform": ("jotform_submission.json", multipart("rawRequest", ("q5_phoneNumber", "full")), "phone"),
    "webflow": ("webflow_form_submission.json", webflow, "payload.submittedAt"),
    "google_forms": (
        "google_forms_apps_script.json",
        lambda s, v: _plain(s, _json_set(s.body, ("timestamp",), v), token=False),
        "timestamp",
    ),
    "elementor": (
        "elementor_new_record_custom_hook.txt",
        lambda s, v: _plain(s, _form_set(s.body, "phone", v)),
        "phone",
    ),
    "mailgun": ("mailgun_route_forward.txt", mailgun, "subject"),
    "sendgrid": ("sendgrid_inbound_parse.json", multipart("subject"), "subject"),
    "postmark": ("postmark_inbound.json", postmark, "Subject"),
}


def _toml(value: object) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def config_text(database: Path, port: int) -> str:
    lines = [
        f"[leadline]\ndatabase = {_toml(str(database))}\n",
        f'[http]\nhost = "127.0.0.1"\nport = {port}\npublic_url = {_toml(PUBLIC_URL)}\n',
    ]
    for provider, (file, _, _) in PROVIDERS.items():
        s = sample(file)
        keys: dict[str, str] = {**s.secrets}
        if provider in (
            "generic_form",
            "uis_comagic",
            "binotel",
            "freeswitch",
            "tilda",
            "jotform",
            "elementor",
            "sendgrid",
        ):
            keys.setdefault("token", TOKEN)
        if provider == "postmark":
            keys.update(username="user", password="pass")
        if provider == "twilio":
            keys["forward_to"] = "+12025550100"
        body = "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items())
        lines.append(f"[[sources]]\nname = {_toml(s.source_name)}\nprovider = {_toml(provider)}\n{body}")
    return "\n".join(lines)


@dataclass
class Figure:
    stall_ms: float
    answered: bool
    status: str


async def measure(port: int, request: Request, limit_s: float) -> Figure:
    """The worst /healthz latency while ``request`` is sent and answered (and shortly after)."""
    base = f"http://127.0.0.1:{port}"
    worst, answered, done = 0.0, True, asyncio.Event()
    timeouts = aiohttp.ClientTimeout(total=limit_s)

    async def probe(session: aiohttp.ClientSession) -> None:
        nonlocal worst, answered
        while not done.is_set():
            started = time.perf_counter()
            try:
                async with session.get(f"{base}/healthz") as resp:
                    await resp.read()
                    answered &= resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                answered = False
            worst = max(worst, time.perf_counter() - started)
            await asyncio.sleep(PROBE_EVERY)

    async with (
        aiohttp.ClientSession(timeout=timeouts) as probing,
        aiohttp.ClientSession(timeout=timeouts) as sending,
    ):
        async with probing.get(f"{base}/healthz") as resp:  # the probe's connection is open before
            await resp.read()
        task = asyncio.create_task(probe(probing))
        await asyncio.sleep(0.02)
        status = "-"
        try:
            async with sending.request(
                request.method, base + request.path, headers=request.headers, data=request.body
            ) as resp:
                await resp.read()
                status = str(resp.status)
        except TimeoutError:
            status = "timeout"
        except aiohttp.ClientError as exc:
            status = type(exc).__name__
        await asyncio.sleep(0.05)  # a stall right after the answer (logging, a write) counts too
        done.set()
        await task
    return Figure(max(worst * 1000, limit_s * 1000 if status == "timeout" else 0), answered, status)


class Server:
    """A server process that can be restarted after a request it could not answer."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name, self.workdir = name, workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0

    def start(self) -> None:
        self.port = free_port()
        self.starts += 1
        log = (self.workdir / f"{self.name}-{self.starts}.log").open("w")
        if self.name == "bare":
            command = [sys.executable, "-c", BARE_SERVER, str(self.port)]
        else:
            config = self.workdir / f"config-{self.starts}.toml"
            config.write_text(config_text(self.workdir / f"hostile-{self.starts}.db", self.port))
            command = [sys.executable, "-m", "leadline", "serve", "--config", str(config)]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=log)
        wait_healthy(self.port, "/healthz", timeout=60)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:  # a stalled loop does not get to its SIGTERM handler
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def measure(self, request: Request, timeout: float) -> Figure:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        figure = asyncio.run(measure(self.port, request, timeout))
        if figure.status == "timeout":
            self.stop()
        return figure


def cases(providers: list[str], sizes: list[int]) -> list[tuple[str, str, int, Callable[[], Request]]]:
    """(what, where, size, request) for every provider and size."""
    out: list[tuple[str, str, int, Callable[[], Request]]] = [
        ("(idle)", "nothing: GET /healthz", 0, lambda: Request("GET", "/healthz", {}, b""))
    ]
    for provider in providers:
        file, build, field = PROVIDERS[provider]
        s = sample(file)
        for size in sizes:
            value = "a" * size
            out.append((provider, f"body {field}", size, lambda b=build, s=s, v=value: b(s, v)))
            out.append(
                (provider, "header User-Agent", size,
                 lambda b=build, s=s, v=value: _header(b(s, "1"), v))  # the field: "1"
            )  # fmt: skip
    form = sample(PROVIDERS["generic_form"][0])
    for size in sorted({*sizes, URL_LETTERS}):  # and the longest URL aiohttp's parser takes
        value = "a" * size
        out.append(("(any)", "query ?q=", size, lambda v=value: _query(form, v)))
        out.append(
            (
                "(none)",
                "404 source name",
                size,
                lambda v=value: Request("POST", f"/hooks/{v}", {}, b"phone=1"),
            )
        )
    return out


def _header(request: Request, value: str) -> Request:
    return Request(request.method, request.path, {**request.headers, "User-Agent": value}, request.body)


def _query(form: Sample, value: str) -> Request:
    return Request("POST", _with_token(form.path) + "&q=" + value, form.headers, form.body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", action="append", choices=sorted(PROVIDERS), help="default: every one")
    parser.add_argument(
        "--size", action="append", type=int, help="letters in the value (default: 1 KB, 100 KB, 1 MB)"
    )
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for one answer")
    args = parser.parse_args()
    providers, sizes = args.provider or list(PROVIDERS), args.size or list(SIZES)
    print(
        f"# hostile input: worst /healthz latency (ms) while one request is processed; probe every {PROBE_EVERY * 1000:g} ms"
    )
    print(f"# leadline: `leadline serve` from {ROOT}; bare: aiohttp app that reads the body and answers 200")
    print(
        f"# machine: {os.cpu_count()} cores; a request unanswered in {args.timeout:g} s counts as {args.timeout:g} s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ours, bare = Server("leadline", workdir), Server("bare", workdir)
        try:
            print(
                f"\n{'provider':<18}{'value in':<34}{'size':>9}{'status':>9}{'stall ms':>10}{'answered':>10}"
                f"{'bare ms':>9}{'ratio':>8}"
            )
            worst = 0.0
            for provider, where, size, build in cases(providers, sizes):
                request = build()
                mine = ours.measure(request, args.timeout)
                base = bare.measure(request, args.timeout)
                worst = max(worst, mine.stall_ms) if size >= 1_000_000 else worst
                print(
                    f"{provider:<18}{where:<34}{size:>9}{mine.status:>9}{mine.stall_ms:>10.1f}"
                    f"{'yes' if mine.answered else 'NO':>10}{base.stall_ms:>9.1f}"
                    f"{mine.stall_ms / max(base.stall_ms, 0.001):>8.1f}",
                    flush=True,
                )
            print(
                f"\nworst stall at 1 MB: {worst:.1f} ms (target: under 50 ms); leadline restarts: {ours.starts - 1}"
            )
        finally:
            ours.stop()
            bare.stop()


if __name__ == "__main__":
    main()
