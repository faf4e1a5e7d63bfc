"""`imagefleet exposure` against the local endpoint: two bases with manifests (the second's
changelog recording the CVEs it fixes), groups running each, and the exit codes and JSON a CI job
reads."""

from __future__ import annotations

from typing import Any

import pytest
from aws_support import make_ami
from exposure_support import DEMO_V1, DEMO_V2, recorded

from orchestrator.local.fleet import make_fleet
from orchestrator.store import BaseVersion, utcnow

pytestmark = pytest.mark.integration
REGION = "us-east-1"


def _ours(data: dict[str, Any], fam: str) -> dict[str, int]:
    return {g["group"]: g["instances"] for g in data["groups"] if g["group"].startswith(fam)}


def test_exposure_names_the_groups_on_an_old_openssl_and_exits_1(workspace: Any, aws: Any) -> None:
    fam = workspace.family
    old, new = make_ami(aws, f"{fam}-v1"), make_ami(aws, f"{fam}-v2")
    store = workspace.context().store
    for version, ami, manifest, log in (
        (1, old, DEMO_V1, {}),
        (2, new, DEMO_V2, recorded(DEMO_V1, DEMO_V2, 1)),
    ):
        store.put_base(
            BaseVersion(
                family=fam,
                version=version,
                amis={REGION: ami},
                source_ami=ami,
                parent=version - 1 or None,
                packer_run_id="test",
                created_at=utcnow(),
                manifest=manifest,
                changelog=log,
            )
        )
    make_fleet(aws, fam, old, ("t3.micro",), 3, REGION)
    make_fleet(aws, fam, new, ("m5.large",), 2, REGION)

    r = workspace.run("--json", "exposure", "openssl", "--version-below", "3.0.13-0ubuntu3.4")
    assert r.code == 1, r.stderr
    data = r.json()
    assert [b["ref"] for b in data["bases"]] == [f"{fam}:1"]
    assert _ours(data, fam) == {f"{fam}-t3-micro": 3}
    assert data["totals"]["instances"] >= 3 and data["exposed"]
    assert "openssl is exposed" in r.stderr

    r = workspace.run("--json", "exposure", "openssh-server", "--cve", "CVE-2024-6387")
    assert r.code == 1, r.stderr
    data = r.json()
    assert [b["ref"] for b in data["bases"]] == [f"{fam}:1"]
    assert data["bases"][0]["reason"] == (
        f"openssh-server 1:9.6p1-3ubuntu13.3 < 1:9.6p1-3ubuntu13.5 (fixed in {fam}:2)"
    )
    assert _ours(data, fam) == {f"{fam}-t3-micro": 3}

    r = workspace.run("--json", "exposure", "no-such-package")  # unknown: nothing found, exit 0
    assert (r.code, r.json()["bases"], r.json()["exposed"]) == (0, [], False)
    assert r.json()["notes"] == ["no base's manifest carries a package named no-such-package"]

    for bad in (("--version-below", "3.0 beta"), ("--cve", "CVE-2024")):
        r = workspace.run("exposure", "openssl", *bad)
        assert r.code == 2 and r.stderr.startswith("error: ")
