"""One structured line per event, and never a secret or a full phone number in it."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from storage.identifiers import mask

#: Something that looks like a phone number (9+ digits, maybe spaced) or an email address.
_PHONE = re.compile(r"\+?\d[\d\s\-().]{7,}\d")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(\.[\w\-]+)+")


def scrub(text: str) -> str:
    """Mask phone numbers and emails wherever they slipped into a log line (an exception message)."""
    if len(text) < 9 and "@" not in text:
        return text  # too short for a phone number (9+ characters); no email without an @

    def phone(match: re.Match[str]) -> str:
        if _DATE.search(match[0]):
            return match[0]
        digits = re.sub(r"\D", "", match[0])
        return mask(digits) if len(digits) >= 9 else match[0]

    return _PHONE.sub(phone, _EMAIL.sub(lambda m: mask(m[0]), text))


class JsonFormatter(logging.Formatter):
    """Machine-readable lines; callers pass fields through ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        # UTC with milliseconds and a Z: lines of several processes and machines sort as text.
        at = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # which process of ``[http] workers`` wrote it
            "msg": scrub(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({k: scrub(v) if isinstance(v, str) else v for k, v in fields.items()})
        if record.exc_info:
            line["error"] = scrub(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per SMTP command
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # two lines per job run, ~2,900 a day
