"""Tilda's form webhook: the form's own field names plus ``tranid`` and ``formid``, urlencoded.

Tilda signs nothing, so the source's ``token`` guards the URL: the usual way is ``?token=`` in the
webhook address pasted into Tilda (or ``X-Leadline-Token``). Tilda also has an optional "API key"
setting whose wire form FORMATS §2.1 marks UNVERIFIED; so that a user who fills it in with the same
token is not locked out, the key is also accepted as an ``X-Api-Key`` or ``Authorization`` header
(both redacted in the journal). A key in the body is not accepted: the journal keeps bodies raw,
and a secret must never be stored. The token in the URL is the documented way.

When the webhook is connected Tilda posts ``test=test`` and wants 200: that is answered and
journalled with the note "test ping", and makes no touch. Tilda retries twice, a minute apart, when
it gets no answer within 5 s, so ``tranid`` (FORMATS §6: ``tilda:{tranid}``) makes the retry a no-op.

UTM tags come from ``utm_*`` fields, else from the ``COOKIES`` field (sent when "send cookies" is
on): plain ``utm_*`` cookies and Tilda's ``TILDAUTM`` cookie (``utm_source=x|||utm_medium=y``).
Both the ``COOKIES`` key and the ``TILDAUTM`` layout are UNVERIFIED, so they only fill gaps left by
the fields and a cookie that does not parse is ignored.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

from multidict import MultiDict

from capture.forms import UTM_KEYS, form_fields, name_of, pick, utm_of
from capture.providers.auth import check_token
from capture.providers.base import (
    BadRequest,
    ContactEvent,
    ParseResult,
    RawRequest,
    Unauthorized,
)
from capture.providers.generic_form import form_key
from leadline.config import SourceConfig

KEY_FIELDS = frozenset({"api_key", "apikey"})


@dataclass(frozen=True)
class Tilda:
    methods: frozenset[str] = frozenset({"POST"})
    #: Tilda's API key may stand in for the token: ``verify`` checks the token itself.
    verifies_token: bool = True

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        try:
            check_token(raw, source)
        except Unauthorized as exc:
            key = _api_key(raw)
            if key is None:
                raise
            expected = source.secret_value("token")
            if not expected or not hmac.compare_digest(key.encode(), expected.encode()):
                raise Unauthorized(
                    f"{exc.reason}; nor does the Tilda API key match the source's token"
                ) from None

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        fields = form_fields(raw)
        if fields.get("test") == "test" and not _get(fields, "tranid"):
            return ParseResult(note="test ping")
        extra = source.field_map
        phones = pick(fields, "phone", extra.get("phone", ()))
        emails = pick(fields, "email", extra.get("email", ()))
        if not phones and not emails:
            raise BadRequest(
                "no phone or email in the Tilda form: keep the default Phone/Email fields,"
                " or map your field names with field_map in the source's config"
            )
        tranid = _get(fields, "tranid")
        messages = pick(fields, "message", extra.get("message", ()))
        key = form_key(raw, fields, source.timezone, given=tranid)
        return ParseResult(
            events=[
                ContactEvent(
                    channel="form",
                    external_id=key.external_id("tilda"),
                    former_ids=key.former_ids("tilda"),
                    phones=tuple(phones),
                    emails=tuple(emails),
                    name=name_of(fields, extra.get("name", ())),
                    message="\n".join(messages) or None,
                    utm={**cookie_utm(_get(fields, "cookies")), **utm_of(fields)},
                    fields={k: v for k, v in fields.items() if k.lower() not in KEY_FIELDS},
                )
            ]
        )


def _get(fields: MultiDict[str], name: str) -> str:
    """A Tilda service field, whatever case the sender used."""
    return next((v.strip() for k, v in fields.items() if k.lower() == name), "")


def _api_key(raw: RawRequest) -> str | None:
    for header in ("X-Api-Key", "Authorization"):
        value = raw.headers.get(header, "").strip()
        if value:
            return value.removeprefix("Bearer ").strip()
    return None


def cookie_utm(cookies: str) -> dict[str, str]:
    """UTM tags in Tilda's ``COOKIES`` string (``k=v; k=v``), including its ``TILDAUTM`` cookie."""
    found: dict[str, str] = {}
    for item in cookies.split(";"):
        name, sep, value = item.strip().partition("=")
        if not sep:
            continue
        name = name.strip()
        if name.lower() == "tildautm":
            for pair in unquote(value).split("|||"):
                key, sep, tag = pair.partition("=")
                if sep and key.strip() in UTM_KEYS and tag.strip():
                    found.setdefault(key.strip(), unquote(tag).strip())
        elif name in UTM_KEYS and value.strip():
            found[name] = unquote(value).strip()
    return found


PROVIDER = Tilda()
