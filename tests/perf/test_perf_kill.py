"""A perf run killed outright (``kill -9`` while its fleet runs) leaves no fleet and no ``running``
run:
the next run of the same candidate closes it first, and ``perf cleanup`` and ``gc`` close a run
whose
holder is dead at once, without waiting for the fleet's expiry tag."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from perf_fleet_support import REGION, configure, register_bases

from perf.fleet import find_instances
from perf.runs import DOC_KIND

pytestmark = pytest.mark.integration


def _killed_run(ws: Any, ref: str) -> None:
    """`perf run` in its own process, ended by os._exit(137) right after its fleet is up."""
    env = {**os.environ, "IMAGEFLEET_KILL_AT": "perf:launched", "IMAGEFLEET_KILL_HARD": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "imagefleet.cli", "--config", str(ws.config), "perf", "run", ref],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 137, proc.stderr


def _runs(ws: Any) -> dict[str, str]:
    docs = sorted(ws.context().store.docs(DOC_KIND), key=lambda d: d["started_at"])
    return {d["id"]: d["status"] for d in docs}


def _live_by_run(aws: Any, family: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for pi in find_instances(aws, [REGION], family=family).values():
        if pi.state in ("pending", "running"):
            out[pi.run_id] = out.get(pi.run_id, 0) + 1
    return out


@pytest.mark.slow  # one of the longest (20-50 s): runs in `make test-slow`, and so in CI
def test_a_killed_perf_run_is_closed_by_the_rerun_then_by_cleanup_and_by_gc(
    workspace: Any, aws: Any
) -> None:
    ws, fam = workspace, workspace.family
    configure(ws)
    register_bases(ws, aws)
    ref = f"{fam}:2"

    _killed_run(ws, ref)
    (first,) = _runs(ws)
    assert _runs(ws) == {first: "running"} and _live_by_run(aws, fam) == {first: 18}
    listed = ws.run("perf", "runs", "--json")
    assert [r["status"] for r in listed.json()] == ["running, process dead"]

    _killed_run(ws, ref)  # the rerun closes the dead run before it launches its own fleet
    runs = _runs(ws)
    second = next(r for r in runs if r != first)
    assert runs == {first: "abandoned", second: "running"}
    assert _live_by_run(aws, fam) == {second: 18}  # never two fleets

    r = ws.run("perf", "cleanup", "--family", fam, "--json")  # no --force: the holder is dead
    assert r.code == 0, r.stderr
    assert r.json()["closed_runs"] == [second] and len(r.json()["terminated"]) == 18
    assert _runs(ws)[second] == "abandoned" and _live_by_run(aws, fam) == {}

    _killed_run(ws, ref)
    third = next(r for r in _runs(ws) if r not in (first, second))
    r = ws.run("gc", "--grace", "0s", "--json")  # not the 50-minute expiry tag
    assert r.code == 0, r.stderr
    assert _live_by_run(aws, fam) == {}
    assert set(_runs(ws).values()) == {"abandoned"}, _runs(ws)
    store = ws.context().store
    closed = [a for a in store.audit_trail() if a.action == "perf-run-abandoned"]
    assert sorted(a.details["run_id"] for a in closed) == sorted([first, second, third])
