"""Google Forms through our Apps Script snippet (``docs/google_forms_apps_script.js``).

Google Forms has no webhook of its own (FORMATS §2.5), so the payload is our own contract, posted
by an installable form-submit trigger::

    {"source": "google_forms", "form_id": "...", "response_id": "...", "timestamp": "<ISO-8601>",
     "respondent_email": "", "answers": {"<question title>": "<answer>" | ["<answer>", ...]},
     "utm": {"utm_source": "..."}}   # "utm" is optional

The script sends the source's token in ``X-Leadline-Token`` (the sample's way); ``?token=`` in the
URL works as well (check_token). ``response_id`` is FormResponse.getId(), stable across the
script's retries, so the idempotency key is ``google_forms:{response_id}``. Questions are read by
their titles with the usual field names (``Имя``, ``Телефон``, ``Email``); the respondent's
address, when the form collects it, is a contact email too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from multidict import MultiDict

from capture.forms import name_of, pick, time_of, utm_of
from capture.providers.auth import check_token
from capture.providers.base import BadRequest, ContactEvent, ParseResult, RawRequest
from capture.providers.generic_form import form_key
from leadline.config import SourceConfig


@dataclass(frozen=True)
class GoogleForms:
    methods: frozenset[str] = frozenset({"POST"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        check_token(raw, source)

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        body = raw.json()
        if not isinstance(body, dict) or not isinstance(body.get("answers"), dict):
            raise BadRequest(
                "expected a JSON object with an 'answers' object (see docs/google_forms_apps_script.js)"
            )
        answers: MultiDict[str] = MultiDict((str(k), _text(v)) for k, v in body["answers"].items())
        extra = source.field_map
        phones = pick(answers, "phone", extra.get("phone", ()))
        respondent = _text(body.get("respondent_email"))
        emails = list(
            dict.fromkeys([*pick(answers, "email", extra.get("email", ())), *filter(None, [respondent])])
        )
        if not phones and not emails:
            raise BadRequest(
                "no phone or email answer: title the questions Телефон/Phone or Email,"
                " or map the titles with field_map in the source's config"
            )
        utm = body["utm"] if isinstance(body.get("utm"), dict) else {}
        response_id = _text(body.get("response_id"))
        messages = pick(answers, "message", extra.get("message", ()))
        key = form_key(raw, answers, source.timezone, given=response_id)
        return ParseResult(
            events=[
                ContactEvent(
                    channel="form",
                    external_id=key.external_id("google_forms"),
                    former_ids=key.former_ids("google_forms"),
                    occurred_at=time_of(body.get("timestamp"), "timestamp"),
                    phones=tuple(phones),
                    emails=tuple(emails),
                    name=name_of(answers, extra.get("name", ())),
                    message="\n".join(messages) or None,
                    utm={**utm_of({str(k): _text(v) for k, v in utm.items()}), **utm_of(answers)},
                    fields={"form_id": body.get("form_id"), "response_id": response_id, **body["answers"]},
                )
            ]
        )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(
            filter(None, map(_text, value))
        )  # each item once: nesting costs no more than its size
    return str(value).strip()


PROVIDER = GoogleForms()
