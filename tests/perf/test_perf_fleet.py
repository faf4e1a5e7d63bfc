"""Benchmark fleets against the local endpoint: real launches, the real agent, real S3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from perf_fleet_support import REGION, agent_runner, configure, register_bases

from orchestrator.clock import VirtualClock
from orchestrator.lifecycle import provisioned
from perf import config as perf_config
from perf.collect import Expected, collect, present_keys
from perf.fleet import Fleet, check_quota, find_instances, unserved_reason
from perf.placement import AgentInstall, plan_slots
from perf.run import DOC_KIND, PerfRun, RunRequest

pytestmark = pytest.mark.integration


def _live(aws, family):
    return find_instances(aws, [REGION], family=family)


def test_run_passes_and_records_evidence(workspace, aws) -> None:
    configure(workspace)
    old, new = register_bases(workspace, aws)
    t0 = time.monotonic()
    with agent_runner(workspace, aws):
        res = workspace.run("perf", "run", new.ref, "--json")
    elapsed = time.monotonic() - t0
    assert res.code == 0, res.stderr
    doc = res.json()
    print(f"passing run: {elapsed:.1f}s, timings {doc['timings']}, verdict {doc['verdict']}")
    # simulated instances (perf/agent/simulated.py): both arms of a pair are the same machine and
    # each arm draws its own repetitions, so an A/A run compares two samples of one distribution
    # whatever the host is doing, and says the instances were simulated
    assert doc["status"] == "done" and doc["verdict"] == "no_change"
    assert doc["comparison"]["simulated"] == ["baseline", "candidate"]
    assert doc["baseline"]["ref"] == old.ref  # defaulted to the family's release
    # the agent's wheel went to the bucket before the launch (its presigned index is not recorded)
    assert doc["agent"]["source"] == "pypi" and doc["agent"]["wheels"] == 1
    assert doc["agent"]["requirement"] == f"imagefleet-agent=={doc['agent']['version']}"
    assert "index_url" not in doc["agent"]
    assert len(doc["instances"]) == 18
    assert doc["collection"]["missing"] == [] and doc["collection"]["instances_with_results"] == 18
    # interleaved: every consecutive pair is one of each arm, same type and zone
    inst = sorted(doc["instances"], key=lambda i: i["index"])
    for a, b in zip(inst[::2], inst[1::2], strict=True):
        assert {a["arm"], b["arm"]} == {"baseline", "candidate"}
        assert (a["instance_type"], a["availability_zone"]) == (
            b["instance_type"],
            b["availability_zone"],
        )
    assert {i["availability_zone"] for i in inst} == {"us-east-1a", "us-east-1b"}
    assert all(Path(p).is_file() and Path(p).suffix == ".png" for p in doc["plots"])
    assert _live(aws, workspace.family) == {}  # everything terminated
    ev = [
        e for e in workspace.context().store.evidence(new.family, new.version) if e.gate == "perf"
    ]
    assert len(ev) == 1 and ev[0].details["run_id"] == doc["id"]
    assert ev[0].passed is True
    samples = [
        c for c in doc["comparison"]["comparisons"] if c["metric"] == "cpu_sha256_throughput"
    ]
    assert samples and samples[0]["ratio"] != 1.0  # two arms, two samples: not a copy
    assert samples[0]["ratio"] == pytest.approx(1.0, abs=0.02)
    shown = workspace.run("perf", "show", doc["id"], "--json")
    assert shown.code == 0 and shown.json()["verdict"] == doc["verdict"]
    listed = workspace.run("perf", "runs", "--json")
    assert [r["id"] for r in listed.json()] == [doc["id"]]


@pytest.mark.slow  # one of the longest (20-50 s): runs in `make test-slow`, and so in CI
def test_injected_slowdown_is_caught(workspace, aws) -> None:
    configure(workspace)
    old, new = register_bases(workspace, aws)
    # A 10 % slowdown on simulated instances; statistical power on noisier data is what the
    # seeded acceptance tests (test_perf_acceptance.py) measure.
    inj = workspace.run(
        "local", "inject", "--ami", new.amis[REGION], "--metric", "*", "--factor", "1.1"
    )
    assert inj.code == 0, inj.stderr
    t0 = time.monotonic()
    with agent_runner(workspace, aws):
        res = workspace.run("perf", "run", new.ref, "--baseline", old.ref, "--json")
    elapsed = time.monotonic() - t0
    assert res.code == 1, res.stderr
    doc = res.json()
    cells = doc["comparison"]["comparisons"]
    print(
        f"injected run: {elapsed:.1f}s; "
        + "; ".join(
            f"{c['metric']} ratio {c['ratio']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}] "
            f"{c['verdict']}"
            for c in cells
        )
    )
    assert doc["verdict"] == "regression"
    sha = next(c for c in cells if c["metric"] == "cpu_sha256_throughput")
    assert sha["verdict"] == "regression" and sha["ratio"] == pytest.approx(1 / 1.1, abs=0.02)
    ev = [
        e for e in workspace.context().store.evidence(new.family, new.version) if e.gate == "perf"
    ]
    assert len(ev) == 1 and ev[0].passed is False and ev[0].details["verdict"] == "regression"
    assert _live(aws, workspace.family) == {}


def test_results_timeout_fails_and_terminates_everything(workspace, aws) -> None:
    configure(workspace, results="2m")
    _, new = register_bases(workspace, aws)
    workspace.clock = VirtualClock()  # the 2 minutes of waiting pass on it, at once
    res = workspace.run("perf", "run", new.ref, "--json")  # no agent runner: nothing ever reports
    assert res.code == 3, res.stderr
    # polled every 2 s, the unchanged count is said again each minute of the clock, not each poll
    waits = [line.split(": ", 1)[1] for line in res.stderr.splitlines() if ": results " in line]
    assert waits == [
        f"results 0/18 after {t} (timeout 2m00s)" for t in ("0m00s", "1m00s", "2m00s")
    ], res.stderr
    assert "no usable results from the" in res.stderr
    # the local endpoint serves Service Quotas for VPC only: the skipped check is a whole-line
    # note (every local run has it), not a warning
    (said,) = [ln for ln in res.stderr.splitlines() if "vCPU quota" in ln]
    assert said.startswith("vCPU quota: ") and "warning" not in said
    assert said.endswith("serves no EC2 quotas; set perf.vcpu_limit to enforce a limit")
    assert _live(aws, workspace.family) == {}
    (doc,) = workspace.context().store.docs(DOC_KIND)
    assert doc["status"] == "failed" and doc["terminated"] == 18 and doc["instance_count"] == 18
    assert "instances" not in doc and doc["instances_uri"].endswith(f"{doc['id']}/instances.json")


def test_an_unserved_quota_is_explained_whole(aws) -> None:
    (check,) = check_quota(aws, REGION, {"t3.micro": 18}, None)
    assert check.limit is None and check.needed == 36
    assert check.source == (
        f"the endpoint {aws.endpoint_url} serves no EC2 quotas; "
        "set perf.vcpu_limit to enforce a limit"
    )
    # on AWS, its reason is kept to the end, however long (it was cut at 120 characters)
    reason = (
        "GetServiceQuota failed: AccessDeniedException: User: arn:aws:iam::123456789012:user/ci "
        "is not authorized to perform: servicequotas:GetServiceQuota on resource: *."
    )
    text = unserved_reason("L-1216C47A", Exception(reason), "https://ec2.us-east-1.amazonaws.com")
    assert text == (
        f"Service Quotas did not serve L-1216C47A: {reason[:-1]}; "
        "set perf.vcpu_limit to enforce a limit"
    )
    assert unserved_reason("L-1216C47A", Exception(reason), None).startswith("Service Quotas")


def test_interrupt_during_launch_terminates_what_was_launched(workspace, aws) -> None:
    configure(workspace)
    _, new = register_bases(workspace, aws)
    seen: list[str] = []

    def progress(line: str) -> None:
        seen.append(line)
        if "launched 5/" in line:
            assert len(_live(aws, workspace.family)) == 5
            raise KeyboardInterrupt

    run = PerfRun(workspace.context(), RunRequest(new.ref), progress=progress)
    with pytest.raises(KeyboardInterrupt):
        run.execute()
    assert _live(aws, workspace.family) == {}
    doc, _ = workspace.context().store.get_doc(DOC_KIND, run.run_id)
    assert doc["status"] == "interrupted" and doc["terminated"] == 5 and doc["instance_count"] == 5


@pytest.mark.timeout(600)
def test_ctrl_c_of_the_command_terminates_everything(workspace, aws) -> None:
    configure(workspace)
    _, new = register_bases(workspace, aws)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "imagefleet"),
            "--config",
            str(workspace.config),
            "perf",
            "run",
            new.ref,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT dumps every thread's stack
    )
    try:
        # Launched, now waiting for results. No deadline of its own: a loaded host launches
        # slowly, and the test's timeout (pytest-timeout, marked above) bounds a hang.
        while len(_live(aws, workspace.family)) < 18:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        try:
            _out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            _out, err = proc.communicate(timeout=30)
            pytest.fail(f"perf run did not stop within 120 s of Ctrl-C; its stacks:\n{err[-6000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert _live(aws, workspace.family) == {}
    (doc,) = workspace.context().store.docs(DOC_KIND)
    assert doc["status"] == "interrupted"


def test_quota_refusal(workspace, aws) -> None:
    configure(workspace, extra="vcpu_limit = 30")  # 2 arms x 9 x t3.micro (2 vCPUs) = 36
    _, new = register_bases(workspace, aws)
    res = workspace.run("perf", "run", new.ref)
    assert res.code == 2
    err = res.stderr
    assert "would not fit in the vCPU quota" in err and "L-1216C47A" in err
    assert "fleet needs 36 vCPUs" in err and "limit 30 (config perf.vcpu_limit)" in err
    assert _live(aws, workspace.family) == {}
    assert workspace.context().store.docs(DOC_KIND) == []


def test_cleanup_removes_leftovers_and_keeps_runs_in_progress(workspace, aws) -> None:
    configure(workspace)
    old, new = register_bases(workspace, aws)
    perf = perf_config.load(workspace.context().settings)
    amis = {"baseline": old.amis[REGION], "candidate": new.amis[REGION]}
    now = datetime.now(UTC)

    def fleet(run_id: str, expires: datetime) -> Fleet:
        f = Fleet(
            aws=aws,
            region=REGION,
            run_id=run_id,
            family=workspace.family,
            slots=plan_slots(["t3.micro"], 1, ["us-east-1a"], f"perf/{run_id}"),
            amis=amis,
            bucket="imagefleet-artifacts",
            perf=perf,
            expires=expires,
            agent=AgentInstall("preinstalled"),
        )
        f._create(lambda _: None)  # a run killed after launching: nothing will terminate it
        return f

    stale = fleet("perf-stale-" + workspace.family, now - timedelta(minutes=1))
    live = fleet("perf-live-" + workspace.family, now + timedelta(hours=1))
    assert len(_live(aws, workspace.family)) == 4
    dry = workspace.run("perf", "cleanup", "--family", workspace.family, "--dry-run", "--json")
    assert sorted(dry.json()["would_terminate"]) == sorted(i.instance_id for i in stale.instances)
    assert len(_live(aws, workspace.family)) == 4
    res = workspace.run("perf", "cleanup", "--family", workspace.family, "--json")
    assert res.code == 0, res.stderr
    assert sorted(res.json()["terminated"]) == sorted(i.instance_id for i in stale.instances)
    assert set(_live(aws, workspace.family)) == {i.instance_id for i in live.instances}
    forced = workspace.run("perf", "cleanup", "--family", workspace.family, "--force", "--json")
    assert sorted(forced.json()["terminated"]) == sorted(i.instance_id for i in live.instances)
    assert _live(aws, workspace.family) == {}


def test_lifecycle_deletes_on_error_in_the_body(workspace, aws) -> None:
    configure(workspace)
    old, new = register_bases(workspace, aws)
    perf = perf_config.load(workspace.context().settings)
    f = Fleet(
        aws=aws,
        region=REGION,
        run_id="perf-body-" + workspace.family,
        family=workspace.family,
        slots=plan_slots(["t3.micro"], 2, ["us-east-1a"], "perf/x"),
        amis={"baseline": old.amis[REGION], "candidate": new.amis[REGION]},
        bucket="imagefleet-artifacts",
        perf=perf,
        expires=datetime.now(UTC) + timedelta(hours=1),
        agent=AgentInstall("preinstalled"),
    )
    ctx = workspace.context()
    with (
        pytest.raises(RuntimeError),
        provisioned(f, clock=ctx.clock, ready_timeout=30, poll=0.2, progress=lambda _: None),
    ):
        assert len(_live(aws, workspace.family)) == 4
        raise RuntimeError("collector blew up")
    assert _live(aws, workspace.family) == {}


def test_local_runner_applies_a_per_metric_injection_once(workspace, aws) -> None:
    configure(workspace)
    old, new = register_bases(workspace, aws)
    perf = perf_config.load(workspace.context().settings)
    run_id = "perf-inj-" + workspace.family
    f = Fleet(
        aws=aws,
        region=REGION,
        run_id=run_id,
        family=workspace.family,
        slots=plan_slots(["t3.micro"], 1, ["us-east-1a"], f"perf/{run_id}"),
        amis={"baseline": old.amis[REGION], "candidate": new.amis[REGION]},
        bucket="imagefleet-artifacts",
        perf=perf,
        expires=datetime.now(UTC) + timedelta(hours=1),
        agent=AgentInstall("preinstalled"),
    )
    assert (
        workspace.run(
            "local", "inject", "--ami", new.amis[REGION], "--metric", "cpu_*", "--factor", "2"
        ).code
        == 0
    )
    ctx = workspace.context()
    with provisioned(f, clock=ctx.clock, ready_timeout=30, poll=0.2, progress=lambda _: None):
        with agent_runner(workspace, aws) as env:
            env.clock.sleep(1)  # the runner ticks around it: both agents have run to the end
            assert len(present_keys(aws, "imagefleet-artifacts", f"perf/{run_id}/")) == 2
        expected = [
            Expected(
                li.slot.results_key, li.instance_id, li.slot.arm, f.amis[li.slot.arm], "t3.micro"
            )
            for li in f.instances
        ]
        got = collect(aws, "imagefleet-artifacts", expected)
    assert got.missing == [] and got.invalid == []
    df = got.frame
    meta = df["metadata"].map(json.loads)
    injected = meta.map(lambda m: m.get("fault_injected"))
    is_cand, is_cpu = (
        (df["arm"] == "candidate").to_numpy(),
        (df["metric"] == "cpu_sha256_throughput").to_numpy(),
    )
    assert (injected[is_cand & is_cpu] == 2).all()
    assert injected[~(is_cand & is_cpu)].isna().all()  # baseline, and boot_to_ready, untouched
    assert env.memory["perf"]["done"] >= {li.instance_id for li in f.instances}
    assert len(df[df["metric"] == "boot_to_ready"]) == 2  # one agent run per instance, not two


def test_a_base_marked_lost_is_refused_before_anything_is_recorded(workspace, aws) -> None:
    from orchestrator.local import memory as endpoint_memory

    configure(workspace, results="3s")
    old, new = register_bases(workspace, aws)
    workspace.clock = VirtualClock()  # were a run to start, its 3 s of waiting pass at once
    store = workspace.context().store
    endpoint_memory.forget(store, [old], "test")  # as `imagefleet local up --forget-lost` does
    for args in (("--baseline", old.ref), ()):  # named, or the family's release by default
        res = workspace.run("perf", "run", new.ref, *args)
        assert res.code == 2, res.stderr
        assert f"error: the baseline {old.ref} is marked lost" in res.stderr
        assert "hint: pass another --baseline FAMILY:VERSION" in res.stderr
    assert store.docs(DOC_KIND) == [] and _live(aws, workspace.family) == {}
    assert [e for e in store.evidence(new.family, new.version) if e.gate == "perf"] == []
