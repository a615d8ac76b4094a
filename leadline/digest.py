"""The owner's daily digest: yesterday's numbers, what is still owed, and a chart, on a phone screen.

The digest answers "what do I do today?": how many people got in touch and how many of them are in
the base (against the same day a week earlier), who is still unregistered, which missed calls
nobody called back (each with a button that opens the contact's card), the campaign whose leads
cost most, and the month's goals. The chart shows the last 14 days of inbound contacts against
registered ones with the LRR line, and lead cost by campaign for the month so far.

With a bot token the digest goes to every owner through the outbox as two messages: a
``sendPhoto`` whose payload names the PNG file (``{"photo": "file:///...", "caption": ...}``; the
sender uploads it) and a ``sendMessage`` with the text and the buttons. Without a token the text
goes to the log, with phones and emails masked, and the PNG to a file next to the database.
"""

from __future__ import annotations

import html
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from leadline.config import Config
from storage.db import Store, now_utc
from storage.identifiers import mask
from storage.outbox import enqueue
from storage.reports import Facts, Group, Period, Rules, Scope, build_report, unregistered_contacts

log = logging.getLogger("leadline.digest")

#: How many contacts the digest lists by name; the rest are a count.
LIST_LIMIT = 5
CHART_DAYS = 14
#: Telegram's caption limit for a photo.
CAPTION_LIMIT = 1024


@dataclass(frozen=True)
class Digest:
    day: date
    #: Telegram HTML (``parse_mode="HTML"``), full phone numbers: for the owners' chats.
    text: str
    #: The same without markup and with phones and emails masked: for the log.
    log_text: str
    #: ``(label, callback_data)`` per contact to open: ``contact:<id>``.
    buttons: list[tuple[str, str]] = field(default_factory=list)
    chart_png: bytes = b""


def _delta(now: float | None, before: float | None, *, points: bool = False) -> str:
    if now is None or before is None:
        return ""
    change = (now - before) * (100 if points else 1)
    if abs(change) < 0.05:
        return " (=)"
    unit = " pp" if points else ""
    return f" ({'+' if change > 0 else '−'}{abs(change):.0f}{unit})"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def _money(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}".replace(",", " ")


def _who(item: dict[str, Any], reveal: bool) -> str:
    ident = item.get("identifier") or ""
    shown = ident if reveal else mask(ident)
    name = item.get("name")
    return html.escape(f"{name} {shown}".strip() if name else shown or f"#{item['contact_id']}")


def compose(db: Database, config: Config, period: Period, now: datetime) -> Digest:
    """The digest for ``period`` (a day for the daily digest; any period for ``/report``)."""
    rules = Rules.from_config(config)
    tz = config.tz
    scope = Scope(period, as_of=now)
    facts = Facts(db, scope, rules)
    total = facts.total()
    before = Facts(db, Scope(period.previous(7), as_of=now), rules).total() if period.days == 1 else None
    month = Period.month(period.end, tz)
    month_report = build_report(
        db, Scope(Period(month.start, min(month.end, period.end), tz), as_of=now), rules
    )

    def line(label: str, value: str) -> str:
        return f"{label}: <b>{value}</b>"

    title = period.start.strftime("%a %d %b %Y") if period.days == 1 else period.label
    compared = f" vs {period.previous(7).start.strftime('%a %d %b')}" if before else ""
    lines = [f"<b>Leadline · {title}</b>"]
    lines.append(
        line("Inbound contacts", f"{total.inbound_contacts}")
        + _delta(total.inbound_contacts, before.inbound_contacts if before else None)
        + f" · touches {total.inbound_touches}"
        + (f", hidden numbers {total.hidden_caller_touches}" if total.hidden_caller_touches else "")
    )
    lines.append(
        line("Registered", f"{total.registered} · LRR {_pct(total.lrr)}")
        + _delta(total.lrr, before.lrr if before else None, points=True)
        + f" · new {_pct(total.lrr_new)}"
    )
    if total.registration_lags:
        lines.append(
            f"Registration lag: p50 {total.registration_lag_p50:.0f} min, p90 {total.registration_lag_p90:.0f} min"
            f" (SLA {rules.registration_minutes}: {total.registered_within_sla} of {len(total.registration_lags)} in time)"
        )
    lines.append(
        line("Missed calls", f"{total.missed_calls}")
        + f" · not called back <b>{total.missed_not_called_back}</b>"
    )
    temps = total.leads_by_temperature
    lines.append(
        line("Leads", f"{total.leads}")
        + _delta(total.leads, before.leads if before else None)
        + f" · hot {temps['hot']}, warm {temps['warm']}, cold {temps['cold']}"
    )
    if compared:
        lines.append(f"<i>(changes{compared})</i>")

    waiting = unregistered_contacts(db, scope, limit=LIST_LIMIT)
    missed = _missed_contacts(db, total)[:LIST_LIMIT]
    owed = (
        ("Still not registered", "Register", waiting, total.inbound_contacts - total.registered),
        ("Missed, not called back", "Call back", missed, total.missed_not_called_back),
    )
    # One button per contact, even when they missed us twice.
    buttons: list[tuple[str, str]] = []
    for _, verb, items, _ in owed:
        for item in items:
            data = f"contact:{item['contact_id']}"
            if all(data != known for _, known in buttons):
                label = item.get("name") or item.get("identifier") or item["contact_id"]
                buttons.append((f"{verb}: {label}"[:60], data))

    def lists(reveal: bool) -> list[str]:
        out = []
        for heading, _, items, count in owed:
            if not count:
                continue
            out.append(f"\n<b>{heading}: {count}</b>")
            for item in items:
                local = datetime.fromisoformat(item["first_at"]).astimezone(tz).strftime("%d.%m %H:%M")
                out.append(f"• {local} {_who(item, reveal)}")
            if count > len(items):
                out.append(f"… and {count - len(items)} more")
        return out

    tail = []
    worst = _worst_campaign(month_report)
    if worst:
        name, figures = worst
        tail.append(
            f"\nWorst lead cost this month: <b>{html.escape(name)}</b> {_money(figures['lead_cost'])}"
            f" ({figures['leads']} leads for {_money(figures['cost'])})"
        )
    goals = month_report["goals"]
    if goals:
        parts = [
            f"{name} {_money(g['actual'])}/{_money(g['target'])} → {_money(g['projected'])}"
            for name, g in goals.items()
        ]
        tail.append("Goals this month (so far/target → heading for): " + "; ".join(parts))

    text = "\n".join([*lines, *lists(reveal=True), *tail])
    log_text = html.unescape(re.sub(r"<[^>]+>", "", "\n".join([*lines, *lists(reveal=False), *tail])))
    chart = render_chart(db, config, period.end, now, month_report)
    return Digest(period.end, text, log_text, buttons, chart)


def _missed_contacts(db: Database, total: Group) -> list[dict[str, Any]]:
    out = []
    for row in sorted(total.missed_not_called_back_rows, key=lambda r: r.occurred_at):
        found = db.execute(
            "SELECT c.name, (SELECT value FROM identifiers i WHERE i.contact_id = c.id AND i.kind = 'phone'"
            " ORDER BY i.id LIMIT 1) FROM contacts c WHERE c.id = ?",
            [row.contact_id],
        ).fetchone()
        out.append(
            {
                "contact_id": row.contact_id,
                "first_at": row.occurred_at,
                "name": found[0] if found else None,
                "identifier": found[1] if found else None,
            }
        )
    return out


def _worst_campaign(report: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    priced = [(name, g) for name, g in report["by_campaign"].items() if g["lead_cost"] is not None]
    return max(priced, key=lambda item: item[1]["lead_cost"]) if priced else None


def daily_series(
    db: Database, rules: Rules, last: date, now: datetime, days: int = CHART_DAYS
) -> list[tuple[date, Group]]:
    """Each of the ``days`` days up to ``last``: its figures, for the chart."""
    tz = rules.calendar.tz
    series = []
    for offset in range(days - 1, -1, -1):
        day = last - timedelta(days=offset)
        series.append((day, Facts(db, Scope(Period.day(day, tz), as_of=now), rules).total()))
    return series


def render_chart(
    db: Database, config: Config, last: date, now: datetime, month_report: dict[str, Any]
) -> bytes:
    """A PNG: inbound contacts vs registered per day with the LRR line; LC by campaign this month."""
    from matplotlib.figure import Figure

    rules = Rules.from_config(config)
    series = daily_series(db, rules, last, now)
    days = [d for d, _ in series]
    inbound = [g.inbound_contacts for _, g in series]
    registered = [g.registered for _, g in series]
    lrr = [g.lrr * 100 if g.lrr is not None else float("nan") for _, g in series]

    figure = Figure(figsize=(10, 4.2), dpi=110)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    x = range(len(days))
    left.bar([i - 0.2 for i in x], inbound, width=0.4, label="inbound contacts", color="#9db4d0")
    left.bar([i + 0.2 for i in x], registered, width=0.4, label="registered", color="#2b6cb0")
    left.set_xticks(list(x), [d.strftime("%d.%m") for d in days], rotation=45, fontsize=8)
    left.set_title(f"Last {len(days)} days")
    left.set_ylabel("contacts")
    twin = left.twinx()
    twin.plot(list(x), lrr, color="#d9534f", marker="o", label="LRR %")
    twin.set_ylim(0, 105)
    twin.set_ylabel("LRR %")
    handles = left.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    left.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", fontsize=8)

    priced = sorted(
        (
            (name, g["lead_cost"])
            for name, g in month_report["by_campaign"].items()
            if g["lead_cost"] is not None
        ),
        key=lambda item: item[1],
    )
    if priced:
        right.barh([n for n, _ in priced], [v for _, v in priced], color="#f0ad4e")
        for i, (_, value) in enumerate(priced):
            right.text(value, i, f" {_money(value)}", va="center", fontsize=8)
        right.set_xlim(0, max(v for _, v in priced) * 1.35)
    else:
        right.text(0.5, 0.5, "no costs or leads yet", ha="center", va="center", transform=right.transAxes)
    right.set_title(f"Lead cost, {last.strftime('%b %Y')} so far")
    right.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def chart_path(config: Config, day: date) -> Path:
    """Next to the database, one file per day: ``<database>-digest-YYYY-MM-DD.png``."""
    db_path = config.database_path
    return db_path.with_name(f"{db_path.stem}-digest-{day.isoformat()}.png")


def telegram_payloads(digest: Digest, chart: Path) -> list[tuple[str, dict[str, Any], str]]:
    """The digest as the outbox sends it, ``(method, payload, part)``: the chart with the headline as
    its caption, then the text with its buttons. The daily digest and the bot's ``/report`` both
    send these, so a report on demand looks like the morning's."""
    caption = "\n".join(digest.text.split("\n")[:3])[:CAPTION_LIMIT]
    # The outbox uploads a ``file://`` path as it is written (no percent-encoding): see bot/outbox.py.
    photo = {"photo": f"file://{chart.resolve()}", "caption": caption, "parse_mode": "HTML"}
    message: dict[str, Any] = {"text": digest.text, "parse_mode": "HTML"}
    if digest.buttons:
        message["reply_markup"] = {
            "inline_keyboard": [[{"text": label, "callback_data": data}] for label, data in digest.buttons]
        }
    return [("sendPhoto", photo, "photo"), ("sendMessage", message, "text")]


def report_text(db: Database, config: Config, period: Period, now: datetime) -> str:
    """The digest's text for any period: what the bot's ``/report`` answers (Telegram HTML)."""
    return compose(db, config, period, now).text


#: The last day a digest was sent for (ISO date), in the ``meta`` table.
LAST_DAY_KEY = "digest_last_day"
#: A break (a long weekend, holidays, the process down at the digest time) is caught up this many
#: days back at most, one digest per day, so the owner is not flooded after a long outage.
CATCH_UP_DAYS = 7


def last_digested(db: Database) -> date | None:
    """The newest day a digest went out for: the ``meta`` key, else (a base from before the key)
    the newest ``digest:<day>:<chat>:text`` outbox row."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", [LAST_DAY_KEY]).fetchone()
    value = row[0] if row else None
    if not value:
        value = db.execute(
            "SELECT MAX(substr(dedupe_key, 8, 10)) FROM outbox WHERE dedupe_key LIKE 'digest:%:text'"
        ).fetchone()[0]
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _mark_digested(db: Database, day: date) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = max(COALESCE(value, ''), excluded.value)",
        [LAST_DAY_KEY, day.isoformat()],
    )


def days_due(last: date | None, today: date) -> list[date]:
    """The days whose digest is owed on ``today``: each day after ``last`` up to yesterday, at most
    :data:`CATCH_UP_DAYS` back; just yesterday when no digest was ever sent."""
    yesterday = today - timedelta(days=1)
    if last is None:
        return [yesterday]
    first = max(last + timedelta(days=1), today - timedelta(days=CATCH_UP_DAYS))
    return [first + timedelta(days=i) for i in range((yesterday - first).days + 1)]


async def send_due_digests(
    config: Config, store: Store, *, now: datetime, only_catch_up: bool = False
) -> list[Sent]:
    """Send every digest owed at ``now``: one per day since the last one sent (the days without a
    digest run — weekends, holidays, the process down — are not lost). Each day is its own digest,
    compared with the same weekday a week earlier, as on any other day.

    ``only_catch_up`` (at start-up): nothing when no digest was ever sent, so a fresh base (or a
    test) gets its first digest at the digest time, not whenever the process starts.
    """
    last = await store.read(last_digested)
    if only_catch_up and last is None:
        return []
    sent = []
    for day in days_due(last, now.astimezone(config.tz).date()):
        sent.append(await send_digest(config, store, day, now=now))
    return sent


@dataclass(frozen=True)
class Sent:
    digest: Digest
    chart: Path
    #: Outbox row ids (empty without a bot token: the digest went to the log).
    queued: list[int]


async def send_digest(
    config: Config, store: Store, day: date | None = None, *, now: datetime | None = None
) -> Sent:
    """Build the digest for ``day`` (default yesterday) and queue it for every owner, or log it.

    Safe to call twice for the same day: the outbox rows carry a dedupe key per day and chat.
    """
    now = now or now_utc()
    day = day or (now.astimezone(config.tz).date() - timedelta(days=1))
    period = Period.day(day, config.tz)
    digest = await store.read(lambda db: compose(db, config, period, now))
    path = chart_path(config, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(digest.chart_png)
    if not config.telegram.token.get_secret_value():
        log.info("digest (no bot token: written here)\n%s\nchart: %s", digest.log_text, path)
        await store.write(partial(_mark_digested, day=day))
        return Sent(digest, path, [])

    def queue(db: Database) -> list[int]:
        owners = [
            int(row[0])
            for row in db.execute(
                "SELECT telegram_id FROM staff WHERE role = 'owner' AND active = 1 AND telegram_id IS NOT NULL"
            )
        ]
        ids = []
        for chat in owners:
            for method, payload, part in telegram_payloads(digest, path):
                row = enqueue(
                    db, chat, payload, at=now, method=method, dedupe_key=f"digest:{day}:{chat}:{part}"
                )
                if row is not None:
                    ids.append(row)
        _mark_digested(db, day)
        return ids

    queued = await store.write(queue)
    log.info("digest queued", extra={"fields": {"day": day.isoformat(), "messages": len(queued)}})
    return Sent(digest, path, queued)
