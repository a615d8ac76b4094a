"""What the form-builder tests look at: the touch a sample became and its contact's identifiers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from leadline.config import Config
from tests.conftest import BASE, build_config
from tests.samples import Sample

#: One person's number as five people would type it (``.format(a=…3 digits, b=…2, c=…2)``).
SPELLINGS = (
    "8 (916) {a}-{b}-{c}",
    "+7 916 {a}{b}{c}",
    "7916{a}{b}{c}",
    "8-916-{a}-{b}-{c}",
    "+7 (916) {a}-{b}-{c}",
)


def config_with(tmp_path: Path, *sources: dict[str, Any]) -> Config:
    return build_config(tmp_path, sources=[*BASE["sources"], *sources])


def source_for(s: Sample, provider: str | None = None, **extra: Any) -> dict[str, Any]:
    """The ``[[sources]]`` entry a sample's URL and secrets call for."""
    return {"name": s.source_name, "provider": provider or s.provider, **s.secrets, **extra}


def only_touch(srv: Any) -> dict[str, Any]:
    [touch] = srv.rows("SELECT * FROM touches")
    touch["utm"] = json.loads(touch["utm"])
    return dict(touch)


def identifiers(srv: Any, contact_id: int) -> dict[str, str]:
    rows = srv.rows("SELECT kind, value FROM identifiers WHERE contact_id = ?", [contact_id])
    return {r["kind"]: r["value"] for r in rows}


def assert_expected_contact(srv: Any, touch: dict[str, Any], expected: dict[str, Any]) -> None:
    """The touch's contact has exactly the phone and email the manifest expects."""
    wanted = {k: expected[k] for k in ("phone", "email") if k in expected}
    assert identifiers(srv, touch["contact_id"]) == wanted


def journal(srv: Any) -> list[dict[str, Any]]:
    return list(
        srv.rows("SELECT status, http_status, reason, note, touches_created FROM journal ORDER BY id")
    )
