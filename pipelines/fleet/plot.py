"""The OS-release burndown: instances per OS release over the recorded fleet snapshots (matplotlib,
Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.dates as mdates
import matplotlib.pyplot as plt

from pipelines.fleet.view import Burndown


def burndown_plot(data: Burndown, path: str | Path, past_eol: frozenset[str] = frozenset()) -> Path:
    """One line per OS release; releases past their end of life drawn dashed and named so."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for name, counts in sorted(data.series.items()):
        label = f"{name} (past end of life)" if name in past_eol else name
        ax.plot(
            mdates.date2num(data.times),
            counts,
            marker="o",
            ms=3,
            ls="--" if name in past_eol else "-",
            label=label,
        )
    ax.set_ylabel("instances")
    ax.set_ylim(bottom=0)
    ax.set_title("imagefleet: instances per OS release", fontsize=10)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    if data.series:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
