"""Source health: a broken integration loses every lead silently, so the owner hears about it.

Two signs, read from the journal (every request is there, accepted or not):

* **Silent.** No accepted (``processed``) request for longer than the source's own usual gap, in working minutes. The usual
  gap is learned from its recent requests (the 95th percentile of the working-time gaps between
  its last ``samples`` requests within ``learn_days``), kept between the config's floor and
  ceiling. A source with too little history is not judged: there is nothing to compare with.
* **Failing.** Its last ``failure_threshold`` requests were all refused (a signature or token that
  is there and wrong, a body it sends that cannot be read) or failed in processing. A refusal that
  anyone could cause (``journal.anonymous``: no credentials at all, a wrong method or path) is left
  out: it neither starts nor ends such a streak, so a scanner or an uptime probe raises no alert.

Each problem is one ``nudges`` row (kind ``source_health``, subject ``<source>:<problem>:<since>``),
so the owner is alerted once per episode, as soon as there is someone to tell (its ``outbox_id``
says it was); when the problem is gone, the row is closed as ``recovered`` and whoever was alerted
is told once more, quoting the request accepted since. Gone with no request accepted since it
began, it is closed as ``cleared``, told to nobody and logged. Outbox dedupe keys make a second
run a no-op. The sweep logs every new problem and recovery too (leadline/sweep.py), for an install
with nobody to tell in Telegram.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlite_utils import Database

from storage.chat_moves import current_chat
from storage.db import iso, parse_iso
from storage.outbox import enqueue
from storage.worktime import WorkingCalendar

if TYPE_CHECKING:
    from leadline.config import Config

Problem = Literal["silent", "failing"]
#: Why a source is failing: its credentials were refused, what it sends cannot be read, or it was
#: read and could not be stored.
Cause = Literal["refused", "unreadable", "unprocessed"]
#: ``(language, "silent" | "failing" | "recovered", fields) -> sendMessage payload``.
RenderAlert = Callable[[str, str, dict[str, Any]], dict[str, Any]]

FAILED = ("rejected", "failed")


@dataclass(frozen=True)
class HealthRules:
    calendar: WorkingCalendar
    sources: tuple[str, ...]
    floor_minutes: float = 60
    ceiling_minutes: float = 1080
    failure_threshold: int = 3
    learn_days: int = 28
    samples: int = 200
    #: Fewer requests than this in the learning window: the usual gap is unknown, silence is not judged.
    min_samples: int = 10
    language: str = "ru"
    team_chat: int = 0

    @classmethod
    def from_config(cls, config: Config) -> HealthRules:
        section = config.source_health
        return cls(
            calendar=WorkingCalendar.from_config(config.working_time, config.tz),
            sources=tuple(s.name for s in config.sources),
            floor_minutes=section.floor_minutes,
            ceiling_minutes=section.ceiling_minutes,
            failure_threshold=section.failure_threshold,
            learn_days=section.learn_days,
            language=config.leadline.language,
            team_chat=config.telegram.team_chat,
        )


@dataclass(frozen=True)
class Finding:
    source: str
    problem: Problem
    subject: str
    #: For the alert's text and the log; times (``since``, ``at``) as stored, ISO in UTC: the bot
    #: writes them in the reader's language (bot/touch_text.when), as it writes every other time.
    fields: dict[str, Any] = field(default_factory=dict)


def usual_gap(calendar: WorkingCalendar, times: Sequence[datetime]) -> float:
    """The 95th percentile (nearest rank) of working-minute gaps between consecutive moments."""
    ordered = sorted(times)
    gaps = sorted(calendar.working_minutes_between(a, b) for a, b in itertools.pairwise(ordered))
    if not gaps:
        return 0.0
    return gaps[max(0, math.ceil(0.95 * len(gaps)) - 1)]


def assess(db: Database, now: datetime, rules: HealthRules) -> list[Finding]:
    """The configured sources that look broken at ``now``."""
    findings: list[Finding] = []
    for source in rules.sources:
        settled = db.execute(
            "SELECT received_at, status, reason, http_status FROM journal"
            " WHERE source = ? AND status != 'received' AND anonymous = 0 ORDER BY received_at DESC LIMIT ?",
            [source, rules.failure_threshold],
        ).fetchall()
        streak = settled[: rules.failure_threshold]
        if len(streak) == rules.failure_threshold and all(r[1] in FAILED for r in streak):
            findings.append(_failing(db, source, streak, rules))
            continue
        # Silence is measured from accepted requests only: a refused one (a scanner, a wrong token)
        # brings no lead, so it neither ends a silence nor counts as a recovery.
        rows = db.execute(
            "SELECT received_at FROM journal WHERE source = ? AND status = 'processed'"
            " ORDER BY received_at DESC LIMIT ?",
            [source, rules.samples],
        ).fetchall()
        if not rows:
            continue
        # Learned back from the last request, so a source that died long ago is still judged.
        learn_from = iso(parse_iso(rows[0][0]) - timedelta(days=rules.learn_days))
        times = [parse_iso(r[0]) for r in rows if r[0] >= learn_from]
        if len(times) < rules.min_samples:
            continue
        threshold = min(max(usual_gap(rules.calendar, times), rules.floor_minutes), rules.ceiling_minutes)
        idle = rules.calendar.working_minutes_between(times[0], now)
        if idle > threshold:
            last = str(rows[0][0])
            findings.append(
                Finding(
                    source,
                    "silent",
                    f"{source}:silent:{last}",
                    {
                        "source": source,
                        "since": last,
                        "minutes": round(idle),
                        "usual": round(threshold),
                    },
                )
            )
    return findings


def _failing(db: Database, source: str, streak: Sequence[Sequence[Any]], rules: HealthRules) -> Finding:
    """The episode is named by its first refused request after the last accepted one."""
    last_ok = db.execute(
        "SELECT received_at FROM journal WHERE source = ? AND status = 'processed' ORDER BY received_at DESC LIMIT 1",
        [source],
    ).fetchone()
    first = db.execute(
        "SELECT received_at FROM journal WHERE source = ? AND received_at > ? AND status IN ('rejected', 'failed')"
        " AND anonymous = 0 ORDER BY received_at LIMIT 1",
        [source, last_ok[0] if last_ok else ""],
    ).fetchone()
    since = str(first[0]) if first else str(streak[-1][0])
    latest = streak[0]
    reason = str(latest[2] or "refused")[:200]
    fields = {
        "source": source,
        "count": len(streak),
        "reason": reason,
        "cause": failure_cause(str(latest[1]), latest[3]),
        "since": since,
    }
    return Finding(source, "failing", f"{source}:failing:{since}", fields)


def failure_cause(status: str, http_status: int | None) -> Cause:
    """What the owner should look at, from the latest failure: the alert says only what is true of it."""
    if status == "failed":
        return "unprocessed"
    return "unreadable" if http_status == 400 else "refused"


def continues(finding: Finding, problem: str, accepted: str | None) -> bool:
    """Whether ``finding`` is the open episode of ``problem`` going on, though named otherwise.

    A failing episode is named by its first refusal, and which refusal is first can change under it
    (an upgrade that marks older rows anonymous): while no request has been accepted since it began,
    it is the same failure, already told, and keeps its name rather than alerting the owner again.
    """
    return finding.problem == "failing" and problem == "failing" and accepted is None


def _accepted_after(db: Database, source: str, moment: str) -> str | None:
    """The last request of ``source`` accepted (processed) after ``moment``, or None."""
    row = db.execute(
        "SELECT MAX(received_at) FROM journal WHERE source = ? AND status = 'processed' AND received_at > ?",
        [source, moment],
    ).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def _owners(db: Database, rules: HealthRules) -> list[tuple[int, str]]:
    """(chat, language) of the owners; else the managers; else the team chat."""
    for roles in (("owner",), ("manager",)):
        marks = ",".join("?" * len(roles))
        rows = db.execute(
            f"SELECT telegram_id, language FROM staff WHERE role IN ({marks}) AND active = 1"
            " AND telegram_id IS NOT NULL ORDER BY id",
            list(roles),
        ).fetchall()
        if rows:
            return [(int(r[0]), r[1] or rules.language) for r in rows]
    return [(current_chat(db, rules.team_chat), rules.language)] if rules.team_chat else []


@dataclass
class HealthRecorded:
    """What a sweep did about source health: the messages queued, and the problems it found new or
    saw end, which the caller logs whoever was told (a capture-only install tells nobody else)."""

    queued: list[int] = field(default_factory=list)
    opened: list[Finding] = field(default_factory=list)
    #: ``(source, problem)`` of each episode that ended because the source works again.
    recovered: list[tuple[str, str]] = field(default_factory=list)
    #: ``(source, problem)`` of each episode closed with no request accepted since it began.
    cleared: list[tuple[str, str]] = field(default_factory=list)


def record_findings(
    db: Database, now: datetime, rules: HealthRules, findings: Sequence[Finding], render: RenderAlert
) -> HealthRecorded:
    """Alert once per problem, tell of each recovery once.

    An episode counts as alerted (``outbox_id``) only once a message was queued for someone: with
    nobody to tell yet, each sweep tries again, so an owner added while it lasts still hears of it.
    """
    stamp = iso(now)
    done = HealthRecorded()
    owners = _owners(db, rules)
    current = {f.source: f for f in findings}
    for nid, subject, ref, alerted, opened in db.execute(
        "SELECT id, subject, ref, outbox_id, created_at FROM nudges WHERE kind = 'source_health'"
        " AND closed_at IS NULL"
    ).fetchall():
        source = str(subject).split(":", 1)[0]
        if source not in rules.sources:
            continue
        finding = current.get(source)
        if finding is not None and finding.subject == subject:
            continue
        # Named by when the problem began: the last accepted request (silent), or the first refusal
        # after it (failing). Anything accepted since ends it, even if a sweep opened it a moment later.
        parts = str(subject).split(":", 2)
        at = _accepted_after(db, source, parts[2] if len(parts) == 3 else str(opened))
        if finding is not None and continues(finding, str(ref), at):
            current[source] = replace(finding, subject=str(subject))
            continue
        outcome = "replaced" if finding is not None else "recovered" if at is not None else "cleared"
        db.execute("UPDATE nudges SET closed_at = ?, outcome = ? WHERE id = ?", [stamp, outcome, nid])
        if finding is not None:
            continue
        if at is None:
            # The problem is no longer seen, yet nothing was accepted since the alert (m022 made its
            # refusals anonymous, the floor was raised): "works again" would quote a request from
            # before the alert and tell the owner what nobody knows. Closed quietly, and logged.
            done.cleared.append((source, str(ref)))
            continue
        done.recovered.append((source, str(ref)))
        if alerted is None:
            continue  # nobody heard of the problem: "works again" would tell them nothing
        fields = {"source": source, "at": at}
        for chat, language in owners:
            row = enqueue(
                db, chat, render(language, "recovered", fields), at=now,
                dedupe_key=f"source-health:{nid}:recovered:{chat}",
            )  # fmt: skip
            if row is not None:
                done.queued.append(row)
    for finding in current.values():
        cursor = db.execute(
            "INSERT INTO nudges (kind, subject, level, due_at, created_at, ref) VALUES ('source_health', ?, 0, ?, ?, ?)"
            " ON CONFLICT (kind, subject, level) DO NOTHING",
            [finding.subject, stamp, stamp, finding.problem],
        )
        if cursor.rowcount == 1:
            done.opened.append(finding)
            nid = int(cursor.lastrowid or 0)
        else:
            waiting = db.execute(
                "SELECT id FROM nudges WHERE kind = 'source_health' AND subject = ? AND level = 0"
                " AND closed_at IS NULL AND outbox_id IS NULL",
                [finding.subject],
            ).fetchone()
            if waiting is None:
                continue  # told already (or over)
            nid = int(waiting[0])
        first: int | None = None
        for chat, language in owners:
            row = enqueue(
                db, chat, render(language, finding.problem, finding.fields), at=now,
                dedupe_key=f"source-health:{nid}:alert:{chat}",
            )  # fmt: skip
            if row is not None:
                done.queued.append(row)
                first = first or row
        if first is not None:
            db.execute("UPDATE nudges SET outbox_id = ? WHERE id = ?", [first, nid])
    return done
