"""Changelogs between registered bases: made at bake time, read by reference, linked on
promotion."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelines.exposure import unfixed_cves

pytestmark = [pytest.mark.integration, pytest.mark.packer]


def bake(ws: Any, *args: str) -> dict:
    r = ws.run("bake", ws.family, "--json", *args)
    assert r.code == 0, r.stderr
    return r.json()


def test_diff_by_reference_and_by_ami_and_the_promotion_link(workspace: Any) -> None:
    ws, fam = workspace, workspace.family
    one = bake(ws)
    nxt = ws.root / "recipes" / "next.manifest"
    nxt.write_text(
        (ws.root / "recipes" / "demo.manifest")
        .read_text()
        .replace("8.5.0-2ubuntu10.1", "8.5.0-2ubuntu10.4")
        .replace("sudo\t1.9.15p5-3ubuntu5\n", "")
    )
    two = bake(ws, "--var", f"recipe_manifest={nxt}")
    assert set(two["changelog"]) == {"vs_parent"}  # no release yet
    # the base keeps the CVEs it fixes, each at the first version carrying the fix
    assert {
        (f["cve"], f["package"], f["version"]) for f in two["changelog"]["vs_parent"]["fixes"]
    } == {
        (cve, pkg, version)
        for cve, version in (
            ("CVE-2024-7264", "8.5.0-2ubuntu10.3"),
            ("CVE-2024-11053", "8.5.0-2ubuntu10.4"),
        )
        for pkg in ("curl", "libcurl4t64")
    }
    assert unfixed_cves(ws.context().store, fam, 1) == ["CVE-2024-7264", "CVE-2024-11053"]

    by_ref = ws.run("changelog", "diff", f"{fam}:1", f"{fam}:2", "--format", "json")
    by_ami = ws.run(
        "changelog", "diff", one["amis"]["us-west-2"], two["amis"]["us-east-1"], "--format", "json"
    )
    assert by_ref.code == 0 and by_ami.code == 0, by_ref.stderr + by_ami.stderr
    summary = json.loads(by_ref.stdout)["summary"]
    assert summary["upgraded"] == 2 and summary["removed"] == 1  # curl + libcurl4t64; sudo
    assert json.loads(by_ami.stdout)["summary"] == summary
    stored = ws.run("changelog", "show", f"{fam}:2", "--format", "json")
    assert json.loads(stored.stdout)["summary"] == summary  # the one made at bake time, from S3
    assert "CVE-2024-11053" in json.loads(stored.stdout)["cves"]
    # The diff reads the family's changelog_dir, as the bake did: the same entries and CVEs.
    assert json.loads(by_ref.stdout)["cves"] == json.loads(stored.stdout)["cves"]
    assert json.loads(by_ref.stdout)["upgraded"] == json.loads(stored.stdout)["upgraded"]
    # --json on the command or on the root means the JSON document, for diff and show alike.
    assert json.loads(
        ws.run("changelog", "diff", f"{fam}:1", f"{fam}:2", "--json").stdout
    ) == json.loads(by_ref.stdout)
    assert json.loads(ws.run("--json", "changelog", "show", f"{fam}:2").stdout) == json.loads(
        stored.stdout
    )
    clash = ws.run("changelog", "show", f"{fam}:2", "--json", "--format", "md")
    assert clash.code == 2 and "--json and --format md" in clash.stderr

    assert ws.run("test", f"{fam}:2").code == 0
    assert ws.run("promote", f"{fam}:2", "--to", "candidate").code == 0
    promoted = ws.run("history", fam, "--json").json()[-1]
    assert promoted["action"] == "promote"
    link = promoted["details"]["changelog"]["vs_parent"]["uris"]["html"]
    # keyed by version and bake id: no other bake's artifacts can overwrite this one
    assert link == f"s3://imagefleet-artifacts/{fam}/2/{two['packer_run_id']}/changelog-vs-1.html"


def test_changelog_against_the_release_too(workspace: Any) -> None:
    ws, fam = workspace, workspace.family
    bake(ws)
    assert ws.run("promote", f"{fam}:1", "--to", "candidate", "--force", "--reason", "t").code == 0
    assert ws.run("promote", f"{fam}:1", "--to", "release", "--force", "--reason", "t").code == 0
    bake(ws)
    three = bake(ws)
    assert {k: v["against"] for k, v in three["changelog"].items()} == {
        "vs_parent": 2,
        "vs_release": 1,
    }
    r = ws.run("changelog", "show", f"{fam}:3", "--against", "release")
    assert r.code == 0 and f"{fam}:1" in r.stdout
    # the report draws both, read back from the bucket, as one page of the site
    assert ws.run("report", "--out", str(ws.root / "site")).code == 0
    page = (ws.root / "site" / "changelogs" / f"{fam}-3.html").read_text()
    assert 'id="vs_parent-security"' in page and 'id="vs_release-security"' in page
    assert "not shown here" not in page and 'href="s3:' not in page


def test_unknown_ami_and_missing_manifest_are_bad_input(workspace: Any) -> None:
    ws, fam = workspace, workspace.family
    ws.edit(r'^manifest = "recipes/demo.manifest".*$', "")
    template = ws.root / "packer" / "demo.pkr.hcl"
    template.write_text(
        template.read_text().replace('inline           = ["cp', 'inline           = ["true || cp')
    )
    r = ws.run("bake", ws.family)
    assert r.code == 0 and "no package manifest" in r.stderr  # the bake warns...
    r = ws.run("changelog", "diff", f"{fam}:1", f"{fam}:1")
    assert r.code == 2 and "has no package manifest recorded" in r.stderr  # ...and the diff refuses
    r = ws.run("changelog", "diff", "ami-0123456789abcdef0", f"{fam}:1")
    assert r.code == 2 and "not an AMI imagefleet registered" in r.stderr
    r = ws.run("changelog", "show", f"{fam}:1")
    assert r.code == 2 and "no changelog against its parent" in r.stderr
