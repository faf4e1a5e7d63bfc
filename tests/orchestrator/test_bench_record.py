"""The speed record's plumbing: figures, the registry, results.json's shape and the docs table.
(The figures themselves are measured by `make bench`, never checked against time here.)"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from bench import record as bench
from bench.canary_figures import _met
from bench.measure import Figure, measure_process


def test_figure_ratio_is_value_over_same_run_baseline() -> None:
    f = Figure("x", 3.0, "s", 1.5, "script")
    assert f.ratio == 2.0 and f.to_dict()["ratio"] == 2.0
    assert Figure("x", 3.0, "s", None, "-").to_dict()["ratio"] is None
    assert Figure("x", 3.0, "s", 0.0, "-").ratio is None


def test_every_registered_bench_names_a_function() -> None:
    names = [b.name for b in bench.REGISTRY]
    assert len(names) == len(set(names))
    for b in bench.REGISTRY:
        module, _, function = b.target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), b.target


@pytest.mark.parametrize(
    ("value", "goal", "met"),
    [
        (0.9, "< 1 s", True),
        (1.0, "< 1 s", False),
        (500.0, "<= 500 MB", True),
        (3.0, "fast", None),
    ],
)
def test_goals_written_as_text_are_checked(value: float, goal: str, met: bool | None) -> None:
    assert _met(value, goal) is met


def test_measure_process_reports_exit_codes_and_usage() -> None:
    m = measure_process([sys.executable, "-c", "pass"])
    assert m.seconds > 0 and m.peak_mb > 0
    with pytest.raises(RuntimeError, match="exited 3"):
        measure_process([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert (
        measure_process([sys.executable, "-c", "import sys; sys.exit(1)"], ok_codes=(0, 1)).seconds
        > 0
    )


def _results() -> dict[str, object]:
    machine = {
        "date": "2026-01-01T00:00:00Z",
        "commit": "abc1234",
        "usable_cores": 2,
        "cores": 2,
        "cpu": "Test CPU",
        "memory_gb": 4.0,
        "python": "3.11.7",
        "load_average": [1.5, 1.0, 0.5],
    }
    figures = [
        Figure(
            "perf compare, 100,000 rows",
            3.2,
            "s",
            3.9,
            "script",
            goal="<= 1.5x the script",
            met=True,
        ).to_dict()
    ]
    return {"machine": machine, "figures": figures, "failed": {"canary-api": "exit 1"}}


def test_doc_table_is_replaced_between_the_markers_only(tmp_path: Path) -> None:
    doc = tmp_path / "bench.md"
    doc.write_text(f"# Record\nintro\n{bench.TABLE_START}\nold table\n{bench.TABLE_END}\nafter\n")
    assert bench.update_doc(_results(), doc)
    text = doc.read_text()
    assert text.startswith("# Record\nintro\n") and text.endswith(f"{bench.TABLE_END}\nafter\n")
    assert "old table" not in text
    assert (
        "| perf compare, 100,000 rows | 3.2 s (wall) | 3.9 s: script | 0.82x | <= 1.5x the "
        "script (met) |"
    ) in text
    assert "2 of 2 cores (Test CPU), 4.0 GB, Python 3.11.7" in text
    assert "Not measured this run: canary-api (exit 1)." in text
    json.dumps(_results())  # results.json's content is plain JSON


def test_doc_without_markers_is_left_alone(tmp_path: Path) -> None:
    doc = tmp_path / "bench.md"
    doc.write_text("no markers\n")
    assert not bench.update_doc(_results(), doc)
    assert doc.read_text() == "no markers\n"
