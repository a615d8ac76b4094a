"""The digest's chart: a PNG of the last days' inbound contacts against registered ones, and lead cost.

matplotlib is imported inside :func:`render_chart`: it costs a process ~40 MB and a second, and
only the digest and ``/report`` draw.
"""

from __future__ import annotations

import io

from babel.dates import format_date

from bot.catalogues import gettext as _
from bot.digest_figures import Figures, money


def render_chart(figures: Figures, locale: str) -> bytes:
    """A PNG: inbound contacts vs registered per day with the LRR line; LC by campaign this month.
    Its words are in the current language (see :func:`write`)."""
    from matplotlib.figure import Figure

    series = figures.series
    days = [d for d, _group in series]
    inbound = [g.inbound_contacts for _day, g in series]
    registered = [g.registered for _day, g in series]
    lrr = [g.lrr * 100 if g.lrr is not None else float("nan") for _day, g in series]

    figure = Figure(figsize=(10, 4.2), dpi=110)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    x = range(len(days))
    left.bar([i - 0.2 for i in x], inbound, width=0.4, label=_("inbound contacts"), color="#9db4d0")
    left.bar([i + 0.2 for i in x], registered, width=0.4, label=_("registered"), color="#2b6cb0")
    left.set_xticks(list(x), [d.strftime("%d.%m") for d in days], rotation=45, fontsize=8)
    left.set_title(_("Last {n} day", "Last {n} days", len(days)).format(n=len(days)))
    left.set_ylabel(_("contacts"))
    twin = left.twinx()
    twin.plot(list(x), lrr, color="#d9534f", marker="o", label="LRR %")
    # Head-room above the bars and the 100 % mark, where the legend sits without hiding a day.
    left.set_ylim(0, max([*inbound, 1]) * 1.4)
    twin.set_ylim(0, 140)
    twin.set_yticks([0, 20, 40, 60, 80, 100])
    twin.set_ylabel("LRR %")
    handles = left.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    left.legend(
        handles[0] + more[0], handles[1] + more[1], loc="upper left", ncol=3, fontsize=8, frameon=False
    )

    priced = sorted(
        (
            (name, g["lead_cost"])
            for name, g in figures.month_report["by_campaign"].items()
            if g["lead_cost"] is not None
        ),
        key=lambda item: item[1],
    )
    if priced:
        right.barh([n for n, _cost in priced], [v for _name, v in priced], color="#f0ad4e")
        for i, (_name, value) in enumerate(priced):
            right.text(value, i, f" {money(value)}", va="center", fontsize=8)
        right.set_xlim(0, max(v for _name, v in priced) * 1.35)
    else:
        right.text(0.5, 0.5, _("no costs or leads yet"), ha="center", va="center", transform=right.transAxes)
    month = format_date(figures.period.end, _("MMM y"), locale=locale)
    right.set_title(_("Lead cost, {month} so far").format(month=month))
    right.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
