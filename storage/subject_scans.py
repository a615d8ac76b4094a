"""The text scans that find what only names a person, where no row points at them: the raw requests
in the journal and the messages to Telegram, each scan going on from where the last one stopped."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Literal

from sqlite_utils import Database

from storage.mime import encoded_texts
from storage.subjects import Subject, ids_in


@dataclass(frozen=True)
class Marks:
    """How far a text scan went in each table (the highest id it read), so a later scan goes on."""

    journal: int = 0
    outbox: int = 0


@dataclass(frozen=True)
class Found:
    """Rows that only name the person, and how far the scans that found them went."""

    journal_ids: tuple[int, ...] = ()
    outbox_ids: tuple[int, ...] = ()
    marks: Marks = Marks()

    def __or__(self, other: Found) -> Found:
        return Found(
            tuple(sorted({*self.journal_ids, *other.journal_ids})),
            tuple(sorted({*self.outbox_ids, *other.outbox_ids})),
            Marks(max(self.marks.journal, other.marks.journal), max(self.marks.outbox, other.marks.outbox)),
        )


def request_text(body: bytes, query_string: str, headers: str) -> str:
    """A raw request as the matcher reads it: its query, headers and body, and the text of each mail
    part in it that was sent base64 or quoted-printable, where capture read the person's number."""
    texts = [query_string, headers, body.decode("utf-8", "replace")]
    return "\n".join(texts + encoded_texts(body, _content_type(headers)))


def _content_type(headers: str) -> str:
    """The Content-Type among a journal row's headers (a JSON list of name and value pairs)."""
    try:
        pairs = json.loads(headers)
    except ValueError:
        return ""
    found = (
        pair[1]
        for pair in (pairs if isinstance(pairs, list) else [])
        if isinstance(pair, list) and len(pair) == 2 and str(pair[0]).lower() == "content-type"
    )
    return str(next(found, ""))


#: Which raw requests :func:`scan` reads for the person: every one (``all``), only those that never
#: became a touch (``refused``: received, rejected or failed), or none.
JournalScan = Literal["all", "refused", "none"]
_NOT_TOUCHES = "status IN ('received', 'rejected', 'failed')"


def scan(db: Database, subject: Subject, after: Marks = Marks(), *, journal: JournalScan = "all") -> Found:
    """The journal rows and outbox messages past ``after`` that name the person or show their cards.

    Every raw request is searched in SQL for the person's numbers and addresses as raw bytes, and
    each one found is read as text; a request that never became a touch (refused, failed, waiting)
    is read as text whatever its bytes, where a number may be spaced or URL-encoded. Only a request
    the matcher finds the person in counts: a byte string inside another person's address is not
    them. Messages to Telegram are read as text, and those that carried the person's nudges or
    cards are added by their link. Costs one pass over each table past ``after``; ``journal``
    narrows the requests read (a retention pass for many people at once reads the refused ones).
    """
    matcher = subject.matcher
    top_journal = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM journal").fetchone()[0])
    top_outbox = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0])
    requests: set[int] = set()
    if matcher and journal != "none":
        needles = matcher.needles if journal == "all" else []
        terms = " OR ".join(
            [
                _NOT_TOUCHES,
                *["instr(body, ?) > 0"] * len(needles),
                *["instr(query_string, ?) > 0"] * len(needles),
            ]
        )
        # The bytes only pick the rows worth reading: ``ann@example.org`` is inside
        # ``joann@example.org``, and a chat id inside a longer number. Each row is kept only when
        # the matcher finds the person in it, whole.
        rows = db.execute(
            "SELECT id, body, query_string, headers FROM journal WHERE id > ? AND id <= ?"
            f" AND redacted_at IS NULL AND ({terms})",
            [after.journal, top_journal, *needles, *(n.decode() for n in needles)],
        )
        requests.update(
            int(i) for i, b, q, h in rows if matcher(request_text(bytes(b or b""), str(q), str(h)))
        )
    outbox: set[int] = set()
    if matcher:
        rows = db.execute(
            "SELECT id, payload FROM outbox WHERE id > ? AND id <= ? AND payload != '{}'",
            [after.outbox, top_outbox],
        )
        # A message's text is Telegram's HTML, which writes ``o'brien@`` as ``o&#x27;brien@``.
        outbox.update(int(i) for i, payload in rows if matcher(html.unescape(str(payload))))
    outbox.update(
        ids_in(
            db,
            "SELECT m.outbox_id FROM nudge_deliveries d JOIN nudge_messages m ON m.id = d.message_id"
            " WHERE d.nudge_id IN ({marks}) AND m.outbox_id > ?",
            subject.nudge_ids,
            [after.outbox],
        )
    )
    outbox.update(cards_of(db, subject, after.outbox))
    return Found(tuple(sorted(requests)), tuple(sorted(outbox)), Marks(top_journal, top_outbox))


def cards_of(db: Database, subject: Subject, after: int = 0) -> set[int]:
    """The Telegram messages about the person alone, by link, past outbox id ``after``: their nudges'
    cards, their cards on arrival and a sent card's edits. A card writes an address HTML-escaped
    (``o&#x27;brien@``), and a number too short to search for is on it all the same."""
    found = set(
        ids_in(
            db,
            "SELECT outbox_id FROM nudges WHERE id IN ({marks}) AND outbox_id > ?",
            subject.nudge_ids,
            [after],
        )
    )
    found.update(
        ids_in(
            db,
            "SELECT outbox_id FROM arrival_cards WHERE contact_id IN ({marks}) AND outbox_id > ?",
            subject.contact_ids,
            [after],
        )
    )
    found.update(
        ids_in(
            db,
            "SELECT e.id FROM arrival_cards a JOIN outbox o ON o.id = a.outbox_id JOIN outbox e"
            " ON e.chat_id = o.chat_id AND e.method = 'editMessageText'"
            " AND json_extract(e.payload, '$.message_id') = o.message_id"
            " WHERE a.contact_id IN ({marks}) AND o.message_id IS NOT NULL AND e.id > ?",
            subject.contact_ids,
            [after],
        )
    )
    return found
