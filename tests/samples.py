"""The providers' payloads from ../shared/samples, sent as the manifest says they arrive."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: ``shared/samples`` beside the checkout, found from a git worktree (``wt/<name>``) as well.
SAMPLES = next(
    (
        p / "shared" / "samples"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "samples").is_dir()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "samples",
)
PUBLIC_URL = "https://hooks.example.com"


@dataclass(frozen=True)
class Sample:
    file: str
    entry: dict[str, Any]
    body: bytes

    @property
    def provider(self) -> str:
        return str(self.entry["provider"])

    @property
    def path(self) -> str:
        """The manifest URL's path and query, e.g. ``/hooks/mango/events/summary``."""
        parts = urlsplit(self.entry["url"])
        return parts.path + (f"?{parts.query}" if parts.query else "")

    @property
    def source_name(self) -> str:
        """The source name the manifest's URL uses (``/hooks/<name>/...``)."""
        return self.path.split("/")[2].split("?")[0]

    @property
    def headers(self) -> dict[str, str]:
        headers = dict(self.entry.get("headers") or {})
        content_type = self.entry.get("content_type")
        if content_type and "boundary=..." not in content_type:
            headers.setdefault("Content-Type", content_type)
        return headers

    @property
    def secrets(self) -> dict[str, str]:
        return dict(self.entry.get("secrets") or {})

    @property
    def expected(self) -> dict[str, Any]:
        return dict(self.entry.get("expected") or {})


@cache
def manifest() -> tuple[Sample, ...]:
    entries = json.loads((SAMPLES / "MANIFEST.json").read_text())
    return tuple(Sample(e["file"], e, (SAMPLES / e["file"]).read_bytes()) for e in entries)


def sample(file: str) -> Sample:
    for s in manifest():
        if s.file == file:
            return s
    raise KeyError(file)


def by_provider(provider: str) -> list[Sample]:
    return [s for s in manifest() if s.provider == provider]


def flip_byte(body: bytes, index: int | None = None) -> bytes:
    """The same body with one byte changed, in the middle unless told where."""
    i = len(body) // 2 if index is None else index
    changed = bytearray(body)
    changed[i] = changed[i] ^ 0x01 if chr(changed[i] ^ 0x01).isprintable() else ord("x")
    return bytes(changed)
