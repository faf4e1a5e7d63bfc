"""The record of one benchmark figure, and how a figure's processes are measured.

A `Figure` is one row of imagefleet's speed record: a measured value with the baseline measured
alongside it in the same run, so a loaded or slow machine moves both and the ratio stays
meaningful. Area benches (``bench.perf``, ``bench.changelog``, ...) return figures;
``bench.record`` runs them, prints them and writes ``bench/results.json``.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parents[1]

# wall: elapsed seconds (moves with machine load); cpu: user + system seconds of the process
# (steadier on a shared host); virtual: time of an injected clock (independent of the machine);
# count: not a time (API calls, bytes).
Clock = Literal["wall", "cpu", "virtual", "count"]


@dataclass(frozen=True)
class Figure:
    """One measured figure and its same-run baseline; ``ratio`` is value / baseline."""

    name: str
    value: float
    unit: str
    baseline: float | None
    baseline_label: str
    clock: Clock = "wall"
    goal: str | None = None  # e.g. "<= 0.3 s", "<= 1.5x the baseline"
    met: bool | None = None  # whether the goal was met; None without a goal
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline or math.isnan(self.baseline):
            return None
        return self.value / self.baseline

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": None if self.ratio is None else round(self.ratio, 3)}


@dataclass(frozen=True)
class Measured:
    """One fresh process: wall seconds, user + system CPU seconds, and peak RSS in MB."""

    seconds: float
    cpu_seconds: float
    peak_mb: float


def measure_process(
    argv: Sequence[str], *, ok_codes: tuple[int, ...] = (0,), cwd: Path | None = None
) -> Measured:
    """Run ``argv`` once with output discarded; the rusage is of that process alone (``wait4``).

    The repository root goes first on ``PYTHONPATH`` so the code measured is this tree's. The
    process writes the tree's bytecode (``__pycache__``, ignored by git) even where the
    environment says ``PYTHONDONTWRITEBYTECODE``: an installed imagefleet has its bytecode, as
    its dependencies in the venv do (pip compiles at install), and a start-up figure that
    recompiled every module would measure the compiler."""
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {
        "PYTHONPATH": path
    }
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if code not in ok_codes:
        raise RuntimeError(f"{' '.join(argv[:4])} exited {code}: {err.strip()[-300:]}")
    return Measured(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0)


def best_of(fn: Callable[[], Measured], repeat: int = 3, *, warmup: int = 0) -> Measured:
    """The fastest of ``repeat`` runs (by CPU time): the run least disturbed by other load.

    ``warmup`` runs go first, unmeasured (a fresh process's first run compiles the bytecode)."""
    for _ in range(warmup):
        fn()
    return min((fn() for _ in range(repeat)), key=lambda m: m.cpu_seconds)


__all__ = ["REPO_ROOT", "Clock", "Figure", "Measured", "best_of", "measure_process"]
