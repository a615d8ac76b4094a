"""Comparing a secret someone sent over HTTP with the one the config holds.

A source's token, the API's bearer token and the bot webhook's secret token all arrive in a header
or a query, which aiohttp decodes with ``surrogateescape``: a byte that is not UTF-8 becomes a lone
surrogate, which a plain ``str.encode()`` refuses with an exception (a 500 for anyone who sends
one). Here every layer compares the bytes as they were sent, in constant time, so a wrong secret of
any value is just a wrong secret. It lives in storage/ only because every layer may import it.
"""

from __future__ import annotations

import hmac


def _sent(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def same_secret(given: str, expected: str) -> bool:
    """True when ``given`` is ``expected``, compared in constant time; an empty ``expected`` (no
    secret configured) matches nothing, so that a missing setting never lets everyone in."""
    return bool(expected) and hmac.compare_digest(_sent(given), _sent(expected))
