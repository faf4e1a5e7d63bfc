"""`make demo` end to end: its own embedded endpoint, real Packer, `imagefleet run` on a
100-instance fleet.

The story's outcome, checked in the store and in the endpoint's Auto Scaling groups: the canary
rolled back exactly the injected cohort (r5.large), the other cohorts run the new base, release
was refused (exit 1, the release pointer unmoved) and the report site was written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imagefleet.cli import raw_main
from orchestrator.clock import VirtualClock
from orchestrator.context import Context
from orchestrator.local import faultproxy, processes
from orchestrator.local.endpoint import LocalEndpoint
from orchestrator.local.prometheus import LocalPrometheus
from tools import demo

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.packer]


def test_the_demo_rolls_back_the_injected_cohort_only_and_refuses_release(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run_and_check(tmp_path / "demo", capfd)


@pytest.mark.timeout(1800)
def test_the_demo_ends_the_same_under_eventual_consistency(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`imagefleet run` end to end with the fault proxy at consistency=5s (on the demo's clock)."""
    stats = run_and_check(tmp_path / "demo", capfd, faults="consistency=5s,clock=manual")
    assert stats is not None
    seen = stats["consistency"]
    # AMIs, copies, smoke, benchmark and baseline instances, template versions; tags, shares,
    # parameters
    assert seen["created"] >= 20 and seen["changed"] >= 10, seen
    assert seen["not_found"] >= 1 and seen["left_out"] >= 1, (
        seen
    )  # waited out, and not taken for gone


def run_and_check(
    root: Path, capfd: pytest.CaptureFixture[str], faults: str | None = None
) -> dict[str, Any] | None:
    """Run the demo and check its outcome; returns the fault proxy's stats when it had one."""
    try:
        outcome = demo.main(root, keep=True, faults=faults)
        shown = capfd.readouterr()
        # each step of the run says how it ended and how long it took; the refusal gives the reason
        assert (
            "perf done: verdict no_change" in shown.err and "soak done: soaked 5m00s" in shown.err
        )
        assert "canary stopped after" in shown.err
        assert "release of demo:2 refused, the release gate needs a passed canary" in shown.err
        assert f"report: {outcome.report}" in shown.out
        ctx = Context(config_path=root / "imagefleet.toml", clock=VirtualClock())
        assert outcome.run_exit == 1
        store = ctx.store
        assert store.pointer(demo.FAMILY, "release") == 1  # refused: still the bootstrap release
        assert store.pointer(demo.FAMILY, "candidate") == 2
        [rollout] = store.docs("canary-rollout")
        # judged from PromQL when Debian's prometheus is installed (make test installs it)
        assert outcome.source == demo.metrics_source()
        assert {m["source"] for m in rollout["config"]["metrics"]} == {outcome.source}
        assert (
            f"canary metrics from {'PromQL' if outcome.source == 'prometheus' else 'CloudWatch'}"
            in shown.out
        )
        status = {c["key"]: c["status"] for c in rollout["cohorts"]}
        assert status == {
            "c5.large": "passed",
            "m5.large": "passed",
            "t3.micro": "passed",
            "r5.large": "rolled_back",
        }
        assert sum(c["size"] for c in rollout["cohorts"]) >= 100
        assert not any(e.passed for e in store.evidence(demo.FAMILY, 2) if e.gate == "canary")

        # what runs now, from the endpoint: r5 back on the release, every other cohort on the new
        # base
        region = ctx.settings.aws.regions[0]
        old, new = (store.get_base(demo.FAMILY, v).amis[region] for v in (1, 2))
        amis = fleet_amis(ctx, region)
        assert amis == {
            "demo-c5-large": {new},
            "demo-m5-large": {new},
            "demo-t3-micro": {new},
            "demo-r5-large": {old},
        }

        # the organisation's second account: `fleet` read its groups through its role, beside
        # the caller's own (once the canary reads member accounts, they roll with the rest)
        for snap in store.docs("fleet-snapshot"):
            assert snap["accounts"] == [demo.MEMBER]
            assert sorted(r["group"] for r in snap["rows"] if r["account"] == demo.MEMBER) == [
                f"demo-{t.replace('.', '-')}" for t in sorted(demo.MEMBER_TYPES)
            ]
            assert (
                sum(r["instances"] for r in snap["rows"])
                == 100 + len(demo.MEMBER_TYPES) * demo.MEMBER_PER_TYPE
            )

        assert outcome.report is not None and outcome.report.is_file()
        assert any(
            rollout["id"] in page.read_text() for page in outcome.report.parent.rglob("*.html")
        )
        assert list((ctx.settings.state_dir / "retrospectives").glob("*r5.large.md"))

        # the base's whole life: demo:2 was baked because its recipe changed, from the parent
        # Canonical's parameter named; the parameter then moved, and `upstream` said so
        first, second = (store.get_base(demo.FAMILY, v) for v in (1, 2))
        assert first.recipe_digest and second.recipe_digest != first.recipe_digest
        assert second.source_ami == first.source_ami
        told = shown.out + shown.err
        assert "demo is outdated: the recipe changed since demo:1" in told
        assert f"upstream moved: {demo.PARENT_PARAMETER} names ami-" in told
        # where the unfixed openssl runs: the rolled-back r5 groups in both accounts, on demo:1
        assert outcome.exposure_exit == 1
        assert "EXPOSED: 1 base(s) (1 in use), 2 group(s), 30 instance(s)" in told
        # the scorecard, on the command line and on the report's index
        index = outcome.report.read_text()
        assert 'id="scorecard"' in index and "sc-fail" in index and "sc-pass" in index
        assert "hygiene scorecard at" in told
        info = LocalEndpoint(ctx.settings.state_dir).info()
        return faultproxy.stats(info.url) if info is not None and info.faults else None
    finally:
        server = LocalPrometheus(root / ".imagefleet").recorded()
        if (root / "imagefleet.toml").exists():
            raw_main(["--config", str(root / "imagefleet.toml"), "local", "down"], obj=Context())
        if server is not None:  # no Prometheus outlives the demo
            assert processes.identify(server.process).state is not processes.State.OURS


def fleet_amis(ctx: Context, region: str) -> dict[str, set[str]]:
    """Per demo group: the AMIs its in-service instances run (EC2 is the source of truth)."""
    asg = ctx.aws.client("autoscaling", region)
    ec2 = ctx.aws.client("ec2", region)
    names = [
        f"demo-{t.replace('.', '-')}"
        for t in ctx.settings.family(demo.FAMILY).cohort_instance_types
    ]
    groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=names)["AutoScalingGroups"]
    out: dict[str, set[str]] = {}
    for g in groups:
        ids = [i["InstanceId"] for i in g["Instances"] if i["LifecycleState"] == "InService"]
        reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
        out[g["AutoScalingGroupName"]] = {
            i["ImageId"] for r in reservations for i in r["Instances"]
        }
    return out
