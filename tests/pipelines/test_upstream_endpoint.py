"""Rebaking when upstream moves, on the local endpoint: a parent named by an SSM public parameter
that the endpoint's stand-in for the vendor publishes and moves (``local publish``), read over
HTTP; ``imagefleet upstream``, ``status --upstream`` and ``run --if-changed`` deciding from it.

The bases here are registered as a bake registers them (source AMI and recipe digest), without
Packer, so the decisions take seconds; ``test_run_if_changed_bakes_once_per_upstream_move`` bakes
for real."""

from __future__ import annotations

from typing import Any
from typing import Any as Workspace  # the `workspace` fixture (tests/conftest.py)

import pytest

from orchestrator.errors import NotFoundError
from orchestrator.local import publisher
from orchestrator.store import BaseVersion, utcnow
from pipelines import parent, recipe
from pipelines.run import Job

pytestmark = [pytest.mark.integration]

CANONICAL_STOCK = "ami-785db401"  # moto's newest stock Canonical image (ubuntu 16.04)


def parameter_of(ws: Workspace) -> str:
    """A parameter of the test's own (tests of a module share the endpoint)."""
    return f"/aws/service/canonical/test/{ws.family}/stable/current/amd64/hvm/ebs-gp3/ami-id"


def use_parameter(ws: Workspace) -> str:
    name = parameter_of(ws)
    ws.edit(r"^source_filter = .*$", f'source_parameter = "{name}"')
    ws.edit(
        r"^regions = \[\"us-east-1\", \"us-west-2\"\]\ncohort", 'regions = ["us-east-1"]\ncohort'
    )
    return name


def register_as_baked(ws: Workspace, version: int, source_ami: str) -> BaseVersion:
    """A base as ``registry.register`` writes it: its parent AMI and its recipe's digest."""
    ctx = ws.context()
    fam = ctx.settings.family(ws.family)
    base = BaseVersion(
        family=ws.family,
        version=version,
        amis={"us-east-1": f"ami-0{version:015d}"},
        source_ami=source_ami,
        parent=version - 1 or None,
        packer_run_id=f"{ws.family}-bake-{version}",
        created_at=utcnow(),
        recipe_digest=recipe.digest(fam),
    )
    ctx.store.put_base(base)
    return base


def test_the_parent_is_what_the_public_parameter_holds_now(aws: Any, aws_endpoint: str) -> None:
    name = "/aws/service/canonical/ubuntu/server/99.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
    fam = type("Fam", (), {"name": "t", "source_ami": None, "source_parameter": name})()
    with pytest.raises(NotFoundError, match="no SSM parameter"):
        parent.resolve(aws, fam, "us-east-1")
    assert publisher.publish(aws_endpoint, "us-east-1", name, CANONICAL_STOCK) == 1
    assert publisher.publish(aws_endpoint, "us-east-1", name, CANONICAL_STOCK) == 1  # unchanged
    assert parent.resolve(aws, fam, "us-east-1") == CANONICAL_STOCK
    new = publisher.new_release(aws, "us-east-1", CANONICAL_STOCK, "ubuntu-next")
    assert publisher.publish(aws_endpoint, "us-east-1", name, new) == 2
    assert parent.resolve(aws, fam, "us-east-1") == new
    # read in every account, as a public parameter is; written by none (SSM refuses /aws/)
    ssm = aws.client("ssm", "us-east-1")
    assert ssm.get_parameter(Name=name)["Parameter"]["Version"] == 2
    with pytest.raises(Exception, match="aws"):
        ssm.put_parameter(Name=name, Value=new, Type="String", Overwrite=True)
    with pytest.raises(NotFoundError):  # per region, as on AWS
        parent.resolve(aws, fam, "us-west-2")
    publisher.publish(aws_endpoint, "us-east-1", name, "not-an-ami")
    with pytest.raises(NotFoundError, match="not an AMI id"):
        parent.resolve(aws, fam, "us-east-1")
    # moto's own public parameters (Amazon Linux's) are served as before
    al2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    fam.source_parameter = al2023
    assert parent.resolve(aws, fam, "us-east-1").startswith("ami-")


def test_upstream_and_status_follow_the_parameter_and_the_recipe(workspace: Workspace) -> None:
    ws, fam = workspace, workspace.family
    name = use_parameter(ws)
    r = ws.run("local", "publish", name)  # nothing to copy yet
    assert r.code == 2 and "holds nothing in us-east-1 yet" in r.stderr
    r = ws.run("local", "publish", name, CANONICAL_STOCK, "--json")
    assert r.code == 0, r.stderr
    assert r.json()["published"] == [
        {
            "region": "us-east-1",
            "name": name,
            "previous": None,
            "value": CANONICAL_STOCK,
            "version": 1,
        }
    ]
    (first,) = ws.run("upstream", fam, "--json").json()
    assert first["outdated"] and first["newest"] is None and first["parent"] == CANONICAL_STOCK
    register_as_baked(ws, 1, CANONICAL_STOCK)

    r = ws.run("upstream", fam, "--json", "--exit-code")
    assert r.code == 0, r.stderr
    (now,) = r.json()
    assert (now["parent"], now["baked_from"], now["newest"]) == (
        CANONICAL_STOCK,
        CANONICAL_STOCK,
        1,
    )
    assert not (now["moved"] or now["recipe_changed"] or now["too_old"] or now["outdated"])
    assert "up to date" in ws.run("upstream", fam).stdout

    # the vendor releases: a new image, the parameter moves
    r = ws.run("local", "publish", name, "--json")
    assert r.code == 0, r.stderr
    (moved,) = r.json()["published"]
    assert moved["previous"] == CANONICAL_STOCK and moved["value"] != CANONICAL_STOCK
    r = ws.run("upstream", fam, "--json", "--exit-code")
    assert r.code == 1 and f"outdated upstream: {fam}" in r.stderr
    (after,) = r.json()
    assert after["moved"] and after["outdated"] and after["parent"] == moved["value"]
    assert after["reasons"] == [
        f"upstream moved: {name} names {moved['value']} now; {fam}:1 was baked from "
        f"{CANONICAL_STOCK}"
    ]
    rows = ws.run("status", "--family", fam, "--upstream", "--json").json()
    assert {r["parent_ami"] for r in rows if r["stage"] == "unstable"} == {CANONICAL_STOCK}
    assert all(r["upstream"]["moved"] for r in rows)
    assert "OUTDATED (moved)" in ws.run("status", "--family", fam, "--upstream").stdout
    assert all(r["upstream"] is None for r in ws.run("status", "--json").json())

    # the team edits its template: the recipe changed as well
    template = ws.root / "packer" / "demo.pkr.hcl"
    template.write_text(template.read_text() + "\n# a comment is a change of the recipe\n")
    (edited,) = ws.run("upstream", fam, "--json").json()
    assert edited["recipe_changed"] and edited["recipe"] != edited["baked_recipe"]


def test_run_if_changed_with_nothing_changed_touches_nothing(workspace: Workspace) -> None:
    ws, fam = workspace, workspace.family
    name = use_parameter(ws)
    assert ws.run("local", "publish", name, CANONICAL_STOCK).code == 0
    register_as_baked(ws, 1, CANONICAL_STOCK)
    store = ws.context().store
    audit = len(store.audit_trail(fam))
    r = ws.run("run", fam, "--if-changed", "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["baked"] is False and doc["steps"] == [] and doc["upstream"]["outdated"] is False
    assert doc["skipped"].startswith(
        f"{fam} is up to date: {fam}:1 was baked from {CANONICAL_STOCK}"
    )
    text = ws.run("run", fam, "--if-changed")
    assert text.code == 0 and "nothing to do" in text.stdout
    plan = ws.run("run", fam, "--if-changed", "--dry-run", "--json").json()
    assert plan["upstream"]["outdated"] is False and plan["steps"][0]["step"] == "bake"
    assert store.operations(kind="run") == [] and store.leases() == []
    assert len(store.audit_trail(fam)) == audit
    assert [b.version for b in store.bases(fam)] == [1]


def test_a_run_racing_another_does_not_bake_the_same_move_twice(workspace: Workspace) -> None:
    """Two hourly runs see upstream move at once; the first bakes. The second, having decided
    before the lease, decides again under it and finds the move baked."""
    ws, fam = workspace, workspace.family
    name = use_parameter(ws)
    assert ws.run("local", "publish", name, CANONICAL_STOCK).code == 0
    register_as_baked(ws, 1, "ami-0123456789abcdef0")  # an older parent: upstream moved since

    seen: list[bool] = []

    class Second(Job):
        def upstream(self) -> Any:
            answer = super().upstream()
            seen.append(answer.outdated)
            if len(seen) == 1:  # meanwhile the first run bakes and registers the move
                register_as_baked(ws, 2, CANONICAL_STOCK)
            return answer

    ctx = ws.context()
    result = Second(ctx, fam, if_changed=True).execute()
    assert seen == [True, False]
    assert result.skipped and result.version == 2
    assert [b.version for b in ctx.store.bases(fam)] == [1, 2]  # nothing baked by the second
    assert ctx.store.operations(kind="run") == []


@pytest.mark.packer
@pytest.mark.slow  # two real bakes and their image tests
def test_run_if_changed_bakes_once_per_upstream_move(workspace: Workspace) -> None:
    ws, fam = workspace, workspace.family
    name = use_parameter(ws)
    ws.edit(r"^cohort_instance_types = .*$", 'cohort_instance_types = ["t3.micro"]')
    assert ws.run("local", "publish", name, CANONICAL_STOCK).code == 0
    r = ws.run("run", fam, "--if-changed", "--until", "unstable", "--json")
    assert r.code == 0, r.stderr
    first = r.json()
    assert first["baked"] is True and first["version"] == 1
    assert first["upstream"]["reasons"] == [f"{fam} has no base yet: its first bake is due"]
    base = ws.context().store.get_base(fam, 1)
    assert base.source_ami == CANONICAL_STOCK
    assert base.recipe_digest == recipe.digest(ws.context().settings.family(fam))
    assert ws.run("run", fam, "--if-changed", "--json").json()["baked"] is False

    moved = ws.run("local", "publish", name, "--json").json()["published"][0]["value"]
    r = ws.run("run", fam, "--if-changed", "--until", "unstable", "--json")
    assert r.code == 0, r.stderr
    assert r.json()["baked"] is True and r.json()["version"] == 2
    assert r.json()["upstream"]["moved"] is True
    store = ws.context().store
    assert store.get_base(fam, 2).source_ami == moved
    # the first job (open after --until) baked what upstream moved past: closed, audited
    assert sorted(op["status"] for op in store.operations(kind="run")) == ["aborted", "running"]
    assert [e.action for e in store.audit_trail(fam)].count("run-superseded") == 1
    again = ws.run("run", fam, "--if-changed", "--json").json()
    assert again["baked"] is False and again["version"] == 2


def test_local_up_publishes_each_family_s_parameter_once(workspace: Workspace) -> None:
    ws = workspace
    name = use_parameter(ws)
    ctx = ws.context()
    assert publisher.seed(ctx.aws, ctx.settings) == [
        {"name": name, "region": "us-east-1", "value": CANONICAL_STOCK}
    ]
    assert publisher.seed(ctx.aws, ctx.settings) == []  # published already: left as it is
    (answer,) = ws.run("upstream", ws.family, "--json").json()
    assert answer["parent"] == CANONICAL_STOCK and answer["source"] == name


def test_run_if_changed_while_a_run_is_in_progress_says_so_and_exits_0(
    workspace: Workspace,
) -> None:
    """An hourly check during another run's soak or canary is no failure: it says why it waits."""
    from orchestrator.store import leases

    ws, fam = workspace, workspace.family
    name = use_parameter(ws)
    assert ws.run("local", "publish", name, CANONICAL_STOCK).code == 0
    register_as_baked(ws, 1, "ami-0123456789abcdef0")  # upstream moved since
    ctx = ws.context()
    with leases.hold(
        ctx.store,
        [leases.lease_name("run", fam)],
        clock=ctx.clock,
        actor="arn:aws:iam::123456789012:user/other",
        command=f"run {fam}",
    ):
        r = ws.run("run", fam, "--if-changed", "--json")
        assert r.code == 0, r.stderr
        doc = r.json()
        assert doc["baked"] is False and doc["upstream"]["moved"] is True
        assert "a run of it is in progress" in doc["skipped"]
        plain = ws.run("run", fam)  # without --if-changed a held lease is a refusal, as before
        assert plain.code == 1 and "is held by" in plain.stderr
    assert [b.version for b in ctx.store.bases(fam)] == [1]


def test_a_source_filter_family_is_checked_as_its_bake_resolves_it(workspace: Workspace) -> None:
    ws, fam = workspace, workspace.family  # init's family: the newest Canonical image by filter
    register_as_baked(ws, 1, CANONICAL_STOCK)
    (answer,) = ws.run("upstream", fam, "--json").json()
    assert answer["parent"] == CANONICAL_STOCK and answer["outdated"] is False
    assert (
        answer["source"] == "the newest image named ubuntu/images/hvm-ssd/ubuntu-*-amd64-server-*"
    )


def test_a_family_whose_parent_cannot_be_read_is_named_and_the_others_shown(
    workspace: Workspace,
) -> None:
    ws = workspace
    missing = f"/aws/service/canonical/test/{ws.family}/never-published/ami-id"
    ws.config.write_text(
        ws.config.read_text()
        + f'\n[families.zz]\nos = "ubuntu-24.04"\ntemplate = "packer/demo.pkr.hcl"\n'
        f'source_parameter = "{missing}"\nregions = ["us-east-1"]\n'
    )
    r = ws.run("upstream", "--json")
    assert r.code == 2 and f"families.zz.source_parameter: no SSM parameter {missing}" in r.stderr
    by_family = {d["family"]: d for d in r.json()}
    assert by_family[ws.family]["parent"] == CANONICAL_STOCK and "error" in by_family["zz"]
    assert "zz: cannot tell: families.zz.source_parameter" in ws.run("upstream").stdout
