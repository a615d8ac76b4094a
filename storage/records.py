"""``@record``: a frozen dataclass for the objects every request makes, at a plain one's cost.

A form request builds some ninety fields of frozen dataclasses (its event, its touch, its verdict,
its journal columns...). A frozen dataclass sets each field through ``object.__setattr__``: 17
fields cost 25.8k instructions against 4.3k for a plain slotted dataclass, some 115k a request in
all (bench/instructions.py). A record is frozen where it matters, for the type checker:
``dataclass_transform(frozen_default=True)`` makes mypy refuse an assignment to a field. At run
time it is a slotted dataclass with the hash a frozen one has, so it can still key a dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def record(cls: type[_T]) -> type[_T]:
    return dataclass(slots=True, unsafe_hash=True)(cls)
