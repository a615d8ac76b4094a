"""How far an IMAP source has read its mailbox, so mail read in a mail client is not missed.

Polling only UNSEEN would lose a letter that someone opened before the poll. A mailbox's UIDs only
grow while its UIDVALIDITY stays the same (RFC 3501 §2.3.1.1), so the highest UID journalled is
enough to find every newer message, read or not. Kept in ``meta``, one row per source and figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database


@dataclass(frozen=True, slots=True)
class ImapState:
    uidvalidity: int
    last_uid: int


def _key(source: str, figure: str) -> str:
    return f"imap:{source}:{figure}"


def load(db: Database, source: str) -> ImapState | None:
    rows = dict(
        db.execute(
            "SELECT key, value FROM meta WHERE key IN (?, ?)",
            [_key(source, "uidvalidity"), _key(source, "last_uid")],
        ).fetchall()
    )
    validity, last = rows.get(_key(source, "uidvalidity")), rows.get(_key(source, "last_uid"))
    if validity is None or last is None:
        return None
    return ImapState(int(validity), int(last))


def save(db: Database, source: str, state: ImapState) -> None:
    db.conn.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        [(_key(source, "uidvalidity"), str(state.uidvalidity)), (_key(source, "last_uid"), str(state.last_uid))],
    )
