"""Telephony: many notifications about one call folded into ONE call touch.

A PBX reports a call as a stream (ringing, answered, hung up, summary, recording), delivered in
parallel, out of order and sometimes twice. Reports need one row per call with its outcome, so
every provider's events go through :func:`apply_call_event`, under these rules:

* **Identity.** The touch is ``(source=ctx.source, external_id=event.call_id)``. The first event
  of a call creates it (channel ``call``, direction ``in``/``out``); later ones update its call
  columns. Internal calls (``direction="internal"``) are not touches: ``(None, False)``.
  A recording for a call that has no touch (an internal call, or one whose other events have not
  come) makes none: it would be a call with no caller and no outcome; the journal keeps it.
* **Idempotency.** Each event is recorded in ``call_events`` under ``(source, event_key)``; a
  key seen before changes nothing. ``applied`` says whether the event changed the call.
* **Order.** A non-final event whose ``seq`` is <= the touch's ``last_seq`` changes nothing
  (except that a recording is always kept); ``last_seq`` keeps the highest seq seen. Without a
  seq, ``call_status`` still only moves forward (ringing → answered → ended).
* **Outcome.** A ``final`` event (Mango's summary, Zadarma's NOTIFY_END, Twilio's completed or
  dial action) settles the call whatever its seq, since providers send summaries separately:
  ``call_final=1``, ``answered`` and ``call_status`` ``answered``/``missed``, ``duration_s``,
  ``talk_s``, ``extension`` and ``staff_id`` (``ctx.staff_by_extension``), the direction, and
  the start time. Once settled, only a recording, blanks being filled, or a *correction* change
  it: a later final whose seq is higher than any seen (Twilio's dial action outranks the parent
  call's status callback this way). A final without a higher seq only fills columns still empty.
* **Caller.** ``event.caller`` is the outside party as written. ``None`` means "this event does not
  say" (a Mango recording event); a touch first made from such an event gets its caller from the
  next event that names one, and is marked hidden if the final event names none either. A
  withheld number (``storage.identifiers.phone`` gives None: anonymous, ``<unknown>``, empty,
  ``sip:``, ``client:``) makes a touch with no contact and ``hidden_caller=1``; any other number
  is resolved to a contact (region: ``event.region`` or ``ctx.region``), ``phone_raw`` keeps it as
  written, and a blocked number (the block list, or a ``[[block]]`` rule in ``ctx.blocking``) sets
  ``blocked=1``. So does a finished inbound call (start to end, ringing included) shorter than the
  ``short_call_seconds`` rule from a number with no other touch.
* **Campaign.** ``ctx.campaigns.attribute`` by the tracking number (dialled DID / call-tracking
  number), else the source's default campaign; re-attributed when a tracking number arrives late.
  ``line`` keeps the office line the PBX names (``event.line``), which a call-back goes out from.
* **Called back.** A missed inbound call is called back when an answered call with the same
  contact (inbound from them, or outbound to them) starts at or after it and no later than its
  deadline, ``ctx.callback_deadline(start)`` (working time; 30 real minutes when None). It then gets
  ``called_back_at`` (the answering call's start) and ``called_back_by`` (its touch id). Whenever
  a call's answer, outcome, start or contact changes, the marks of that contact's missed calls are
  recomputed from the rows, so the answer may arrive before or after the missed call's summary, and
  a later correction un-marks what it no longer supports. A call-back after the deadline leaves the
  missed call unmarked ("missed, not called back").
* **Call-backs under way.** An outbound call to a contact, once settled, ends the ``📞 Call back``
  claims on them pressed before it (storage/dials.py): that call-back is over, a new press may dial.
* **Times.** ``occurred_at`` is the call's start: ``event.started_at``, else ``occurred_at``, else
  ``ctx.received_at``; a later event that knows the start (``started_at``) corrects it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlite_utils import Database

from storage.blocking import any_blocked, new_number
from storage.called_back import Deadline, default_deadline, recompute_callbacks
from storage.db import iso, parse_iso
from storage.dedup import Claim, resolve_contacts
from storage.dials import end_dials
from storage.events import CallEvent
from storage.identifiers import Identifier, phone
from storage.touches import EventContext, NewTouch, insert_touch

#: A missed call (the touches aliased ``t``) that someone called back: an answered call with the
#: person since, in either direction and however late (``called_back_at`` marks only one within the
#: call-back SLA). The nudges stop asking then, and the list of missed calls drops it.
CALLED_BACK_SQL = (
    "(t.called_back_at IS NOT NULL OR EXISTS (SELECT 1 FROM touches a WHERE a.contact_id = t.contact_id"
    " AND a.occurred_at >= t.occurred_at AND a.channel = 'call' AND a.answered = 1))"
)


def pressed_called_back(contact: str, since: str) -> str:
    """SQL that someone pressed "Called back" on a call-back card of ``contact`` at or after
    ``since`` (both column expressions of the caller's query)."""
    return (
        "EXISTS (SELECT 1 FROM nudges n WHERE n.kind = 'callback' AND n.contact_id = "
        f"{contact} AND n.outcome = 'called_back' AND n.closed_at >= {since})"
    )


#: How far a non-final status has got; it never moves back.
_RANK = {"ringing": 0, "answered": 1, "ended": 2, "missed": 2}

_COLUMNS = (
    "id",
    "direction",
    "contact_id",
    "occurred_at",
    "hidden_caller",
    "phone_raw",
    "tracking_number",
    "line",
    "campaign",
    "blocked",
    "call_status",
    "answered",
    "duration_s",
    "talk_s",
    "extension",
    "staff_id",
    "recording",
    "last_seq",
    "call_final",
)


@dataclass(frozen=True, slots=True)
class _Call:
    """The call columns of a touch as they are before an event is applied."""

    id: int
    direction: str
    contact_id: int | None
    occurred_at: str
    hidden_caller: int
    phone_raw: str | None
    tracking_number: str | None
    line: str | None
    campaign: str | None
    blocked: int
    call_status: str | None
    answered: int | None
    duration_s: int | None
    talk_s: int | None
    extension: str | None
    staff_id: int | None
    recording: str | None
    last_seq: int | None
    call_final: int

    @property
    def caller_known(self) -> bool:
        """Whether a notification named the caller (a withheld number too, kept as written). A final
        one that named nobody marks the call hidden, but a later one that names the number wins:
        Binotel's hangupTheCall carries no number and may come before apiCallCompleted."""
        return self.phone_raw is not None


def apply_call_event(db: Database, event: CallEvent, ctx: EventContext) -> tuple[int | None, bool]:
    """Fold one notification into its call's touch; returns (touch id or None, whether it is new)."""
    if event.direction == "internal":
        return None, False
    received = iso(ctx.received_at)
    seen = db.conn.execute(
        "SELECT touch_id FROM call_events WHERE source = ? AND event_key = ?", (ctx.source, event.event_key)
    ).fetchone()
    if seen is not None:
        return int(seen[0]), False
    call = _load_call(db, ctx.source, event.call_id)
    created = call is None
    if call is None:
        if event.status == "recording":
            # A recording can overtake the call's other events; keep it until the call appears.
            if event.recording:
                db.conn.execute(
                    "INSERT OR IGNORE INTO pending_recordings (source, call_id, event_key, recording, journal_id, at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (ctx.source, event.call_id, event.event_key, event.recording, ctx.journal_id, received),
                )
            return None, False
        new_id = _create(db, event, ctx)
        _attach_pending_recording(db, ctx.source, event.call_id, new_id)
        call = _load(db, new_id)
    touch_id = call.id
    changes = _changes(db, call, event, ctx)
    if changes:
        assignments = ", ".join(f"{column} = ?" for column in changes)
        db.conn.execute(
            f"UPDATE touches SET {assignments}, updated_at = ? WHERE id = ?",
            [*changes.values(), received, touch_id],
        )
    db.conn.execute(
        "INSERT INTO call_events (source, event_key, touch_id, journal_id, seq, status, applied, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            ctx.source,
            event.event_key,
            touch_id,
            ctx.journal_id,
            event.seq,
            event.status,
            int(created or bool(changes)),
            received,
        ),
    )
    relevant = {"answered", "call_final", "occurred_at", "contact_id", "direction"}
    if created or relevant & changes.keys():
        contact_id = changes.get("contact_id", call.contact_id)
        if contact_id is not None:
            started = parse_iso(str(changes.get("occurred_at", call.occurred_at)))
            recompute_callbacks(
                db, int(contact_id), partial(callback_deadline, ctx), ctx.received_at, around=started
            )
    if created or "call_final" in changes:
        called = _called_back_to(call, changes)
        if called is not None:
            end_dials(db, contact_id=called, at=ctx.received_at)
    return touch_id, created


def _called_back_to(call: _Call, changes: Mapping[str, Any]) -> int | None:
    """The contact of an outbound call that has just been settled (a call-back has come back)."""
    contact_id = changes.get("contact_id", call.contact_id)
    final = changes.get("call_final", call.call_final)
    if not final or contact_id is None or changes.get("direction", call.direction) != "out":
        return None
    return int(contact_id)


def _attach_pending_recording(db: Database, source: str, call_id: str, touch_id: int) -> None:
    row = db.execute(
        "SELECT recording FROM pending_recordings WHERE source = ? AND call_id = ? ORDER BY id DESC LIMIT 1",
        [source, call_id],
    ).fetchone()
    if row is None:
        return
    db.execute("UPDATE touches SET recording = COALESCE(recording, ?) WHERE id = ?", [row[0], touch_id])
    db.execute("DELETE FROM pending_recordings WHERE source = ? AND call_id = ?", [source, call_id])


def _create(db: Database, event: CallEvent, ctx: EventContext) -> int:
    """The touch as the first event of a call knows it; later events fill in the rest."""
    region = event.region or ctx.region
    occurred = event.started_at or event.occurred_at or ctx.received_at
    contact_id, hidden, blocked = (None, False, False)
    if event.caller is not None:
        contact_id, hidden, blocked = _resolve_caller(db, event.caller, region, occurred, ctx)
    touch_id, _ = insert_touch(
        db,
        NewTouch(
            source=ctx.source,
            external_id=event.call_id,
            channel="call",
            occurred_at=occurred,
            received_at=ctx.received_at,
            contact_id=contact_id,
            journal_id=ctx.journal_id,
            direction=event.direction,
            campaign=_campaign(ctx, region, event.tracking_number),
            hidden_caller=hidden,
            phone_raw=event.caller,
            tracking_number=event.tracking_number,
            blocked=blocked,
            payload=event.fields,
        ),
    )
    return touch_id


def _resolve_caller(
    db: Database, raw: str, region: str, at: datetime, ctx: EventContext
) -> tuple[int | None, bool, bool]:
    """(contact id, hidden caller, blocked) for the outside party's number as written."""
    ident: Identifier | None = phone(raw, region)
    if ident is None:
        return None, True, False
    resolution = resolve_contacts(db, [Claim([ident], None, at)])[0]
    return (resolution.contact_id if resolution else None), False, any_blocked(db, [ident], ctx.blocking)


def _campaign(ctx: EventContext, region: str, tracking_number: str | None) -> str | None:
    return ctx.campaigns.attribute(
        region=region, tracking_number=tracking_number, default=ctx.default_campaign
    )


_SELECT_CALL = f"SELECT {', '.join(_COLUMNS)} FROM touches"


def _load(db: Database, touch_id: int) -> _Call:
    row = db.conn.execute(f"{_SELECT_CALL} WHERE id = ?", (touch_id,)).fetchone()
    return _Call(*row)


def _load_call(db: Database, source: str, call_id: str) -> _Call | None:
    """The call's touch, found and read in one statement (most events are about a known call)."""
    row = db.conn.execute(
        f"{_SELECT_CALL} WHERE source = ? AND external_id = ?", (source, call_id)
    ).fetchone()
    return _Call(*row) if row else None


def _mode(call: _Call, event: CallEvent) -> str:
    """How much of the event counts: settle, progress, fill (blanks only) or none."""
    higher_seq = event.seq is not None and (call.last_seq is None or event.seq > call.last_seq)
    if event.final:
        if not call.call_final or higher_seq:
            return "settle"
        return "fill"
    if call.call_final:
        return "none"
    if event.seq is None or higher_seq:
        return "progress"
    return "none"


def _changes(db: Database, call: _Call, event: CallEvent, ctx: EventContext) -> dict[str, Any]:
    """The columns this event changes on the call, by the module's rules."""
    mode = _mode(call, event)
    region = event.region or ctx.region
    new: dict[str, Any] = {}
    if event.seq is not None and (call.last_seq is None or event.seq > call.last_seq):
        new["last_seq"] = event.seq
    if event.recording:
        new["recording"] = event.recording
    if mode == "none":
        return _diff(call, new)

    if not call.caller_known:
        if event.caller is not None:
            at = event.started_at or event.occurred_at or ctx.received_at
            contact_id, hidden, blocked = _resolve_caller(db, event.caller, region, at, ctx)
            new.update(contact_id=contact_id, hidden_caller=int(hidden), phone_raw=event.caller)
            if blocked:
                new["blocked"] = 1
        elif event.final:
            new["hidden_caller"] = 1

    blanks_only = mode == "fill"
    _put(new, call, "duration_s", event.duration_s, blanks_only)
    _put(new, call, "talk_s", event.talk_s, blanks_only)
    if event.extension and not (blanks_only and call.extension):
        new["extension"] = event.extension
        new["staff_id"] = ctx.staff_by_extension.get(event.extension)
    if event.tracking_number and not (blanks_only and call.tracking_number):
        new["tracking_number"] = event.tracking_number
        new["campaign"] = _campaign(ctx, region, event.tracking_number)
    if event.line and not (blanks_only and call.line):
        new["line"] = event.line
    if event.started_at and not blanks_only:
        new["occurred_at"] = iso(event.started_at)

    if mode == "settle":
        answered = event.answered if event.answered is not None else event.status == "answered"
        new.update(call_final=1, answered=int(answered), call_status="answered" if answered else "missed")
        if event.direction_stated and event.direction != call.direction:
            new["direction"] = event.direction
    elif mode == "progress":
        if event.status in _RANK and _RANK[event.status] > _RANK.get(call.call_status or "", -1):
            new["call_status"] = event.status
        if event.answered or event.status == "answered":
            new["answered"] = 1
    if _short_call_from_stranger(db, call, event, new, ctx):
        new["blocked"] = 1
    return _diff(call, new)


def _short_call_from_stranger(
    db: Database, call: _Call, event: CallEvent, new: Mapping[str, Any], ctx: EventContext
) -> bool:
    """The ``short_call_seconds`` rule: a finished inbound call, ringing and talk together shorter
    than that, from a number with no other touch (robocalls and one-ring scams ring once and hang
    up). Providers' ``duration_s`` is the talk alone, 0 for every missed call, so the length is the
    event's start to its end; a provider that reports no end is never blocked by the rule."""
    limit = ctx.blocking.short_call_seconds
    if limit is None or not event.final or event.ended_at is None:
        return False
    started = event.started_at or parse_iso(call.occurred_at)
    contact_id = new.get("contact_id", call.contact_id)
    if new.get("direction", call.direction) != "in" or contact_id is None:
        return False
    return (event.ended_at - started).total_seconds() < limit and new_number(db, int(contact_id), call.id)


def _put(new: dict[str, Any], call: _Call, column: str, value: object, blanks_only: bool) -> None:
    if value is not None and not (blanks_only and getattr(call, column) is not None):
        new[column] = value


def _diff(call: _Call, new: Mapping[str, Any]) -> dict[str, Any]:
    """Only what really differs, so a repeated fact is not counted as a change."""
    return {k: v for k, v in new.items() if getattr(call, k) != v}


def callback_deadline(ctx: EventContext, missed_at: datetime) -> datetime:
    """By when a call missed at ``missed_at`` must be called back."""
    if ctx.callback_deadline is not None:
        return ctx.callback_deadline(missed_at)
    return default_deadline(missed_at)


#: The meta key of the rule the call-back marks were last judged by (see :func:`remark_callbacks`).
MARKS_RULE_KEY = "callbacks.marks_rule"


def missed_call_contacts(db: Database, after: int, limit: int) -> list[int]:
    """Contacts with a missed inbound call, in id order past ``after``: a page of them at a time."""
    return [
        int(r[0])
        for r in db.execute(
            "SELECT DISTINCT contact_id FROM touches WHERE contact_id > ? AND channel = 'call'"
            " AND direction = 'in' AND answered = 0 AND call_final = 1 ORDER BY contact_id LIMIT ?",
            [after, limit],
        )
    ]


def remark_callbacks(db: Database, contact_ids: Sequence[int], deadline: Deadline, at: datetime) -> None:
    """Judge these contacts' missed calls again, their whole history, by ``deadline``.

    Capture marks a call-back against the deadline's rule of its day, and the reports read the mark:
    when the rule changes (``[sla] callback_minutes``, the working time), the past is judged by the
    new one, a raised SLA counting the call-backs it now covers and a lowered one dropping the late.
    """
    for contact_id in contact_ids:
        recompute_callbacks(db, contact_id, deadline, at)


@dataclass(frozen=True, slots=True)
class DialTarget:
    """Whom a call-back about a touch dials: the number that called, through the touch's source."""

    touch_id: int
    source: str
    contact_id: int
    #: The touch's own number (E.164), else the contact's first valid one; None when there is neither.
    phone: str | None
    #: The office line the client called, to call them back from: the line the PBX named, else (calls
    #: stored before lines were, and PBXs that name none) the tracking number they dialled.
    line: str | None


def dial_target(
    db: Database, touch_id: int, *, region: str, source_regions: Mapping[str, str] | None = None
) -> DialTarget | None:
    """What ``📞 Call back`` on a card about ``touch_id`` dials; None when the touch or its contact is gone.

    A person known by several numbers is called back on the one this call came from, read in its
    source's region (``source_regions``, else ``region``) as capture read it: the other may be old,
    or someone else's phone. Only a touch without a valid number of its own falls back to the
    contact's first one.
    """
    row = db.execute(
        "SELECT source, contact_id, COALESCE(line, tracking_number), phone_raw FROM touches WHERE id = ?",
        [touch_id],
    ).fetchone()
    if row is None or row[1] is None:
        return None
    source, contact_id = str(row[0]), int(row[1])
    own = phone(row[3], (source_regions or {}).get(source, region))
    number: str | None = own.value if own is not None and own.valid else None
    if number is None:
        first = db.execute(
            "SELECT value FROM identifiers WHERE contact_id = ? AND kind = 'phone' AND valid = 1"
            " ORDER BY id LIMIT 1",
            [contact_id],
        ).fetchone()
        number = str(first[0]) if first else None
    return DialTarget(touch_id, source, contact_id, number, row[2])
