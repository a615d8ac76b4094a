"""One structured line per event, and never a secret, a full phone number or an email in it.

Every record from every logger (ours, aiohttp's parser and access log, aiogram, asyncio) passes
through one :class:`ScrubFilter` on the root handler, because the dangerous text is rarely ours: a
request line that aiohttp's parser refused, a Bot API URL with the token in its path, a sender's
value quoted in a rejection reason. The scrubber is linear in its input, so a hostile value cannot
stall the event loop through the log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import sys
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from logging.handlers import QueueHandler
from typing import IO, Any
from urllib.parse import quote, quote_plus

from storage.identifiers import mask, mask_phones

#: A log field longer than this is cut before it is scrubbed: a megabyte of a sender's bytes is
#: evidence for nobody, and a traceback with its chained causes stays far below it.
MAX_CHARS = 10_000

#: An email, also percent-encoded (``ivan%40example.com``) as it appears in URLs. It may start only
#: where a run of address characters starts (the lookbehinds) and never gives back what it took (the
#: possessive quantifiers), so a long run of letters is read once, not once per position.
_LOCAL = r"(?:[\w.+\-]|%(?!40|2540)[0-9A-Fa-f]{2})++"
_EMAIL = re.compile(
    r"(?<![\w.+\-])(?<!%(?=[0-9A-Fa-f]{2}))" + _LOCAL + r"(?:@|%40|%2540)[\w\-]++(?:\.[\w\-]++)++"
)
#: ``token=...`` in a query string (``?token=``, ``&access_token=``) and a Bot API token in a URL
#: path (``/bot123456:AA.../getUpdates``) or standing alone.
_QUERY_TOKEN = re.compile(r"(?i)(token=)[^&\s\"'<>#\\]++")
_BOT_TOKEN = re.compile(r"(?<![\d])\d{5,}+:[\w\-]{30,}+")
_BOT_PATH = re.compile(r"(/bot)\d++:[^/\s\"'?&]++")

#: What any of the patterns above needs to find something: a digit, an @ or a % (an email, also
#: percent-encoded), or ``token=``. Text with none of them (most field values) is searched once.
_MAY_HIDE = re.compile(r"[\d@%]|token=", re.IGNORECASE)

_HIDDEN = "***"


def cut(text: str, limit: int = MAX_CHARS) -> str:
    """``text`` with everything past ``limit`` characters dropped, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def _masked_email(match: re.Match[str]) -> str:
    return mask(match[0].replace("%2540", "@").replace("%40", "@"))


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` cut to :data:`MAX_CHARS` with its secrets, tokens, emails and phone numbers masked.

    ``secrets`` are replaced first, in the order given (:class:`ScrubFilter` gives them longest
    first), so a secret cut in two at the limit is not left half shown. Linear in ``len(text)``
    (times the number of secrets): a hostile value costs what its length costs, no pattern here
    can backtrack.
    """
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _HIDDEN)
    if len(text) > MAX_CHARS:
        text = cut(text)
    if len(text) < 9 and "@" not in text:
        return text  # too short for a phone number (9+ characters); no email without an @
    if _MAY_HIDE.search(text) is None:
        return text
    text = _QUERY_TOKEN.sub(rf"\g<1>{_HIDDEN}", text)
    text = _BOT_PATH.sub(rf"\g<1>{_HIDDEN}", text)
    text = _BOT_TOKEN.sub(_HIDDEN, text)
    text = _EMAIL.sub(_masked_email, text)
    return mask_phones(text)


def spellings(secrets: Iterable[str]) -> tuple[str, ...]:
    """Each secret as written, as a URL or a form carries it, and as a JSON string escapes it;
    longest first, so that one containing another is replaced whole."""
    given = {s for s in secrets if s}
    spelled = given | {quote(s, safe="") for s in given} | {quote_plus(s, safe="") for s in given}
    spelled |= {json.dumps(s)[1:-1] for s in given}
    return tuple(sorted(spelled, key=len, reverse=True))


#: What every LogRecord has; anything else on a record came from ``extra=`` and is scrubbed too.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
#: Values with nothing in them to scrub (bool is an int).
_PLAIN = frozenset({int, float, bool})


class ScrubFilter(logging.Filter):
    """Masks every record in place before any handler formats it; drops none."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = spellings(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "scrubbed", False):
            return True  # seen by another handler already
        try:
            message = record.getMessage()
        except Exception:  # a call with the wrong arguments; the handler would only print a warning
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = self.scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        # Only the scrubbed text goes on: a handler given the exception would format it afresh.
        record.exc_info = None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        for key in record.__dict__.keys() - _STANDARD:
            setattr(record, key, self._value(getattr(record, key)))
        record.__dict__["scrubbed"] = True
        return True

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return scrub(value, self.secrets)
        if isinstance(value, dict):
            # A request's line has ten fields on every request: numbers and None go by without a call.
            return {k: v if v is None or type(v) in _PLAIN else self._value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):  # a named tuple too, shown as the list JSON makes of it
            return [self._value(v) for v in value]
        return value


class JsonFormatter(logging.Formatter):
    """Machine-readable lines; callers pass fields through ``extra={"fields": {...}}``."""

    def __init__(self) -> None:
        super().__init__()
        self._encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # which process of ``[http] workers`` wrote it
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["error"] = record.exc_text
        return self._encode(line)

    def _time(self, created: float) -> str:
        """UTC with milliseconds and a Z: lines of several processes and machines sort as text.

        The date and time of day are formatted once a second, not once a line."""
        second = int(created)
        micro = round((created - second) * 1_000_000)  # rounded as datetime.fromtimestamp rounds
        if micro == 1_000_000:
            second, micro = second + 1, 0
        if self._second[0] != second:
            self._second = (second, f"{datetime.fromtimestamp(second, UTC):%Y-%m-%dT%H:%M:%S}")
        return f"{self._second[1]}.{micro // 1000:03d}Z"


#: Lines a :class:`BackgroundHandler` holds while they cannot be written, about 7 MB of them.
MAX_QUEUED_LINES = 10_000


#: At most this many lines go out in one write.
WRITE_LINES = 1_000
#: After a write, how long the writer lets lines gather before it looks again. Woken and flushing
#: once per line, this thread spent 77 µs of CPU per request of bench/ingest.py's form mix, under the
#: GIL the event loop needs; gathering, 37.
GATHER_SECONDS = 0.02


class _Writer:
    """The thread that writes a :class:`BackgroundHandler`'s lines in order, every waiting line with
    one write."""

    def __init__(
        self, records: queue.SimpleQueue[logging.LogRecord], target: logging.StreamHandler[Any]
    ) -> None:
        self.records = records
        self.target = target
        self.here = threading.local()  # set while this thread writes: what it logs then goes straight on
        self._thread = threading.Thread(target=self._run, name="leadline-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        self.records.put(_END)
        self._thread.join()

    def _run(self) -> None:
        self.here.writing = True
        while True:
            batch = [self.records.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < WRITE_LINES and batch[-1] is not _END:
                    batch.append(self.records.get_nowait())
            end = batch[-1] is _END
            self._write(batch[:-1] if end else batch)
            if end:
                return
            time.sleep(GATHER_SECONDS)

    def _write(self, records: list[logging.LogRecord]) -> None:
        target = self.target
        written = [(record, line) for record in records if (line := self._line(record))]
        if not written:
            return
        with target.lock:  # type: ignore[union-attr]  # every Handler has one
            try:
                target.stream.write("".join(line for _, line in written))
                target.flush()
            except Exception:
                # Line by line, so that a line that cannot be written costs only itself.
                for record, line in written:
                    try:
                        target.stream.write(line)
                        target.flush()
                    except Exception:
                        target.handleError(record)

    def _line(self, record: logging.LogRecord) -> str:
        target = self.target
        try:
            return target.format(record) + target.terminator if target.filter(record) else ""
        except Exception as exc:
            # One line that cannot be scrubbed or formatted must not cost the others, nor end the
            # thread. The record is not shown: it is what could not be scrubbed.
            notice = _notice(f"a log line could not be written: {type(exc).__name__}")
            with contextlib.suppress(Exception):
                if target.filter(notice):
                    return target.format(notice) + target.terminator
            return ""


#: What :meth:`_Writer.stop` queues to end the thread.
_END = logging.makeLogRecord({"msg": "end"})


class BackgroundHandler(QueueHandler):
    """Hands records to a thread of their own, which scrubs, formats and writes them.

    The logging cookbook's answer to handlers that block ("Dealing with handlers that block"): on
    the event loop, a webhook's line was a tenth of the request's time (bench/ingest.py), and a pipe
    behind stderr that nobody reads stalled every request once it was full. Now the lines keep their
    order and wait in memory; past ``limit`` of them they are dropped and counted, as Docker's
    non-blocking log mode drops them, and the count is written before the next line that fits.

    Closing the handler, as ``logging.shutdown`` does at exit, writes what is queued; from then on,
    and on the writing thread itself (a line logged while another is formatted), records are
    written at once, so nothing waits for a thread that is gone or busy. A process killed outright
    loses the lines still queued, never a request: the journal keeps those.
    """

    def __init__(self, target: logging.StreamHandler[Any], limit: int = MAX_QUEUED_LINES) -> None:
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        super().__init__(records)
        self.records = records
        self.target = target
        self.limit = limit
        self.dropped = 0  # changed only under the handler's lock, which ``handle`` holds
        self.writer = _Writer(records, target)
        self.writer.start()
        self.open = True

    def handle(self, record: logging.LogRecord) -> bool:
        if not self.open or getattr(self.writer.here, "writing", False):
            return bool(self.target.handle(record))
        return bool(super().handle(record))

    def emit(self, record: logging.LogRecord) -> None:
        if not self.open:  # closed while this record waited for the lock: nobody reads the queue now
            self.target.handle(record)
            return
        if self.records.qsize() >= self.limit:
            self.dropped += 1
            return
        self._say_dropped()
        super().emit(record)

    def _say_dropped(self) -> None:
        if self.dropped:
            count, self.dropped = self.dropped, 0
            super().emit(
                _notice(f"{count} log lines were dropped: they came faster than they could be written")
            )

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """A copy of the record with its message's arguments applied now, as the stdlib's does: they
        may change once the call returns, and the writing thread scrubs the copy, not the caller's
        record (which another handler may be reading). Fields given in ``extra`` are read when the
        line is written."""
        # A shallow copy as copy.copy makes it, at a quarter of its cost (one for every line).
        copied = object.__new__(type(record))
        copied.__dict__.update(record.__dict__)
        record = copied
        if record.args:
            with contextlib.suppress(Exception):  # wrong arguments: ScrubFilter says what they were
                record.msg, record.args = record.getMessage(), None
        return record

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # every Handler has one
            was_open, self.open = self.open, False
            if was_open:
                self._say_dropped()
        if was_open:  # once: logging.shutdown closes every handler, setup_logging a replaced one
            self.writer.stop()  # writes what is queued, then ends the thread
        super().close()


def _notice(text: str) -> logging.LogRecord:
    return logging.makeLogRecord(
        {"name": __name__, "levelno": logging.WARNING, "levelname": "WARNING", "msg": text}
    )


def setup_logging(
    level: str = "INFO",
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
    *,
    background: bool = False,
) -> None:
    """JSON lines on stderr, every record scrubbed of ``secrets`` (the config's) and personal data.

    ``background`` scrubs, formats and writes them on a thread of their own
    (:class:`BackgroundHandler`), as ``leadline serve`` does: its event loop only hands them over.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ScrubFilter(secrets))
    # No line shows the calling frame, the thread or the multiprocessing name: not looking them up
    # for every record is a tenth of a request line's cost (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    replaced, root.handlers[:] = root.handlers[:], [BackgroundHandler(handler) if background else handler]
    for old in replaced:  # after the swap: a line logged meanwhile went to one of them, not lost
        if isinstance(old, BackgroundHandler):
            old.close()
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per SMTP command
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # two lines per job run, ~2,900 a day
