"""The OS-release burndown: instances per OS release over the recorded fleet snapshots (matplotlib,
Agg).

The time axis has to read right for the first snapshot, for snapshots minutes apart (a demo, a
test) and for years of them: the x values are matplotlib date numbers (``date2num``, UTC), and one
``AutoDateLocator`` both places the ticks and tells the
``ConciseDateFormatter`` what it placed (years, days or minutes; the rest of the date goes to the
offset at the axis's end). A span shorter than ``MIN_SPAN`` is widened around its middle: a date
axis over a single instant would otherwise be stretched to ±2 years by the locator's
``nonsingular`` and labelled with years nobody recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from pipelines.fleet.view import Burndown

# The narrowest time axis drawn: a first snapshot sits in the middle of an hour (and of a day for
# the offset's date), labelled to the minute.
MIN_SPAN = timedelta(hours=1)


def burndown_figure(
    data: Burndown, past_eol: frozenset[str] = frozenset(), clock_label: str = "UTC"
) -> Figure:
    """The burndown as a figure: one line per OS release, releases past their end of life dashed
    and named so, the time axis labelled on ``clock_label`` (the clock the snapshots were taken
    on). The caller saves and closes it."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    times = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in data.times]
    for name, counts in sorted(data.series.items()):
        label = f"{name} (past end of life)" if name in past_eol else name
        ax.plot(
            mdates.date2num(times),
            counts,
            marker="o",
            ms=3,
            ls="--" if name in past_eol else "-",
            label=label,
        )
    if times and max(times) - min(times) < MIN_SPAN:
        ax.set_xlim(mdates.date2num(list(_short_span(min(times), max(times)))))
    locator = mdates.AutoDateLocator(tz=UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    ax.set_xlabel(f"snapshot taken ({clock_label})", fontsize=8)
    ax.set_ylabel("instances")
    ax.set_ylim(bottom=0)
    ax.set_title("imagefleet: instances per OS release", fontsize=10)
    if data.series:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def _short_span(first: datetime, last: datetime) -> tuple[datetime, datetime]:
    """``MIN_SPAN`` around a span shorter than it, kept inside the day it is on: the formatter
    names the day of the axis's last tick, so a window past midnight would name the next day (or
    year, on 31 December)."""
    middle = first + (last - first) / 2
    lo, hi = middle - MIN_SPAN / 2, middle + MIN_SPAN / 2
    day = first.replace(hour=0, minute=0, second=0, microsecond=0)
    if last < day + timedelta(days=1):  # all on one day: keep the axis on it
        end = day + timedelta(days=1) - timedelta(minutes=1)
        shift = max(day - lo, min(timedelta(0), end - hi))
        lo, hi = lo + shift, hi + shift
    return lo, hi


def burndown_plot(
    data: Burndown,
    path: str | Path,
    past_eol: frozenset[str] = frozenset(),
    clock_label: str = "UTC",
) -> Path:
    """The burndown (``burndown_figure``) saved as a PNG at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = burndown_figure(data, past_eol, clock_label)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
