"""``leadline report``, ``export``, ``plan`` and ``demo``: the numbers from the command line.

The commands only read options, call ``storage.reports`` / ``storage.plan`` / ``leadline.demo`` and
print; what a figure means is decided there. They are added to the main group in ``leadline/cli.py``.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import click

from leadline.cli_base import EXIT_RUNTIME, config_option
from leadline.cli_base import load as _load
from leadline.config import CONFIG_ENV, DEFAULT_CONFIG, Config
from leadline.export_files import Words, write_csv, write_xlsx
from storage.errors import NoCampaign
from storage.export import Table
from storage.reports.report import build_report
from storage.reports.scope import CHANNELS, GROUPINGS, Filters, Period, Rules, Scope
from storage.staff import known_campaign, staff_called

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def collector_held() -> Iterator[None]:
    """Python's cyclic garbage collector held off for the block, then left as it was found (even if
    the block raises; a hold inside a hold leaves it off for the outer one).

    ``leadline report`` builds its report so: a year's report keeps some 300 000 containers while it
    builds and frees them by reference counting, but with CPython's default thresholds every 700 new
    ones set the collector off and its full passes walk everything the process holds, again and again
    as it grows (408 young, 37 middle and 3 full collections, 0.45-0.52 s of bench/report.py's year).

    Only a process that does nothing else while its report builds may do this: the collector is the
    process's, not the thread's. :func:`~storage.reports.report.build_report` does not, as in
    ``leadline serve`` reports build in the reader threads (the API's ``/api/report``, the bot's
    ``/report``, the digest) while the event loop serves webhooks and the writer writes: a hold there
    would stop their collections for seconds, and reports that overlap would keep it off for as long
    as they keep coming, their cycles piling up. serve has no need of it: its thresholds and frozen
    heap (:func:`leadline.serve.freeze_heap`) make those 300 000 containers some 14 young collections.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


#: Every form :meth:`storage.reports.scope.Period.parse` reads, as the help lists them.
PERIOD_FORMS = "day (or today), yesterday, week, last-week, month, last-month, YYYY-MM or YYYY-MM-DD"


def period_options(fn: F, *, default: str = "month") -> F:
    fn = click.option("--to", "to_", default=None, help="Last day of a range (YYYY-MM-DD; default: today).")(
        fn
    )
    fn = click.option("--from", "from_", default=None, help="First day of a range (YYYY-MM-DD).")(fn)
    return click.option("--period", default=None, help=f"{PERIOD_FORMS} (default: {default}).")(fn)


def resolve_period(
    config: Config, period: str | None, from_: str | None, to_: str | None, today: date
) -> Period:
    tz = config.tz
    if period and (from_ or to_):
        raise click.UsageError("give either --period or --from/--to, not both")
    try:
        if from_ or to_:
            if not from_:
                raise click.BadParameter("--to needs --from", param_hint="--from")
            return Period(date.fromisoformat(from_), date.fromisoformat(to_) if to_ else today, tz)
        return Period.parse(period or "month", tz, today)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--period/--from/--to") from None


def _today(config: Config) -> tuple[datetime, date]:
    now = datetime.now(config.tz)
    return now, now.date()


def _staff_id(db: Any, name: str | None) -> tuple[int, ...] | None:
    if name is None:
        return None
    staff_id = staff_called(db, name)
    if not staff_id:
        raise click.BadParameter(f"no staff member named {name!r}", param_hint="--staff")
    return staff_id


def _campaign(db: Any, name: str | None) -> str | None:
    if name is None:
        return None
    try:
        return known_campaign(db, name, past=True)
    except NoCampaign as exc:
        raise click.BadParameter(str(exc), param_hint="--campaign") from None


@click.command()
@config_option
@period_options
@click.option("--channel", type=click.Choice(list(CHANNELS)), help="Only this channel.")
@click.option("--campaign", default=None, help="Only this campaign.")
@click.option("--staff", default=None, help="Only this staff member (by name).")
@click.option("--json", "as_json", is_flag=True, help="Print every figure as JSON, under stable keys.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: one row for the total and one per group.")
@click.option(
    "--as-of",
    default=None,
    help="Report time (ISO datetime): registrations and leads after it are not counted (default: now).",
)
def report(
    config_path: Path | None,
    period: str | None,
    from_: str | None,
    to_: str | None,
    channel: str | None,
    campaign: str | None,
    staff: str | None,
    as_json: bool,
    as_csv: bool,
    as_of: str | None,
) -> None:
    """The numbers for a day, week, month or any range: inbound flow, LRR, lag, response, missed calls, LC."""
    from storage.db import open_database

    if as_json and as_csv:
        raise click.UsageError("give either --json or --csv, not both")
    config = _load(config_path)
    now, today = _today(config)
    if as_of:
        try:
            moment = datetime.fromisoformat(as_of)
        except ValueError:
            raise click.BadParameter(
                "use an ISO datetime, e.g. 2026-12-01T09:00", param_hint="--as-of"
            ) from None
        now = moment if moment.tzinfo else moment.replace(tzinfo=config.tz)
        today = now.astimezone(config.tz).date()
    chosen = resolve_period(config, period, from_, to_, today)
    db = open_database(config.database_path)
    try:
        filters = Filters(channel=channel, campaign=_campaign(db, campaign), staff_id=_staff_id(db, staff))
        with collector_held():  # the report's facts are freed on the way out, before it runs again
            data = build_report(db, Scope(chosen, filters, as_of=now), Rules.from_config(config))
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    elif as_csv:
        click.echo(report_csv(data), nl=False)
    else:
        print_report(data, config.campaign_title, money_in(config))


# -- rendering -----------------------------------------------------------------------------------


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{float(value):,.{digits}f}".replace(",", " ")


def _pct(value: float | None) -> str:
    """A share to a tenth of a per cent, never rounded up to "100.0 %" while someone is missing."""
    if value is None:
        return "-"
    shown = round(value * 100, 1)
    if value < 1 and shown == 100:
        shown = 99.9
    return f"{shown:.1f} %"


def whole_shares(parts: dict[str, float | None], total: float | None) -> dict[str, float | None]:
    """``parts`` in whole units that add up to ``total`` in whole units, as a table shows them under
    it: three campaigns at 466.67 each are 467, 467 and 466 under a total of 1 400, not 467 three
    times (largest remainder; each part moves by less than one unit)."""
    known = {name: value for name, value in parts.items() if value is not None}
    if total is None or not known:
        return dict(parts)
    floors = {name: math.floor(value) for name, value in known.items()}
    left = round(total) - sum(floors.values())
    by_remainder = sorted(known, key=lambda name: known[name] - floors[name], reverse=True)
    if 0 <= left <= len(by_remainder):
        for name in by_remainder[:left]:
            floors[name] += 1
    else:  # the parts do not make the total (rounded away from it): each rounded on its own
        floors = {name: round(value) for name, value in known.items()}
    return {name: floors.get(name) for name in parts}


def _min(value: float | None) -> str:
    return "-" if value is None else f"{value:g} min"


def money_in(config: Config) -> Callable[[float | None], str]:
    """Amounts as the digest writes them: ``[leadline] currency`` in the office's language (``45 000 ₽``)."""
    from bot.digest_figures import money  # babel: only the commands that print money load it

    return partial(money, currency=config.leadline.currency, locale=config.leadline.language)


def headline_rows(data: dict[str, Any], money: Callable[[float | None], str]) -> list[tuple[str, str]]:
    """The report as (label, value) lines, in the order an owner reads them; ``money`` writes the amounts."""
    return [
        ("Inbound touches", _num(data["inbound_touches"])),
        ("  of them hidden caller ID", _num(data["hidden_caller_touches"])),
        ("  blocked (counted apart)", _num(data["blocked_touches"])),
        ("Inbound contacts", _num(data["inbound_contacts"])),
        ("  new", _num(data["new_contacts"])),
        ("Registered", _num(data["registered"])),
        ("  not registered", _num(data["unregistered"])),
        ("LRR", _pct(data["lrr"])),
        ("LRR of new contacts", _pct(data["lrr_new"])),
        ("Registration lag p50", _min(data["registration_lag_p50_min"])),
        ("Registration lag p90", _min(data["registration_lag_p90_min"])),
        (
            f"  within the {data['sla']['registration_minutes']} min SLA",
            f"{data['registered_within_sla']} of {data['registration_lag_count']}",
        ),
        ("Response p50 (real time)", _min(data["response_p50_min"])),
        ("Response p90 (real time)", _min(data["response_p90_min"])),
        ("  within 5 min", _pct(data["responded_within_5_min"])),
        ("  within 60 min", _pct(data["responded_within_60_min"])),
        ("  not answered", _num(data["not_responded"])),
        ("Missed calls", _num(data["missed_calls"])),
        ("  not called back", _num(data["missed_not_called_back"])),
        ("  hidden caller ID", _num(data["missed_hidden_caller"])),
        ("Leads", _num(data["leads"])),
        ("  hot / warm / cold", " / ".join(str(v) for v in data["leads_by_temperature"].values())),
        (
            "  qualified / accepted / won / lost",
            f"{data['qualified']} / {data['accepted']} / {data['won']} / {data['lost']}",
        ),
        ("Sales acceptance rate", _pct(data["sales_acceptance_rate"])),
        ("Lead-to-client ratio", _pct(data["lead_to_client_ratio"])),
        ("Sales cycle (median days)", _num(data["sales_cycle_days"], 1)),
        ("Not a lead", _num(data["not_a_lead"])),
        ("Revenue", money(data["revenue"])),
        ("Cost", money(data["cost"])),
        ("LC (lead cost)", money(data["lead_cost"])),
        ("Cost per inbound contact", money(data["cost_per_inbound_contact"])),
        ("Cost per client", money(data["cost_per_client"])),
        ("Program cost share", _pct(data["program_cost_share"])),
    ]


def group_columns(money: Callable[[float | None], str]) -> tuple[tuple[str, str, Callable[[Any], str]], ...]:
    """A group's figures as (header, key, how to write it); ``money`` writes cost and LC as the totals do."""
    return (
        ("touches", "inbound_touches", _num),
        ("contacts", "inbound_contacts", _num),
        ("registered", "registered", _num),
        ("LRR", "lrr", _pct),
        ("lag p50", "registration_lag_p50_min", _min),
        ("lag p90", "registration_lag_p90_min", _min),
        ("missed", "missed_calls", _num),
        ("not called back", "missed_not_called_back", _num),
        ("leads", "leads", _num),
        ("won", "won", _num),
        ("cost", "cost", money),
        ("LC", "lead_cost", money),
    )


#: Speed to lead per group, in a table of its own (the figures above fill a wide line).
RESPONSE_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("contacts", "inbound_contacts", _num),
    ("response p50", "response_p50_min", _min),
    ("response p90", "response_p90_min", _min),
    ("within 5 min", "responded_within_5_min", _pct),
    ("within 60 min", "responded_within_60_min", _pct),
    ("not answered", "not_responded", _num),
)


def print_report(
    data: dict[str, Any], campaign_title: Callable[[str], str], money: Callable[[float | None], str]
) -> None:
    """The report as tables; ``campaign_title`` names a campaign as a person reads it (its config ``title``),
    ``money`` writes an amount in the config's currency (:func:`money_in`)."""
    from rich.console import Console
    from rich.table import Table

    period = data["period"]
    title = f"Leadline report {period['label']} ({period['from']} .. {period['to']}, {period['timezone']})"
    headline = Table(title=title, show_header=False)
    headline.add_column("figure")
    headline.add_column("value", justify="right")
    for label, value in headline_rows(data, money):
        headline.add_row(label, value)
    tables = [headline]
    for by in GROUPINGS:
        groups = data[f"by_{by}"]
        if not groups:
            continue
        if by == "campaign":  # the campaigns' costs as shown add up to the Cost shown above
            shown_costs = whole_shares({name: g["cost"] for name, g in groups.items()}, data["cost"])
            groups = {name: {**g, "cost": shown_costs[name]} for name, g in groups.items()}
        for title, columns in (
            (f"By {by}", group_columns(money)),
            (f"Response time by {by}", RESPONSE_COLUMNS),
        ):
            table = Table(title=title)
            table.add_column(by, no_wrap=True)
            for header, _, _ in columns:
                table.add_column(header, justify="right", no_wrap=True)
            for name, figures in groups.items():
                shown = campaign_title(name) if by == "campaign" else name
                table.add_row(shown, *(fmt(figures[key]) for _, key, fmt in columns))
            tables.append(table)
    if data["goals"]:
        goals = Table(title="Goals this month")
        for header in ("goal", "target", "so far", "heading for"):
            goals.add_column(header, justify="right" if header != "goal" else "left")
        for name, goal in data["goals"].items():
            # The revenue goal is an amount; the others are counts.
            fmt = money if name == "revenue" else _num
            goals.add_row(name, fmt(goal["target"]), fmt(goal["actual"]), fmt(goal["projected"]))
        tables.append(goals)
    # Piped or captured output has no terminal to fit: each table as wide as its figures, so that
    # no amount is cut to "22 500…" (rich would give it 80 columns).
    unbounded = Console(width=_NO_LIMIT)
    width = max(unbounded.measure(table).maximum for table in tables)
    console = Console(width=None if sys.stdout.isatty() else width)
    for table in tables:
        console.print(table)


#: A console width no table reaches, to measure a table's natural width.
_NO_LIMIT = 10_000


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def report_csv(data: dict[str, Any]) -> str:
    """One row for the total and one per group, every figure a column (nested ones as a.b)."""
    rows: list[dict[str, Any]] = []

    def add(group_by: str, group: str, figures: dict[str, Any]) -> None:
        row: dict[str, Any] = {"period_from": data["period"]["from"], "period_to": data["period"]["to"]}
        row.update(group_by=group_by, group=group)
        _flat("", {k: v for k, v in figures.items() if k in _GROUP_KEYS}, row)
        rows.append(row)

    add("total", "", data)
    for by in GROUPINGS:
        for name, figures in data[f"by_{by}"].items():
            add(by, name, figures)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


#: The figures every group has (the total adds period, goals and the groups themselves).
_GROUP_KEYS = frozenset(
    {
        "inbound_touches",
        "inbound_contacts",
        "hidden_caller_touches",
        "blocked_touches",
        "new_contacts",
        "registered",
        "registered_new",
        "unregistered",
        "lrr",
        "lrr_new",
        "registration_lag_p50_min",
        "registration_lag_p90_min",
        "registration_lag_count",
        "registered_within_sla",
        "response_p50_min",
        "response_p90_min",
        "responded_within_5_min",
        "responded_within_60_min",
        "not_responded",
        "missed_calls",
        "missed_not_called_back",
        "missed_hidden_caller",
        "leads",
        "leads_by_temperature",
        "leads_by_stage",
        "qualified",
        "accepted",
        "won",
        "lost",
        "sales_acceptance_rate",
        "lead_to_client_ratio",
        "revenue",
        "sales_cycle_days",
        "not_a_lead",
        "refusal_reasons",
        "cost",
        "cost_items",
        "lead_cost",
        "cost_per_inbound_contact",
        "cost_per_client",
        "program_cost_share",
    }
)


# -- export --------------------------------------------------------------------------------------


@click.command()
@config_option
@partial(period_options, default="everything in the base")
@click.option(
    "--as-of",
    default=None,
    help="The day that day, week, month and the others count from (YYYY-MM-DD; default: today).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("leadline-export"),
    show_default=True,
    help="Folder to write into.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "xlsx", "all"]),
    default="all",
    show_default=True,
    help="CSV files (one per table), one XLSX workbook (one sheet per table), or both.",
)
def export(
    config_path: Path | None,
    period: str | None,
    from_: str | None,
    to_: str | None,
    as_of: str | None,
    out_dir: Path,
    fmt: str,
) -> None:
    """Write contacts, touches, registrations, leads, refusals (not a lead, lost), the block list and responses to CSV and XLSX.

    Everything in the base, or what happened in one period with --period or --from/--to: whole days
    on the office clock. Times are in the office's zone, named in each time column's header.
    """
    config = _load(config_path)
    today = _as_of_day(config, as_of)
    chosen = resolve_period(config, period, from_, to_, today) if (period or from_ or to_) else None
    out_dir.mkdir(parents=True, exist_ok=True)
    counts, written = write_export(config, chosen, out_dir, fmt)
    scope = chosen.label if chosen else "all time"
    click.echo(f"Exported {scope}: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
    for path in written:
        click.echo(f"  {path}")


def write_export(
    config: Config, chosen: Period | None, out_dir: Path, fmt: str
) -> tuple[dict[str, int], list[Path]]:
    """The export's files in ``out_dir`` and each table's rows, all read at one moment of the base.

    ``serve`` may be taking requests meanwhile: read table by table, touches.csv named contacts that
    contacts.csv had not had yet, and the workbook, read after the CSVs, counted other rows than
    they held. The counts returned (the command's summary line) are those of the files written.
    """
    from storage.db import one_reading, open_database
    from storage.export import export_tables

    db = open_database(config.database_path)
    try:
        with one_reading(db):
            tables = export_tables(
                db,
                config.tz,
                chosen,
                region=config.leadline.region,
                source_regions={s.name: s.region for s in config.sources if s.region},
                as_of=_today(config)[0],
            )
            written: list[Path] = []
            counts: dict[str, int] = {}
            if fmt in ("csv", "all"):
                for table in tables:
                    path = out_dir / f"{table.name}.csv"
                    counts[table.name] = write_csv(table, path)
                    written.append(path)
            if fmt in ("xlsx", "all"):
                path = out_dir / "leadline-export.xlsx"
                counts = write_xlsx(tables, path, export_words(config, tables))
                written.append(path)
    finally:
        db.close()
    return counts, written


def export_words(config: Config, tables: list[Table]) -> Words:
    """The workbook's words in the office's language (``[leadline] language``), from the bot's catalogues."""
    from bot import labels
    from bot.catalogues import written_for

    with written_for(config.leadline.language):
        return Words(
            sheets={t.name: labels.export_sheet(t.name) for t in tables},
            columns={c.code: labels.export_column(c.code) for t in tables for c in t.columns},
            campaigns={c.name: config.campaign_title(c.name) for c in config.campaigns},
            yes=labels.yes_no(True),
            no=labels.yes_no(False),
            currency=config.leadline.currency,
        )


def _as_of_day(config: Config, as_of: str | None) -> date:
    """The day that ``day``, ``week``, ``month``… count from: ``--as-of``, else today on the office clock."""
    if not as_of:
        return _today(config)[1]
    try:
        return date.fromisoformat(as_of)
    except ValueError:
        raise click.BadParameter("use a date, e.g. 2026-12-01", param_hint="--as-of") from None


# -- plan ----------------------------------------------------------------------------------------


def _fraction(ctx: click.Context, param: click.Parameter, value: str | None) -> Fraction | None:
    if value is None:
        return None
    from storage.plan import fraction

    try:
        return fraction(value)
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(f"not a number: {value!r} (write 0.2 or 20%)") from None


def _signed_amount(value: str) -> Fraction:
    """A sum of money read as the bot's /plan reads it (``300000``, ``300 000``, ``300k``), its minus
    kept, so that the rule refusing it (above 0) is the caller's."""
    from bot.parsing import MAX_AMOUNT, amount_too_large, parse_amount
    from storage.plan import fraction

    unsigned = value.strip().lstrip("-−")
    amount = parse_amount(unsigned)
    if amount is None and amount_too_large(unsigned):
        raise click.BadParameter(f"{value!r} is more than the largest amount, {MAX_AMOUNT:,.0f}")
    if amount is None:
        raise click.BadParameter(f"not an amount: {value!r} (write 300000, 300 000 or 300k)")
    return fraction(amount) if unsigned == value.strip() else -fraction(amount)


def _revenue(ctx: click.Context, param: click.Parameter, value: str | None) -> Fraction | None:
    if value is None:
        return None
    amount = _signed_amount(value)
    if amount <= 0:  # storage has no rule for a revenue target: 0 would plan 0 clients
        raise click.BadParameter(f"{value!r} is not an amount above 0")
    return amount


def _average_deal(ctx: click.Context, param: click.Parameter, value: str | None) -> Fraction | None:
    """Refused by storage's rule, which also refuses a 90 days' average of 0, before the history is read."""
    if value is None:
        return None
    from storage.errors import AverageDealNotPositive
    from storage.plan import check_average_deal

    amount = _signed_amount(value)
    try:
        check_average_deal(amount)
    except AverageDealNotPositive as exc:
        raise click.BadParameter(str(exc)) from None
    return amount


@click.command()
@config_option
@click.option("--clients", type=int, default=None, help="Clients to win in the period.")
@click.option(
    "--revenue",
    callback=_revenue,
    default=None,
    help="Revenue target, e.g. 300000 or 300k (instead of --clients).",
)
@click.option(
    "--average-deal", callback=_average_deal, default=None, help="Average deal (default: last 90 days)."
)
@click.option("--contact-to-lead", callback=_fraction, default=None, help="Rate, e.g. 0.3 or 30%.")
@click.option("--lead-to-qualified", callback=_fraction, default=None, help="Rate (default: last 90 days).")
@click.option("--qualified-to-won", callback=_fraction, default=None, help="Rate (default: last 90 days).")
@click.option(
    "--margin",
    callback=_fraction,
    default="1",
    show_default=True,
    help="Share of a deal that may pay for getting it.",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=90,
    show_default=True,
    help="History the default rates come from.",
)
@click.option(
    "--as-of", default=None, help="The history ends the day before this date (YYYY-MM-DD; default: today)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(
    config_path: Path | None,
    clients: int | None,
    revenue: Fraction | None,
    average_deal: Fraction | None,
    contact_to_lead: Fraction | None,
    lead_to_qualified: Fraction | None,
    qualified_to_won: Fraction | None,
    margin: Fraction,
    days: int,
    as_of: str | None,
    as_json: bool,
) -> None:
    """How many inbound contacts, leads and qualified leads a target needs, and the highest LC that pays."""
    from storage.db import open_database
    from storage.errors import PlanError, TooFewClients, TwoTargets
    from storage.plan import check_target, plan_from_history
    from storage.reports.report import funnel_history

    try:
        check_target(clients=clients, revenue=revenue)  # storage's rule, which the bot's /plan words too
    except TwoTargets:
        raise click.UsageError(
            "--clients and --revenue are two targets: keep one (--revenue plans the clients it takes"
            " at the average deal)"
        ) from None
    except TooFewClients as exc:
        raise click.BadParameter(str(exc), param_hint="'--clients'") from None
    config = _load(config_path)
    _, today = _today(config)
    if as_of:
        try:
            today = date.fromisoformat(as_of)
        except ValueError:
            raise click.BadParameter("use a date, e.g. 2026-12-01", param_hint="--as-of") from None
    db = open_database(config.database_path)
    try:
        history = funnel_history(db, today, config.tz, days)
    finally:
        db.close()
    try:
        result = plan_from_history(
            history,
            clients=clients,
            revenue=revenue,
            average_deal=average_deal,
            contact_to_lead=contact_to_lead,
            lead_to_qualified=lead_to_qualified,
            qualified_to_won=qualified_to_won,
            margin=margin,
            goal_clients=config.goals.clients,
            goal_revenue=config.goals.revenue,
        )
    except PlanError as exc:
        click.echo(f"Cannot plan: {exc}.", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps({**result.as_dict(), "history": history.label}, indent=2))
        return
    r = result.rates
    money = money_in(config)
    click.echo(
        f"Plan for {result.clients} client(s)"
        + (f", revenue {money(float(result.revenue))}" if result.revenue else "")
    )
    click.echo(
        f"  rates: contact→lead {_pct(None if r.contact_to_lead is None else float(r.contact_to_lead))},"
        f" lead→qualified {_pct(float(r.lead_to_qualified))}, qualified→won {_pct(float(r.qualified_to_won))}"
        f" (history {history.label}: {history.leads} leads, {history.qualified} qualified, {history.won} won)"
    )
    click.echo(f"  inbound contacts  {_num(result.inbound_contacts):>8}")
    click.echo(f"  leads             {_num(result.leads):>8}")
    click.echo(f"  qualified         {_num(result.qualified):>8}")
    click.echo(f"  clients           {_num(result.clients):>8}")
    if result.max_lead_cost is not None:
        click.echo(
            f"  highest LC that pays: {money(float(result.max_lead_cost))}"
            f" (average deal {money(float(result.average_deal or 0))} × lead-to-client {_pct(float(r.lead_to_client))}"
            + (f" × margin {float(margin):g}" if margin != 1 else "")
            + ")"
        )
    else:
        click.echo("  highest LC that pays: give --average-deal (no won deals in the history)")


# -- demo ----------------------------------------------------------------------------------------


@click.command()
@config_option
@click.option(
    "--database",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The demo database to create (default: leadline-demo.db beside the config).",
)
@click.option("--days", type=click.IntRange(1, 120), default=14, show_default=True, help="Days of history.")
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Random seed: the same seed, the same story."
)
@click.option("--force", is_flag=True, help="Replace the demo database if it exists.")
def demo(config_path: Path | None, database: Path | None, days: int, seed: int, force: bool) -> None:
    """Fill a fresh database with a realistic fortnight of a small office, then print the report and digest.

    Calls go through the real Mango and Zadarma parsers (signed as the providers sign them), forms
    through Tilda's, mail through Postmark's; staff register contacts and move leads at realistic
    lags. Without a config file, the defaults are used (Moscow time, RU holidays).
    """
    import asyncio
    import os

    from leadline.serve import claim_database

    explicit = config_path or os.environ.get(CONFIG_ENV)
    base = _load(config_path) if explicit or Path(DEFAULT_CONFIG).exists() else Config()
    now, today = _today(base)
    start = today - timedelta(days=days)
    target = database or base.base_dir / "leadline-demo.db"
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists: pass --force to replace it, or --database for another file")
    # As restore does: a database replaced under a running serve leaves it writing to files nobody
    # opens any more, and answering 200 for every request it then loses.
    claim = claim_database(target)
    if claim is None:
        click.echo(
            f"`leadline serve` is running on {target}: stop it first, or give --database another file;"
            " nothing was replaced.",
            err=True,
        )
        sys.exit(EXIT_RUNTIME)
    from bot.digest import plain, send_digest
    from leadline.demo import Shape, demo_config, run_demo, story, write_demo_config
    from storage.db import Store
    from storage.worktime import WorkingCalendar

    config = demo_config(base, target.resolve(), (start, today))
    actions = story(
        Shape(days=days + 1, seed=seed), start, WorkingCalendar.from_config(config.working_time, config.tz)
    )

    async def run() -> tuple[dict[str, int], Any]:
        from leadline.app import build_capture

        store = Store.open(config.database_path)
        try:
            capture = await build_capture(config, store)
            counts = await run_demo(capture, actions, until=now)
            sent = await send_digest(config, store, today - timedelta(days=1), now=now)
            return counts, sent
        finally:
            await store.close()

    try:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        counts, sent = asyncio.run(run())
    finally:
        os.close(claim)
    click.echo(
        f"Demo database {config.database_path}: {counts['requests']} provider requests"
        f" ({counts['rejected']} rejected), {counts['staff_actions']} registrations and lead moves."
    )
    from storage.db import open_database

    db = open_database(config.database_path)
    try:
        period = Period(start, today - timedelta(days=1), config.tz)
        print_report(
            build_report(db, Scope(period, as_of=now), Rules.from_config(config)),
            config.campaign_title,
            money_in(config),
        )
    finally:
        db.close()
    click.echo("\nYesterday's digest, as the owner gets it:\n")
    # The owner's text, lists of (made-up) people included: the log's copy names nobody.
    click.echo(plain(sent.digest.text))
    click.echo(f"\nChart: {sent.chart}")
    click.echo(f"The demo's config, to run `leadline report` on it: {write_demo_config(config)}")
