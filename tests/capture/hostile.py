"""Hostile requests for the property suite: the providers' samples mutated, re-signed, and judged.

A sample becomes a :class:`Doc` (its JSON, its form pairs, or its multipart parts, with JSON carried
inside a field kept as JSON), mutations (:class:`Replace`, :class:`Delete`, :class:`Many`, …) change
it, and the provider's own signing scheme signs the result, so the mutation reaches the parser
instead of stopping at the signature check. Every value that would make a falsifying example
unreadable (a 900,000-letter string) is built from a short label, which is what hypothesis prints.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, quote_plus

from hypothesis import strategies as st

from tests.multipart import build_multipart
from tests.samples import Sample, sample

#: The server's clock in the property tests: fixed, so every signature and id is reproducible.
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
#: Bytes of value that keep a body with one of them under ``[http] max_body_bytes`` (1 MiB).
BIG = 900_000


@dataclass(frozen=True)
class Raw:
    """Bytes put on the wire as they are: what no encoder would write (bad UTF-8, a JSON token)."""

    data: bytes

    def __repr__(self) -> str:
        return f"Raw({self.data[:40]!r}{'…' if len(self.data) > 40 else ''})"


@dataclass
class Embedded:
    """JSON text carried in one form field or part (Mango's ``json``, Jotform's ``rawRequest``)."""

    node: Any


@dataclass(frozen=True)
class Hostile:
    """A value a sender should not send, in the shape a JSON body and a form body carry it."""

    label: str
    as_json: Callable[[], Any]
    as_form: Callable[[], str | Raw]

    def __repr__(self) -> str:
        return self.label

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How hypothesis prints it in a falsifying example: the label, not a 900 KB value."""
        printer.text(self.label)


def _same(label: str, value: str) -> Hostile:
    return Hostile(label, lambda: value, lambda: value)


def _token(label: str, token: bytes, form: str | None = None) -> Hostile:
    """A JSON token written raw (``NaN``, ``1e309``) and its text in a form."""
    return Hostile(label, lambda: Raw(token), lambda: token.decode() if form is None else form)


def _deep(opening: bytes, inner: bytes, closing: bytes, depth: int = 5000) -> bytes:
    return opening * depth + inner + closing * depth


#: The catalogue, by what each group tries; hypothesis picks a group, then a value in it.
HOSTILE: dict[str, tuple[Hostile, ...]] = {
    "size": (
        Hostile("900,000 letters", lambda: "a" * BIG, lambda: "a" * BIG),
        Hostile("40,000 letters", lambda: "x" * 40_000, lambda: "x" * 40_000),
        Hostile("100,000 digits", lambda: "7" * 100_000, lambda: "7" * 100_000),
        # long runs that a backtracking pattern scans from each of their characters
        _same("a word, 50,000 spaces, a word", f"x{' ' * 50_000}y"),
        _same("a label, 10,000 spaces, a word", f"Name: x{' ' * 10_000}y"),
        _same("a bar, 100,000 dashes, a letter", f"| {'-' * 100_000}x"),
    ),
    "encoding": (
        Hostile("a lone surrogate \\ud800", lambda: Raw(b'"\\ud800"'), lambda: Raw(b"%ED%A0%80")),
        Hostile(
            "a name with a lone surrogate",
            lambda: Raw(b'"Ivan \\udc80 Petrov"'),
            lambda: Raw(b"Ivan+%ED%B2%80"),
        ),
        Hostile("invalid UTF-8 bytes", lambda: Raw(b'"\xff\xfe\xc3("'), lambda: Raw(b"\xff\xfe\xc3(")),
        Hostile("percent-encoded invalid UTF-8", lambda: "%FF%FE%C3%28", lambda: Raw(b"%FF%FE%C3%28")),
    ),
    "control": (
        _same("a NUL inside", "Ivan\x00Petrov"),
        _same("a NUL alone", "\x00"),
        _same("control characters", "\r\n\t\x1b[31m\u202e\ufeff\x7f"),
    ),
    "nesting": (
        Hostile(
            "5,000-deep nested lists",
            lambda: Raw(_deep(b"[", b"", b"]")),
            lambda: _deep(b"[", b"", b"]").decode(),
        ),
        Hostile(
            "5,000-deep nested objects",
            lambda: Raw(_deep(b'{"a":', b"1", b"}")),
            lambda: _deep(b'{"a":', b"1", b"}").decode(),
        ),
    ),
    "numbers": (
        _token("1e308", b"1e308"),
        _token("-1e308", b"-1e308"),
        _token("1e309 (infinity)", b"1e309"),
        _token("NaN", b"NaN"),
        _token("-Infinity", b"-Infinity", "-inf"),
        _token("-1", b"-1"),
        _token("0.5", b"0.5"),
        _token("2**63", b"9223372036854775808"),
        _token("10**30", b"1" + b"0" * 30),
        _token("a 400-digit number", b"9" * 400),
        _token("a 5,000-digit number", b"9" * 5000),
    ),
    "dates": (
        _token("1970: unix 0", b"0"),
        _token("1970: unix 86400", b"86400"),
        _same("1970: ISO 8601", "1970-01-01T00:00:00Z"),
        _same("1970: local time", "1970-01-01 00:00:00"),
        _same("1970: RFC 2822", "Thu, 01 Jan 1970 00:00:00 +0000"),
        _token("2100: unix", b"4102444800"),
        _token("2100: unix milliseconds", b"4102444800000"),
        _same("2100: ISO 8601", "2100-01-01T00:00:00Z"),
        _same("2100: local time", "2100-01-01 00:00:00"),
        _same("2100: RFC 2822", "Fri, 01 Jan 2100 00:00:00 +0000"),
        _same("year 9999", "9999-12-31T23:59:59Z"),
        _token("10**18 seconds", b"1000000000000000000"),
        _token("-10**18 seconds", b"-1000000000000000000"),
        _token("year 0 in unix seconds", b"-62135596801"),
    ),
    "types": (
        _same("an empty string", ""),
        Hostile("null", lambda: None, lambda: "null"),
        Hostile("true", lambda: True, lambda: "true"),
        Hostile("an empty list", lambda: [], lambda: "[]"),
        Hostile("an empty object", lambda: {}, lambda: "{}"),
        Hostile("a list of strings", lambda: ["a", "b"], lambda: "a,b"),
        Hostile("a nested object", lambda: {"a": {"b": [1]}}, lambda: "a[b]=1"),
        Hostile("a phone as a JSON number", lambda: 79160000017, lambda: "79160000017"),
    ),
}


def hostile_values() -> st.SearchStrategy[Hostile]:
    """A group of the catalogue, then a value in it; or short text hypothesis makes up."""
    made_up = st.text(max_size=30).map(lambda t: _same(f"text {t!r}", t))
    return st.one_of(*(st.sampled_from(group) for group in HOSTILE.values()), made_up)


# ---------------------------------------------------------------------------------------------
# The sample as a document, and what is done to it

FieldPath = tuple[str | int, ...]
Kind = Literal["json", "form", "parts", "mail"]
#: The key under which a mail document keeps its body (headers are its other pairs).
BODY = "(body)"


@dataclass
class Doc:
    """A body as a tree: a JSON value, or ``[key, value]`` pairs (form fields, parts, mail headers)."""

    kind: Kind
    root: Any

    def paths(self) -> list[FieldPath]:
        if self.kind == "json":
            return list(_json_paths(self.root, ()))
        found: list[FieldPath] = []
        for key, value in self.root:
            found.append((key,))
            if isinstance(value, Embedded):
                found += _json_paths(value.node, (key,))
        return found

    def leaves(self) -> Iterator[tuple[FieldPath, Any]]:
        """Every path and the value there, for freshening ids."""
        for path in self.paths():
            try:
                yield path, self.get(path)
            except LookupError:
                continue

    def get(self, path: FieldPath) -> Any:
        container, key, in_form = self._locate(path)
        return container[key][1] if in_form else container[key]

    def set(self, path: FieldPath, value: Any) -> None:
        container, key, in_form = self._locate(path)
        if in_form:
            container[key][1] = value
        else:
            container[key] = value

    def delete(self, path: FieldPath) -> None:
        container, key, _ = self._locate(path)
        del container[key]

    def in_form(self, path: FieldPath) -> bool:
        return self.kind != "json" and len(path) == 1

    def _locate(self, path: FieldPath) -> tuple[Any, Any, bool]:
        """The container of the node at ``path``, the key or index in it, and whether it is a pair."""
        if self.kind == "json":
            node = self.root
        else:
            index = next((i for i, (k, _) in enumerate(self.root) if k == path[0]), None)
            if index is None:
                raise KeyError(path[0])
            if len(path) == 1:
                return self.root, index, True
            embedded = self.root[index][1]
            if not isinstance(embedded, Embedded):
                raise KeyError(path)
            node, path = embedded.node, path[1:]
        for step in path[:-1]:
            node = node[step]
        if not isinstance(node, dict | list) or (isinstance(node, list) and not isinstance(path[-1], int)):
            raise KeyError(path)
        if isinstance(node, dict) and path[-1] not in node:
            raise KeyError(path)
        return node, path[-1], False


def _json_paths(node: Any, prefix: FieldPath) -> Iterator[FieldPath]:
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield (*prefix, key)
        yield from _json_paths(value, (*prefix, key))


def load(sample: Sample) -> Doc:
    """The sample's body as a document of the kind its provider sends."""
    body = sample.body
    if sample.entry.get("method") == "SMTP":
        head, _, text = body.replace(b"\r\n", b"\n").partition(b"\n\n")
        headers = [list(line.split(": ", 1)) for line in _unfolded(head.decode("utf-8"))]
        return Doc("mail", [*headers, [BODY, text.decode("utf-8")]])
    if (sample.entry.get("content_type") or "").startswith("multipart/"):
        parts = json.loads(body)["parts"]
        return Doc("parts", [[k, _embedded(v)] for k, v in parts.items()])
    if body.lstrip()[:1] in (b"{", b"["):
        return Doc("json", json.loads(body))
    return Doc("form", [[k, _embedded(v)] for k, v in parse_qsl(body.decode(), keep_blank_values=True)])


def _unfolded(head: str) -> list[str]:
    lines: list[str] = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += "\n" + line
        elif line:
            lines.append(line)
    return lines


def _embedded(value: str) -> str | Embedded:
    if value.lstrip()[:1] != "{":
        return value
    try:
        return Embedded(json.loads(value))
    except ValueError:
        return value


def json_bytes(node: Any) -> bytes:
    """JSON as a sender writes it (raw UTF-8), with :class:`Raw` tokens spliced in unchanged."""
    if isinstance(node, Raw):
        return node.data
    if isinstance(node, dict):
        members = (
            json.dumps(str(k), ensure_ascii=False).encode() + b":" + json_bytes(v) for k, v in node.items()
        )
        return b"{" + b",".join(members) + b"}"
    if isinstance(node, list):
        return b"[" + b",".join(json_bytes(v) for v in node) + b"]"
    return json.dumps(node, ensure_ascii=False).encode("utf-8")


def _form_value(value: Any) -> bytes:
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, Embedded):
        return quote_plus(json_bytes(value.node)).encode()
    return quote_plus(str(value)).encode()


def _part_value(value: Any) -> str | bytes:
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, Embedded):
        return json_bytes(value.node)
    return str(value)


def _mail_value(value: Any, continuation: bytes) -> bytes:
    """A header or body value, folded so that no line is over SMTP's 1,000 characters."""
    data = value.data if isinstance(value, Raw) else str(value).encode("utf-8", "surrogatepass")
    lines = []
    for line in data.split(b"\n"):
        lines += [line[i : i + 900] for i in range(0, len(line), 900)] or [b""]
    return continuation.join(lines)


def encode(doc: Doc) -> tuple[bytes, str]:
    """The body bytes and the Content-Type that goes with them."""
    if doc.kind == "json":
        return json_bytes(doc.root), "application/json"
    if doc.kind == "parts":
        return build_multipart([(str(k), _part_value(v)) for k, v in doc.root])
    if doc.kind == "mail":
        head = b"".join(
            str(k).encode() + b": " + _mail_value(v, b"\r\n ") + b"\r\n" for k, v in doc.root if k != BODY
        )
        text = next((v for k, v in doc.root if k == BODY), "")
        return head + b"\r\n" + _mail_value(text, b"\r\n"), "message/rfc822"
    pairs = (quote_plus(str(k)).encode() + b"=" + _form_value(v) for k, v in doc.root)
    return b"&".join(pairs), "application/x-www-form-urlencoded"


# ---------------------------------------------------------------------------------------------
# Mutations


@dataclass(frozen=True)
class Replace:
    path: FieldPath
    value: Hostile

    def apply(self, doc: Doc, n: int) -> None:
        doc.set(self.path, self.value.as_form() if doc.in_form(self.path) else self.value.as_json())


@dataclass(frozen=True)
class Delete:
    path: FieldPath

    def apply(self, doc: Doc, n: int) -> None:
        doc.delete(self.path)


@dataclass(frozen=True)
class Many:
    """Hundreds of phones or emails where one was: repeated fields (a JSON list), or one per line."""

    path: FieldPath
    kind: Literal["phones", "emails"]
    count: int
    joined: bool

    def apply(self, doc: Doc, n: int) -> None:
        # The example's number is in every value: examples never share (and merge) contacts.
        if self.kind == "phones":
            values = [f"+7916{n % 1000:03d}{i:04d}" for i in range(self.count)]
        else:
            values = [f"lead{i}.h{n}@example.com" for i in range(self.count)]
        if self.joined:
            doc.set(self.path, "\n".join(values))
        elif doc.in_form(self.path):
            container, index, _ = doc._locate(self.path)
            key = container[index][0]
            container[index : index + 1] = [[key, v] for v in values]
        else:
            doc.set(self.path, values)


#: Names a field should not have: a long run a pattern backtracks over, a NUL, nothing.
HOSTILE_KEYS = (
    ("q9_note + 100,000 digits + x", f"q9_note{'1' * 100_000}x"),
    ("100,000 unclosed '['", f"x{'[' * 100_000}"),
    ("10,000 letters", "k" * 10_000),
    ("a NUL", "a\x00b"),
    ("nothing", ""),
)


@dataclass(frozen=True)
class Rename:
    """The field under another name (the value kept)."""

    path: FieldPath
    label: str

    def apply(self, doc: Doc, n: int) -> None:
        name = dict(HOSTILE_KEYS)[self.label]
        if doc.in_form(self.path):
            container, index, _ = doc._locate(self.path)
            container[index][0] = name
            return
        container, key, _ = doc._locate(self.path)
        if not isinstance(container, dict):
            raise KeyError(self.path)
        container[name] = container.pop(key)


@dataclass(frozen=True)
class NestKey:
    """The field 5,000 levels deep: PHP-style ``key[x][x]…`` in a form, nested objects in JSON."""

    path: FieldPath

    def apply(self, doc: Doc, n: int) -> None:
        if doc.in_form(self.path):
            container, index, _ = doc._locate(self.path)
            container[index][0] = f"{container[index][0]}{'[x]' * 5000}"
        else:
            doc.set(self.path, Raw(_deep(b'{"x":', json_bytes(doc.get(self.path)), b"}")))


@dataclass(frozen=True)
class IdempotencyKey:
    """A hostile ``Idempotency-Key`` header, which form providers use as the submission's id."""

    value: Hostile


@dataclass(frozen=True)
class ContentType:
    """A ``charset`` parameter added to the Content-Type header, which body parsers read too."""

    value: Hostile


@dataclass(frozen=True)
class Compress:
    """The body sent with a Content-Encoding, whole or cut off half-way."""

    how: Literal["gzip", "gzip cut in half", "deflate cut in half"]


Mutation = Replace | Delete | Many | Rename | NestKey


@dataclass(frozen=True)
class Case:
    """A sample, by file name (what a falsifying example should show), and what is done to it."""

    file: str
    fields: tuple[Mutation, ...]
    around: tuple[IdempotencyKey | ContentType | Compress, ...] = ()

    @property
    def sample(self) -> Sample:
        return sample(self.file)


def mutations(doc: Doc, owned: frozenset[str]) -> st.SearchStrategy[Mutation]:
    """What may be done to this document's fields: anything anywhere, and as often values aimed
    at the fields they can hurt (times and numbers where a time or a number is read, any value
    where a phone or an email is)."""
    paths = [p for p in doc.paths() if str(p[0]) not in owned]
    anywhere = st.sampled_from(paths)
    contacts = [p for p in paths if _holds_contact(doc.get(p))]
    numeric = [p for p in paths if _holds_time(doc.get(p)) or _holds_number(doc.get(p))]
    times_and_numbers = st.sampled_from(HOSTILE["dates"] + HOSTILE["numbers"])
    aimed = [
        *([st.builds(Replace, st.sampled_from(contacts), hostile_values())] if contacts else []),
        *([st.builds(Replace, st.sampled_from(numeric), times_and_numbers)] if numeric else []),
    ]
    return st.one_of(
        *aimed,
        st.builds(Replace, anywhere, hostile_values()),
        st.builds(Delete, anywhere),
        st.builds(
            Many,
            st.sampled_from(contacts) if contacts else anywhere,
            st.sampled_from(("phones", "emails")),
            st.sampled_from((300, 1000)),
            st.booleans(),
        ),
        # a mail header's name cannot be folded: a long one is a line SMTP itself refuses
        st.builds(Rename, anywhere, st.sampled_from([label for label, _ in HOSTILE_KEYS]))
        if doc.kind != "mail"
        else st.nothing(),
        st.builds(NestKey, anywhere) if doc.kind != "mail" else st.nothing(),
    )


def transport() -> st.SearchStrategy[IdempotencyKey | ContentType | Compress]:
    """What is done to the request around the body: its id header, its Content-Type, its
    Content-Encoding."""
    return st.one_of(
        st.builds(IdempotencyKey, hostile_values()),
        st.builds(ContentType, hostile_values()),
        st.builds(Compress, st.sampled_from(("gzip", "gzip cut in half", "deflate cut in half"))),
    )


def _holds_contact(value: Any) -> bool:
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, int) else ""
    return "@" in text or len(re.sub(r"\D", "", text)) >= 7


def _holds_time(value: Any) -> bool:
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return bool(re.fullmatch(r"1[5-9]\d{8}(\d{3})?|\d{4}-\d\d-\d\d[T ].*|\w{3}, \d\d \w{3} \d{4} .*", text))


def _holds_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) or (
        isinstance(value, str) and bool(re.fullmatch(r"-?\d{1,6}(\.\d+)?", value))
    )


def cases(
    samples: Sequence[Sample], owned: frozenset[str], *, around: bool = False
) -> st.SearchStrategy[Case]:
    """Samples with one to three of their fields mutated; ``around``: with what goes around the
    body mutated too (an id header, a Content-Encoding)."""

    def of(s: Sample) -> st.SearchStrategy[Case]:
        fields = st.lists(mutations(load(s), owned), min_size=0 if around else 1, max_size=3).map(tuple)
        extra = st.lists(transport(), min_size=1, max_size=2).map(tuple) if around else st.just(())
        return st.builds(Case, st.just(s.file), fields, extra)

    return st.sampled_from(samples).flatmap(of)


# ---------------------------------------------------------------------------------------------
# On the wire


@dataclass
class Wire:
    """One request as it goes out: method, path (with its query), headers, body."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def fresh(value: Any, n: int) -> Any:
    """An id made unique to example ``n``, in the type it had."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return value
    return int(f"{value}{n:05d}") if isinstance(value, int) else f"{value}-h{n}"


def compress(body: bytes, how: str) -> tuple[bytes, str]:
    if how == "gzip":
        return gzip.compress(body), "gzip"
    packed = gzip.compress(body) if how.startswith("gzip") else zlib.compress(body)
    return packed[: max(len(packed) // 2, 1)], how.split()[0]
