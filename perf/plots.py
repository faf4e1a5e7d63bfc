"""PNG plots of a comparison (forest plot) and of the raw sample distributions (matplotlib, Agg)."""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from perf.compare import CellComparison, Comparison

_COLORS = {
    "regression": "#c62828",
    "improvement": "#2e7d32",
    "no_change": "#455a64",
    "inconclusive": "#f9a825",
}


# Ticks at round percentages of change (a log axis has none between decades by itself).
_RATIO_TICKS = [
    1 + p / 100 for p in (-90, -50, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 50, 100, 200, 500)
]


def ratio_window(cells: Sequence[CellComparison]) -> tuple[float, float]:
    """The forest plot's x range on a log axis, symmetric around 1: every point estimate and every
    ±threshold line, padded by half. Intervals reaching beyond it are clipped and marked, so one
    wide interval never squeezes the other rows."""
    logs = [abs(math.log(c.ratio)) for c in cells if math.isfinite(c.ratio) and c.ratio > 0]
    for c in cells:
        logs += [abs(math.log(1 + c.threshold))] + (
            [abs(math.log(1 - c.threshold))] if c.threshold < 1 else []
        )
    half = max(max(logs, default=0.0) * 1.5, 0.01)
    return math.exp(-half), math.exp(half)


def _interval(
    ax: Axes, y: float, c: CellComparison, window: tuple[float, float], color: str
) -> None:
    """One row's interval, clipped to the window; a clipped end is an arrow with its true value."""
    lo, hi = window
    lw = 2.5 if c.verdict == "regression" else 1.5
    left, right = max(c.ci_low, lo), min(c.ci_high, hi)
    if left < right:
        ax.hlines(y, left, right, color=color, lw=lw)
    for value, edge, marker, align in ((c.ci_low, lo, "<", "left"), (c.ci_high, hi, ">", "right")):
        if (value < edge) if marker == "<" else (value > edge):
            ax.plot(edge, y, marker=marker, color=color, ms=7, clip_on=False)
            ax.annotate(
                f"{value - 1:+.0%}",
                (edge, y),
                xytext=(8 if align == "left" else -8, 5),
                textcoords="offset points",
                ha=align,
                fontsize=7,
                color=color,
            )


def forest_figure(comparison: Comparison) -> Figure:
    """Ratio of medians with its CI on a log-ratio axis, one row per (metric, instance type); a
    line at 1 and dashed lines at each row's ±threshold; regressions red and bold; intervals beyond
    the window clipped with an arrow and their true bound."""
    cells = sorted(comparison.comparisons, key=lambda c: (c.metric, c.instance_type))
    n = max(1, len(cells))
    window = ratio_window(cells)
    fig, ax = plt.subplots(figsize=(9.5, 1.6 + 0.32 * n))
    ax.set_xscale("log")
    for y, c in enumerate(reversed(cells)):
        color = _COLORS.get(c.verdict, "black")
        if math.isfinite(c.ci_low) and math.isfinite(c.ci_high):
            _interval(ax, y, c, window, color)
        if math.isfinite(c.ratio) and c.ratio > 0:
            ax.plot(
                min(max(c.ratio, window[0]), window[1]),
                y,
                "o",
                color=color,
                ms=6 if c.verdict == "regression" else 4,
            )
        ax.vlines(
            [1 - c.threshold, 1 + c.threshold],
            y - 0.4,
            y + 0.4,
            colors="grey",
            linestyles="dashed",
            lw=0.8,
        )
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xlim(*window)
    ax.xaxis.set_major_locator(
        mticker.FixedLocator([r for r in _RATIO_TICKS if window[0] <= r <= window[1]])
    )
    ax.xaxis.set_major_formatter(
        mticker.FuncFormatter(lambda x, _: f"{x - 1:+.0%}" if abs(x - 1) > 1e-9 else "0")
    )
    ax.xaxis.set_minor_locator(mticker.NullLocator())
    labels = [
        f"{c.metric} · {c.instance_type}" + (" (higher better)" if c.higher_is_better else "")
        for c in reversed(cells)
    ]
    ax.set_yticks(range(len(cells)), labels, fontsize=8)
    for tick, c in zip(ax.get_yticklabels(), reversed(cells), strict=True):
        if c.verdict == "regression":
            tick.set_color(_COLORS["regression"])
            tick.set_fontweight("bold")
    ax.set_ylim(-0.8, n - 0.2)
    ax.set_xlabel(
        "candidate vs baseline median, log scale (95 % CI; dashed: ± threshold; ▶ clipped)"
    )
    ax.set_title(f"imagefleet perf comparison: {comparison.verdict}")
    handles = [Line2D([], [], color=col, marker="o", ls="-", label=v) for v, col in _COLORS.items()]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def forest_plot(comparison: Comparison, path: str | Path) -> Path:
    """The forest figure as a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = forest_figure(comparison)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


_ARM_COLORS = {"baseline": "#1565c0", "candidate": "#ef6c00"}
_TITLE_POINTS = 10


def fitted_title(text: str, width_in: float, points: float = _TITLE_POINTS) -> str:
    """``text`` wrapped to the figure's width (a character is about 0.6 em wide in DejaVu Sans)."""
    chars = max(12, int(width_in * 72 / (points * 0.6)) - 2)
    return textwrap.fill(text, chars, break_on_hyphens=False)


def distribution_figure(
    metric: str, mdf: pd.DataFrame, rng: np.random.Generator, max_points: int
) -> Figure:
    """One metric: a box per (instance type, arm), samples strip-plotted on top (at most
    ``max_points`` per box), the arms named in a legend and a title wrapped to fit."""
    types = sorted(mdf["instance_type"].astype(str).unique())
    boxes, positions, colors = [], [], []
    for i, it in enumerate(types):
        for j, arm in enumerate(_ARM_COLORS):
            sel = mdf[(mdf["instance_type"].astype(str) == it) & (mdf["arm"].astype(str) == arm)]
            boxes.append(sel["value"].to_numpy(dtype=float))
            positions.append(i * 3 + j)
            colors.append(_ARM_COLORS[arm])
    width = max(4.5, 1.6 * len(types) + 2)
    fig, ax = plt.subplots(figsize=(width, 4))
    nonempty = [k for k, b in enumerate(boxes) if len(b)]
    bp = ax.boxplot(
        [boxes[k] for k in nonempty],
        positions=[positions[k] for k in nonempty],
        widths=0.7,
        patch_artist=True,
        showfliers=False,
    )
    for patch, k in zip(bp["boxes"], nonempty, strict=True):
        patch.set_facecolor(colors[k])
        patch.set_alpha(0.35)
    for k in nonempty:
        vals = boxes[k]
        if len(vals) > max_points:
            vals = rng.choice(vals, max_points, replace=False)
        ax.plot(
            positions[k] + rng.uniform(-0.2, 0.2, len(vals)),
            vals,
            ".",
            ms=2,
            color=colors[k],
            alpha=0.6,
        )
    ax.set_xticks([i * 3 + 0.5 for i in range(len(types))], types, fontsize=8)
    unit = str(mdf["unit"].iloc[0])
    ax.set_ylabel(fitted_title(f"{metric} ({unit})" if unit else metric, 3.8, 9), fontsize=9)
    fig.suptitle(
        fitted_title(metric, width), fontsize=_TITLE_POINTS
    )  # centred on the figure, not the axes
    ax.legend(
        handles=[
            Line2D([], [], color=c, marker="s", ls="", alpha=0.6, label=a)
            for a, c in _ARM_COLORS.items()
        ],
        fontsize=7,
        loc="best",
    )
    fig.tight_layout()
    return fig


def distribution_plots(
    df: pd.DataFrame, out_dir: str | Path, *, max_points: int = 2000, seed: int = 0
) -> list[Path]:
    """One PNG per metric (``distribution_figure``), named ``dist_<metric>.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths: list[Path] = []
    for metric, mdf in df.groupby("metric", observed=True, sort=True):
        fig = distribution_figure(str(metric), mdf, rng, max_points)
        p = out / f"dist_{_slug(str(metric))}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(p)
    return paths


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "metric"


__all__ = [
    "distribution_figure",
    "distribution_plots",
    "forest_figure",
    "forest_plot",
    "ratio_window",
]
