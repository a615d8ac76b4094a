"""Shared secret checks for providers that sign nothing of their own."""

from __future__ import annotations

import hmac

from capture.providers.base import RawRequest, Unauthorized
from leadline.config import SourceConfig

TOKEN_HEADER = "X-Leadline-Token"


def check_token(raw: RawRequest, source: SourceConfig) -> None:
    """The source's ``token``, sent as ``?token=`` or ``X-Leadline-Token``, compared in constant time."""
    expected = source.secret_value("token")
    given = raw.headers.get(TOKEN_HEADER) or raw.query.get("token") or ""
    if not given:
        raise Unauthorized(
            f"missing token: send it as the 'token' query parameter or the {TOKEN_HEADER} header"
        )
    # Headers arrive decoded with surrogateescape: compare the bytes as sent, never raise on them.
    if not expected or not hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    ):
        raise Unauthorized("wrong token")
