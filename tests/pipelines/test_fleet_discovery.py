"""`imagefleet fleet` against the local endpoint: a fleet made by `local fleet`'s code, partly moved
to
a newer base, partly on an AMI the store does not know; snapshots recorded, burndown drawn."""

from __future__ import annotations

from typing import Any

import pytest
from aws_support import make_ami

from orchestrator.local.fleet import make_fleet
from orchestrator.store import BaseVersion, utcnow
from pipelines.fleet import view as fleet
from pipelines.fleet.discovery import discover_region

pytestmark = pytest.mark.integration
REGION = "us-east-1"


def _ours(groups: list[Any], fam: str) -> dict[str, Any]:
    return {g.name: g for g in groups if g.name.startswith(fam)}


def test_fleet_names_each_groups_base_and_os_release_and_records_snapshots(
    workspace: Any, aws: Any
) -> None:
    fam = workspace.family
    workspace.edit(r'^os = "ubuntu-24.04"', 'os = "ubuntu-24.04"\nos_release = "ubuntu-20.04"')
    with workspace.config.open("a") as f:
        f.write('\n[os_releases."ubuntu-20.04"]\nend_of_life = "2025-05-31"\n')
    old, stranger = make_ami(aws, f"{fam}-v1"), make_ami(aws, f"{fam}-other")
    ctx = workspace.context()
    ctx.store.put_base(
        BaseVersion(
            family=fam,
            version=1,
            amis={REGION: old},
            source_ami=old,
            parent=None,
            packer_run_id="test",
            created_at=utcnow(),
        )
    )
    make_fleet(aws, fam, old, ("t3.micro", "m5.large"), 3, REGION)
    make_fleet(
        aws, f"{fam}x", stranger, ("c5.large",), 2, REGION
    )  # a team's group on an AMI of its own

    found = _ours(discover_region(aws, REGION), fam)
    assert {n: dict(g.amis) for n, g in found.items()} == {
        f"{fam}-t3-micro": {old: 3},
        f"{fam}-m5-large": {old: 3},
        f"{fam}x-c5-large": {stranger: 2},
    }
    assert found[f"{fam}-t3-micro"].family == fam

    r = workspace.run("fleet", "--json")
    assert r.code == 0, r.stderr
    data = r.json()
    rows = {row["group"]: row for row in data["rows"] if row["group"].startswith(fam)}
    assert rows[f"{fam}-m5-large"]["runs"][0]["ref"] == f"{fam}:1"
    assert (
        rows[f"{fam}-m5-large"]["os_releases"] == ["ubuntu-20.04"]
        and rows[f"{fam}-m5-large"]["past_eol"]
    )
    assert rows[f"{fam}x-c5-large"]["runs"][0]["ref"] == fleet.UNMANAGED
    assert data["by_os_release"]["ubuntu-20.04"] >= 6

    r = workspace.run("fleet")  # the text view, and a second snapshot
    assert r.code == 0, r.stderr
    assert f"{fam}:1 ×3" in r.stdout and "PAST EOL" in r.stdout
    snaps = ctx.store.docs(fleet.SNAPSHOT_KIND)
    assert len(snaps) == 2
    assert snaps[-1]["plot"].endswith("fleet-burndown.png")
    with open(snaps[-1]["plot"], "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_bad_end_of_life_stops_before_any_snapshot(workspace: Any) -> None:
    with workspace.config.open("a") as f:
        f.write('\n[os_releases."ubuntu-20.04"]\nend_of_life = "soon"\n')
    r = workspace.run("fleet")
    assert r.code == 2 and "os_releases.ubuntu-20.04.end_of_life" in r.stderr
    assert workspace.context().store.docs(fleet.SNAPSHOT_KIND) == []
