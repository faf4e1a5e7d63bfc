"""The on-instance benchmark agent (``imagefleet-agent bench``)."""

from __future__ import annotations

from perf.agent.benchmarks import BUILTIN, EXTERNAL, BenchRun, apply_slowdown, run_benchmarks

__all__ = ["BUILTIN", "EXTERNAL", "BenchRun", "apply_slowdown", "run_benchmarks"]
