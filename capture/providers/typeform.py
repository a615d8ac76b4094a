"""Typeform's ``form_response`` webhook: JSON answers, signed with the webhook's secret.

Typeform-Signature is ``sha256=`` + base64 HMAC-SHA256 of the raw body (FORMATS §2.2, VERIFIED);
it carries no timestamp, so a resent body is caught by the idempotency key. The key is the
response's ``form_response.token``, not the delivery's ``event_id`` (FORMATS §2.2: "Use
``form_response.token`` to identify the response itself"): with partial responses switched on,
a ``form_response_partial`` and the completed ``form_response`` of one respondent are two
deliveries of one submission, and make one touch. Touches stored before were keyed by
``event_id``, which each event names as its former id, so a retry of one of them stays a no-op.

Answers are matched by ``field.ref``, which the form's author can set and which survives edits to
the question's wording; the title is the fallback, because authors often leave refs as generated
ids. Typeform types the answers themselves, so ``phone_number`` and ``email`` answers are the
contact whatever their question says. For the name and the message, refs and titles are read
with the usual field names, then with words a question tends to contain ("как вас зовут",
"comment"); a ``long_text`` answer nobody claimed is taken as the message, since that is what a
free-text box on a lead form is for. Hidden fields carry the UTM tags.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from multidict import MultiDict

from capture.forms import name_of, named, named_like, pick, time_of, utm_of
from capture.providers.base import (
    BadRequest,
    ContactEvent,
    MissingCredentials,
    ParseResult,
    RawRequest,
    Unauthorized,
)
from leadline.config import SourceConfig

SIGNATURE_HEADER = "Typeform-Signature"

#: Words that give a question away when its ref and title are not a known field name.
NAME_WORDS = ("name", "имя", "зовут", "фио")
MESSAGE_WORDS = ("comment", "message", "question", "комментар", "сообщен", "вопрос", "пожелан")


@dataclass(frozen=True)
class Typeform:
    methods: frozenset[str] = frozenset({"POST"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        given = raw.headers.get(SIGNATURE_HEADER, "").strip()
        if not given.startswith("sha256="):
            raise MissingCredentials(
                f"missing {SIGNATURE_HEADER} header: set the source's secret on the Typeform webhook"
            )
        secret = source.secret_value("secret").encode()
        expected = base64.b64encode(hmac.new(secret, raw.body, hashlib.sha256).digest())
        if not hmac.compare_digest(given.removeprefix("sha256=").encode(), expected):
            raise Unauthorized(f"{SIGNATURE_HEADER} does not match the body and the source's secret")

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        body = raw.json()
        response = body.get("form_response") if isinstance(body, dict) else None
        if not isinstance(response, dict):
            raise BadRequest("expected a JSON object with a 'form_response' object")
        event_id = str(body.get("event_id") or "").strip()
        response_id = str(response.get("token") or "").strip() or event_id
        if not response_id:
            raise BadRequest("neither event_id nor form_response.token is present")
        answers = response.get("answers") or []
        if not isinstance(answers, list):
            raise BadRequest("form_response.answers is not a list")
        read = _read_answers(answers, _titles(response.get("definition")))
        extra = source.field_map
        phones = _contact(read, read.phones, "phone", extra.get("phone", ()))
        emails = _contact(read, read.emails, "email", extra.get("email", ()))
        if not phones and not emails:
            raise BadRequest(
                "no phone_number or email answer in the response: add such a question to the form"
            )
        hidden = _dict(response.get("hidden"))
        return ParseResult(
            events=[
                ContactEvent(
                    channel="form",
                    external_id=f"typeform:{response_id}",
                    former_ids=(f"typeform:{event_id}",) if event_id and event_id != response_id else (),
                    occurred_at=time_of(response.get("submitted_at"), "form_response.submitted_at"),
                    phones=tuple(phones),
                    emails=tuple(emails),
                    name=_name(read, extra.get("name", ())),
                    message=_message(read, extra.get("message", ())),
                    utm=utm_of({str(k): str(v) for k, v in hidden.items() if v is not None}),
                    fields={
                        "event_id": event_id or None,
                        "event_type": body.get("event_type"),
                        "form_id": response.get("form_id"),
                        "response_token": response.get("token"),
                        "form_title": _dict(response.get("definition")).get("title"),
                        "hidden": hidden,
                        "answers": {title: value for title, value in read.by_title.items()},
                    },
                )
            ]
        )


@dataclass
class _Answers:
    phones: list[str]
    emails: list[str]
    by_ref: MultiDict[str]
    by_title: MultiDict[str]
    long_texts: list[str]


def _titles(definition: Any) -> dict[str, str]:
    fields = definition.get("fields") if isinstance(definition, dict) else None
    if not isinstance(fields, list):
        return {}
    return {str(f.get("id")): str(f.get("title") or "") for f in fields if isinstance(f, dict)}


def _read_answers(answers: list[Any], titles: Mapping[str, str]) -> _Answers:
    read = _Answers([], [], MultiDict(), MultiDict(), [])
    for answer in answers:
        if not isinstance(answer, dict):
            continue
        kind = str(answer.get("type") or "")
        value = _value(answer, kind)
        if not value:
            continue
        field = _dict(answer.get("field"))
        if kind == "phone_number":
            read.phones.append(value)
        elif kind == "email":
            read.emails.append(value)
        else:
            ref = str(field.get("ref") or field.get("id") or "")
            title = titles.get(str(field.get("id")), "") or ref
            read.by_ref.add(ref, value)
            read.by_title.add(title, value)
            if field.get("type") == "long_text":
                read.long_texts.append(value)
    return read


def _value(answer: Mapping[str, Any], kind: str) -> str:
    """An answer as text: its value sits under a key named like its type (FORMATS §2.2)."""
    value = answer.get(kind)
    if kind == "choice" and isinstance(value, dict):
        value = value.get("label") or value.get("other")
    elif kind == "choices" and isinstance(value, dict):
        value = ", ".join(str(v) for v in [*(value.get("labels") or []), value.get("other")] if v)
    elif isinstance(value, bool):
        value = "yes" if value else "no"
    elif isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value).strip()


def _contact(read: _Answers, typed: list[str], target: str, extra: Iterable[str]) -> list[str]:
    """Typed answers and those named so; a question whose words give it away only when none is."""
    found = [*typed, *named(read.by_ref, target, extra), *named(read.by_title, target, extra)]
    return _unique(found or [*named_like(read.by_ref, target), *named_like(read.by_title, target)])


def _name(read: _Answers, extra: Iterable[str]) -> str | None:
    return (
        name_of(read.by_ref, extra) or name_of(read.by_title, extra) or _by_words(read.by_title, NAME_WORDS)
    )


def _message(read: _Answers, extra: Iterable[str]) -> str | None:
    found = pick(read.by_ref, "message", extra) or pick(read.by_title, "message", extra)
    if found:
        return "\n".join(found)
    return _by_words(read.by_title, MESSAGE_WORDS) or (read.long_texts[0] if read.long_texts else None)


def _by_words(answers: MultiDict[str], words: tuple[str, ...]) -> str | None:
    return next((v for title, v in answers.items() if any(w in title.lower() for w in words)), None)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


PROVIDER = Typeform()
