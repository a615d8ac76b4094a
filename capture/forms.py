"""Form bodies in every encoding a site sends, and the field names people give their inputs.

Builders name the phone input ``phone``, ``tel``, ``Телефон`` or ``your-phone``; the defaults
below cover the common Russian and English spellings, and a source's ``field_map`` adds its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from functools import lru_cache
from typing import Any

from multidict import MultiDict
from yarl import query_to_pairs

from capture.providers.base import BadRequest, RawRequest, loads, quoted

DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "phone": (
        "phone",
        "tel",
        "telephone",
        "mobile",
        "phone_number",
        "phonenumber",
        "телефон",
        "тел",
        "номер",
        "your-phone",
        "your_phone",
        "contact_phone",
    ),
    "email": ("email", "e-mail", "mail", "your-email", "your_email", "почта", "электронная почта", "емейл"),
    "name": (
        "name",
        "fullname",
        "full_name",
        "your-name",
        "your_name",
        "first_name",
        "firstname",
        "имя",
        "фио",
        "ваше имя",
        "contact_name",
    ),
    "message": (
        "message",
        "comment",
        "comments",
        "text",
        "question",
        "your-message",
        "your_message",
        "msg",
        "комментарий",
        "сообщение",
        "вопрос",
        "текст",
    ),
}

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")


def form_fields(raw: RawRequest) -> MultiDict[str]:
    """A request's URL-encoded, multipart or JSON form fields, whichever its Content-Type says."""
    return parse_form_body(raw.body, raw.headers.get("Content-Type", ""))


def parse_form_body(body: bytes, content_type_header: str) -> MultiDict[str]:
    """Fields of a urlencoded, multipart or JSON body; file parts are left out."""
    kind = content_type_header.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        return _multipart(body, content_type_header)
    if kind in ("application/json", "text/json") or (not kind and body.lstrip()[:1] in (b"{", b"[")):
        data = loads(body)
        if not isinstance(data, dict):
            raise BadRequest("JSON body must be an object of form fields")
        return MultiDict(_flatten(data))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"form body is not valid UTF-8 (byte {exc.start})") from exc
    return MultiDict(query_to_pairs(text))


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, str]]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, f"{name}.")
        elif isinstance(value, list):
            for item in value:
                yield name, item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
        elif value is None:
            yield name, ""
        else:
            yield name, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


#: The longest header of one part of a multipart body that is read: the stdlib parses a header's
#: parameters in time quadratic in its length (a Content-Disposition of 100 KB: 2 s), and a real
#: one names a field and a file in far less.
MAX_PART_HEADER_CHARS = 4096
#: And of all the parts' headers together: 250 parts of 4 KB each, in one megabyte, cost 21 s.
MAX_PARTS_HEADER_CHARS = 64 * 1024


def multipart_parts(body: bytes, content_type_header: str) -> list[tuple[str, bytes, str | None]]:
    """Each non-file part as (name, bytes, declared charset): for senders that name charsets elsewhere."""
    if "boundary=" not in content_type_header:
        raise BadRequest("multipart body without a boundary in Content-Type")
    # The header's bytes as sent (aiohttp decodes them as UTF-8, surrogateescape): Latin-1 could
    # not encode a parameter in any other script.
    header = content_type_header.encode("utf-8", "surrogateescape")
    try:
        return _parts(BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + header + b"\r\n\r\n" + body))
    except RecursionError:
        # The stdlib's header parser recurses once per nested comment: a 4 KB header of "(((…" is
        # over Python's limit. No form needs one; the sender is told, not sent a traceback.
        raise BadRequest("a multipart header nests more parentheses (comments) than any form needs") from None


def _parts(message: EmailMessage) -> list[tuple[str, bytes, str | None]]:
    if not message.is_multipart():
        raise BadRequest("multipart body could not be split into parts")
    parts: list[tuple[str, bytes, str | None]] = []
    every = list(message.iter_parts())
    headers = 0
    for part in every:  # all lengths first: the parameters of none are parsed before all are known
        for key, value in part.raw_items():
            headers += len(value)
            if len(value) > MAX_PART_HEADER_CHARS:
                raise BadRequest(
                    f"a part's {quoted(key, 40)} header is {len(value)} characters, over the"
                    f" {MAX_PART_HEADER_CHARS} any form field needs"
                )
    if headers > MAX_PARTS_HEADER_CHARS:
        raise BadRequest(
            f"the parts' headers come to {headers} characters, over the {MAX_PARTS_HEADER_CHARS} a form needs"
        )
    for part in every:
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename():
            continue
        payload = part.get_payload(decode=True)
        parts.append((name, payload if isinstance(payload, bytes) else b"", part.get_content_charset()))
    return parts


def _multipart(body: bytes, content_type_header: str) -> MultiDict[str]:
    fields: MultiDict[str] = MultiDict()
    for name, data, declared in multipart_parts(body, content_type_header):
        charset = declared or "utf-8"
        try:
            fields.add(name, data.decode(charset))
        except (LookupError, UnicodeDecodeError) as exc:
            raise BadRequest(f"field {quoted(name)} is not valid {charset}") from exc
    return fields


@lru_cache(maxsize=4096)
def _norm(key: str) -> str:
    """Cached: every request of a form repeats the same few field names, for four look-ups each."""
    return re.sub(r"[\s_\-]+", "_", key.strip().lower())


_DEFAULT_NORMALISED = {target: frozenset(_norm(k) for k in names) for target, names in DEFAULT_FIELDS.items()}


#: What gives a phone or an email field away when its name is none of the usual ones ("Ваш
#: телефон", "Номер телефона", "phone2", Contact Form 7's "tel-123", "Ваша почта"), matched in the
#: normalised name: Contact Form 7's ``tel-`` only where a word starts, so "hotel-…" is no phone.
NAME_WORDS: dict[str, re.Pattern[str]] = {
    "phone": re.compile(r"телефон|phone|mobile|мобильн|(?:^|_)tel_"),
    "email": re.compile(r"email|e_mail|почт"),
}
#: And what its value must look like to count: "Почтовый индекс" holds no address, and
#: "phone_confirmed" or "Мобильное приложение" no number (an address typed for a phone is one).
VALUE_LOOKS: dict[str, Callable[[str], bool]] = {
    # str.count in C: a megabyte of letters in a "Телефон …" field costs 3 ms, not 50.
    "phone": lambda v: "@" in v or sum(map(v.count, "0123456789")) >= 5,
    "email": lambda v: "@" in v,
}


def pick(fields: MultiDict[str], target: str, extra: Iterable[str] = ()) -> list[str]:
    """Non-empty values of the fields that mean ``target`` (phone, email, name, message): those
    named so, else (phones and emails) those whose name gives them away."""
    return named(fields, target, extra) or named_like(fields, target)


def named(fields: MultiDict[str], target: str, extra: Iterable[str] = ()) -> list[str]:
    """Non-empty values of the fields with one of ``target``'s names or the source's own."""
    wanted = _DEFAULT_NORMALISED[target]
    if extra:
        wanted = wanted | {_norm(k) for k in extra}
    return [v.strip() for k, v in fields.items() if _norm(k) in wanted and v.strip()]


def named_like(fields: MultiDict[str], target: str) -> list[str]:
    """The fallback for a form with no field named as :func:`named` knows: the fields whose name
    contains a word of :data:`NAME_WORDS` and whose value looks the part, in the form's order."""
    words, looks = NAME_WORDS.get(target), VALUE_LOOKS.get(target)
    if words is None or looks is None:
        return []
    return [v.strip() for k, v in fields.items() if _says(words, k) and looks(v.strip())]


@lru_cache(maxsize=4096)
def _says(words: re.Pattern[str], key: str) -> bool:
    """Cached like :func:`_norm`: a phone-only form asks of each of its names for an email too."""
    return words.search(_norm(key)) is not None


def utm_of(fields: Mapping[str, str] | MultiDict[str]) -> dict[str, str]:
    return {k: str(fields[k]).strip() for k in UTM_KEYS if k in fields and str(fields[k]).strip()}


LAST_NAME_FIELDS = ("last_name", "lastname", "surname", "family_name", "фамилия")


def name_of(fields: MultiDict[str], extra: Iterable[str] = ()) -> str | None:
    """The sender's name; builders that split it into first and last name fields get both, joined."""
    names = pick(fields, "name", extra)
    if not names:
        return None
    wanted = {_norm(k) for k in LAST_NAME_FIELDS}
    last = next((v.strip() for k, v in fields.items() if _norm(k) in wanted and v.strip()), "")
    return f"{names[0]} {last}" if last and last not in names[0] else names[0]


def time_of(value: object, what: str) -> datetime | None:
    """A builder's ISO-8601 submission time; one without a zone is taken as UTC, as JSON APIs mean it."""
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"{what} is not an ISO-8601 time: {quoted(value)}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
