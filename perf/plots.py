"""PNG plots of a comparison (forest plot) and of the raw sample distributions (matplotlib, Agg)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from perf.compare import Comparison

_COLORS = {"regression": "#c62828", "improvement": "#2e7d32", "no_change": "#455a64",
           "inconclusive": "#f9a825"}


def forest_plot(comparison: Comparison, path: str | Path) -> Path:
    """Ratio of medians with its CI, one row per (metric, instance type); a line at 1 and dashed
    lines at each row's ±threshold; regressions drawn red and bold."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cells = sorted(comparison.comparisons, key=lambda c: (c.metric, c.instance_type))
    n = max(1, len(cells))
    fig, ax = plt.subplots(figsize=(9.5, 1.4 + 0.32 * n))
    for y, c in enumerate(reversed(cells)):
        color = _COLORS.get(c.verdict, "black")
        if math.isfinite(c.ci_low) and math.isfinite(c.ci_high):
            ax.hlines(y, c.ci_low, c.ci_high, color=color, lw=2.5 if c.verdict == "regression" else 1.5)
        if math.isfinite(c.ratio):
            ax.plot(c.ratio, y, "o", color=color, ms=6 if c.verdict == "regression" else 4)
        ax.vlines([1 - c.threshold, 1 + c.threshold], y - 0.4, y + 0.4, colors="grey",
                  linestyles="dashed", lw=0.8)
    ax.axvline(1.0, color="black", lw=1)
    labels = [f"{c.metric} · {c.instance_type}" + (" (higher better)" if c.higher_is_better else "")
              for c in reversed(cells)]
    ax.set_yticks(range(len(cells)), labels, fontsize=8)
    for tick, c in zip(ax.get_yticklabels(), reversed(cells)):
        if c.verdict == "regression":
            tick.set_color(_COLORS["regression"])
            tick.set_fontweight("bold")
    ax.set_ylim(-0.8, n - 0.2)
    ax.set_xlabel("candidate / baseline median (95 % CI); dashed: ± threshold")
    ax.set_title(f"imagefleet perf comparison: {comparison.verdict}")
    handles = [plt.Line2D([], [], color=col, marker="o", ls="-", label=v) for v, col in _COLORS.items()]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def distribution_plots(df: pd.DataFrame, out_dir: str | Path, *, max_points: int = 2000,
                       seed: int = 0) -> list[Path]:
    """One PNG per metric: a box per (instance type, arm) with the samples strip-plotted on top
    (at most ``max_points`` random points per box, so huge cells stay drawable)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths: list[Path] = []
    for metric, mdf in df.groupby("metric", observed=True, sort=True):
        types = sorted(mdf["instance_type"].astype(str).unique())
        boxes, positions, colors = [], [], []
        for i, it in enumerate(types):
            for j, arm in enumerate(("baseline", "candidate")):
                sel = mdf[(mdf["instance_type"].astype(str) == it) & (mdf["arm"].astype(str) == arm)]
                boxes.append(sel["value"].to_numpy(dtype=float))
                positions.append(i * 3 + j)
                colors.append("#1565c0" if arm == "baseline" else "#ef6c00")
        fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(types) + 2), 4))
        nonempty = [k for k, b in enumerate(boxes) if len(b)]
        bp = ax.boxplot([boxes[k] for k in nonempty], positions=[positions[k] for k in nonempty],
                        widths=0.7, patch_artist=True, showfliers=False)
        for patch, k in zip(bp["boxes"], nonempty):
            patch.set_facecolor(colors[k])
            patch.set_alpha(0.35)
        for k in nonempty:
            vals = boxes[k]
            if len(vals) > max_points:
                vals = rng.choice(vals, max_points, replace=False)
            ax.plot(positions[k] + rng.uniform(-0.2, 0.2, len(vals)), vals, ".", ms=2,
                    color=colors[k], alpha=0.6)
        ax.set_xticks([i * 3 + 0.5 for i in range(len(types))], types, fontsize=8)
        unit = str(mdf["unit"].iloc[0])
        ax.set_ylabel(f"{metric} ({unit})" if unit else str(metric))
        ax.set_title(f"{metric}: baseline (blue) vs candidate (orange)")
        fig.tight_layout()
        p = out / f"dist_{_slug(str(metric))}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(p)
    return paths


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "metric"


__all__ = ["distribution_plots", "forest_plot"]
