"""/report, /plan and /cost: the numbers of ``leadline report`` and ``leadline plan`` in chat, and costs.

``/report`` is the morning digest on demand for any period: the same text, chart and buttons,
queued through the outbox the way :func:`bot.digest.send_digest` queues them. ``/plan`` is
``leadline plan`` (:func:`storage.plan.plan_from_history`, so both give the same figures).
``/cost`` records a campaign cost through :func:`storage.costs.add_cost`, for owners only: costs
move every lead cost the owner reads. The figures are managers' and owners' (staff see their own
work, not the company's); arguments are read by :mod:`bot.number_args`.
"""

from __future__ import annotations

import asyncio
import html
import os
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlite_utils import Database

from bot import cards
from bot.catalogues import current_locale
from bot.catalogues import gettext as _
from bot.digest import compose, prune_charts, telegram_payloads
from bot.digest_figures import whole
from bot.number_args import ArgumentError, CostArgs, PlanArgs, parse_cost, parse_period, parse_plan
from bot.replies import Replies, quoted
from leadline.config import Config
from storage.costs import CampaignCost, add_cost, costs_in_period
from storage.db import Clock, Store
from storage.errors import (
    AverageDealNotPositive,
    NoTarget,
    PlanError,
    RateOutOfRange,
    TooFewClients,
    TooLittleHistory,
    TwoTargets,
)
from storage.outbox import enqueue
from storage.plan import MIN_LEADS_FOR_RATES, FunnelHistory, Plan, plan_from_history
from storage.reports.report import funnel_history
from storage.reports.scope import Period
from storage.staff import StaffMember, campaigns

PERIOD_EXAMPLES = (
    "today, yesterday, week, last-week, month, last-month, 2026-11, 2026-11-05, 2026-11-01..2026-11-15"
)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{round(value * 100, 1):g} %"


def numbers_refused() -> str:
    return _("Reports and plans are for managers and owners. Ask one of them for the figures.")


# ---------------------------------------------------------------------- /report


def period_problem(error: ArgumentError) -> str:
    if error.problem == "period_too_long":
        return _(
            "“{text}” is longer than a year: ask for a year or less here (/report 2026-01..2026-12),"
            " or run <code>leadline report</code> on the server for longer spans."
        ).format(text=quoted(error.value))
    if error.problem == "period_backwards":
        return _(
            "The period “{text}” ends before it starts: put the earlier day first,"
            " e.g. /report 2026-11-01..2026-11-15."
        ).format(text=quoted(error.value))
    return _(
        "I cannot read the period “{text}”. Write one of: {examples}; or nothing for yesterday."
        " For example: /report week."
    ).format(text=quoted(error.value), examples=PERIOD_EXAMPLES)


def report_chart_path(config: Config, period: Period, chat_id: int) -> Path:
    """Next to the database like the digest's chart: ``<database>-report-<chat>-<period>.png``."""
    db_path = config.database_path
    return db_path.with_name(f"{db_path.stem}-report-{chat_id}-{period.label}.png")


def _write_whole(path: Path, data: bytes) -> None:
    """Write beside and rename, so the sender never uploads half a chart that is being replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial_path = path.with_name(path.name + ".tmp")
    partial_path.write_bytes(data)
    os.replace(partial_path, path)


def _queue(db: Database, chat_id: int, payloads: list[tuple[str, dict[str, Any], str]], at: datetime) -> None:
    for method, payload, _part in payloads:
        enqueue(db, chat_id, payload, at=at, method=method)


async def report(
    message: Message,
    command: CommandObject,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    replies: Replies,
) -> None:
    chat_id = message.chat.id
    if not staff.is_manager:
        await replies.send(chat_id, numbers_refused())
        return
    now = clock()
    try:
        period = parse_period(command.args, config.tz, now.astimezone(config.tz).date())
    except ArgumentError as exc:
        await replies.send(chat_id, period_problem(exc))
        return
    # The reader's language, as the middleware chose it; the store's thread has no update to ask.
    locale = current_locale()
    digest = await store.read(partial(compose, config=config, period=period, now=now, locale=locale))
    chart = report_chart_path(config, period, chat_id)
    await asyncio.to_thread(_write_whole, chart, digest.chart_png)
    await store.write(partial(_queue, chat_id=chat_id, payloads=telegram_payloads(digest, chart), at=now))
    replies.wake()
    await prune_charts(config, store)


# ---------------------------------------------------------------------- /plan


def plan_usage() -> str:
    return _(
        "Write the revenue target and, if you like, the average deal: /plan 300000 100000. Or the clients"
        " to win: /plan clients=2. Rates may be given too: lead-to-qualified=20% qualified-to-won=10%"
        " contact-to-lead=50% margin=50%. What you leave out comes from the last 90 days."
    )


def plan_problem(error: ArgumentError) -> str:
    value = quoted(error.value)
    if error.problem == "plan_option":
        text = _("I do not know “{text}”.").format(text=value)
    elif error.problem == "plan_missing":
        text = _("“{text}” needs a value after it.").format(text=value)
    elif error.problem == "plan_extra":
        text = _("“{text}” is one number too many.").format(text=value)
    elif error.problem == "clients":
        text = _("The number of clients “{text}” should be a whole number above 0.").format(text=value)
    elif error.problem == "rate":
        text = _("The rate “{text}” should be above 0 and at most 100 %, e.g. 20% or 0.2.").format(text=value)
    else:
        text = _("The amount “{text}” should be a number above 0, e.g. 300000 or 300k.").format(text=value)
    return text + "\n" + plan_usage()


def plan_error(error: PlanError, history: FunnelHistory) -> str:
    """Why no plan could be made, in the reader's language, with what to give instead."""
    match error:
        case TooLittleHistory():
            return _(
                "There is too little history to take the rates from: {period} has {leads} leads and {won} won"
                " (at least {need} leads and 1 client are needed). Give the rates: /plan clients=2"
                " lead-to-qualified=20% qualified-to-won=10%."
            ).format(period=history.label, leads=history.leads, won=history.won, need=MIN_LEADS_FOR_RATES)
        case NoTarget():
            return _("Say what to plan for.") + "\n" + plan_usage()
        case AverageDealNotPositive():
            return _(
                "The won deals of the last 90 days have no amounts: give the average deal,"
                " e.g. /plan 300000 100000."
            )
        case RateOutOfRange(name=name):
            return _(
                "The rate {name} from the last 90 days is above 100 %: give it, e.g. {name}=50%."
            ).format(name=name.replace("_", "-"))
        case TwoTargets():
            return (
                _(
                    "Clients and revenue are two targets: keep one (a revenue target plans the clients it"
                    " takes at the average deal)."
                )
                + "\n"
                + plan_usage()
            )
        case TooFewClients():
            return _("The number of clients must be at least 1.") + "\n" + plan_usage()
    return _("Cannot plan: {reason}.").format(reason=html.escape(str(error)))


def plan_text(plan: Plan, history: FunnelHistory, args: PlanArgs, currency: str) -> str:
    rates = plan.rates
    title = _("Plan for {n} client", "Plan for {n} clients", plan.clients).format(n=plan.clients)
    if plan.revenue is not None:
        title += _(", revenue {amount}").format(amount=cards.amount(float(plan.revenue), currency))
    lines = [f"<b>{title}</b>"]
    lines.append(
        _("Rates: contact → lead {contact}, lead → qualified {qualified}, qualified → won {won}.").format(
            contact=_pct(None if rates.contact_to_lead is None else float(rates.contact_to_lead)),
            qualified=_pct(float(rates.lead_to_qualified)),
            won=_pct(float(rates.qualified_to_won)),
        )
    )
    if not args.rates_given:
        lines.append(
            _("From {period}: {leads} leads, {qualified} qualified, {won} won.").format(
                period=history.label, leads=history.leads, qualified=history.qualified, won=history.won
            )
        )
    lines.append("")
    contacts = "—" if plan.inbound_contacts is None else whole(plan.inbound_contacts)
    lines.append(_("Inbound contacts: <b>{n}</b>").format(n=contacts))
    lines.append(_("Leads: <b>{n}</b>").format(n=whole(plan.leads)))
    lines.append(_("Qualified: <b>{n}</b>").format(n=whole(plan.qualified)))
    lines.append(_("Clients: <b>{n}</b>").format(n=whole(plan.clients)))
    if plan.max_lead_cost is None:
        lines.append(_("Highest LC that pays: give the average deal (no won deals in the last 90 days)."))
        return "\n".join(lines)
    why = _("average deal {deal} × lead-to-client {ratio}").format(
        deal=cards.amount(float(plan.average_deal or 0), currency), ratio=_pct(float(rates.lead_to_client))
    )
    if args.margin != 1:
        why += _(" × margin {margin}").format(margin=_pct(float(args.margin)))
    lines.append(
        _("Highest LC that pays: <b>{amount}</b> ({why})").format(
            amount=cards.amount(float(plan.max_lead_cost), currency), why=why
        )
    )
    return "\n".join(lines)


async def plan(
    message: Message,
    command: CommandObject,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    replies: Replies,
) -> None:
    chat_id = message.chat.id
    if not staff.is_manager:
        await replies.send(chat_id, numbers_refused())
        return
    try:
        args = parse_plan(command.args)
    except ArgumentError as exc:
        await replies.send(chat_id, plan_problem(exc))
        return
    today = clock().astimezone(config.tz).date()
    history = await store.read(partial(funnel_history, today=today, tz=config.tz))
    try:
        result = plan_from_history(
            history,
            clients=args.clients,
            revenue=args.revenue,
            average_deal=args.average_deal,
            contact_to_lead=args.contact_to_lead,
            lead_to_qualified=args.lead_to_qualified,
            qualified_to_won=args.qualified_to_won,
            margin=args.margin,
            goal_clients=config.goals.clients,
            goal_revenue=config.goals.revenue,
        )
    except PlanError as exc:
        await replies.send(chat_id, plan_error(exc, history))
        return
    await replies.send(chat_id, plan_text(result, history, args, config.leadline.currency))


# ---------------------------------------------------------------------- /cost


def cost_usage() -> str:
    return _(
        "Write the campaign, the month, the amount and, if you like, the item:"
        " /cost brand_msk 2026-11 45000 ads."
        " Items are words such as ads, telephony, desk, wages; without one it is “other”."
    )


def cost_problem(error: ArgumentError, known: list[str]) -> str:
    value = quoted(error.value)
    if error.problem == "campaign":
        if not known:
            return _(
                "There is no campaign “{name}”, and none is set up yet: add campaigns to the config."
            ).format(name=value)
        return _("There is no campaign “{name}”. The campaigns are: {names}.").format(
            name=value, names=html.escape(", ".join(known))
        )
    if error.problem == "cost_period":
        text = _(
            "I cannot read the month “{text}”: write it as 2026-11"
            " (or a day, 2026-11-05, or months, 2026-10..2026-12)."
        ).format(text=value)
    elif error.problem == "amount":
        text = _(
            "I cannot read the amount “{text}”: write a number above 0, e.g. 45000, 45 000 or 45k."
        ).format(text=value)
    elif error.problem == "item":
        text = _("The item “{text}” should be one word, e.g. ads, telephony, desk or wages.").format(
            text=value
        )
    else:
        return cost_usage()
    return text + "\n" + cost_usage()


def record_cost(db: Database, args: CostArgs, at: datetime, staff_id: int, key: str) -> CampaignCost:
    """Record the cost and read the campaign's total for its period back in the same write; the
    message's ``key`` makes a second delivery of it record nothing and answer as the first did."""
    add_cost(
        db,
        args.campaign,
        args.period,
        args.amount,
        at=at,
        item=args.item,
        origin="bot",
        staff_id=staff_id,
        external_id=key,
    )
    return costs_in_period(db, args.span.start, args.span.end, campaign=args.campaign)[args.campaign]


def cost_text(args: CostArgs, total: CampaignCost, currency: str) -> str:
    items = ", ".join(
        f"{html.escape(item)} {cards.amount(amount, currency)}"
        for item, amount in sorted(total.items.items())
    )
    return (
        _("✅ Recorded: {campaign}, {period}, {item} {amount}.").format(
            campaign=html.escape(args.campaign),
            period=html.escape(args.period),
            item=html.escape(args.item),
            amount=cards.amount(args.amount, currency),
        )
        + "\n"
        + _("{campaign} for {period} now costs <b>{total}</b> in all: {items}.").format(
            campaign=html.escape(args.campaign),
            period=html.escape(args.period),
            total=cards.amount(total.total, currency),
            items=items,
        )
    )


async def cost(
    message: Message,
    command: CommandObject,
    staff: StaffMember,
    store: Store,
    config: Config,
    clock: Clock,
    replies: Replies,
) -> None:
    chat_id = message.chat.id
    if staff.role != "owner":
        await replies.send(
            chat_id, _("Only owners can record costs. Ask an owner, or add the cost to the config.")
        )
        return
    known = [name for _id, name in await store.read(campaigns)]
    try:
        args = parse_cost(command.args, known)
    except ArgumentError as exc:
        await replies.send(chat_id, cost_problem(exc, known))
        return
    key = f"telegram:{chat_id}:{message.message_id}"
    total = await store.write(partial(record_cost, args=args, at=clock(), staff_id=staff.id, key=key))
    await replies.send(chat_id, cost_text(args, total, config.leadline.currency))


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="numbers")
    # Private chats only: a report lists people with their full numbers, not for the whole team chat.
    private = F.chat.type == "private"
    router.message.register(report, Command("report"), private)
    router.message.register(plan, Command("plan"), private)
    router.message.register(cost, Command("cost"), private)
    return router
