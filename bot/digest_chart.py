"""The digest's chart, drawn for a phone: a portrait PNG an owner reads without zooming.

1080×1350 pixels (Instagram's portrait 4:5, what a phone shows full width), in type large enough
at that width: the last 14 days of inbound contacts against registered ones, with the LRR line and
the days off shaded, above the month's lead cost by campaign in the config's currency.
A day with fewer than :data:`bot.digest_figures.MIN_CONTACTS_FOR_LRR` inbound contacts has no LRR
point: its percentage says nothing and would pull the eye.

matplotlib is imported inside :func:`render_chart`: it costs a process ~40 MB and a second, and
only the digest and ``/report`` draw.
"""

from __future__ import annotations

import io
import textwrap
import threading

from babel.dates import format_date

from bot.catalogues import gettext as _
from bot.digest_figures import MIN_CONTACTS_FOR_LRR, Figures, dearest_campaigns, leadless, money
from leadline.config import Config

#: Inches at :data:`DPI`: 1080×1350 pixels.
SIZE = (7.2, 9.0)
DPI = 150
#: Points at 150 dpi; on a phone showing the 1080 pixels in ~390 points, 15 pt here reads as ~11 pt.
TEXT, SMALL, TITLE = 15, 13, 19
INBOUND, REGISTERED, LRR, COST, DAY_OFF = "#9db4d0", "#2b6cb0", "#d9534f", "#f0ad4e", "#eeeeee"
#: A campaign title longer than this is cut short with "…" above its bar (shorter still where its
#: label would run off the picture).
TITLE_WIDTH = 34
#: Where a label above a bar must end, as a share of the picture's width: a little short of the edge.
RIGHT_EDGE = 0.98
#: The dearest campaigns shown; more would not fit at phone size.
MAX_CAMPAIGNS = 6
#: matplotlib's settings are one global: charts drawn at once on the store's reader threads (two
#: /report, or one beside the digest) would end each other's settings mid-drawing.
_DRAWING = threading.Lock()


def lrr_point(inbound_contacts: int, lrr: float | None) -> float:
    """A day's LRR in per cent for the line, or NaN (no point, a gap in the line) for a day with too
    few contacts for a rate to mean anything."""
    if lrr is None or inbound_contacts < MIN_CONTACTS_FOR_LRR:
        return float("nan")
    return lrr * 100


def _label(name: str, none: bool, width: int) -> str:
    """A campaign's title above its bar, cut at a word to ``width`` characters; one that spent with
    no lead yet says so after it."""
    title = textwrap.shorten(name, width, placeholder="…")
    return _("{campaign}: spent, no leads yet").format(campaign=title) if none else title


def render_chart(figures: Figures, config: Config, locale: str) -> bytes:
    """The PNG, its words in the current language (see :func:`bot.digest.write`)."""
    from matplotlib import rc_context

    # A "$" in a campaign title (free text in the config) or in a translation is a dollar, never
    # mathtext: a "$$" title made every /report and digest raise. Every text, tick label and legend
    # entry is made and drawn inside this context, so none of them is read as maths.
    with _DRAWING, rc_context({"text.parse_math": False}):
        return _draw_chart(figures, config, locale)


def _draw_chart(figures: Figures, config: Config, locale: str) -> bytes:
    """Only :func:`render_chart`, which turns mathtext off around it, calls this."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.text import Text
    from matplotlib.ticker import MaxNLocator

    series = figures.series
    days = [d for d, _group in series]
    inbound = [g.inbound_contacts for _day, g in series]
    registered = [g.registered for _day, g in series]
    lrr = [lrr_point(g.inbound_contacts, g.lrr) for _day, g in series]

    figure = Figure(figsize=SIZE, dpi=DPI)
    top, bottom = figure.subplots(2, 1, gridspec_kw={"height_ratios": [3, 2], "hspace": 0.5})
    x = list(range(len(days)))
    for i, day in enumerate(days):
        if day in figures.days_off:
            top.axvspan(i - 0.5, i + 0.5, color=DAY_OFF, zorder=0)
    top.bar([i - 0.2 for i in x], inbound, width=0.4, color=INBOUND, zorder=2)
    top.bar([i + 0.2 for i in x], registered, width=0.4, color=REGISTERED, zorder=2)
    labels = [f"{format_date(d, 'EEEEEE', locale=locale)}\n{d.day}" for d in days]
    top.set_xticks(x, labels, fontsize=SMALL)
    top.set_xlim(-0.6, len(days) - 0.4)
    top.tick_params(axis="y", labelsize=SMALL)
    top.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))  # people, not fractions of them
    top.set_ylim(0, max([*inbound, 1]) * 1.15)
    top.set_ylabel(_("contacts"), fontsize=TEXT)
    top.set_title(_("Last {n} day", "Last {n} days", len(days)).format(n=len(days)), fontsize=TITLE, pad=48)
    twin = top.twinx()
    twin.plot(x, lrr, color=LRR, marker="o", markersize=7, linewidth=2.5, zorder=3)
    twin.set_ylim(0, 105)
    twin.set_yticks([0, 25, 50, 75, 100], ["0", "25", "50", "75", "100 %"], fontsize=SMALL)
    for axis in (top, twin):
        axis.spines["top"].set_visible(False)
    handles = [
        Patch(color=INBOUND, label=_("inbound contacts")),
        Patch(color=REGISTERED, label=_("registered")),
        twin.lines[0],
        Patch(color=DAY_OFF, label=_("days off")),
    ]
    handles[2].set_label(_("LRR (days with {n}+ contacts)").format(n=MIN_CONTACTS_FOR_LRR))
    top.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        ncol=2,
        fontsize=SMALL - 1,
        frameon=False,
        borderaxespad=0.2,
    )

    currency = config.leadline.currency
    # The dearest at the top (the last bar); a campaign that spent and has no lead yet shows its
    # spend, in the LRR's red and marked so: the least its lead will cost.
    priced = [
        (config.campaign_title(name), g["cost"] if leadless(g) else g["lead_cost"], leadless(g))
        for name, g in dearest_campaigns(figures.month_report["by_campaign"])[:MAX_CAMPAIGNS]
    ][::-1]
    month = format_date(figures.period.end, _("MMM y"), locale=locale)
    bottom.set_title(_("Lead cost, {month} so far").format(month=month), fontsize=TITLE, pad=12)
    bottom.set_axis_off()
    titles: list[tuple[Text, str, bool]] = []
    if priced:
        # Each title above its bar, not beside it: a long title takes the width, not the bars'.
        values = [value for _name, value, _none in priced]
        colours = [LRR if none else COST for _name, _value, none in priced]
        bottom.barh(range(len(values)), values, height=0.42, color=colours)
        for i, (name, value, none) in enumerate(priced):
            label = bottom.text(0, i + 0.27, _label(name, none, TITLE_WIDTH), va="bottom", fontsize=TEXT)
            titles.append((label, name, none))
            bottom.text(value, i, " " + money(value, currency, locale), va="center", fontsize=TEXT)
        bottom.set_xlim(0, max(values) * 1.5)
        bottom.set_ylim(-0.4, len(values) - 0.1)
    else:
        bottom.text(
            0.5,
            0.5,
            _("no costs or leads yet"),
            ha="center",
            va="center",
            fontsize=TEXT,
            transform=bottom.transAxes,
        )
    figure.subplots_adjust(left=0.11, right=0.87, top=0.86, bottom=0.03)
    # Letters differ in width, and a translation makes the words after a title longer ("spent, no
    # leads yet" is half as long again in Russian): each label is measured as drawn, and its title
    # shortened until the whole label ends inside the picture, so its last words are never the cut.
    renderer = FigureCanvasAgg(figure).get_renderer()  # type: ignore[no-untyped-call]
    edge = figure.bbox.x1 * RIGHT_EDGE
    for label, name, none in titles:
        width = TITLE_WIDTH
        while width > 1 and label.get_window_extent(renderer).x1 > edge:
            width -= 1
            label.set_text(_label(name, none, width))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
