"""Logs never carry a secret, a full phone number or an email, whatever reaches them."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, unquote_plus, urlsplit

import phonenumbers
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from leadline.config import Config
from leadline.logs import BackgroundHandler, JsonFormatter, ScrubFilter, cut, scrub, setup_logging
from tests.cli import free_port, start_serve
from tests.conftest import BASE, Running, StartServer, build_config

TELEGRAM_TOKEN = "7012345678:AAF-bot-token-for-the-log-tests-000"
API_TOKEN = "api-client/token+0001"
#: Neither is in the config: only their shape gives them away.
OTHER_BOT_TOKEN = "6999999999:AAE-another-bots-token-0000000000"
GUESSED_TOKEN = "guessed-token-0002"
#: What no line may show, however it arrived: the config's secrets, an email and a phone number.
FORBIDDEN = (
    "form-token",
    TELEGRAM_TOKEN,
    "AAF-bot-token",
    "api-client",  # the API token, also as a URL spells it (api-client%2Ftoken%2B0001)
    OTHER_BOT_TOKEN,
    "AAE-another",
    GUESSED_TOKEN,
    "whsec_dGVzdC1zdGFuZGFyZC13ZWJob29rcy1zZWNyZXQtMzJi",
    "ivan.petrov",
    "ivan%40",
    "IVAN.PETROV",
    "9161234567",
    "123-45-67",
)

JsonLog = Callable[[Config], io.StringIO]


def log_config(tmp_path: Path) -> Config:
    return build_config(
        tmp_path,
        telegram={"token": TELEGRAM_TOKEN},
        api_clients=[{"name": "crm", "token": API_TOKEN}],
    )


@pytest.fixture
def json_log() -> Iterator[JsonLog]:
    """``json_log(config)``: the process's logging as ``leadline serve`` sets it up, into a buffer."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("aiohttp.access", "mail.log")}
    installed: list[logging.Handler] = []

    def install(config: Config) -> io.StringIO:
        stream = io.StringIO()
        setup_logging(secrets=config.secret_values(), stream=stream)
        installed.extend(root.handlers)
        root.handlers[:] = saved + installed  # pytest's own capture stays in place
        return stream

    yield install
    for handler in installed:
        root.removeHandler(handler)
    root.setLevel(level)
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def assert_clean(text: str) -> None:
    for secret in FORBIDDEN:
        assert secret.lower() not in text.lower(), f"{secret!r} in the log: {text[:2000]}"


def test_scrub_masks_numbers_and_addresses_but_not_dates():
    line = scrub("caller +7 (916) 123-45-67 wrote ivan.petrov@example.com on 2026-11-23 at 18:02")
    assert "123-45-67" not in line and "ivan.petrov@example.com" not in line
    assert "2026-11-23" in line and "18:02" in line


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-23 +79161234567",
        "called 2026-11-23 79161234567",
        "2026-11-23 8 916 123-45-67",
        "2026-11-23T18:02:00.123456+03:00 +79161234567",
        "+79161234567 2026-11-23T18:02:00Z",
    ],
)
def test_a_number_beside_a_date_is_masked_and_the_date_kept(text):
    line = scrub(text)
    assert "2026-11-23" in line
    assert "1234567" not in line and "123-45-67" not in line


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("79161234567/79161234568", "791******67/791******68"),  # two phones, each masked
        ("id 12345678/8 916 123-45-67", "id 12345678/891******67"),
        ("phone=%2B49+30+12345678", "phone=493*******78"),  # + joins a longer international one
        ("0049/30/12345678", "004*********78"),
    ],
)
def test_numbers_joined_by_plus_or_slash_are_judged_as_phones(text: str, shown: str) -> None:
    assert scrub(text) == shown


#: One number, +7 916 123-45-67, as people type it, browsers and ``curl --data-urlencode`` send it,
#: and aiohttp quotes it in a request line it refused: phonenumbers reads every one as that number.
SPELLINGS = [
    "phone=%2B7+916+123-45-67",
    "phone=8%20(916)%20123-45-67",
    "phone=8%20%28916%29%20123-45-67",
    "phone=8+916+123+45+67",
    "+7 916 123\u201345\u201367",  # en dashes
    "+7 916 123\u201445\u201467",  # em dashes
    "+7 916 123\u221245\u221267",  # minus signs
    "8/916/123/45/67",
    "+7 916 123\u200b45\u200b67",  # zero-width spaces
    "+7\u00a0916\u00a0123\u00a045\u00a067",  # no-break spaces
    "phone=8%E2%80%93916%E2%80%93123%E2%80%9345%E2%80%9367",  # en dashes, percent-encoded
    "b'name=Petrov&phone=8+916+123+45+67&x=%D0%98'",
]


def shown_digits(text: str) -> str:
    """The digits a reader of the line sees, not those of its percent-escapes (``%20``)."""
    return "".join(c for c in re.sub(r"%[0-9A-Fa-f]{2}", "", text) if c.isdigit())


@pytest.mark.parametrize("text", SPELLINGS)
def test_a_phone_in_any_spelling_is_masked(text: str) -> None:
    written = text.split("phone=")[-1].split("&")[0]
    assert phonenumbers.is_valid_number(phonenumbers.parse(unquote_plus(written), "RU")), written
    line = scrub(text)
    assert "******" in line, line
    assert shown_digits(line) in {"79167", "89167"}, line  # the first three and the last two


#: What people and URLs put between a phone's digits; any mix of them may sit between any two.
GAPS = [" ", "-", ".", "(", ")", "/", "+", "%20", "%28", "%29", "%2B", "%2b", "\u2010", "\u2013",
        "\u2014", "\u2212", "\u200b", "\u00a0", "%E2%80%93", "%C2%A0"]  # fmt: skip


@given(
    prefix=st.sampled_from(["", "phone=", "tel: ", "b'phone=", "caller "]),
    digits=st.sampled_from(["89161234567", "79161234567", "4959876543"]),
    gaps=st.lists(st.lists(st.sampled_from(GAPS), max_size=2).map("".join), min_size=11, max_size=11),
)
def test_a_phone_with_any_separators_between_its_digits_shows_five_digits_at_most(
    prefix: str, digits: str, gaps: list[str]
) -> None:
    spelled = digits[0] + "".join(gap + digit for gap, digit in zip(gaps, digits[1:], strict=False))
    assert len(shown_digits(scrub(prefix + spelled))) <= 5, scrub(prefix + spelled)


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-07T14:01:47.608Z",  # the log's own time
        "received 2026/12/07 14:01:47 from the PBX",
        "call at 07.12.2026 14:01:47",
        "12/25/2026 10:00",
        "07/Dec/2026:14:01:47 +0000",
        "outbox 123456 to chat 87654321 after 3 tries",
        "body of 1048576 bytes over the limit of 1048575",
        "written in 0.0123 s, 2.5 ms a row, 12 + 34 rows",
        "page 3/7, id 12345678",
        "1 write(s) finished after their event loop closed",
        "2026-12-07T14:40:46.976047+00:00",  # the review's: datetimes, ratios and sums of ids
        '"since": "2026-12-07T14:42:43.805007+00:00"',
        "2026-12-07 14:40:46.976047+00:00",
        "2026-12-07T14:40:46+03:00, 2026-12-07T14:40:46Z, 2026-12-07T14:40:46.5-0500",
        "1048576/2097152 bytes",
        "441+442+443+444",
    ],
)
def test_ordinary_numbers_stay_readable(text: str) -> None:
    assert scrub(text) == text


@pytest.mark.parametrize(
    "text",
    ["ivan.petrov%40example.com", "?email=IVAN.PETROV%40EXAMPLE.COM&x=1", "to=ivan.petrov%2540example.com"],
)
def test_percent_encoded_emails_are_masked(text):
    assert "petrov" not in scrub(text).lower()


@given(st.text(alphabet=st.characters(blacklist_categories=("Nd",), blacklist_characters="@%")))
def test_text_with_no_digit_at_sign_or_percent_is_logged_as_it_is(text: str) -> None:
    assume("token=" not in text.lower())
    assert scrub(text) == cut(text)


def test_a_long_run_is_cut_first_and_says_how_long_it_was():
    line = scrub("a" * 300_000)
    assert line.endswith("… (300000 characters)")
    assert len(line) < 10_100


#: A record per case, as each library words it: (message, args, extra, exception text).
CASES: dict[str, tuple[str, tuple[Any, ...], dict[str, Any], str | None]] = {
    "parser refused a request line": (
        "Error handling request from %s",
        ("127.0.0.1",),
        {},
        "400, message:\n  Invalid char in url query:\n\n"
        f"    b'GET /hooks/form?token={GUESSED_TOKEN}&email=ivan.petrov%40example.com&x=\\x01 HTTP/1.1'",
    ),
    "access line": (
        '%s "%s" %s',
        ("127.0.0.1", "GET /hooks/form?email=IVAN.PETROV%40EXAMPLE.COM&token=form-token HTTP/1.1", 200),
        {"first_request_line": f"GET /hooks/form?access_token={GUESSED_TOKEN} HTTP/1.1"},
        None,
    ),
    "bot api url": (
        "Failed to fetch updates - TelegramNetworkError: %s",
        (
            f"Cannot connect to https://api.telegram.org/bot{TELEGRAM_TOKEN}/getUpdates"
            f" or https://api.telegram.org/bot{OTHER_BOT_TOKEN}/getMe",
        ),
        {},
        None,
    ),
    "secrets in plain text": (
        "Authorization: Bearer %s; telegram %s; signing key %s; GET /api/leads/%s",
        (
            API_TOKEN,
            TELEGRAM_TOKEN,
            "whsec_dGVzdC1zdGFuZGFyZC13ZWJob29rcy1zZWNyZXQtMzJi",
            quote(API_TOKEN, safe=""),
        ),
        {},
        None,
    ),
    "fields and exception": (
        "request",
        (),
        {"fields": {"reason": "phone '+7 916 123-45-67' for ivan.petrov@example.com", "token": "form-token"}},
        "ValueError: caller 8 (916) 123-45-67 <ivan.petrov@example.com> via form-token",
    ),
}


@pytest.mark.parametrize(
    "logger", ["aiohttp.server", "aiohttp.access", "aiogram", "asyncio", "leadline.http"]
)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_logger_is_scrubbed(json_log: JsonLog, tmp_path: Path, logger: str, case: str) -> None:
    stream = json_log(log_config(tmp_path))
    message, args, extra, error = CASES[case]
    if error is None:
        logging.getLogger(logger).warning(message, *args, extra=extra)
    else:
        try:
            raise RuntimeError(error)
        except RuntimeError:
            logging.getLogger(logger).exception(message, *args, extra=extra)
    [line] = lines(stream)
    assert line["logger"] == logger and line["level"] in ("warning", "error")
    assert_clean(stream.getvalue())
    if error is not None:
        assert "RuntimeError" in line["error"]


class HeldStream(io.StringIO):
    """A stderr that cannot be written until it is let go, as a stalled pipe behind it would be."""

    def __init__(self) -> None:
        super().__init__()
        self.let_go = threading.Event()
        self.held = threading.Event()  # a write is waiting
        self.writers: set[int] = set()

    def write(self, text: str) -> int:
        self.writers.add(threading.get_ident())
        self.held.set()
        self.let_go.wait(10)
        return super().write(text)


def test_in_the_background_a_stalled_stderr_holds_up_no_caller_and_loses_no_line(tmp_path: Path) -> None:
    stream = HeldStream()
    root = logging.getLogger()
    saved = root.handlers[:]
    setup_logging(secrets=log_config(tmp_path).secret_values(), stream=stream, background=True)
    [background] = root.handlers
    try:
        for n in range(3):
            logging.getLogger("leadline.http").info("request %s for %s", n, "+7 916 123-45-67")
        assert stream.getvalue() == ""  # all three calls returned while stderr was held
        stream.let_go.set()
    finally:
        background.close()  # as logging.shutdown does at exit: what is queued is written
        root.handlers[:] = saved
    assert [line["msg"] for line in lines(stream)] == [f"request {n} for 791******67" for n in range(3)]
    assert threading.get_ident() not in stream.writers
    assert_clean(stream.getvalue())


def background_log(stream: io.StringIO, limit: int = 10_000) -> tuple[logging.Logger, BackgroundHandler]:
    target = logging.StreamHandler(stream)
    target.setFormatter(JsonFormatter())
    target.addFilter(ScrubFilter())
    background = BackgroundHandler(target, limit)
    log = logging.getLogger("tests.background")
    log.propagate, log.handlers = False, [background]
    return log, background


def test_past_its_limit_a_stalled_stderr_drops_lines_and_then_says_how_many() -> None:
    stream = HeldStream()
    log, background = background_log(stream, limit=2)
    try:
        log.warning("line 0")
        assert stream.held.wait(10)  # line 0 is being written: the queue is empty again
        for n in range(1, 6):
            log.warning("line %d", n)
        stream.let_go.set()
    finally:
        background.close()
        log.handlers, log.propagate = [], True
    assert [line["msg"] for line in lines(stream)] == [
        "line 0",
        "line 1",
        "line 2",
        "3 log lines were dropped: they came faster than they could be written",
    ]


class Loud:
    """A field whose text is itself logged, on the thread that formats the line."""

    def __str__(self) -> str:
        logging.getLogger("tests.background").warning("said while formatting")
        return "loud"


def test_a_line_logged_while_lines_are_written_or_after_the_end_is_written_and_nothing_hangs() -> None:
    stream = io.StringIO()
    log, background = background_log(stream)
    try:
        log.warning("line", extra={"fields": {"x": Loud()}})

        def shut_down() -> None:  # as logging.shutdown does at exit: the lock held around close()
            with background.lock:  # type: ignore[union-attr]
                background.close()

        closing = threading.Thread(target=shut_down)
        closing.start()
        closing.join(10)
        assert not closing.is_alive()
        log.warning("after the end")
    finally:
        log.handlers, log.propagate = [], True
    assert [(line["msg"], line.get("x")) for line in lines(stream)] == [
        ("said while formatting", None),
        ("line", "loud"),
        ("after the end", None),
    ]


def test_a_line_that_cannot_be_written_is_named_and_the_lines_after_it_are_written() -> None:
    stream = io.StringIO()
    log, background = background_log(stream)
    background.target.addFilter(lambda record: 1 / (not record.msg.startswith("bad")) > 0)
    try:
        log.warning("bad +79161234567")
        log.warning("good")
    finally:
        background.close()
        log.handlers, log.propagate = [], True
    assert [line["msg"] for line in lines(stream)] == [
        "a log line could not be written: ZeroDivisionError",
        "good",
    ]
    assert "1234567" not in stream.getvalue()


class Picky(io.StringIO):
    """A stderr that refuses text with "bad" in it, and holds its first write until let go."""

    def __init__(self) -> None:
        super().__init__()
        self.let_go = threading.Event()
        self.held = threading.Event()

    def write(self, text: str) -> int:
        if not self.held.is_set():
            self.held.set()
            self.let_go.wait(10)
        if "bad" in text:
            raise OSError(28, "No space left on device")
        return super().write(text)


def test_a_line_that_cannot_be_written_costs_only_itself(capsys: pytest.CaptureFixture[str]) -> None:
    stream = Picky()
    log, background = background_log(stream)
    try:
        log.warning("first")
        assert stream.held.wait(10)  # the writer holds "first": the next lines wait together
        log.warning("before")
        log.warning("bad +79161234567")
        log.warning("after")
        stream.let_go.set()
    finally:
        background.close()
        log.handlers, log.propagate = [], True
    assert [line["msg"] for line in lines(stream)] == ["first", "before", "after"]
    assert "No space left on device" in capsys.readouterr().err  # logging's own report of the failure


class Pair(NamedTuple):
    phone: str
    count: int


def test_a_named_tuple_in_the_fields_is_logged_scrubbed(json_log: JsonLog, tmp_path: Path) -> None:
    stream = json_log(log_config(tmp_path))
    logging.getLogger("leadline.http").info("pair", extra={"fields": {"pair": Pair("+79161234567", 2)}})
    [line] = lines(stream)
    assert line["pair"] == ["791******67", 2]


async def raw_request(srv: Running, *chunks: bytes) -> bytes:
    """Bytes written straight to the server's socket, each chunk once the server has answered the
    one before it (as a keep-alive client would), and everything it answers until it closes."""
    url = urlsplit(srv.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    answer = b""
    try:
        for i, chunk in enumerate(chunks):
            writer.write(chunk)
            await writer.drain()
            if i < len(chunks) - 1:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                answer += head + await asyncio.wait_for(reader.readexactly(length), 10)
        return answer + await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


MALFORMED: dict[str, tuple[bytes, ...]] = {
    "bad byte in the query": (
        b"GET /hooks/form?token=form-token&email=ivan.petrov%40example.com&access_token=guessed-token-0002&x=\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    "8 KB URL": (
        b"GET /hooks/form?token=guessed-token-0002&email=ivan.petrov%40example.com&pad="
        + b"a" * 8200
        + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    # aiohttp reads the bytes past Content-Length as the next request, and logs that as an error
    "phone spelled as a browser sends it": (
        b"GET /hooks/form?token=form-token&phone=8%20(916)%20123-45-67&x=\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    "body longer than its Content-Length": (
        b"POST /hooks/form?token=form-token HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\nname=Petrov",
        b"&phone=%2B79161234567&email=ivan.petrov%40example.com&token=guessed-token-0002\r\n\r\n",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_requests_aiohttp_refuses_are_logged_without_token_or_email(
    json_log: JsonLog, start_server: StartServer, tmp_path: Path, case: str
) -> None:
    config = build_config(tmp_path)
    stream = json_log(config)
    srv = await start_server(config)
    answer = await raw_request(srv, *MALFORMED[case])
    assert b"HTTP/1.0 400 Bad Request" in answer
    refused = [line for line in lines(stream) if line["logger"] == "aiohttp.server"]
    assert refused, stream.getvalue()  # the refusal was logged, and scrubbed
    assert_clean(stream.getvalue())


async def test_a_300000_letter_field_is_quoted_cut_with_its_length(
    json_log: JsonLog, start_server: StartServer, tmp_path: Path
) -> None:
    sources = [*BASE["sources"], {"name": "uis", "provider": "uis_comagic", "token": "uis-token"}]
    config = build_config(tmp_path, sources=sources)
    stream = json_log(config)
    srv = await start_server(config)
    body = {"call_session_id": 1, "talk_time_duration": "a" * 300_000, "notification_mnemonic": "call_end"}
    resp = await srv.session.post(f"{srv.url}/hooks/uis?token=uis-token", json=body)
    reason = (await resp.text()).strip()
    assert resp.status == 400
    assert reason == "talk_time_duration is not a number of seconds: '" + "a" * 200 + "…' (300000 characters)"
    assert srv.scalar("SELECT reason FROM journal WHERE source = 'uis'") == reason
    [logged] = [line for line in lines(stream) if line.get("source") == "uis"]
    assert logged["reason"] == reason


async def test_a_long_source_name_is_quoted_cut_on_404(start_server: StartServer) -> None:
    srv = await start_server()
    resp = await srv.session.post(f"{srv.url}/hooks/{'b' * 8000}", data={"phone": "1"})
    assert resp.status == 404
    assert (await resp.text()).startswith("no source named '" + "b" * 200 + "…' (8000 characters): check")


CONFIG = """
[leadline]
database = "{db}"

[http]
host = "127.0.0.1"
port = {port}

[[sources]]
name = "form"
provider = "generic_form"
token = "{secret}"
"""


async def test_serve_masks_the_configs_secrets_wherever_they_turn_up(tmp_path: Path) -> None:
    secret = "s3cret-in-the-path-0001"  # in a URL path, so only the config's secrets can mask it
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(db=tmp_path / "l.db", port=port, secret=secret))
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        proc = await start_serve(config, port, stderr=stderr)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /hooks/form/{secret}?x=\x01 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert b" 400 " in await asyncio.wait_for(reader.read(), 10)
        writer.close()
    finally:
        proc.terminate()
        await proc.wait()
    text = log.read_text()
    assert '"logger": "aiohttp.server"' in text
    assert secret not in text
