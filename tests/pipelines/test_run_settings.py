"""`imagefleet run` validates every section its steps will read before its first side effect."""

from __future__ import annotations

from typing import Any as Workspace  # the `workspace` fixture (tests/conftest.py)

import pytest

pytestmark = [pytest.mark.integration]


def test_a_bad_perf_setting_stops_the_run_before_the_bake(workspace: Workspace) -> None:
    ws, fam = workspace, workspace.family
    ws.edit(r"^duration = 0\.05$", "duration = nan")  # in init's [perf] table
    r = ws.run("run", fam)
    lines = r.stderr.strip().splitlines()
    assert r.code == 2, r.stderr
    assert lines[-1].startswith("error:") or lines[-2].startswith("error:")
    assert "perf.duration: expected seconds per benchmark" in r.stderr and "nan" in r.stderr
    store = ws.context().store
    assert (
        store.bases() == [] and store.operations(kind="run") == []
    )  # nothing baked, nothing journaled
    assert store.leases() == []
