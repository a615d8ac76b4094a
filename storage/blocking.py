"""The block list: numbers and addresses staff put on it, and the config's ``[[block]]`` rules.

A touch from a blocked number or address is still journalled and stored, with ``blocked=1``: it is
counted apart in the reports, never nudged, never on a list to register. Staff add to the list by
refusing a touch as spam with "block" (storage/register.py); they see it with ``/blocked`` or
``GET /api/blocked`` and take an entry off it, after which the number makes touches that count again.
The config's rules cannot be taken off from the bot: they are the config's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from storage.db import chunks, iso
from storage.identifiers import Identifier, phone

if TYPE_CHECKING:
    from leadline.config import BlockRule


@dataclass(frozen=True, slots=True)
class BlockRules:
    """The config's ``[[block]]`` rules, normalised as identifiers are (E.164, lower-case)."""

    prefixes: tuple[str, ...] = ()
    numbers: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    #: A call shorter than this from a number never seen before is blocked (None: no such rule).
    short_call_seconds: int | None = None

    @classmethod
    def build(cls, rules: Iterable[BlockRule], region: str) -> BlockRules:
        prefixes: list[str] = []
        numbers: set[str] = set()
        emails: set[str] = set()
        short: list[int] = []
        for rule in rules:
            if rule.prefix is not None:
                prefixes.append(rule.prefix)
            if rule.number is not None and (ident := phone(rule.number, region)) is not None and ident.valid:
                numbers.add(ident.value)
            if rule.email is not None:
                emails.add(rule.email)
            if rule.short_call_seconds is not None:
                short.append(rule.short_call_seconds)
        return cls(tuple(prefixes), frozenset(numbers), frozenset(emails), max(short, default=None))

    def matches(self, kind: str, value: str) -> bool:
        """Whether a rule blocks this valid identifier."""
        if kind == "phone":
            return value in self.numbers or value.startswith(self.prefixes)
        return value in self.emails

    def rows(self) -> list[dict[str, Any]]:
        """The rules as the API lists them beside the block list."""
        return (
            [{"prefix": p} for p in self.prefixes]
            + [{"number": n} for n in sorted(self.numbers)]
            + [{"email": e} for e in sorted(self.emails)]
            + ([{"short_call_seconds": self.short_call_seconds}] if self.short_call_seconds else [])
        )


NO_RULES = BlockRules()


def blocked_keys(
    db: Database, keys: set[tuple[str, str]], rules: BlockRules = NO_RULES
) -> set[tuple[str, str]]:
    """Which of these valid (kind, value) pairs are blocked, by the list or by a rule."""
    blocked = {k for k in keys if rules.matches(*k)}
    for values in chunks(sorted({v for _, v in keys})):
        marks = ",".join("?" * len(values))
        rows = db.conn.execute(f"SELECT kind, value FROM blocklist WHERE value IN ({marks})", values)
        blocked |= {(str(k), str(v)) for k, v in rows if (k, v) in keys}
    return blocked


def any_blocked(db: Database, idents: Iterable[Identifier], rules: BlockRules = NO_RULES) -> bool:
    return bool(blocked_keys(db, {(i.kind, i.value) for i in idents if i.valid}, rules))


def new_number(db: Database, contact_id: int, touch_id: int) -> bool:
    """Whether this touch is the contact's only one: the number was never seen before it."""
    row = db.conn.execute(
        "SELECT 1 FROM touches WHERE contact_id = ? AND id != ? LIMIT 1", (contact_id, touch_id)
    ).fetchone()
    return row is None


_ENTRY = (
    "SELECT b.id, b.kind, b.value, b.reason, b.at, s.name AS staff,"
    " (SELECT MIN(i.contact_id) FROM identifiers i WHERE i.kind = b.kind AND i.value = b.value AND i.valid = 1)"
    " AS contact_id FROM blocklist b LEFT JOIN staff s ON s.id = b.staff_id"
)


def blocklist_page(
    db: Database, *, offset: int = 0, limit: int = 100, after_id: int = 0
) -> list[dict[str, Any]]:
    """Block-list entries by id, with who added them and whose number or address it is."""
    return list(
        db.query(f"{_ENTRY} WHERE b.id > ? ORDER BY b.id LIMIT ? OFFSET ?", [after_id, limit, offset])
    )


def blocklist_size(db: Database) -> int:
    return int(db.execute("SELECT COUNT(*) FROM blocklist").fetchone()[0])


def unblock(db: Database, entry_id: int, *, at: datetime) -> dict[str, Any] | None:
    """Take an entry off the block list (None if it is not there): the number or address makes touches
    that count again, and its contact loses its mark once none of its identifiers is on the list."""
    entry = next(db.query(f"{_ENTRY} WHERE b.id = ?", [entry_id]), None)
    if entry is None:
        return None
    db.execute("DELETE FROM blocklist WHERE id = ?", [entry_id])
    db.execute(
        "UPDATE contacts SET blocked = 0, updated_at = ? WHERE blocked = 1 AND id IN"
        " (SELECT contact_id FROM identifiers WHERE kind = ? AND value = ?) AND NOT EXISTS"
        " (SELECT 1 FROM identifiers i JOIN blocklist b ON b.kind = i.kind AND b.value = i.value"
        " WHERE i.contact_id = contacts.id)",
        [iso(at), entry["kind"], entry["value"]],
    )
    return entry
