"""`imagefleet scorecard` against the local endpoint: one real fleet discovery (half the family's
instances on its release), the three owned checks injected as plain fakes (the upstream one
failing as AWS does), and the report site drawing the same cells from the store alone."""

from __future__ import annotations

from typing import Any

import pytest
from aws_support import make_ami

from orchestrator.errors import AwsError
from orchestrator.local.fleet import make_fleet
from orchestrator.store import BaseVersion, utcnow
from pipelines.scorecard import facts as sources

pytestmark = pytest.mark.integration
REGION = "us-east-1"


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The retirement, upstream and exposure checks as fakes; what they were asked."""
    asked: list[str] = []

    def overdue(settings: Any, store: Any, family: str, now: Any) -> list[Any]:
        asked.append(f"overdue {family}")
        return []

    def upstream(aws: Any, settings: Any, store: Any, family: str, now: Any) -> Any:
        asked.append(f"upstream {family}")
        raise AwsError("DescribeImages: RequestLimitExceeded after 8 attempts")

    def cves(store: Any, family: str, version: int) -> list[str]:
        asked.append(f"cves {family}:{version}")
        return ["CVE-2025-0001"]

    monkeypatch.setattr(sources, "retire_overdue", overdue)
    monkeypatch.setattr(sources, "upstream_check", upstream)
    monkeypatch.setattr(sources, "exposure_cves", cves)
    return asked


def test_scorecard_reads_one_fleet_and_survives_a_failing_check(
    workspace: Any, aws: Any, checks: list[str], tmp_path: Any
) -> None:
    fam = workspace.family
    old, new = make_ami(aws, f"{fam}-v1"), make_ami(aws, f"{fam}-v2")
    store = workspace.context().store
    for version, ami in ((1, old), (2, new)):
        store.put_base(BaseVersion(fam, version, {REGION: ami}, old, None, "test", utcnow()))
    store.move_pointer(fam, "release", 2, action="promote", actor="ci", reason="test")
    make_fleet(aws, fam, old, ("t3.micro",), 3, REGION)
    make_fleet(aws, f"{fam}-n", new, ("m5.large",), 3, REGION)  # tagged otherwise, runs fam:2

    r = workspace.run("scorecard", fam, "--json")
    assert r.code == 0, r.stderr
    (row,) = r.json()["families"]
    cells = row["cells"]
    assert cells["fleet_on_release"] == {
        "status": "fail",
        "why": f"50% (3/6) on release {fam}:2, threshold 90%",
    }
    assert cells["upstream"]["status"] == "unknown"
    assert "RequestLimitExceeded" in cells["upstream"]["why"]
    assert cells["exposure"] == {
        "status": "fail",
        "why": f"release {fam}:2 exposed to CVE-2025-0001",
    }
    assert cells["retirement"]["status"] == "pass"
    assert cells["release_age"]["status"] == "n/a"  # init's family sets no max_age
    assert checks == [f"upstream {fam}", f"overdue {fam}", f"cves {fam}:2"]

    red = workspace.run("scorecard", fam, "--fail-on-red")
    assert red.code == 1
    assert f"{fam} fleet_on_release" in red.stderr and "error:" in red.stderr
    assert "fleet_on_release" in red.stdout and "50% (3/6)" in red.stdout

    # the report: no discovery of its own, so no fleet snapshot means an unknown fleet cell
    site = workspace.run("report", "--out", str(tmp_path / "site"), "--json")
    assert site.code == 0, site.stderr
    html = (tmp_path / "site" / "index.html").read_text()
    table = html.split('<table id="scorecard"')[1].split("</table>")[0]
    assert f"family-{fam}.html" in table and "no fleet snapshot yet" in table
    # its upstream cell is the answer the report asked for (the test AMI's parent is not the
    # newest image the init config's filter names), not "not checked"
    assert "upstream moved: the newest image named" in table and "not checked" not in table
