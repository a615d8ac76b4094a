"""The owner's morning digest: the numbers since the last one, what is still owed, and a chart, on a phone.

The digest answers "what do I do today?": how many people got in touch and how many of them are in
the base (against the same days a week earlier), who is still unregistered, which missed calls
nobody called back (each with a button that opens the contact's card), the campaign whose leads
cost most, and the month's goals. The chart shows the last 14 days of inbound contacts against
registered ones with the LRR line, and lead cost by campaign for the month so far.

On a working day it covers every day since the previous digest up to yesterday: on a Tuesday,
Monday; on a Monday, Friday to Sunday in one message rather than three near-empty ones; after a
public holiday, the holiday too (see :func:`period_due`).

With a bot token the digest goes to every owner through the outbox as two messages: a
``sendPhoto`` whose payload names the PNG file (``{"photo": "file:///...", "caption": ...}``; the
sender uploads it) and a ``sendMessage`` with the text and the buttons. Without a token the figures
go to the log (the lists of people do not: nothing personal is written to a log), and the PNG to a
file next to the database.

Text and chart speak the reader's language, through the bot's gettext catalogues: an owner's staff
``language``, else ``[leadline] language`` (which the log uses too). The figures are read once and
written once per language (:func:`bot.digest_figures.gather`, then :func:`write`); the chart is
:mod:`bot.digest_chart`'s.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from functools import partial
from pathlib import Path
from typing import Any

from babel.dates import format_date
from sqlite_utils import Database

from bot import labels
from bot.catalogues import SOURCE_LOCALE, catalogues, pick_locale, written_for
from bot.catalogues import gettext as _
from bot.digest_chart import render_chart
from bot.digest_figures import Figures, dearest_campaigns, gather, leadless, money, whole
from bot.nudge_texts import NAME_LIMIT
from bot.replies import clip, fit_leading, message_payload
from bot.touch_text import when
from leadline.config import Config
from storage.db import Store, now_utc
from storage.digests import last_digested, mark_digested
from storage.identifiers import mask
from storage.outbox import enqueue, files_to_send
from storage.reports.figures import Group
from storage.reports.scope import Period
from storage.staff import owners
from storage.worktime import WorkingCalendar

log = logging.getLogger("leadline.digest")

#: Telegram's caption limit for a photo.
CAPTION_LIMIT = 1024


@dataclass(frozen=True)
class Digest:
    period: Period
    #: Telegram HTML (``parse_mode="HTML"``), full phone numbers: for the owners' chats.
    text: str
    #: The same without markup and without people (the figures, not who is on the lists): for the log.
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
    unit = " " + _("pp") if points else ""
    return f" ({'+' if change > 0 else '−'}{abs(change):.0f}{unit})"


#: The order channels are named in, the busiest kinds first.
CHANNELS = ("call", "form", "email", "chat", "manual")


def _channels(groups: Mapping[str, Group]) -> str:
    """Each channel that brought contacts, with its registration rate: ``Call 5 (LRR 60%)``."""
    return " · ".join(
        _("{channel} {contacts} (LRR {lrr})").format(
            channel=labels.channel(code), contacts=group.inbound_contacts, lrr=_pct(group.lrr)
        )
        for code in CHANNELS
        if (group := groups.get(code)) is not None and group.inbound_contacts
    )


def _pct(value: float | None) -> str:
    """A share in whole per cent; one short of everyone is never "100 %" (399 of 400 registered
    next to "Still not registered: 1")."""
    if value is None:
        return "–"
    shown = round(value * 100)
    return f"{99 if value < 1 and shown == 100 else shown} %"


def _who(item: dict[str, Any], reveal: bool) -> str:
    """A person on the digest's lists. The name and the address are cut as a nudge card cuts them: a
    form keeps names of up to 1,024 characters and addresses of up to 254, and a few such people on
    the lists made the digest too long for Telegram (the button opens the whole contact)."""
    ident = item.get("identifier") or ""
    shown = clip(ident if reveal else mask(ident), NAME_LIMIT)
    name = clip(item["name"], NAME_LIMIT) if item.get("name") else None
    return html.escape(f"{name} {shown}".strip() if name else shown or f"#{item['contact_id']}")


def compose(
    db: Database, config: Config, period: Period, now: datetime, locale: str = "en", *, digest: bool = False
) -> Digest:
    """The digest for ``period`` (the days since the last one for the morning digest, ``digest``;
    any period for ``/report``), in ``locale`` (English, the catalogues' own language, unless told)."""
    return write(gather(db, config, period, now, digest=digest), config, locale)


def write(figures: Figures, config: Config, locale: str) -> Digest:
    """The digest's text, buttons and chart in ``locale``, through the bot's catalogues."""
    with written_for(locale) as speaking_in:
        text, log_text, buttons = _words(figures, config, speaking_in)
        chart = render_chart(figures, config, speaking_in)
    return Digest(figures.period, text, log_text, buttons, chart)


def name_days(period: Period, locale: str, *, year: bool = True) -> str:
    """A day or a span of days in the reader's words ("Mon 16 Nov 2026", "Fri 20 – Sun 22 Nov 2026",
    "пт, 20 – вс, 22 ноября 2026"): Babel's patterns are in the catalogues; the first day leaves out
    the month and the year it shares with the last."""
    whole = _("EEE dd MMM y")
    last = format_date(period.end, whole if year else _("EEE dd MMM"), locale=locale)
    if period.days == 1:
        return last
    start, end = period.start, period.end
    if start.year != end.year:
        if not year:
            last = format_date(end, whole, locale=locale)
        pattern = whole
    elif start.month != end.month:
        pattern = _("EEE dd MMM")
    else:
        pattern = _("EEE dd")
    return _("{first} – {last}").format(first=format_date(start, pattern, locale=locale), last=last)


def _words(figures: Figures, config: Config, locale: str) -> tuple[str, str, list[tuple[str, str]]]:
    """Telegram HTML, the log's masked plain text, and the contact buttons, in the current language."""
    period, total, before = figures.period, figures.total, figures.before
    tz = config.tz
    # The days in the reader's words ("Mon 16 Nov 2026"); a longer /report period as the command wrote it.
    title = name_days(period, locale) if figures.names_days else period.label
    lines = [f"<b>Leadline · {title}</b>"]
    counts = {
        "contacts": total.inbound_contacts,
        "change": _delta(total.inbound_contacts, before.inbound_contacts if before else None),
        "touches": total.inbound_touches,
        "hidden": total.hidden_caller_touches,
    }
    if total.hidden_caller_touches:
        lines.append(
            _(
                "Inbound contacts: <b>{contacts}</b>{change} · touches {touches}, hidden numbers {hidden}"
            ).format(**counts)
        )
    else:
        lines.append(_("Inbound contacts: <b>{contacts}</b>{change} · touches {touches}").format(**counts))
    channels = _channels(figures.by_channel)
    if channels:
        lines.append(_("By channel: {channels}").format(channels=channels))
    lines.append(
        _("Registered: <b>{registered} · LRR {lrr}</b>{change} · new {lrr_new}").format(
            registered=total.registered,
            lrr=_pct(total.lrr),
            change=_delta(total.lrr, before.lrr if before else None, points=True),
            lrr_new=_pct(total.lrr_new),
        )
    )
    if total.registration_lags:
        lines.append(
            _(
                "Registration lag: p50 {p50} min, p90 {p90} min (SLA {sla}: {within} of {count} in time)"
            ).format(
                p50=f"{total.registration_lag_p50:.0f}",
                p90=f"{total.registration_lag_p90:.0f}",
                sla=figures.registration_minutes,
                within=total.registered_within_sla,
                count=len(total.registration_lags),
            )
        )
    # Speed to lead goes here, in two forms: the slowest contact's number is whole only in Telegram.
    response_at = len(lines)
    lines.append(
        # The SLA's figure (DESIGN.md); the list below is who is still owed a call now.
        _("Missed calls: <b>{missed}</b> · not called back in time <b>{owed}</b>").format(
            missed=total.missed_calls, owed=total.missed_not_called_back
        )
    )
    temps = total.leads_by_temperature
    lines.append(
        _("Leads: <b>{leads}</b>{change} · hot {hot}, warm {warm}, cold {cold}").format(
            leads=total.leads,
            change=_delta(total.leads, before.leads if before else None),
            hot=temps["hot"],
            warm=temps["warm"],
            cold=temps["cold"],
        )
    )
    if figures.compared_with:
        day = name_days(figures.compared_with, locale, year=False)
        lines.append("<i>" + _("(changes vs {day})").format(day=day) + "</i>")

    owed = (
        (_("Still not registered: {count}"), _("Register: {who}"), figures.waiting),
        (_("Missed, still not called back: {count}"), _("Call back: {who}"), figures.missed),
    )
    people = [len(listed.items) for _heading, _verb, listed in owed]
    # One button per contact, even when they missed us twice.
    buttons: list[tuple[str, str]] = []
    for _heading, verb, listed in owed:
        for item in listed.items:
            data = f"contact:{item['contact_id']}"
            if all(data != known for _label, known in buttons):
                label = item.get("name") or item.get("identifier") or item["contact_id"]
                buttons.append((verb.format(who=label)[:60], data))

    def lists(reveal: bool, shares: Sequence[int]) -> list[str]:
        """Who is owed what, naming the first ``shares[i]`` people of each list and counting the
        rest; the log, which may name nobody (DESIGN.md), gets the counts alone."""
        out = []
        for (heading, _verb, listed), share in zip(owed, shares, strict=True):
            count = listed.total
            if not count:
                continue
            out.append("\n<b>" + heading.format(count=count) + "</b>")
            if not reveal:
                continue
            for item in listed.items[:share]:
                local = when(item["first_at"], tz)
                out.append(f"• {local} {_who(item, reveal)}")
            more = count - min(share, len(listed.items)) - listed.erased
            if more > 0:
                out.append(_("… and {n} more").format(n=more))
            if listed.erased:
                out.append(_("(of them erased at their request: {n})").format(n=listed.erased))
        return out

    tail = []
    worst = next(iter(dearest_campaigns(figures.month_report["by_campaign"])), None)
    currency = config.leadline.currency
    if worst and leadless(worst[1]):
        name, found = worst
        tail.append(
            "\n"
            + _("Worst lead cost this month: <b>{campaign}</b> {cost} spent, no leads yet").format(
                campaign=html.escape(config.campaign_title(name)), cost=money(found["cost"], currency, locale)
            )
        )
    elif worst:
        name, found = worst
        # No trailing comma after the count (hence ``fmt: skip``): pybabel skips ``_(one, many, n,)``.
        dearest = _(
            "Worst lead cost this month: <b>{campaign}</b> {lead_cost} ({leads} lead for {cost})",
            "Worst lead cost this month: <b>{campaign}</b> {lead_cost} ({leads} leads for {cost})",
            found["leads"]
        )  # fmt: skip
        tail.append(
            "\n"
            + dearest.format(
                campaign=html.escape(config.campaign_title(name)),
                lead_cost=money(found["lead_cost"], currency, locale),
                leads=found["leads"],
                cost=money(found["cost"], currency, locale),
            )
        )
    goals = figures.month_report["goals"]
    if goals:
        parts = [_goal(name, g, config.leadline.currency, locale) for name, g in goals.items()]
        tail.append(
            _("Goals this month (so far/target → heading for): {goals}").format(goals="; ".join(parts))
        )

    def head(reveal: bool) -> list[str]:
        said = _response(figures, tz, reveal)
        return [*lines[:response_at], *([said] if said else []), *lines[response_at:]]

    def naming(n: int) -> dict[str, Any]:
        return message_payload("\n".join([*head(reveal=True), *lists(True, _shares(people, n)), *tail]))

    # Telegram refuses a longer text for good, and the owner would get the chart alone: the people
    # who do not fit are left to "… and N more" (their buttons stay).
    text = str(fit_leading(naming, sum(people))[0]["text"])
    log_text = plain("\n".join([*head(reveal=False), *lists(False, people), *tail]))
    return text, log_text, buttons


def _shares(sizes: Sequence[int], n: int) -> list[int]:
    """How many people of each list the digest names when it names ``n`` in all: taken from each
    list in turn, so that when they do not all fit, one long list does not crowd out the other."""
    shares = [0] * len(sizes)
    while n > 0 and shares != list(sizes):
        for i, size in enumerate(sizes):
            if n > 0 and shares[i] < size:
                shares[i] += 1
                n -= 1
    return shares


def plain(text: str) -> str:
    """Telegram HTML as a terminal or the log shows it: no markup, no entities."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def _response(figures: Figures, tz: tzinfo, reveal: bool) -> str:
    """How fast people were answered (real minutes), and who has waited longest: nothing when no one
    got in touch."""
    total = figures.total
    if not total.inbound_contacts:
        return ""
    response = total.response
    p50 = response["response_p50_min"]
    said = _("Median response {p50} min, {share} within 5 min").format(
        p50="–" if p50 is None else f"{p50:.0f}", share=_pct(response["responded_within_5_min"])
    )
    slowest = figures.slowest
    if slowest is None:
        return said + "; " + _("nobody is still waiting")
    since = when(slowest["first_at"], tz)
    if not reveal:  # the log's copy: when, not who
        return said + "; " + _("slowest still waiting since {since}").format(since=since)
    return (
        said
        + "; "
        + _("slowest still waiting: {who} since {since}").format(who=_who(slowest, reveal), since=since)
    )


def _goal(name: str, progress: dict[str, Any], currency: str, locale: str) -> str:
    """One goal as "leads 4/10 → 7" (done so far / target → where the month is heading); revenue
    in the config's currency."""
    keys = ("actual", "target", "projected")
    if name == "revenue":
        actual, target, projected = (money(progress[key], currency, locale) for key in keys)
    else:
        actual, target, projected = (whole(progress[key]) for key in keys)
    words = {
        "leads": _("leads {actual}/{target} → {projected}"),
        "qualified": _("qualified {actual}/{target} → {projected}"),
        "clients": _("clients {actual}/{target} → {projected}"),
        "revenue": _("revenue {actual}/{target} → {projected}"),
    }
    if name not in words:
        return f"{name} {actual}/{target} → {projected}"
    return words[name].format(actual=actual, target=target, projected=projected)


def chart_path(config: Config, period: Period, locale: str | None = None) -> Path:
    """Next to the database, one file per digest: ``<database>-digest-YYYY-MM-DD.png`` for a day
    (``-digest-YYYY-MM-DD..YYYY-MM-DD.png`` for several) in the config's language, with ``-<locale>``
    before ``.png`` in another one an owner reads."""
    db_path = config.database_path
    days = period.start.isoformat() + ("" if period.days == 1 else f"..{period.end.isoformat()}")
    suffix = f"-{locale}" if locale else ""
    return db_path.with_name(f"{db_path.stem}-digest-{days}{suffix}.png")


#: Charts of each kind (digests, ``/report`` answers) kept beside the database; older ones are
#: removed once sent. Two weeks of daily digests, one of them in a second language.
KEEP_CHARTS = 14


def stale_charts(charts: Iterable[Path], keep: int, waiting: Collection[str]) -> list[Path]:
    """All but the newest ``keep`` of ``charts`` (by when they were written), except those the outbox
    has still to upload (``waiting``, as resolved paths)."""
    written: list[tuple[int, Path]] = []
    for path in charts:
        try:
            written.append((path.stat().st_mtime_ns, path))
        except FileNotFoundError:  # removed by a clean-up running beside this one
            continue
    newest_first = [path for _mtime, path in sorted(written, reverse=True)]
    return [p for p in newest_first[keep:] if str(p.resolve()) not in waiting]


async def prune_charts(config: Config, store: Store, keep: int = KEEP_CHARTS) -> list[Path]:
    """Remove old chart files beside the database, so a year of digests is not 365 PNGs; the removed."""
    waiting = await store.read(files_to_send)
    db_path = config.database_path

    def prune() -> list[Path]:
        removed = []
        for kind in ("digest", "report"):
            for path in stale_charts(db_path.parent.glob(f"{db_path.stem}-{kind}-*.png"), keep, waiting):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    return await asyncio.to_thread(prune)


def telegram_payloads(digest: Digest, chart: Path) -> list[tuple[str, dict[str, Any], str]]:
    """The digest as the outbox sends it, ``(method, payload, part)``: the chart with the headline as
    its caption, then the text with its buttons. The daily digest and the bot's ``/report`` both
    send these, so a report on demand looks like the morning's."""
    caption = "\n".join(digest.text.split("\n")[:3])[:CAPTION_LIMIT]
    # The outbox uploads a ``file://`` path as it is written (no percent-encoding): see bot/transport.py.
    photo = {"photo": f"file://{chart.resolve()}", "caption": caption, "parse_mode": "HTML"}
    # Every bot text's format, so a link a spam form left in a name is never a preview card.
    message = message_payload(digest.text)
    if digest.buttons:
        message["reply_markup"] = {
            "inline_keyboard": [[{"text": label, "callback_data": data}] for label, data in digest.buttons]
        }
    return [("sendPhoto", photo, "photo"), ("sendMessage", message, "text")]


def report_text(db: Database, config: Config, period: Period, now: datetime, locale: str = "en") -> str:
    """The digest's text for any period: what the bot's ``/report`` answers (Telegram HTML)."""
    return compose(db, config, period, now, locale).text


#: How far back the very first digest of a base may reach for the previous working day (the
#: Russian New Year break is 12 days off); a calendar with no working day in that long gets yesterday.
FIRST_DIGEST_REACH = 31


def period_due(last: date | None, today: date, calendar: WorkingCalendar) -> Period | None:
    """The period whose digest is owed on ``today``: every day after ``last`` (the last day the
    previous digest covered) up to yesterday, or None when there is none.

    Each morning's period starts where the previous one ended, so the periods tile the calendar:
    no day is in two digests and none is skipped, across restarts too (``last`` is in the database).
    On a Monday that is Friday to Sunday; on the working day after a public holiday, the holiday is
    in it. A base that never had a digest starts at the previous working day, as if one had gone
    out then.

    When the process was down at the digest time for several working days, the next digest is
    still ONE, covering the whole gap, rather than one per missed morning: the digest is read to
    know what to do today, and its lists of who is still unregistered or not called back are as of
    now whatever its period, so several catch-up messages would repeat the same to-do in pieces;
    the chart keeps the day-by-day view of the last 14 days; and one rule covers the weekend, the
    holiday and the outage alike, with nothing to cap against a flood of messages.
    """
    yesterday = today - timedelta(days=1)
    if last is None:
        start = yesterday
        for back in range(1, FIRST_DIGEST_REACH + 1):
            if calendar.is_working_day(today - timedelta(days=back)):
                start = today - timedelta(days=back)
                break
    else:
        start = last + timedelta(days=1)
    return Period(start, yesterday, calendar.tz) if start <= yesterday else None


async def send_due_digests(config: Config, store: Store, *, now: datetime) -> list[Sent]:
    """Send the digest owed at ``now`` (:func:`period_due`): a list of none or one."""
    last = await store.read(last_digested)
    calendar = WorkingCalendar.from_config(config.working_time, config.tz)
    period = period_due(last, now.astimezone(config.tz).date(), calendar)
    if period is None:
        return []
    return [await send_digest(config, store, period, now=now)]


@dataclass(frozen=True)
class Sent:
    #: In the config's ``[leadline] language``: the one the log shows when there is no bot token.
    digest: Digest
    chart: Path
    #: Outbox row ids (empty without a bot token: the digest went to the log).
    queued: list[int]
    #: Every language written (the config's, and each one an owner reads) → its digest and chart.
    languages: dict[str, tuple[Digest, Path]] = field(default_factory=dict)


def reader_locale(config: Config, language: str | None) -> str:
    """A reader's language as the bot's rule has it: their staff record's, else ``[leadline] language``."""
    return pick_locale(catalogues(), SOURCE_LOCALE, language, config.leadline.language)


def _compose_each(
    db: Database, config: Config, period: Period, now: datetime, *, to_owners: bool
) -> dict[str, Digest]:
    """The digest in the config's language and, for the owners, in each language they read: the
    figures are read once, the words written once per language (three Russian owners, one digest)."""
    locales = [reader_locale(config, None)]
    if to_owners:
        for owner in owners(db):
            locale = reader_locale(config, owner.language)
            if locale not in locales:
                locales.append(locale)
    figures = gather(db, config, period, now, digest=True)
    return {locale: write(figures, config, locale) for locale in locales}


async def send_digest(
    config: Config, store: Store, period: Period | date | None = None, *, now: datetime | None = None
) -> Sent:
    """Build the digest for ``period`` (a date: that day; default yesterday) and queue it for every
    owner in their language, or log it in the config's.

    Safe to call twice for the same period: the outbox rows carry a dedupe key per period's last
    day and chat (:func:`period_due` never gives two periods the same last day).
    """
    now = now or now_utc()
    if period is None:
        period = now.astimezone(config.tz).date() - timedelta(days=1)
    if isinstance(period, date):
        period = Period.day(period, config.tz)
    day = period.end
    token = bool(config.telegram.token.get_secret_value())
    digests = await store.read(partial(_compose_each, config=config, period=period, now=now, to_owners=token))
    office = reader_locale(config, None)
    languages: dict[str, tuple[Digest, Path]] = {}
    for locale, written in digests.items():
        path = chart_path(config, period, None if locale == office else locale)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(written.chart_png)
        languages[locale] = (written, path)
    digest, path = languages[office]
    if not token:
        log.info("digest (no bot token: written here)\n%s\nchart: %s", digest.log_text, path)
        await store.write(partial(mark_digested, day=day))
        await prune_charts(config, store)
        return Sent(digest, path, [], languages)

    def queue(db: Database) -> list[int]:
        ids = []
        for owner in owners(db):
            chat = owner.telegram_id
            if chat is None:  # owners() are those with a Telegram id; this only tells mypy
                continue
            # An owner approved since the digest was written reads the config's language.
            theirs, chart = languages.get(reader_locale(config, owner.language), (digest, path))
            for method, payload, part in telegram_payloads(theirs, chart):
                row = enqueue(
                    db, chat, payload, at=now, method=method, dedupe_key=f"digest:{day}:{chat}:{part}"
                )
                if row is not None:
                    ids.append(row)
        mark_digested(db, day)
        return ids

    queued = await store.write(queue)
    await prune_charts(config, store)
    fields = {"from": period.start.isoformat(), "to": day.isoformat(), "messages": len(queued)}
    log.info("digest queued", extra={"fields": fields})
    return Sent(digest, path, queued, languages)
