"""Elementor Pro forms, urlencoded by WordPress, in the three shapes a site can send.

1. The documented custom hook (``elementor_pro/forms/new_record`` → ``wp_remote_post($url,
   ['body' => $fields])``, FORMATS §2.6, VERIFIED): one field per form field, keyed by field ID.
2. The built-in "Webhook" action with "advanced data" off: keys are the field labels (the ID when
   a field has no label), plus ``form_id``, ``form_name`` and meta such as ``Page URL``.
3. The same action with "advanced data" on: ``form[id]``, ``form[name]``,
   ``fields[<id>][id|type|title|value|raw_value|required]`` and ``meta[<key>][title|value]``.

Shapes 2 and 3 are UNVERIFIED (read from the plugin's behaviour as commonly described, not from
Elementor's docs). So every shape is read with the usual field names; shape 3 also uses a field's
``type`` (``tel``, ``email``, ``textarea``), which is the surest sign of what it holds, and both
its ID and its title. UTM tags come from fields named ``utm_*`` (hidden fields) and else from the
query of the page the form was sent from.

Elementor signs nothing: the source's ``token`` guards the URL. It sends no submission id either,
so a repeat is recognised as generic forms do it (an id field, else the body's hash within the
office's day);
WordPress does not retry a webhook, so repeats are rare double submissions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

from multidict import MultiDict

from capture.forms import form_fields, name_of, named, named_like, utm_of
from capture.providers.auth import check_token
from capture.providers.base import BadRequest, ContactEvent, ParseResult, RawRequest
from capture.providers.generic_form import form_key
from leadline.config import SourceConfig

ADVANCED_KEY = re.compile(r"(form|fields|meta)\[([^\]]*)\](?:\[([^\]]*)\])?")
PAGE_URL_FIELDS = ("page url", "page_url", "referer", "referrer")


@dataclass(frozen=True)
class Elementor:
    methods: frozenset[str] = frozenset({"POST"})

    def verify(self, raw: RawRequest, source: SourceConfig, now: datetime) -> None:
        check_token(raw, source)

    def parse(self, raw: RawRequest, source: SourceConfig) -> ParseResult:
        body = form_fields(raw)
        form = _read(body)
        extra = source.field_map
        # A Tel or Email field, or one named so, is the contact; the name's words are the fallback.
        phones = _unique(
            [*form.typed("tel"), *form.named("phone", extra.get("phone", ()))]
        ) or form.named_like("phone")
        emails = _unique(
            [*form.typed("email"), *form.named("email", extra.get("email", ()))]
        ) or form.named_like("email")
        if not phones and not emails:
            raise BadRequest(
                "no phone or email in the Elementor form: use Tel/Email fields or IDs phone/email,"
                " or map the names with field_map in the source's config"
            )
        messages = form.named("message", extra.get("message", ())) or form.typed("textarea")
        key = form_key(raw, body, source.timezone)
        return ParseResult(
            events=[
                ContactEvent(
                    channel="form",
                    external_id=key.external_id("elementor"),
                    former_ids=key.former_ids("elementor"),
                    phones=tuple(phones),
                    emails=tuple(emails),
                    name=next(filter(None, (name_of(f, extra.get("name", ())) for f in form.views)), None),
                    message="\n".join(_unique(messages)) or None,
                    utm={**_page_utm(form.meta), **utm_of(form.views[-1]), **utm_of(form.views[0])},
                    fields={**form.info, **dict(form.views[0].items())},
                )
            ]
        )


@dataclass
class _Form:
    #: The fields by ID, then (advanced data only) by title: the same values under two names.
    views: list[MultiDict[str]]
    #: Field type → values, known only with advanced data.
    types: MultiDict[str]
    meta: dict[str, str]
    info: dict[str, str]

    def named(self, target: str, extra: Iterable[str]) -> list[str]:
        return [v for view in self.views for v in named(view, target, extra)]

    def named_like(self, target: str) -> list[str]:
        return _unique([v for view in self.views for v in named_like(view, target)])

    def typed(self, kind: str) -> list[str]:
        return [v.strip() for v in self.types.getall(kind, []) if v.strip()]


def _read(body: MultiDict[str]) -> _Form:
    advanced: dict[str, dict[str, dict[str, str]]] = {"form": {}, "fields": {}, "meta": {}}
    plain: MultiDict[str] = MultiDict()
    for key, value in body.items():
        match = ADVANCED_KEY.fullmatch(key)
        if match:
            group, name, prop = match.groups()
            advanced[group].setdefault(name, {})[prop or "value"] = value
        else:
            plain.add(key, value)
    if not advanced["fields"]:
        info = {k: plain.popone(k) for k in ("form_id", "form_name") if k in plain}
        meta = {k.lower(): v for k, v in plain.items() if k.lower() in PAGE_URL_FIELDS}
        return _Form([plain], MultiDict(), meta, info)
    by_id: MultiDict[str] = MultiDict()
    by_title: MultiDict[str] = MultiDict()
    types: MultiDict[str] = MultiDict()
    for field_id, props in advanced["fields"].items():
        value = props.get("value", props.get("raw_value", ""))
        by_id.add(props.get("id") or field_id, value)
        by_title.add(props.get("title") or field_id, value)
        types.add(props.get("type", ""), value)
    by_id.extend(plain)
    meta = {name: props.get("value", "") for name, props in advanced["meta"].items()}
    info = {f"form_{k}": v.get("value", "") for k, v in advanced["form"].items()}
    return _Form([by_id, by_title], types, meta, info)


def _page_utm(meta: Mapping[str, str]) -> dict[str, str]:
    """UTM tags in the query of the page the form was sent from."""
    for key in ("page_url", *PAGE_URL_FIELDS):
        url = meta.get(key)
        if url:
            return utm_of(dict(parse_qsl(urlsplit(url).query)))
    return {}


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


PROVIDER = Elementor()
