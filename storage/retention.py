"""Keeping data no longer than it is needed: the daily retention pass (``[retention]``).

Three rules, each off at 0 days:

- ``journal_days``: a processed request older than this loses its raw body, headers, query string
  and address; its journal row (counts, times, status) and its touch stay, the touch without the
  provider's fields it copied from the request (its columns: channel, times, name, message, call
  figures, stay; a touch dropped before it reached a contact, an auto-reply, loses its name,
  message, number and address too). A copy of a Telegram message sent that long ago, and of a webhook delivered to a
  CRM, loses its text too: they were delivered, and the raw request they came from is gone. So does
  a card the bot was filling in that nobody touched for as long (storage/bot_states.py), and a
  recording or a chat reply that came before its call or message and waited as long for it.
- ``unregistered_days``: a contact nobody registered, with no touch for this long, is anonymised as
  an erasure would (storage/erasure.py), recorded with the reason ``unregistered``.
- ``refused_days``: likewise a contact registered as not a lead for spam or a wrong number, with no
  touch (and no change of mind) for this long, recorded as ``refused``; their numbers stay on the
  block list, which is what refusing a spammer is for.

Touches, registrations and leads stay on their anonymous contacts, so no past report changes.
Work is done in small writer jobs, so webhooks keep being journalled during a long first pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Literal

from sqlite_utils import Database

from storage import bot_states
from storage.db import Store, chunks, iso
from storage.erasure import (
    Actor,
    blank_messages,
    checkpoint,
    erase,
    redact_deliveries,
    redact_requests,
    refused_before,
)
from storage.retention_runs import mark_pass
from storage.subject_matcher import Matcher
from storage.subject_scans import Found, Marks, scan
from storage.subjects import Subject, subject_of

if TYPE_CHECKING:
    from leadline.config import RetentionSection

log = logging.getLogger("leadline.retention")

#: Rows a writer job changes at once: a fraction of a second of holding the lock.
BATCH = 2000
#: Contacts a writer job anonymises at once.
PEOPLE_BATCH = 50

Rule = Literal["unregistered", "refused"]


@dataclass(frozen=True)
class Pass:
    """What one pass changed."""

    requests: int = 0
    fields: int = 0
    messages: int = 0
    deliveries: int = 0
    unregistered: int = 0
    refused: int = 0
    checkpointed: bool = False
    #: The bot's unsaved drafts and questions nobody touched for ``journal_days``.
    drafts: int = 0
    #: Recordings and chat replies that waited ``journal_days`` for a call or a message that never came.
    waiting: int = 0


# -- raw requests and delivered copies --------------------------------------------------------------


def expired_requests(db: Database, before: datetime, limit: int = BATCH) -> list[int]:
    """Processed journal rows received before ``before`` that still hold their raw request."""
    return [
        int(r[0])
        for r in db.execute(
            "SELECT id FROM journal WHERE status = 'processed' AND redacted_at IS NULL AND received_at < ?"
            " ORDER BY received_at LIMIT ?",
            [iso(before), limit],
        )
    ]


def expire_requests(db: Database, ids: Sequence[int], at: datetime, before: datetime) -> int:
    """Drop the raw request of these rows, checked again in the writer (a replay may have run)."""
    still = []
    for chunk in chunks(sorted(ids)):
        marks = ",".join("?" * len(chunk))
        still += [
            int(r[0])
            for r in db.execute(
                f"SELECT id FROM journal WHERE id IN ({marks}) AND status = 'processed' AND redacted_at IS NULL"
                " AND received_at < ?",
                [*chunk, iso(before)],
            )
        ]
    return redact_requests(db, still, at, "expired")


#: A touch dropped before it reached any contact (an auto-reply, a bounce, spam): nobody registers
#: it, no person's erasure finds it by their contact, and only its count is ever read again.
_STRAY = "contact_id IS NULL AND dropped IS NOT NULL"
#: Such a touch's text as sent: the sender's name, words, number and address.
_STRAY_TEXT = ("name", "message", "phone_raw", "email_raw")


def fields_to_expire(
    db: Database, before: datetime, after: tuple[str, int]
) -> tuple[list[int], tuple[str, int]]:
    """Touches that occurred before ``before`` and still carry their provider's fields (or, dropped
    without a contact, their text), past the ``(occurred_at, id)`` cursor ``after``; returns their
    ids and where to go on from."""
    text = " OR ".join(f"{column} IS NOT NULL" for column in _STRAY_TEXT)
    rows = db.execute(
        f"SELECT id, occurred_at, payload != '{{}}' OR ({_STRAY} AND ({text})) FROM touches"
        " WHERE (occurred_at, id) > (?, ?) AND occurred_at < ? ORDER BY occurred_at, id LIMIT ?",
        [after[0], after[1], iso(before), BATCH * 5],
    ).fetchall()
    if not rows:
        return [], after
    return [int(i) for i, _, full in rows if full], (str(rows[-1][1]), int(rows[-1][0]))


def expire_fields(db: Database, ids: Sequence[int]) -> int:
    """The provider's fields a touch was made from go with its raw request; its columns stay, but
    for a touch dropped without a contact, whose text goes too (only its count is kept)."""
    blank = ", ".join(f"{column} = CASE WHEN {_STRAY} THEN NULL ELSE {column} END" for column in _STRAY_TEXT)
    changed = 0
    for chunk in chunks(sorted(ids)):
        marks = ",".join("?" * len(chunk))
        changed += db.execute(
            f"UPDATE touches SET payload = '{{}}', {blank} WHERE id IN ({marks})", list(chunk)
        ).rowcount
    return changed


def expire_waiting(db: Database, before: datetime) -> int:
    """What waited since ``before`` for something that is not coming: a recording for its call (the
    link to a person's voice), a business's chat reply for the message it would answer (the key of
    its dialogue, which digests the person's chat ids). Held for nobody, they go."""
    stamp = iso(before)
    recordings = db.execute("DELETE FROM pending_recordings WHERE at < ?", [stamp]).rowcount
    replies = db.execute(
        "UPDATE chat_replies SET conversation = NULL"
        " WHERE touch_id IS NULL AND conversation IS NOT NULL AND at < ?",
        [stamp],
    ).rowcount
    return int(recordings + replies)


def expire_copies(
    db: Database, table: Literal["outbox", "webhook_deliveries"], before: datetime, after_id: int
) -> tuple[int, int]:
    """Empty the payloads of one batch of delivered rows created before ``before``, past
    ``after_id``; returns the rows emptied and the last id read (0 when there were none)."""
    done = ("sent", "failed") if table == "outbox" else ("delivered", "failed")
    ids = [
        int(r[0])
        for r in db.execute(
            f"SELECT id FROM {table} WHERE id > ? AND created_at < ? ORDER BY id LIMIT ?",
            [after_id, iso(before), BATCH],
        )
    ]
    if not ids:
        return 0, 0
    changed = 0
    for chunk in chunks(ids):
        marks = ",".join("?" * len(chunk))
        changed += db.execute(
            f"UPDATE {table} SET payload = '{{}}' WHERE id IN ({marks}) AND status IN (?, ?) AND payload != '{{}}'",
            [*chunk, *done],
        ).rowcount
    return changed, ids[-1]


# -- people who never became anything ---------------------------------------------------------------

#: A contact that is its own person, not erased, with no touch since ``:before``.
_DORMANT = (
    "c.merged_into IS NULL AND c.erased_at IS NULL AND c.created_at < :before"
    " AND NOT EXISTS (SELECT 1 FROM touches t WHERE t.contact_id = c.id AND t.occurred_at >= :before)"
)
#: A column of the contact's latest registration.
_LATEST = "(SELECT r.{} FROM registrations r WHERE r.contact_id = c.id ORDER BY r.created_at DESC, r.id DESC LIMIT 1)"
_DUE: dict[Rule, str] = {
    "unregistered": f"{_DORMANT} AND NOT EXISTS (SELECT 1 FROM registrations r WHERE r.contact_id = c.id)",
    "refused": f"{_DORMANT} AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.contact_id = c.id)"
    f" AND {_LATEST.format('disposition')} = 'not_a_lead' AND {_LATEST.format('reason')} IN ('spam', 'wrong_number')"
    f" AND {_LATEST.format('created_at')} < :before",
}


def due(db: Database, rule: Rule, before: datetime, among: Sequence[int] | None = None) -> list[int]:
    """Contacts the rule anonymises now (of ``among`` only, when given: the writer checks again)."""
    sql = f"SELECT c.id FROM contacts c WHERE {_DUE[rule]}"
    if among is None:
        return [int(r[0]) for r in db.execute(sql + " ORDER BY c.id", {"before": iso(before)})]
    found: list[int] = []
    for chunk in chunks(sorted(among)):
        marks = ",".join(f":c{n}" for n in range(len(chunk)))
        params: dict[str, object] = {"before": iso(before), **{f"c{n}": v for n, v in enumerate(chunk)}}
        found += [int(r[0]) for r in db.execute(f"{sql} AND c.id IN ({marks})", params)]
    return found


def _subjects(db: Database, ids: Sequence[int]) -> list[Subject]:
    return [s for i in ids if (s := subject_of(db, i, unlinked=False)) is not None]


def _scan_messages(db: Database, ids: Sequence[int], after: Marks | None = None) -> Found:
    """The Telegram messages past ``after`` that still show any of these people (one read of the
    outbox for them all)."""
    subjects = _subjects(db, ids)
    matcher = Matcher()
    for subject in subjects:
        matcher = matcher | subject.matcher
    everyone = Subject(
        contact_id=0,
        contact_ids=tuple(c for s in subjects for c in s.contact_ids),  # their cards, found by link
        identifiers=(),
        touch_ids=(),
        calls=(),
        registration_ids=(),
        lead_ids=(),
        nudge_ids=tuple(n for s in subjects for n in s.nudge_ids),
        journal_ids=(),
        matcher=matcher,
    )
    return scan(db, everyone, after or Marks(), journal="refused")


def anonymise(
    db: Database, rule: Rule, ids: Sequence[int], seen: Found, at: datetime, before: datetime
) -> tuple[int, int]:
    """Anonymise those of ``ids`` the rule still takes, with the messages that showed them; returns
    (contacts anonymised, messages blanked)."""
    taken = due(db, rule, before, ids)
    if not taken:
        return 0, 0
    actor = Actor("retention", f"retention: {rule}_days", reason=rule)
    subjects = _subjects(db, taken)
    # The read found the messages of the whole batch; if some of it is no longer due (registered or
    # in touch meanwhile), theirs must stay, so the rest are looked for again.
    found = (
        seen | _scan_messages(db, taken, seen.marks) if len(taken) == len(ids) else _scan_messages(db, taken)
    )
    for subject in subjects:
        erase(db, subject, Found(), at=at, actor=actor, keep_blocklist=True, deliveries=False)
    redact_deliveries(db, [i for s in subjects for i in s.lead_ids])
    # Requests that named them and were refused before they went quiet (a form the parser could not
    # read, say): kept for a replay while the person is, they go with them. One still waiting or
    # failed, or refused since, may yet become their touch: it stays.
    redact_requests(db, refused_before(db, found.journal_ids, before), at, "erased")
    blanked = blank_messages(db, found.outbox_ids)
    return len(subjects), blanked


async def _expire_raw(store: Store, before: datetime, now: datetime) -> tuple[int, int, int, int]:
    """``journal_days``: raw requests, the provider fields copied into touches, and delivered copies
    of messages and webhooks; returns how many of each (requests, fields, messages, deliveries)."""
    requests = fields = 0
    while ids := await store.read(partial(expired_requests, before=before)):
        changed = await store.write(partial(expire_requests, ids=ids, at=now, before=before))
        requests += changed
        if not changed:
            break  # every row read was replayed or expired meanwhile: the next pass sees the rest
    cursor: tuple[str, int] = ("", 0)
    while True:
        ids, after = await store.read(partial(fields_to_expire, before=before, after=cursor))
        if after == cursor:
            break
        if ids:
            fields += await store.write(partial(expire_fields, ids=ids))
        cursor = after
    copies = {"outbox": 0, "webhook_deliveries": 0}
    for table in ("outbox", "webhook_deliveries"):
        last = 0
        while True:
            changed, last = await store.write(
                partial(expire_copies, table=table, before=before, after_id=last)
            )
            copies[table] += changed
            if not last:
                break
    return requests, fields, copies["outbox"], copies["webhook_deliveries"]


async def run_pass(store: Store, rules: RetentionSection, now: datetime) -> Pass:
    """One pass of every rule that is on; each step in writer jobs of a bounded size."""
    requests = fields = messages = deliveries = drafts = waiting = 0
    if rules.journal_days:
        before = now - timedelta(days=rules.journal_days)
        requests, fields, messages, deliveries = await _expire_raw(store, before, now)
        drafts = await store.write(partial(bot_states.expire, before=before))
        waiting = await store.write(partial(expire_waiting, before=before))
    anonymised: dict[Rule, int] = {"unregistered": 0, "refused": 0}
    rule_days: tuple[tuple[Rule, int], ...] = (
        ("unregistered", rules.unregistered_days),
        ("refused", rules.refused_days),
    )
    for rule, days in rule_days:
        if not days:
            continue
        before = now - timedelta(days=days)
        candidates = await store.read(partial(due, rule=rule, before=before))
        for start in range(0, len(candidates), PEOPLE_BATCH):
            batch = candidates[start : start + PEOPLE_BATCH]
            seen = await store.read(partial(_scan_messages, ids=batch))
            people, blanked = await store.write(
                partial(anonymise, rule=rule, ids=batch, seen=seen, at=now, before=before)
            )
            anonymised[rule] += people
            messages += blanked
    changed = requests + fields + messages + deliveries + drafts + waiting + sum(anonymised.values())
    checkpointed = await asyncio.to_thread(checkpoint, store.path) if changed else True
    await store.write(partial(mark_pass, at=now))
    result = Pass(
        requests,
        fields,
        messages,
        deliveries,
        anonymised["unregistered"],
        anonymised["refused"],
        checkpointed,
        drafts,
        waiting,
    )
    log.info("retention pass", extra={"fields": {**result.__dict__}})
    return result
