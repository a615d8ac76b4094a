"""How far an IMAP source has read its mailbox, so mail read in a mail client is not missed.

Polling only UNSEEN would lose a letter that someone opened before the poll. A mailbox's UIDs only
grow while its UIDVALIDITY stays the same (RFC 3501 §2.3.1.1), so the highest UID journalled is
enough to find every newer message, read or not. Kept in ``meta``, one row per source and figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from storage import meta


@dataclass(frozen=True, slots=True)
class ImapState:
    #: Which mailbox the figures are of (``user@host:port/mailbox``): pointing the source at another
    #: mailbox starts over, since servers reuse UIDVALIDITY values across mailboxes.
    mailbox: str
    uidvalidity: int
    last_uid: int


def _key(source: str, figure: str) -> str:
    return f"imap:{source}:{figure}"


_FIGURES = ("mailbox", "uidvalidity", "last_uid")


def load(db: Database, source: str) -> ImapState | None:
    keys = [_key(source, figure) for figure in _FIGURES]
    rows = meta.get_many(db, keys)
    if any(key not in rows for key in keys):
        return None
    mailbox, validity, last = (rows[key] for key in keys)
    return ImapState(str(mailbox), int(validity), int(last))


def save(db: Database, source: str, state: ImapState) -> None:
    values = (state.mailbox, str(state.uidvalidity), str(state.last_uid))
    meta.put_many(db, {_key(source, figure): value for figure, value in zip(_FIGURES, values, strict=True)})
