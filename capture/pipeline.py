"""From a raw request to a journal row and touches: the path every channel shares.

HTTP webhooks, the SMTP server, the IMAP poller and the AMI client all hand a :class:`RawRequest`
to :meth:`Capture.ingest`. Verification and parsing happen first, in memory; then one writer job
journals the request and stores its events in the same transaction, so by the time the caller is
answered the request is durable and either processed, rejected with its reason, or marked failed
for a restart or ``leadline replay`` to finish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache, partial
from itertools import islice
from typing import Any, cast

from sqlite_utils import Database

from capture import journal
from capture.providers import PROVIDERS
from capture.providers.auth import check_access
from capture.providers.base import (
    CallEvent,
    Event,
    ParseResult,
    Provider,
    ProviderError,
    RawRequest,
    Reply,
    quoted,
)
from capture.settle import settle, text
from leadline.config import Config, SourceConfig
from storage.attribution import CampaignIndex
from storage.db import Clock, Store, now_utc, savepoint
from storage.events import ContactEvent
from storage.identifiers import phone
from storage.touches import EventContext, identifiers_of, plan_contact_events, record_contact_event

log = logging.getLogger("leadline.capture")

#: Bytes of body kept for a request refused before it proved where it came from.
UNAUTHENTICATED_BODY_KEPT = 4096


@cache
def provider_for(name: str) -> Provider:
    return PROVIDERS[name].load()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What was decided about a request before the database saw it."""

    provider: str | None
    http_status: int
    reason: str | None = None
    result: ParseResult | None = None
    replay_key: str | None = None
    keep_body: bool = True


@dataclass(frozen=True, slots=True)
class Outcome:
    journal_id: int
    status: str
    http_status: int
    reason: str | None
    reply: Reply
    events: int = 0
    touches_created: int = 0
    channels: tuple[str, ...] = ()


def apply_events(db: Database, events: Iterable[Event], ctx: EventContext) -> tuple[int, list[str]]:
    """Store each event; returns how many touches are new and their channels."""
    created = 0
    channels: list[str] = []
    for event in events:
        if isinstance(event, CallEvent):
            from storage.calls import apply_call_event

            _, new = apply_call_event(db, event, ctx)
            channel = "call"
        else:
            _, new = record_contact_event(db, event, ctx)
            channel = event.channel
        if new:
            created += 1
            channels.append(channel)
    return created, channels


@dataclass
class Capture:
    """The capture service: one per process, shared by every receiver."""

    config: Config
    store: Store
    clock: Clock = now_utc
    staff_by_extension: Mapping[str, int] = field(default_factory=dict)
    owner_by_source: Mapping[str, int] = field(default_factory=dict)
    callback_deadline: Callable[[datetime], datetime] | None = None

    def __post_init__(self) -> None:
        self.campaigns = CampaignIndex.build(self.config.campaigns, self.config.leadline.region)
        self._defaulted: dict[str, tuple[SourceConfig, SourceConfig]] = {}

    def context(self, source_name: str, journal_id: int | None, received_at: datetime) -> EventContext:
        source = self.config.source(source_name)
        return EventContext(
            source=source_name,
            journal_id=journal_id,
            received_at=received_at,
            region=(source.region if source and source.region else self.config.leadline.region),
            campaigns=self.campaigns,
            default_campaign=source.campaign if source else None,
            default_owner=self.owner_by_source.get(source_name),
            staff_by_extension=self.staff_by_extension,
            callback_deadline=self.callback_deadline,
        )

    def _with_defaults(self, source: SourceConfig) -> SourceConfig:
        """The source with the config's region and time zone filled in, copied once per source."""
        if source.region is not None and source.timezone is not None:
            return source
        cached = self._defaulted.get(source.name)
        if cached is not None and cached[0] is source:
            return cached[1]
        # Parsers that read numbers out of text, or local times, need the defaults now.
        filled = source.model_copy(
            update={
                "region": source.region or self.config.leadline.region,
                "timezone": source.timezone or self.config.leadline.timezone,
            }
        )
        self._defaulted[source.name] = (source, filled)
        return filled

    def judge(self, raw: RawRequest, source: SourceConfig, *, verify: bool = True) -> Verdict:
        """Verify and parse in memory; never raises for anything the sender did."""
        provider = provider_for(source.provider)
        source = self._with_defaults(source)
        if verify:
            try:
                check_access(raw, source, provider, self.config.http.trusted_proxies)
                provider.verify(raw, source, self.clock())
            except ProviderError as exc:
                return Verdict(source.provider, 401 if exc.status == 400 else exc.status, exc.reason)
            except Exception as exc:
                # Whatever breaks a check is a failed check: it must never become a replayable 400.
                log.warning("signature check for %s raised %s", source.provider, type(exc).__name__)
                return Verdict(source.provider, 401, f"request could not be verified ({type(exc).__name__})")
        try:
            replay_key = getattr(provider, "replay_key", None)
            key = replay_key(raw) if replay_key else None
            # Whatever storage would fail on is decided now, while the sender can still be told.
            result, key = settle(provider.parse(raw, source), key, raw.received_at)
        except ProviderError as exc:
            return Verdict(source.provider, exc.status, text(exc.reason))
        except Exception as exc:  # a parser bug must not lose the request: keep it for replay
            log.exception("parser for %s failed", source.provider)
            return Verdict(source.provider, 400, text(f"could not parse: {type(exc).__name__}: {exc}"))
        return Verdict(source.provider, 200, result=result, replay_key=key)

    async def ingest(self, raw: RawRequest, source: SourceConfig, *, verify: bool = True) -> Outcome:
        """Journal and process one request; returns only after both are durable."""
        return await self.record(raw, self.judge(raw, source, verify=verify))

    async def record(self, raw: RawRequest, verdict: Verdict) -> Outcome:
        # Encoding and number parsing happen here, before the write, so that the time the
        # database lock is held (the bottleneck under load) is spent on SQL alone.
        kept = raw
        if verdict.http_status in (401, 403, 404, 405) and len(raw.body) > UNAUTHENTICATED_BODY_KEPT:
            # Anyone can reach a refused URL: keep enough to diagnose it, not enough to fill the disk.
            kept = replace(raw, body=raw.body[:UNAUTHENTICATED_BODY_KEPT])
        prepared = journal.prepare(kept, keep_body=verdict.keep_body)
        if verdict.result is not None:
            self._warm(raw.source, verdict.result.events)
        one = partial(self._record, raw=raw, verdict=verdict, prepared=prepared)
        if _groupable(verdict):
            return await self.store.write_now(one, group=self._record_many, item=(raw, verdict, prepared))
        return await self.store.write_now(one)

    def _warm(self, source_name: str, events: Iterable[Event]) -> None:
        """Parse each number and address once now; storage's look-ups then hit the cache."""
        source = self.config.source(source_name)
        default = source.region if source and source.region else self.config.leadline.region
        for event in events:
            region = event.region or default
            if isinstance(event, CallEvent):
                phone(event.caller, region)
                phone(event.tracking_number, region)
            else:
                identifiers_of(event.phones, event.emails, region)
                phone(event.tracking_number, region)

    def _record(self, db: Database, raw: RawRequest, verdict: Verdict, prepared: journal.Prepared) -> Outcome:
        if verdict.result is None or verdict.http_status >= 400:
            jid = journal.insert(db, raw, **_rejected_columns(verdict, prepared))
            return _rejected(jid, verdict)
        reason = (
            "signature token already used: a replayed request is refused"
            if verdict.replay_key and journal.replay_key_used(db, raw.source, verdict.replay_key)
            else journal.bind(db, raw.source, verdict.result.bindings, self.clock())
        )
        if reason:
            jid = journal.insert(
                db,
                raw,
                provider=verdict.provider,
                status="rejected",
                http_status=401,
                reason=reason,
                prepared=prepared,
            )
            return Outcome(jid, "rejected", 401, reason, Reply(401, reason.encode()))
        return self._store(db, raw, verdict, verdict.result, prepared)

    def _store(
        self,
        db: Database,
        raw: RawRequest,
        verdict: Verdict,
        result: ParseResult,
        prepared: journal.Prepared,
    ) -> Outcome:
        """Journal a new request as processed and store its events, or journal it as failed.

        The row is written once, in the state it most likely ends in (a form's event makes a new
        touch, a call's later notifications do not), and corrected only when the guess was wrong:
        while the write lock is held every statement counts. If storing the events raises, the row
        goes with them and is written again as ``failed``, for start-up or ``leadline replay``.
        """
        at = self.clock()
        events = len(result.events)
        expected = sum(not isinstance(e, CallEvent) for e in result.events)
        try:
            with savepoint(db, "events"):
                jid = journal.insert(
                    db,
                    raw,
                    provider=verdict.provider,
                    status="processed",
                    http_status=result.reply.status,
                    replay_key=verdict.replay_key,
                    prepared=prepared,
                    note=result.note,
                    processed_at=at,
                    events=events,
                    touches_created=expected,
                )
                created, channels = apply_events(
                    db, result.events, self.context(raw.source, jid, raw.received_at)
                )
                if created != expected:
                    journal.set_touches_created(db, [(created, jid)])
        except Exception as exc:
            if not db.conn.in_transaction:
                raise  # SQLite gave the whole transaction up: nothing may be written on its own
            reason = f"{type(exc).__name__}: {exc}"
            jid = journal.insert(
                db,
                raw,
                provider=verdict.provider,
                status="failed",
                reason=reason,
                replay_key=verdict.replay_key,
                prepared=prepared,
                processed_at=at,
                events=events,
            )
            log.exception("storing events of journal row %s failed; it will be retried", jid)
            return Outcome(jid, "failed", result.reply.status, reason, result.reply, events)
        return Outcome(
            jid, "processed", result.reply.status, None, result.reply, events, created, tuple(channels)
        )

    def _record_many(
        self, db: Database, items: list[tuple[RawRequest, Verdict, journal.Prepared]]
    ) -> list[Outcome]:
        """:meth:`_record` for the leading requests of a group of refusals and contact events.

        Every row is journalled in its final state, as :meth:`_store` does. It stops before the
        first request whose events would merge two contacts; the store runs that one alone.
        """
        at = self.clock()
        first_jid = journal.next_id(db)
        events: list[tuple[ContactEvent, EventContext]] = []
        for n, (raw, verdict, _) in enumerate(items):
            if verdict.result is not None and verdict.http_status < 400:
                ctx = self.context(raw.source, first_jid + n, raw.received_at)
                events += [(cast(ContactEvent, event), ctx) for event in verdict.result.events]
        plan = plan_contact_events(db, events)
        planned = iter(plan.results)
        rows: list[tuple[object, ...]] = []
        outcomes: list[Outcome] = []
        for raw, verdict, prepared in items:
            result = verdict.result
            if result is None or verdict.http_status >= 400:
                rows.append(journal.values(raw, **_rejected_columns(verdict, prepared)))
                outcomes.append(_rejected(first_jid + len(outcomes), verdict))
                continue
            stored = list(islice(planned, len(result.events)))
            if len(stored) < len(result.events):
                break
            contact_events = cast(tuple[ContactEvent, ...], result.events)
            channels = tuple(e.channel for e, (_, new) in zip(contact_events, stored, strict=True) if new)
            rows.append(
                journal.values(
                    raw,
                    provider=verdict.provider,
                    status="processed",
                    http_status=result.reply.status,
                    prepared=prepared,
                    note=result.note,
                    processed_at=at,
                    events=len(stored),
                    touches_created=len(channels),
                )
            )
            outcomes.append(
                Outcome(
                    first_jid + len(outcomes),
                    "processed",
                    result.reply.status,
                    None,
                    result.reply,
                    len(stored),
                    len(channels),
                    channels,
                )
            )
        journal.insert_many(db, rows, first_jid)
        plan.write(db, sum(o.events for o in outcomes))
        return outcomes

    def _process(self, db: Database, jid: int, raw: RawRequest, result: ParseResult) -> Outcome:
        """Store a journalled row's events; a row that fails again is only recorded, not logged with
        its traceback again at every start (its arrival logged that): the caller reports it."""
        ctx = self.context(raw.source, jid, raw.received_at)
        try:
            with savepoint(db, "events"):
                created, channels = apply_events(db, result.events, ctx)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            journal.finish(
                db, jid, status="failed", at=self.clock(), reason=reason, events=len(result.events)
            )
            return Outcome(jid, "failed", result.reply.status, reason, result.reply, len(result.events))
        journal.finish(
            db,
            jid,
            status="processed",
            at=self.clock(),
            http_status=result.reply.status,
            note=result.note,
            events=len(result.events),
            touches_created=created,
        )
        return Outcome(
            jid,
            "processed",
            result.reply.status,
            None,
            result.reply,
            len(result.events),
            created,
            tuple(channels),
        )

    def reprocess(self, db: Database, row: journal.JournalRow, *, dry_run: bool = False) -> Outcome:
        """Run a stored row through today's parser (no signature check: it was checked on arrival)."""
        source = self.config.source(row.raw.source)
        if source is None:
            return Outcome(
                row.id, "rejected", 404, f"no source named {quoted(row.raw.source)} in the config", Reply(404)
            )
        verdict = self.judge(row.raw, source, verify=False)
        if verdict.result is None:
            if not dry_run:
                journal.finish(
                    db,
                    row.id,
                    status="rejected",
                    at=self.clock(),
                    http_status=verdict.http_status,
                    reason=verdict.reason,
                )
            return Outcome(
                row.id, "rejected", verdict.http_status, verdict.reason, Reply(verdict.http_status)
            )
        if dry_run:
            with db.atomic():
                outcome = self._process(db, row.id, row.raw, verdict.result)
                raise _DryRun(outcome)
        return self._process(db, row.id, row.raw, verdict.result)


class _DryRun(Exception):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


def reprocess_rows(capture: Capture, db: Database, ids: Iterable[int], *, dry_run: bool) -> list[Outcome]:
    """Replay journal rows, each on its own: one row that cannot be stored does not stop the others.

    A dry run computes what each row would become and rolls everything back.
    """
    outcomes = []
    for jid in ids:
        row = journal.get(db, jid)
        if row is None:
            continue
        try:
            with savepoint(db, "replay_row"):
                outcomes.append(capture.reprocess(db, row, dry_run=dry_run))
        except _DryRun as done:
            outcomes.append(done.outcome)
        except Exception as exc:
            log.warning("replaying journal row %s raised %s", jid, type(exc).__name__)
            reason = f"{type(exc).__name__}: {exc}"
            if not dry_run:
                journal.finish(db, jid, status="failed", at=capture.clock(), reason=reason)
            outcomes.append(Outcome(jid, "failed", 500, reason, Reply(500)))
    return outcomes


def _reprocess_chunk(capture: Capture, ids: list[int], dry_run: bool, db: Database) -> list[Outcome]:
    return reprocess_rows(capture, db, ids, dry_run=dry_run)


async def replay(
    capture: Capture,
    *,
    source: str | None = None,
    since: datetime | None = None,
    unprocessed_only: bool = False,
    dry_run: bool = False,
    chunk: int = 100,
) -> list[Outcome]:
    """Replay in small writer jobs, so live webhooks keep being journalled during a long replay."""
    ids = await capture.store.read(
        lambda db: journal.replayable_ids(db, source=source, since=since, unprocessed_only=unprocessed_only)
    )
    outcomes: list[Outcome] = []
    for start in range(0, len(ids), chunk):
        outcomes += await capture.store.write(
            partial(_reprocess_chunk, capture, ids[start : start + chunk], dry_run)
        )
    return outcomes


def _groupable(verdict: Verdict) -> bool:
    """Refusals and plain contact events can be written with their neighbours; calls fold into
    rows other requests also change, and a replay key needs its own look-up."""
    result = verdict.result
    if result is None or verdict.http_status >= 400:
        return True
    return (
        verdict.replay_key is None
        and not result.bindings
        and all(isinstance(e, ContactEvent) for e in result.events)
    )


def _rejected_columns(verdict: Verdict, prepared: journal.Prepared) -> dict[str, Any]:
    return {
        "provider": verdict.provider,
        "status": "rejected",
        "http_status": verdict.http_status,
        "reason": verdict.reason,
        "prepared": prepared,
    }


def _rejected(jid: int, verdict: Verdict) -> Outcome:
    return Outcome(jid, "rejected", verdict.http_status, verdict.reason, _error_reply(verdict))


def _error_reply(verdict: Verdict) -> Reply:
    return Reply(verdict.http_status, (verdict.reason or "").encode("utf-8"))
