"""`make bench`: imagefleet's speed record, every figure with its baseline from the same run.

Each registered bench runs in its own process (memory figures stay separate and one bench's
imports cannot speed up the next) and returns `Figure` records. The runner prints them, writes
``bench/results.json`` with the machine they ran on, and rewrites the table in
``docs/bench.md``. An area adds a bench with one `Bench` row in ``REGISTRY``, naming a
``module:function`` that returns a list of figures.

``python -m bench.record [--only NAME ...] [--no-docs] [--table-only]``
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.measure import REPO_ROOT, Figure, best_of, measure_process

RESULTS = REPO_ROOT / "bench" / "results.json"
DOC = REPO_ROOT / "docs" / "bench.md"
TABLE_START, TABLE_END = "<!-- bench:table -->", "<!-- /bench:table -->"
CLI_VERSION_GOAL = 0.3


@dataclass(frozen=True)
class Bench:
    """One entry of the record: ``target`` is ``module:function`` returning ``list[Figure]``."""

    name: str
    target: str
    about: str


REGISTRY: tuple[Bench, ...] = (
    Bench("cli", "bench.record:cli_figures", "`imagefleet --version` in a fresh process"),
    Bench("changelog", "bench.changelog:figures", "`changelog diff` of 2 x 5,000 packages"),
    Bench("perf", "bench.perf:figures", "`perf compare` from 100k to 10M rows"),
    Bench(
        "exposure",
        "bench.exposure:figures",
        "`exposure` over a 180,000-instance fleet view and 120 bases' manifests, in process",
    ),
    Bench(
        "agent-size",
        "bench.install_size:figures",
        "the slim agent's installed dependencies against imagefleet's, from the venv's metadata",
    ),
    Bench("canary-plan", "bench.canary_figures:plan_figures", "the wave planner at 180k instances"),
    Bench(
        "canary-api",
        "bench.canary_figures:api_call_figures",
        "API calls per instance replaced, local endpoint, virtual clock",
    ),
    Bench(
        "canary-sim",
        "bench.canary_figures:simulation_figures",
        "a 180,000-instance rollout on the simulator (canary.simulate), virtual clock",
    ),
    Bench(
        "canary-sim-accounts",
        "bench.canary_figures:accounts_figures",
        "the 180k rollout over 20 accounts x 4 regions (a budget each), simulator's rollout, "
        "against the same fleet in one account",
    ),
    Bench(
        "canary-sim-dynamodb",
        "bench.canary_figures:dynamodb_figures",
        "the same rollout with the controller's state in DynamoDB on the embedded endpoint",
    ),
)


# --- the core's own figure
# --------------------------------------------------------------------------
def cli_figures() -> list[Figure]:
    """``imagefleet --version`` against ``python -c pass``, best of five fresh processes each."""
    ours = best_of(
        lambda: measure_process([sys.executable, "-m", "imagefleet.cli", "--version"]), 5, warmup=1
    )
    base = best_of(lambda: measure_process([sys.executable, "-c", "pass"]), 5, warmup=1)
    return [
        Figure(
            "imagefleet --version",
            round(ours.seconds, 3),
            "s",
            round(base.seconds, 3),
            "python -c pass",
            clock="wall",
            goal=f"<= {CLI_VERSION_GOAL} s",
            met=ours.seconds <= CLI_VERSION_GOAL,
            detail={
                "cpu_seconds": round(ours.cpu_seconds, 3),
                "peak_mb": round(ours.peak_mb),
                "baseline_cpu_seconds": round(base.cpu_seconds, 3),
                "baseline_peak_mb": round(base.peak_mb),
            },
        ),
    ]


# --- running
# ----------------------------------------------------------------------------------------
def _resolve(target: str) -> Any:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def run_one(bench: Bench, out: Path) -> None:
    """In the child process: run one bench and write its figures as JSON to ``out``."""
    figures = _resolve(bench.target)()
    out.write_text(json.dumps([f.to_dict() for f in figures]))


def _run_isolated(bench: Bench) -> tuple[list[dict[str, Any]], str | None, float]:
    """Run ``bench`` in a fresh process; its figures, an error line or None, and its seconds."""
    with tempfile.TemporaryDirectory(prefix="imagefleet-bench-") as tmp:
        out = Path(tmp) / "figures.json"
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
        )
        started = time.monotonic()
        code = subprocess.call(
            [sys.executable, "-m", "bench.record", "--child", bench.name, str(out)], env=env
        )
        seconds = time.monotonic() - started
        if code or not out.exists():
            return [], f"exit {code}", seconds
        figures: list[dict[str, Any]] = json.loads(out.read_text())
        return figures, None, seconds


def machine() -> dict[str, Any]:
    """What the figures were measured on: cores, CPU, memory, Python, load, date, commit."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu": _cpu_model(),
        "memory_gb": _memory_gb(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _commit(),
    }
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


# --- output
# -----------------------------------------------------------------------------------------
def _num(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    else:
        text = f"{value:,}"
    return f"{text} {unit}".strip()


def _clock(f: dict[str, Any]) -> str:
    """How a time was taken, for figures that are times."""
    return (
        f" ({f['clock']})" if f["clock"] in ("wall", "cpu", "virtual") and f["unit"] == "s" else ""
    )


def line(f: dict[str, Any]) -> str:
    """One figure as a line of text: value, baseline, ratio, goal."""
    ratio = f"{f['ratio']:.2f}x" if f.get("ratio") is not None else "-"
    goal = f"  goal {f['goal']}: {'met' if f['met'] else 'MISSED'}" if f.get("goal") else ""
    return (
        f"{f['name']}: {_num(f['value'], f['unit'])}{_clock(f)} | baseline "
        f"{_num(f['baseline'], f['unit'])} ({f['baseline_label']}) | ratio {ratio}{goal}"
    )


def markdown(results: dict[str, Any]) -> str:
    """The record as a Markdown table with the machine it ran on."""
    m = results["machine"]
    rows = ["| figure | measured | baseline, same run | ratio | goal |", "|---|---|---|---|---|"]
    for f in results["figures"]:
        ratio = f"{f['ratio']:.2f}x" if f.get("ratio") is not None else "-"
        goal = f"{f['goal']} ({'met' if f['met'] else 'missed'})" if f.get("goal") else "-"
        d = f.get("detail") or {}
        cpu = f", CPU {_num(d['cpu_seconds'], 's')}" if "cpu_seconds" in d else ""
        base_cpu = (
            f" (CPU {_num(d['baseline_cpu_seconds'], 's')})" if "baseline_cpu_seconds" in d else ""
        )
        rows.append(
            f"| {f['name']} | {_num(f['value'], f['unit'])}{_clock(f)}{cpu} | "
            f"{_num(f['baseline'], f['unit'])}{base_cpu}: {f['baseline_label']} | {ratio} | "
            f"{goal} |"
        )
    head = (
        f"Measured {m['date']} at commit {m['commit']} on {m['usable_cores']} of {m['cores']} "
        f"cores ({m['cpu']}), {m['memory_gb']} GB, Python {m['python']}, load average "
        f"{', '.join(map(str, m['load_average']))} at the start."
    )
    failed = "".join(
        f"\n\nNot measured this run: {b} ({why})." for b, why in results["failed"].items()
    )
    apart = "".join(
        f" `{b}` was measured apart ({p['date']}, commit {p['commit']}, load average "
        f"{', '.join(map(str, p['load_average']))} at its start)."
        for b, p in sorted((results.get("partial") or {}).items())
    )
    return f"{head}{apart}\n\n" + "\n".join(rows) + failed


def update_doc(results: dict[str, Any], doc: Path = DOC) -> bool:
    """Replace the table between the markers in ``doc``; False when the markers are missing."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    if TABLE_START not in text or TABLE_END not in text:
        return False
    before, rest = text.split(TABLE_START, 1)
    _, after = rest.split(TABLE_END, 1)
    doc.write_text(
        f"{before}{TABLE_START}\n{markdown(results)}\n{TABLE_END}{after}", encoding="utf-8"
    )
    return True


def _merge(results: dict[str, Any], chosen: list[Bench], *, docs: bool) -> dict[str, Any]:
    """Put a partial run's figures in ``bench/results.json`` in place of the same benches' older
    ones; ``partial`` says which benches were measured apart from the whole run, when and where."""
    names = {b.name for b in chosen}
    record = json.loads(
        RESULTS.read_text(encoding="utf-8")
    )  # read now: another merge may have written
    record["figures"] = [f for f in record["figures"] if f.get("bench") not in names] + results[
        "figures"
    ]
    record["failed"] = {
        k: v for k, v in record.get("failed", {}).items() if k not in names
    } | results["failed"]
    record["seconds"] = record.get("seconds", {}) | results["seconds"]
    record["partial"] = record.get("partial", {}) | dict.fromkeys(sorted(names), results["machine"])
    RESULTS.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"\nmerged into: {RESULTS.relative_to(REPO_ROOT)}", flush=True)
    if docs and update_doc(record):
        print(f"written: {DOC.relative_to(REPO_ROOT)}", flush=True)
    return results


def run(
    names: list[str] | None = None, *, docs: bool = True, merge: bool = False
) -> dict[str, Any]:
    """Run the registered benches (all, or ``names``), print and record them (``merge``: a
    partial run replaces its benches' figures in the record)."""
    chosen = [b for b in REGISTRY if not names or b.name in names]
    results: dict[str, Any] = {"machine": machine(), "figures": [], "failed": {}, "seconds": {}}
    for bench in chosen:
        print(f"\n=== {bench.name}: {bench.about} ===", flush=True)
        figures, error, seconds = _run_isolated(bench)
        results["seconds"][bench.name] = round(seconds, 1)
        for f in figures:
            print(line(f), flush=True)
            results["figures"].append(f | {"bench": bench.name})
        if error:
            results["failed"][bench.name] = error
            print(f"--- {bench.name}: FAILED ({error})", flush=True)
    if names and merge:  # these benches' figures replace theirs in the record, with their machine
        return _merge(results, chosen, docs=docs)
    if names:  # a partial run is printed only: the record holds whole runs
        return results
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {RESULTS.relative_to(REPO_ROOT)}", flush=True)
    if docs and update_doc(results):
        print(f"written: {DOC.relative_to(REPO_ROOT)}", flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.record", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--only", nargs="+", choices=[b.name for b in REGISTRY], help="run only these"
    )
    parser.add_argument("--no-docs", action="store_true", help="leave docs/bench.md as it is")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --only: put these benches' figures into bench/results.json in place of theirs",
    )
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="rewrite docs/bench.md's table from bench/results.json, measure nothing",
    )
    parser.add_argument("--child", nargs=2, metavar=("NAME", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_one(next(b for b in REGISTRY if b.name == args.child[0]), Path(args.child[1]))
        return
    if args.table_only:
        update_doc(json.loads(RESULTS.read_text(encoding="utf-8")))
        return
    results = run(args.only, docs=not args.no_docs, merge=args.merge)
    if results["failed"]:
        print(f"failed: {', '.join(results['failed'])}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
