"""From a raw request to a journal row and touches: the path every channel shares.

HTTP webhooks, the SMTP server, the IMAP poller and the AMI client all hand a :class:`RawRequest`
to :meth:`Capture.ingest`. Verification and parsing happen first, in memory; then one writer job
journals the request and stores its events in the same transaction, so by the time the caller is
answered the request is durable and either processed, rejected with its reason, or marked failed
for a restart or ``leadline replay`` to finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache, partial
from typing import Any, cast

from sqlite_utils import Database

from capture import journal
from capture.addresses import OurAddresses
from capture.providers import PROVIDERS
from capture.providers.auth import check_access
from capture.providers.base import (
    CallEvent,
    Event,
    MissingCredentials,
    ParseResult,
    Provider,
    ProviderError,
    RawRequest,
    ReadsMail,
    Reply,
    quoted,
)
from capture.settle import settle, text
from leadline.config import Config, SourceConfig
from storage.attribution import CampaignIndex
from storage.blocking import BlockRules
from storage.calls import apply_call_event
from storage.chats import record_chat_event, record_chat_reply
from storage.db import Clock, Store, now_utc, savepoint
from storage.events import ContactEvent, ReplyEvent
from storage.identifiers import phone
from storage.records import record
from storage.register import register_by_system
from storage.registrations import Draft
from storage.staff import staff_by_telegram
from storage.touches import CONVERSATION_GAP, EventContext, identifiers_of, record_contact_events

#: A body this large is judged on a thread: parsing a megabyte (the stdlib's MIME parser for a
#: multipart mail, say) holds the loop for tens of ms, while a thread gives it back every few ms. Below
#: this the hop costs more than it saves (bench/hostile.py measures both).
THREAD_JUDGE_BYTES = 64 * 1024

log = logging.getLogger("leadline.capture")

#: Bytes of body kept for a request refused before it proved where it came from.
UNAUTHENTICATED_BODY_KEPT = 4096

#: The outcome of a row another replay finished after this one listed it (serve's at start-up and
#: ``leadline replay``, or two commands at once): left as that run made it.
FINISHED_ELSEWHERE = "finished elsewhere"


@cache
def provider_for(name: str) -> Provider:
    return PROVIDERS[name].load()


def parse_request(
    provider: Provider, raw: RawRequest, source: SourceConfig, ours: OurAddresses
) -> ParseResult:
    """The provider's events; a provider of mail is told the business's own addresses."""
    if getattr(provider, "reads_mail", False):
        return cast(ReadsMail, provider).parse(raw, source, ours=ours)
    return provider.parse(raw, source)


@record
class Verdict:
    """What was decided about a request before the database saw it."""

    provider: str | None
    http_status: int
    reason: str | None = None
    result: ParseResult | None = None
    replay_key: str | None = None
    keep_body: bool = True
    #: Refused before anything tied it to the source's provider (no token or signature at all, a
    #: wrong method or path, an address not allowed, a body too large, cut off or not inflatable):
    #: anyone can send one, so source health leaves it out and replay never runs it.
    anonymous: bool = False
    #: The account whose connection the request came through (capture/providers/base.py
    #: ``AccountBound``), judged by :meth:`Capture._check` whatever the body parsed to.
    account: int | None = None


@record
class Outcome:
    journal_id: int
    status: str
    http_status: int
    reason: str | None
    reply: Reply
    events: int = 0
    touches_created: int = 0
    channels: tuple[str, ...] = ()


@record
class _Request:
    """A request on its way to the journal: as judged, its columns encoded, its row if replayed."""

    raw: RawRequest
    verdict: Verdict
    prepared: journal.Prepared | None
    journal_id: int | None = None


def apply_events(db: Database, events: Sequence[Event], ctx: EventContext) -> tuple[int, list[str]]:
    """Store one request's events; returns how many touches are new and their channels."""
    channels = store_events(db, [(events, ctx)])[0]
    return len(channels), channels


def store_events(db: Database, requests: Sequence[tuple[Sequence[Event], EventContext]]) -> list[list[str]]:
    """Store the events of several requests in order; per request, the channels of its new touches.

    A run of form, mail and manual events is stored at once (one contact resolution for the run);
    a call's notifications, and a chat's messages, fold into rows that the next one reads, so each
    goes in turn.
    """
    channels: list[list[str]] = [[] for _ in requests]
    run: list[tuple[int, ContactEvent, EventContext]] = []

    def store_run() -> None:
        stored = record_contact_events(db, [(event, ctx) for _, event, ctx in run])
        for (n, event, ctx), (touch_id, new) in zip(run, stored, strict=True):
            if new:
                channels[n].append(event.channel)
                if ctx.registers is not None:
                    register_by_system(db, touch_id, ctx.registers, at=ctx.received_at)
        run.clear()

    for n, (events, ctx) in enumerate(requests):
        for event in events:
            if isinstance(event, ReplyEvent):
                if run:
                    store_run()
                record_chat_reply(db, event, ctx)
            elif isinstance(event, CallEvent):
                if run:
                    store_run()
                touch_id, created = apply_call_event(db, event, ctx)
                if created:
                    channels[n].append("call")
                # A call's caller or its blocking may come with a later notification: ask each time.
                if touch_id is not None and ctx.registers is not None:
                    register_by_system(db, touch_id, ctx.registers, at=ctx.received_at)
            elif event.conversation is not None:
                if run:
                    store_run()
                chat_touch, new = record_chat_event(db, event, ctx)
                if new:
                    channels[n].append(event.channel)
                    if ctx.registers is not None:
                        register_by_system(db, chat_touch, ctx.registers, at=ctx.received_at)
            else:
                run.append((n, event, ctx))
    if run:
        store_run()
    return channels


def _system_draft(source: SourceConfig | None, owner: int | None) -> Draft | None:
    """How the system registers a touch of a source that says ``register`` (its lead goes to the
    source's owner); None for every other source."""
    if source is None or source.registers is None:
        return None
    lead = source.registers == "lead"
    return Draft(
        source.registers,
        temperature=source.temperature,
        reason=source.reason,
        owner_id=owner if lead else None,
    )


@dataclass
class Capture:
    """The capture service: one per process, shared by every receiver."""

    config: Config
    store: Store
    clock: Clock = now_utc
    staff_by_extension: Mapping[str, int] = field(default_factory=dict)
    owner_by_source: Mapping[str, int] = field(default_factory=dict)
    callback_deadline: Callable[[datetime], datetime] | None = None
    #: Called after a commit that stored events: the root's arrival pass, so a card goes out at once.
    on_stored: Callable[[], None] | None = None
    #: Called with the channels of the new touches a request made, whatever route it came by (HTTP,
    #: SMTP, IMAP, AMI, chats): the root's ``leadline_touches_created_total``.
    on_touches: Callable[[Sequence[str]], None] | None = None

    def __post_init__(self) -> None:
        self.campaigns = CampaignIndex.build(self.config.campaigns, self.config.leadline.region)
        self.blocking = BlockRules.build(self.config.block, self.config.leadline.region)
        self.ours = OurAddresses.build(self.config)
        self._defaulted: dict[str, tuple[SourceConfig, SourceConfig]] = {}
        self._contexts: dict[str, tuple[SourceConfig | None, EventContext]] = {}

    def context(self, source_name: str, journal_id: int | None, received_at: datetime) -> EventContext:
        source = self.config.source(source_name)
        cached = self._contexts.get(source_name)
        if cached is None or cached[0] is not source:
            cached = self._contexts[source_name] = (source, self._source_context(source_name, source))
        return cached[1].of_request(journal_id, received_at)

    def _source_context(self, source_name: str, source: SourceConfig | None) -> EventContext:
        """What storing a source's events needs beyond the request: built once per source."""
        owner = self.owner_by_source.get(source_name)
        return EventContext(
            source=source_name,
            received_at=datetime.min,  # each request's own: EventContext.of_request
            region=(source.region if source and source.region else self.config.leadline.region),
            campaigns=self.campaigns,
            default_campaign=source.campaign if source else None,
            default_owner=owner,
            staff_by_extension=self.staff_by_extension,
            callback_deadline=self.callback_deadline,
            blocking=self.blocking,
            registers=_system_draft(source, owner),
            conversation_gap=timedelta(hours=source.conversation_gap_hours) if source else CONVERSATION_GAP,
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
            token_passed = False
            try:
                token_passed = check_access(raw, source, provider, self.config.http.trusted_proxies)
                provider.verify(raw, source, self.clock())
            except ProviderError as exc:
                # Only a credential that is there and wrong (or the right token beside a missing
                # signature) is the provider's own traffic failing; anything else anyone can send.
                wrong = exc.status == 401 and not isinstance(exc, MissingCredentials)
                status = 401 if exc.status == 400 else exc.status
                return Verdict(source.provider, status, exc.reason, anonymous=not (wrong or token_passed))
            except Exception as exc:
                # Whatever breaks a check is a failed check: it must never become a replayable 400.
                log.warning("signature check for %s raised %s", source.provider, type(exc).__name__)
                reason = f"request could not be verified ({type(exc).__name__})"
                return Verdict(source.provider, 401, reason, anonymous=not token_passed)
        account_of = getattr(provider, "account", None)
        account = account_of(raw) if account_of else None
        try:
            replay_key = getattr(provider, "replay_key", None)
            key = replay_key(raw) if replay_key else None
            # Whatever storage would fail on is decided now, while the sender can still be told.
            result, key = settle(parse_request(provider, raw, source, self.ours), key, raw.received_at)
        except ProviderError as exc:
            return Verdict(source.provider, exc.status, text(exc.reason), account=account)
        except Exception as exc:  # a parser bug must not lose the request: keep it for replay
            log.exception("parser for %s failed", source.provider)
            reason = text(f"could not parse: {type(exc).__name__}: {exc}")
            return Verdict(source.provider, 400, reason, account=account)
        return Verdict(source.provider, 200, result=result, replay_key=key, account=account)

    async def ingest(self, raw: RawRequest, source: SourceConfig, *, verify: bool = True) -> Outcome:
        """Journal and process one request; returns only after both are durable."""
        return await self.record(raw, await self.judged(raw, source, verify=verify))

    async def judged(self, raw: RawRequest, source: SourceConfig, *, verify: bool = True) -> Verdict:
        """:meth:`judge`, on a thread for a body over :data:`THREAD_JUDGE_BYTES` (a mail of 32 MB
        through SMTP, a megabyte's form), so that no route holds the event loop for seconds."""
        if len(raw.body) > THREAD_JUDGE_BYTES:
            return await asyncio.to_thread(self.judge, raw, source, verify=verify)
        return self.judge(raw, source, verify=verify)

    async def record(self, raw: RawRequest, verdict: Verdict) -> Outcome:
        # Encoding and number parsing happen here, before the write, so that the time the
        # database lock is held (the bottleneck under load) is spent on SQL alone.
        kept = raw
        unproven = verdict.http_status in (401, 403, 404, 405) or (
            verdict.result is not None and verdict.result.unproven
        )
        if unproven and len(raw.body) > UNAUTHENTICATED_BODY_KEPT:
            # Anyone can reach a refused URL: keep enough to diagnose it, not enough to fill the disk.
            kept = replace(raw, body=raw.body[:UNAUTHENTICATED_BODY_KEPT])
        request = _Request(raw, verdict, journal.prepare(kept, keep_body=verdict.keep_body))
        if verdict.result is not None:
            self._warm(raw.source, verdict.result.events)
        outcome = await self.store.write_now(
            partial(self._write_one, request=request), group=self._write, item=request
        )
        if outcome.channels and self.on_touches is not None:
            self.on_touches(outcome.channels)
        if outcome.events and self.on_stored is not None:
            self.on_stored()
        return outcome

    def _warm(self, source_name: str, events: Iterable[Event]) -> None:
        """Parse each number and address once now; storage's look-ups then hit the cache."""
        source = self.config.source(source_name)
        default = source.region if source and source.region else self.config.leadline.region
        for event in events:
            if isinstance(event, ReplyEvent):
                continue
            region = event.region or default
            if isinstance(event, CallEvent):
                phone(event.caller, region)
                phone(event.tracking_number, region)
            else:
                identifiers_of(event.phones, event.emails, region, event.handles)
                phone(event.tracking_number, region)

    def _write(self, db: Database, requests: list[_Request]) -> list[Outcome]:
        """Journal and store requests that waited side by side, in the order they came.

        The writer calls it for a burst; if it raises, nothing of it stays and each request goes
        through :meth:`_write_one` alone, so the one that cannot be stored is found and kept.
        """
        return self._store(db, requests, self._check(db, requests))

    def _write_one(self, db: Database, request: _Request) -> Outcome:
        """:meth:`_write` for one request (or a replayed row); one whose events cannot be stored is
        journalled as ``failed``, for start-up or ``leadline replay`` to finish."""
        verdicts = self._check(db, [request])  # a row that fails keeps the bindings it made
        try:
            with savepoint(db, "request"):
                return self._store(db, [request], verdicts)[0]
        except Exception as exc:
            if not db.conn.in_transaction or request.verdict.result is None:
                raise  # SQLite gave the whole transaction up, or a refusal could not be journalled
            return self._failed(db, request, exc)

    def _check(self, db: Database, requests: list[_Request]) -> list[Verdict]:
        """Each verdict once the database has had its say: a signature token used before, or a
        binding that an earlier request gave another value, refuses the request (401); a business
        connection of an account that is neither a staff member's nor listed refuses it (403).

        The account is judged first, live or replayed, whether or not the body parsed: a foreign
        account's update a parser refuses must not be a replayable 400 that a later parser (and
        ``leadline replay``) turns into a touch.
        """
        verdicts: list[Verdict] = []
        used: set[tuple[str, str]] = set()
        for request in requests:
            verdict, source = request.verdict, request.raw.source
            foreign = (
                self._foreign_account(db, source, verdict.account) if verdict.http_status <= 400 else None
            )
            if foreign:
                # Anyone with Telegram Premium can connect the bot: no sign of a broken source.
                verdicts.append(
                    Verdict(verdict.provider, 403, foreign, anonymous=True, account=verdict.account)
                )
                continue
            if request.journal_id is None and verdict.result is not None and verdict.http_status < 400:
                key = verdict.replay_key
                reason = (
                    "signature token already used: a replayed request is refused"
                    if key and ((source, key) in used or journal.replay_key_used(db, source, key))
                    else journal.bind(db, source, verdict.result.bindings, self.clock())
                )
                if reason:
                    verdict = Verdict(verdict.provider, 401, reason)
                elif key:
                    used.add((source, key))
            verdicts.append(verdict)
        return verdicts

    def _foreign_account(self, db: Database, source_name: str, account: int | None) -> str | None:
        """Why a request that came through ``account``'s business connection is refused; None when
        it is taken: the source lists the account, or a staff member (of any role) has it."""
        if account is None:
            return None
        source = self.config.source(source_name)
        if (source is not None and account in source.accounts) or staff_by_telegram(db, account) is not None:
            return None
        return (
            f"the business connection of Telegram account {account},"
            " which is neither on the staff nor in the source's accounts"
        )

    def _store(self, db: Database, requests: list[_Request], verdicts: list[Verdict]) -> list[Outcome]:
        """The one write path: journal rows, then every request's events in order, then outcomes.

        A new row is written once, in the state it most likely ends in (a form's event makes a new
        touch, a call's later notifications do not), and corrected only where the guess was wrong:
        while the write lock is held every statement counts. A replayed row is finished in place.
        """
        at = self.clock()
        first = journal.next_id(db) if any(r.journal_id is None for r in requests) else 0
        rows: list[tuple[object, ...]] = []
        jids: list[int] = []
        for request, verdict in zip(requests, verdicts, strict=True):
            if request.journal_id is not None:
                jids.append(request.journal_id)
                continue
            jids.append(first + len(rows))
            result = verdict.result
            if result is None or verdict.http_status >= 400:
                rows.append(journal.values(request.raw, **_rejected_columns(verdict, request.prepared)))
                continue
            rows.append(
                journal.values(
                    request.raw,
                    provider=verdict.provider,
                    status="processed",
                    http_status=result.reply.status,
                    replay_key=verdict.replay_key,
                    prepared=request.prepared,
                    note=result.note,
                    processed_at=at,
                    events=len(result.events),
                    touches_created=_expected_touches(result),
                )
            )
        if rows:
            journal.insert_many(db, rows, first)
        accepted = [n for n, v in enumerate(verdicts) if v.result is not None and v.http_status < 400]
        stored = store_events(
            db,
            [
                (
                    cast(ParseResult, verdicts[n].result).events,
                    self.context(requests[n].raw.source, jids[n], requests[n].raw.received_at),
                )
                for n in accepted
            ],
        )
        channels_of = dict(zip(accepted, stored, strict=True))
        outcomes: list[Outcome] = []
        corrections: list[tuple[int, int]] = []
        for n, (request, verdict, jid) in enumerate(zip(requests, verdicts, jids, strict=True)):
            result, channels = verdict.result, channels_of.get(n)
            if result is None or channels is None:
                outcome = _rejected(jid, verdict)
            else:
                outcome = Outcome(
                    jid,
                    "processed",
                    result.reply.status,
                    None,
                    result.reply,
                    len(result.events),
                    len(channels),
                    tuple(channels),
                )
                if request.journal_id is None and len(channels) != _expected_touches(result):
                    corrections.append((len(channels), jid))
            if request.journal_id is not None:
                journal.finish(
                    db,
                    jid,
                    status=outcome.status,
                    at=at,
                    http_status=outcome.http_status,
                    reason=outcome.reason,
                    note=result.note if result else None,
                    events=outcome.events,
                    touches_created=outcome.touches_created,
                )
            outcomes.append(outcome)
        if corrections:
            journal.set_touches_created(db, corrections)
        return outcomes

    def _failed(self, db: Database, request: _Request, exc: Exception) -> Outcome:
        """Journal a request whose events could not be stored as failed; its sender is still
        answered as if they were, since the journal holds it for a restart or a replay."""
        result, verdict = cast(ParseResult, request.verdict.result), request.verdict
        reason = f"{type(exc).__name__}: {exc}"
        events = len(result.events)
        if request.journal_id is not None:
            # Not logged with its traceback again at every start (its arrival logged that): the
            # caller reports it.
            jid = request.journal_id
            journal.finish(db, jid, status="failed", at=self.clock(), reason=reason, events=events)
        else:
            jid = journal.insert(
                db,
                request.raw,
                provider=verdict.provider,
                status="failed",
                reason=reason,
                replay_key=verdict.replay_key,
                prepared=request.prepared,
                processed_at=self.clock(),
                events=events,
            )
            log.exception("storing events of journal row %s failed; it will be retried", jid)
        return Outcome(jid, "failed", result.reply.status, reason, result.reply, events)

    def reprocess(self, db: Database, row: journal.JournalRow) -> Outcome:
        """Run a stored row through today's parser (no signature check: it was checked on arrival)."""
        source = self.config.source(row.raw.source)
        if source is None:
            return Outcome(
                row.id, "rejected", 404, f"no source named {quoted(row.raw.source)} in the config", Reply(404)
            )
        request = _Request(row.raw, self.judge(row.raw, source, verify=False), None, row.id)
        return self._write_one(db, request)


def reprocess_rows(
    capture: Capture, db: Database, ids: Iterable[int], *, unprocessed_only: bool = False
) -> list[Outcome]:
    """Replay journal rows, each on its own: one row that cannot be stored does not stop the others.

    The ids were listed before this writer job: a row another replay has finished since is left as
    it made it, and its outcome says so (:data:`FINISHED_ELSEWHERE`).
    """
    outcomes = []
    for jid in ids:
        row = journal.get_replayable(db, jid, unprocessed_only=unprocessed_only)
        if row is None:
            outcomes.append(Outcome(jid, FINISHED_ELSEWHERE, 200, "finished by another run", Reply(200)))
            continue
        try:
            with savepoint(db, "replay_row"):
                outcomes.append(capture.reprocess(db, row))
        except Exception as exc:
            log.warning("replaying journal row %s raised %s", jid, type(exc).__name__)
            reason = f"{type(exc).__name__}: {exc}"
            journal.finish(db, jid, status="failed", at=capture.clock(), reason=reason)
            outcomes.append(Outcome(jid, "failed", 500, reason, Reply(500)))
    return outcomes


def _reprocess_chunk(capture: Capture, ids: list[int], unprocessed_only: bool, db: Database) -> list[Outcome]:
    return reprocess_rows(capture, db, ids, unprocessed_only=unprocessed_only)


async def replay(
    capture: Capture,
    *,
    source: str | None = None,
    since: datetime | None = None,
    unprocessed_only: bool = False,
    dry_run: bool = False,
    chunk: int = 100,
) -> list[Outcome]:
    """Replay in small writer jobs, so live webhooks keep being journalled during a long replay.

    A dry run replays on a copy of the database (:func:`_on_a_copy`), so each row sees what the
    rows before it would have stored (a provider's retry of an event, a call's later notifications,
    a chat's next message), and the live database is neither changed nor locked.
    """
    if dry_run:
        return await _on_a_copy(capture, source=source, since=since, unprocessed_only=unprocessed_only)
    ids = await capture.store.read(
        lambda db: journal.replayable_ids(db, source=source, since=since, unprocessed_only=unprocessed_only)
    )
    outcomes: list[Outcome] = []
    for start in range(0, len(ids), chunk):
        outcomes += await capture.store.write(
            partial(_reprocess_chunk, capture, ids[start : start + chunk], unprocessed_only)
        )
    return outcomes


async def _on_a_copy(
    capture: Capture, *, source: str | None, since: datetime | None, unprocessed_only: bool
) -> list[Outcome]:
    """Replay for real on a private copy of the database, and throw the copy away.

    It was one writer job rolled back at its end, which held the write lock for as long as it ran:
    on a large journal every webhook waited (and /healthz said 503) for tens of seconds.
    """
    from storage.backup import Snapshot  # only a dry run copies; serve never does

    listed = await capture.store.read(
        lambda db: journal.replayable_ids(db, source=source, since=since, unprocessed_only=unprocessed_only)
    )
    if not listed:  # no copy of a large file to say there is nothing to do
        return []
    snapshot = Snapshot(capture.store.path)
    try:
        await asyncio.to_thread(snapshot.take)
        store = await Store.open_async(snapshot.path)
        try:
            trial = replace(capture, store=store, on_stored=None, on_touches=None)
            return await replay(trial, source=source, since=since, unprocessed_only=unprocessed_only)
        finally:
            await store.close()
    finally:
        # Cancelled (Ctrl+C, SIGTERM) while copying, the copy's thread goes on: removing waits for
        # it to stop, off the event loop, and shielded so that a second cancel does not skip it.
        await asyncio.shield(asyncio.to_thread(snapshot.remove))


def _expected_touches(result: ParseResult) -> int:
    return sum(isinstance(e, ContactEvent) for e in result.events)


def _rejected_columns(verdict: Verdict, prepared: journal.Prepared | None) -> dict[str, Any]:
    return {
        "provider": verdict.provider,
        "status": "rejected",
        "http_status": verdict.http_status,
        "reason": verdict.reason,
        "prepared": prepared,
        "anonymous": verdict.anonymous,
    }


def _rejected(jid: int, verdict: Verdict) -> Outcome:
    return Outcome(jid, "rejected", verdict.http_status, verdict.reason, _error_reply(verdict))


def _error_reply(verdict: Verdict) -> Reply:
    return Reply(verdict.http_status, (verdict.reason or "").encode("utf-8"))
