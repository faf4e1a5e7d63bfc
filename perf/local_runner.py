"""Local agent runner handler: run the benchmark agent on the host for perf instances.

On the local endpoint instances run nothing, so ``orchestrator.local.agents`` calls ``tick``
every second (``settle``, which waits for the agents it starts, on a virtual clock). Each tick
it finds running instances tagged ``imagefleet:role=perf``, reads the agent line from each
instance's user data (what cloud-init would run), and runs it as a host process — at most
``CONCURRENCY`` at a time, alternating arms, so both arms share the host's noise. An instance
is run once: the runner remembers it, and skips any whose results object is already in S3 (a
restarted runner does not measure twice).

The instances are simulated machines: the agent runs with ``--simulate KEY``
(perf/agent/simulated.py), so its results come from a seeded model of the instance rather than
from timing this busy host, and a run's verdict does not depend on what else the machine is doing.
``KEY`` names the (type, zone) pair a slot belongs to, so both arms of a pair are the same machine.
``IMAGEFLEET_LOCAL_BENCHMARKS=host`` times the host instead (the real benchmark code, end to end).

Fault injection (``imagefleet local inject``) is applied here and only here: an injection on
every metric becomes the agent's ``--slowdown``; one on some metrics is applied to those samples
after the agent ran (``apply_slowdown``, labelled ``metadata.fault_injected``), and the runner
uploads them in the agent's place.
"""

from __future__ import annotations

import base64
import fnmatch
import io
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.artifacts import put_artifact, split_s3_uri
from orchestrator.aws import LOCAL_CREDENTIALS
from orchestrator.errors import ImagefleetError
from orchestrator.local.injection import Injection, factor_for
from orchestrator.tags import ARM_TAG, PERF_RESULTS_TAG, ROLE_TAG
from perf.agent.benchmarks import apply_slowdown
from perf.fleet import described, tags_of
from perf.placement import parse_agent_command
from perf.samples import Sample, write_jsonl

if TYPE_CHECKING:
    from orchestrator.local.agents import AgentEnv

log = logging.getLogger("imagefleet.perf.local_runner")
CONCURRENCY = 2
HOST_BENCHMARKS_ENV = "IMAGEFLEET_LOCAL_BENCHMARKS"  # "host": time this machine, not the model


@dataclass
class _Job:
    instance_id: str
    arm: str
    region: str
    proc: subprocess.Popen[bytes]
    output: Path
    s3_uri: str
    per_metric: list[Injection]  # injections applied after the run (empty: the agent uploaded)


def _state(env: AgentEnv) -> dict[str, Any]:
    state: dict[str, Any] = env.memory.setdefault(
        "perf", {"jobs": {}, "done": set(), "last_arm": None}
    )
    return state


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def _set_option(argv: list[str], name: str, value: str | None) -> list[str]:
    """Replace (or drop, when ``value`` is None) an option's value."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == name:
            skip = True
            if value is not None:
                out += [a, value]
            continue
        out.append(a)
    if name not in argv and value is not None:
        out += [name, value]
    return out


def simulation_key(s3_uri: str, instance_type: str) -> str:
    """The simulated machine of a slot: its run's key prefix, type and pair, never its arm.

    Results keys end in ``<arm>/<slot index>.jsonl`` and slots 2k and 2k+1 form a pair
    (perf/placement.py), so both arms of a pair map to the same key."""
    path = split_s3_uri(s3_uri)[1]
    prefix, _, leaf = path.rpartition("/")
    run_prefix = prefix.rpartition("/")[0]
    try:
        pair = int(leaf.split(".")[0]) // 2
    except ValueError:
        return f"{path}|{instance_type}"
    return f"{run_prefix}|{instance_type}|pair {pair}"


def _results_exist(env: AgentEnv, uri: str) -> bool:
    bucket, key = split_s3_uri(uri)
    try:
        env.aws.client("s3", env.regions[0]).head_object(Bucket=bucket, Key=key)
        return True
    except ImagefleetError:
        return False


def _candidates(env: AgentEnv, st: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(launch order key, instance id, arm, region, results uri) of runnable instances."""
    out = []
    for region in env.regions:
        ec2 = env.aws.client("ec2", region)
        for inst in described(
            ec2,
            Filters=[
                {"Name": f"tag:{ROLE_TAG}", "Values": ["perf"]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ],
        ):
            iid = inst["InstanceId"]
            tags = tags_of(inst)
            if tags.get(ROLE_TAG) != "perf" or iid in st["done"] or iid in st["jobs"]:
                continue
            uri = tags.get(PERF_RESULTS_TAG, "")
            order = f"{inst.get('LaunchTime', '')}|{uri}"
            out.append((order, iid, tags.get(ARM_TAG, ""), region, uri))
    return sorted(out)


def _start(env: AgentEnv, iid: str, arm: str, region: str, uri: str) -> _Job | None:
    ec2 = env.aws.client("ec2", region)
    attr = ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")
    script = base64.b64decode((attr.get("UserData") or {}).get("Value", "") or b"").decode(
        "utf-8", "replace"
    )
    try:
        argv = parse_agent_command(script, iid)
    except ValueError:
        log.warning("perf instance %s has no agent line in its user data; skipping", iid)
        return None
    ami = _option(argv, "--ami") or ""
    itype = _option(argv, "--instance-type") or ""
    s3_uri = _option(argv, "--s3-uri") or uri
    # injections on this AMI and type, whatever their metric pattern
    injections = [
        i
        for i in env.injections()
        if i.ami == ami
        and (not i.instance_types or any(fnmatch.fnmatch(itype, p) for p in i.instance_types))
    ]
    uniform = [i for i in injections if i.metric == "*"]
    per_metric = [i for i in injections if i.metric != "*"]
    out_dir = Path(env.state_dir) / "perf-agent"
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{iid}.jsonl"
    argv = [sys.executable, "-m", "perf.agent", *argv[1:]]  # the host's agent, not /opt/...
    argv = _set_option(argv, "--output", str(output))
    if os.environ.get(HOST_BENCHMARKS_ENV, "simulated") != "host":
        argv += ["--simulate", simulation_key(s3_uri, itype)]
    if uniform:
        argv += ["--slowdown", f"{factor_for(uniform, ami, itype, '*'):g}"]
    if per_metric:
        argv = _set_option(argv, "--s3-uri", None)  # the runner uploads after applying them
    creds = env.aws.credentials or LOCAL_CREDENTIALS
    child_env = dict(
        os.environ,
        AWS_DEFAULT_REGION=env.regions[0],
        AWS_ACCESS_KEY_ID=creds["aws_access_key_id"],
        AWS_SECRET_ACCESS_KEY=creds["aws_secret_access_key"],
    )
    if env.aws.endpoint_url:
        child_env["AWS_ENDPOINT_URL"] = env.aws.endpoint_url
    with open(out_dir / f"{iid}.log", "wb") as logf:
        proc = subprocess.Popen(
            argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env
        )
    log.info(
        "perf agent for %s (%s) started: pid %s%s",
        iid,
        arm,
        proc.pid,
        f", fault injection x{factor_for(uniform, ami, itype, '*'):g}" if uniform else "",
    )
    return _Job(iid, arm, region, proc, output, s3_uri, per_metric)


def _finish(env: AgentEnv, job: _Job) -> None:
    code = job.proc.returncode
    if code != 0:
        log.warning(
            "perf agent for %s exited %s (log %s)",
            job.instance_id,
            code,
            job.output.with_suffix(".log"),
        )
        return
    if not job.per_metric:
        return
    samples = []
    for line in job.output.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        f = 1.0
        for inj in job.per_metric:
            if inj.applies(d["ami"], d["instance_type"], d["metric"]) or inj.applies(
                d["ami"], d["instance_type"], d.get("benchmark", "")
            ):
                f *= inj.factor
        samples.append(Sample.from_dict(apply_slowdown([d], f)[0] if f != 1.0 else d))
    buf = io.StringIO()
    write_jsonl(samples, buf)
    bucket, key = split_s3_uri(job.s3_uri)
    put_artifact(env.aws, bucket, key, buf.getvalue(), "application/x-ndjson", env.regions[0])


def tick(env: AgentEnv) -> None:
    """Reap finished agents, then start new ones up to ``CONCURRENCY``, alternating arms."""
    st = _state(env)
    for iid, job in list(st["jobs"].items()):
        if job.proc.poll() is None:
            continue
        del st["jobs"][iid]
        st["done"].add(iid)
        _finish(env, job)
    if len(st["jobs"]) >= CONCURRENCY:
        return
    queue = _candidates(env, st)
    while queue and len(st["jobs"]) < CONCURRENCY:
        want = "candidate" if st["last_arm"] == "baseline" else "baseline"
        pick = next((q for q in queue if q[2] == want), queue[0])
        queue.remove(pick)
        _, iid, arm, region, uri = pick
        if uri and _results_exist(env, uri):
            st["done"].add(iid)
            continue
        job = _start(env, iid, arm, region, uri)
        if job is None:
            st["done"].add(iid)
            continue
        st["jobs"][iid] = job
        st["last_arm"] = arm


def drain(env: AgentEnv) -> None:
    """Wait for running agents (used when the runner stops, and by tests)."""
    st = _state(env)
    for job in st["jobs"].values():
        job.proc.wait()
    tick(env)


def settle(env: AgentEnv) -> None:
    """Run every runnable instance's agent to completion, ``CONCURRENCY`` at a time.

    The handler for a virtual clock (``orchestrator.local.agents.attach``): time stands still
    while the agents run, so the results are in S3 when the clock moves on, however long the
    host took to run them."""
    tick(env)
    while _state(env)["jobs"]:
        drain(env)
