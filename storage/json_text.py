"""JSON text as the database keeps it, for what every request writes: orjson where it can.

Each request stores a journal row's headers and a touch's fields and UTM tags as JSON. The stdlib's
encoder spent some 75k instructions a form on them, orjson a fifth of that (bench/instructions.py).
orjson refuses what the stdlib takes (a lone surrogate, an integer past 64 bits, nesting past 255
levels): that goes to the stdlib, with ASCII escapes, so the text is storable either way.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

#: Keys as the stdlib writes them (numbers and None as text), and dates and dataclasses through
#: ``default`` as the stdlib's ``default=str`` gave them, not in orjson's own spelling.
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(value: Any) -> str:
    """``value`` as compact JSON text, non-ASCII kept as it is; anything JSON has no type for as its
    ``str``."""
    try:
        return orjson.dumps(value, default=str, option=_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=str, separators=(",", ":"))
