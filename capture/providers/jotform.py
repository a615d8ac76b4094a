"""Jotform's webhook: multipart form data whose ``rawRequest`` part holds the answers as JSON.

Jotform signs nothing, so the source's ``token`` guards the URL (``?token=`` in the webhook address).
The answers are keyed ``q<question id>_<field name>`` (FORMATS §2.3; the exact key style is
UNVERIFIED), and Jotform tends to append the question id to the name too (``q4_email4``), so both
numbers are stripped before the usual field names are matched; a key that merely contains
"phone" or "email" (``q5_mobilePhone``) is the fallback. Composite widgets arrive as objects:
``{"first", "last"}`` for a name, ``{"full"}`` or ``{"area", "phone"}`` for a phone. When
``rawRequest`` is missing the top-level parts are read the same way. The idempotency key is
``jotform:{submissionID}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from multidict import MultiDict

from capture.forms import form_fields, name_of, pick, utm_of
from capture.providers.auth import check_token
from capture.providers.base import BadRequest, ContactEvent, ParseResult, RawRequest, loads
from capture.providers.generic_form import form_key
from leadline.config import SourceConfig

#: ``q<id>_<name>``; the id Jotform appends to the name is cut in code (:func:`_name`): a lazy
#: group before ``\d*`` backtracked over a long run of digits (quadratic).
QUESTION_KEY = re.compile(r"q\d+_(.+)")
NAME_PARTS = ("prefix", "first", "middle", "last", "suffix")


@dataclass(frozen=True)
class Jotform:
    methods: frozenset[str] = frozenset({"POST"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        check_token(raw, source)

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        parts = form_fields(raw)
        answers = _answers(parts)
        extra = source.field_map
        phones = pick(answers, "phone", extra.get("phone", ()))
        emails = pick(answers, "email", extra.get("email", ()))
        if not phones and not emails:
            raise BadRequest(
                "no phone or email answer in rawRequest: add a Phone or Email field to the form,"
                " or map its name with field_map in the source's config"
            )
        submission = parts.get("submissionID", "").strip()
        messages = pick(answers, "message", extra.get("message", ()))
        key = form_key(raw, parts, source.timezone, given=submission)
        return ParseResult(
            events=[
                ContactEvent(
                    channel="form",
                    external_id=key.external_id("jotform"),
                    former_ids=key.former_ids("jotform"),
                    phones=tuple(phones),
                    emails=tuple(emails),
                    name=name_of(answers, extra.get("name", ())),
                    message="\n".join(messages) or None,
                    utm=utm_of(answers),
                    fields={
                        "formID": parts.get("formID"),
                        "formTitle": parts.get("formTitle"),
                        "submissionID": submission,
                        **answers,
                    },
                )
            ]
        )


def _answers(parts: MultiDict[str]) -> MultiDict[str]:
    """The answers under their field names, composite widgets flattened to text."""
    raw_request = parts.get("rawRequest")
    if raw_request is None:
        source: dict[str, Any] = dict(parts.items())
    else:
        source = loads(raw_request, "rawRequest")
        if not isinstance(source, dict):
            raise BadRequest("rawRequest must be a JSON object of answers")
    answers: MultiDict[str] = MultiDict()
    for key, value in source.items():
        match = QUESTION_KEY.fullmatch(str(key))
        text = _text(value)
        if match and text:
            answers.add(_name(match.group(1)), text)
    return answers


def _name(name: str) -> str:
    """``email4`` → ``email``: the digits at the end go, the first character stays."""
    end = len(name)
    while end > 1 and name[end - 1].isdecimal():
        end -= 1
    return name[:end]


def _text(value: Any) -> str:
    if isinstance(value, dict):
        if value.get("full"):
            return str(value["full"]).strip()
        if any(value.get(k) for k in NAME_PARTS):
            return " ".join(str(value[k]).strip() for k in NAME_PARTS if value.get(k))
        if value.get("phone"):
            return f"{value.get('area') or ''} {value['phone']}".strip()
        return ", ".join(filter(None, map(_text, value.values())))  # each once: linear in the nesting
    if isinstance(value, list):
        return ", ".join(filter(None, map(_text, value)))
    return "" if value is None else str(value).strip()


PROVIDER = Jotform()
