"""What a benchmark fleet looks like, decided without AWS: the interleaved launch plan, the user
data that starts the agent, and the vCPU quota arithmetic. Pure; ``perf.fleet`` acts on it.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

ARMS = ("baseline", "candidate")
INSTANCE_ID_VAR = "$IMAGEFLEET_INSTANCE_ID"  # filled in on the instance from instance metadata
AGENT_VENV = "/opt/imagefleet-agent"
AGENT_WHEELS = "/opt/imagefleet-agent-wheels"
AGENT_OUTPUT = "/var/log/imagefleet-perf-samples.jsonl"
# The user data's install section lies between these lines (tests run it on their own).
INSTALL_BEGIN = "# --- install the agent"
INSTALL_END = "# --- the agent is installed"


@dataclass(frozen=True)
class AgentInstall:
    """How an instance gets the agent (``perf.agent_source``), decided before the launch.

    ``bucket``: ``index_url`` (presigned) lists the agent's wheel and its dependencies' wheels,
    each with a presigned URL; pip installs ``requirement`` from them with no index.
    ``pypi``: the same list holds the agent's wheel alone; dependencies come from the index (when
    ``index_url`` is None, ``requirement`` itself comes from the index).
    ``preinstalled``: the image has ``imagefleet-agent`` on PATH; nothing is installed."""

    source: str
    requirement: str = ""
    index_url: str | None = None
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        # the presigned URL is a bearer credential for reading wheels: never recorded
        return {"source": self.source, "requirement": self.requirement, "version": self.version}


@dataclass(frozen=True)
class Slot:
    """One instance of the fleet: its launch position, arm, type and zone, and where it writes."""

    index: int
    arm: str
    instance_type: str
    availability_zone: str
    results_key: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_slots(
    instance_types: Sequence[str], per_arm: int, zones: Sequence[str], key_prefix: str
) -> list[Slot]:
    """The launch order: pairs of (baseline, candidate) on the same type and zone.

    Types are visited round-robin, so every type's pairs are spread over the whole launch; zones
    rotate per pair, so each arm gets the same zone mix on every type; and which arm goes first
    alternates from pair to pair, so neither arm is systematically launched (and, on the local
    runner, measured) earlier. Both arms therefore see the same noise: host, zone and time.
    """
    if not instance_types or per_arm < 1 or not zones:
        raise ValueError("need at least one instance type, one instance per arm and one zone")
    slots: list[Slot] = []
    pair = 0
    for i in range(per_arm):
        for t in instance_types:
            zone = zones[i % len(zones)]
            order = ARMS if pair % 2 == 0 else ARMS[::-1]
            for arm in order:
                n = len(slots)
                slots.append(Slot(n, arm, t, zone, f"{key_prefix}/{arm}/{n:04d}.jsonl"))
            pair += 1
    return slots


def client_token(run_id: str, slot: Slot) -> str:
    """A stable idempotency token per (run, slot): a retried or repeated launch of the same slot
    returns the instance AWS already made instead of making a second one (64 chars max)."""
    return hashlib.sha256(f"{run_id}:{slot.index}".encode()).hexdigest()[:48]


def agent_command(
    *,
    slot: Slot,
    ami: str,
    bucket: str,
    repetitions: int,
    duration: float,
    benchmarks: Sequence[str],
    external: bool,
    preinstalled: bool = False,
) -> str:
    """The shell line that runs the agent (from the venv the user data made, or from PATH when
    the image has it); the instance id is expanded by the shell on the instance."""
    rest = [
        "--instance-type",
        slot.instance_type,
        "--ami",
        ami,
        "--arm",
        slot.arm,
        "--repetitions",
        str(repetitions),
        "--duration",
        f"{duration:g}",
        *[a for b in benchmarks for a in ("--benchmark", b)],
        *([] if external else ["--no-external"]),
        "--output",
        AGENT_OUTPUT,
        "--s3-uri",
        f"s3://{bucket}/{slot.results_key}",
    ]
    program = "imagefleet-agent" if preinstalled else '"$AGENT_VENV/bin/imagefleet-agent"'
    return f'{program} bench --instance-id "{INSTANCE_ID_VAR}" {shlex.join(rest)}'


def install_script(agent: AgentInstall) -> str:
    """The user data's install section: a fresh venv with the agent, offline from the bucket's
    wheels for ``bucket``; nothing but a check for ``preinstalled``. Paths default to /opt and
    can be moved with ``IMAGEFLEET_AGENT_VENV`` / ``IMAGEFLEET_AGENT_WHEELS`` (tests do)."""
    if agent.source == "preinstalled":
        return f"""{INSTALL_BEGIN}: preinstalled in the image (perf.agent_source = "preinstalled")
command -v imagefleet-agent >/dev/null || {{
  echo "imagefleet-agent is not on PATH: bake it into the image" >&2; exit 1; }}
{INSTALL_END}
"""
    fetch = ""
    pip_args = "--quiet"
    if agent.index_url:
        # every wheel listed in the run's index (name, presigned URL) into a local directory
        fetch = f"""mkdir -p "$AGENT_WHEELS"
curl -sSf --retry 5 -o "$AGENT_WHEELS/index.txt" {shlex.quote(agent.index_url)}
while read -r name url; do
  curl -sSf --retry 5 -o "$AGENT_WHEELS/$name" "$url"
done < "$AGENT_WHEELS/index.txt"
"""
        pip_args += ' --find-links "$AGENT_WHEELS"'
    if agent.source == "bucket":
        pip_args += " --no-index"
    return f"""{INSTALL_BEGIN}: {agent.requirement} (perf.agent_source = "{agent.source}")
AGENT_VENV=${{IMAGEFLEET_AGENT_VENV:-{AGENT_VENV}}}
AGENT_WHEELS=${{IMAGEFLEET_AGENT_WHEELS:-{AGENT_WHEELS}}}
{fetch}python3 -m venv "$AGENT_VENV"
"$AGENT_VENV/bin/pip" install {pip_args} {shlex.quote(agent.requirement)}
{INSTALL_END}
"""


def user_data(
    *,
    run_id: str,
    slot: Slot,
    ami: str,
    bucket: str,
    region: str,
    agent: AgentInstall,
    repetitions: int,
    duration: float,
    benchmarks: Sequence[str],
    external: bool,
) -> str:
    """A cloud-init shell script: read the instance id from IMDSv2, install the agent in a venv
    (``install_script``), run the benchmarks, upload the samples; then power off (the instance is
    launched with shutdown behaviour ``terminate``) so a fleet whose orchestrator died cannot run
    for long."""
    cmd = agent_command(
        slot=slot,
        ami=ami,
        bucket=bucket,
        repetitions=repetitions,
        duration=duration,
        benchmarks=benchmarks,
        external=external,
        preinstalled=agent.source == "preinstalled",
    )
    venv = (
        ""
        if agent.source == "preinstalled"
        # only when the image lacks it: apt needs the distribution's mirror, the wheels do not
        else "if ! python3 -c 'import ensurepip' 2>/dev/null && command -v apt-get >/dev/null; "
        "then apt-get update -q && apt-get install -y -q python3-venv; fi\n"
    )
    return f"""#!/bin/bash
# imagefleet benchmark agent: run {run_id}, slot {slot.index}, arm {slot.arm}
set -euo pipefail
trap 'shutdown -h +10 "imagefleet perf run {run_id} finished"' EXIT
IMDS=http://169.254.169.254/latest
TOKEN=$(curl -sf -X PUT "$IMDS/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 600')
export IMAGEFLEET_INSTANCE_ID=$(curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" \\
  "$IMDS/meta-data/instance-id")
export AWS_DEFAULT_REGION={shlex.quote(region)}
{venv}{install_script(agent)}{cmd}
"""


def parse_agent_command(script: str, instance_id: str) -> list[str]:
    """The agent's argv from a fleet user-data script, with the instance id filled in.

    Used by the local agent runner to do what cloud-init would do with the script's agent line.
    """
    for line in script.splitlines():
        if "imagefleet-agent" not in line or line.lstrip().startswith("#"):
            continue
        try:
            argv = shlex.split(line)
        except ValueError:
            continue
        if len(argv) > 1 and argv[0].endswith("imagefleet-agent") and argv[1] == "bench":
            return [instance_id if a == INSTANCE_ID_VAR else a for a in argv]
    raise ValueError("no 'imagefleet-agent bench' line in the user data")


# --- vCPU quotas ----------------------------------------------------------------------------------
# EC2's On-Demand vCPU quotas, one per group of instance families (Service Quotas codes).
QUOTA_CODES: dict[str, tuple[str, str]] = {
    "standard": ("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"),
    "g": ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    "p": ("L-417A185B", "Running On-Demand P instances"),
    "x": ("L-7295265B", "Running On-Demand X instances"),
    "f": ("L-74FC7D96", "Running On-Demand F instances"),
    "inf": ("L-1945791B", "Running On-Demand Inf instances"),
}
# Multi-letter families first: dl1, trn1, hpc6a, mac1 and u-* have quotas of their own (or none).
_FAMILY = re.compile(r"^(inf|vt|mac|dl|trn|hpc|u-|[a-z])")


def quota_group(instance_type: str) -> str | None:
    """Which On-Demand vCPU quota an instance type counts against (None: one we do not know)."""
    m = _FAMILY.match(instance_type)
    letter = m.group(1) if m else ""
    if letter in ("a", "c", "d", "h", "i", "m", "r", "t", "z"):
        return "standard"
    if letter in ("g", "vt"):
        return "g"
    return letter if letter in QUOTA_CODES else None


def vcpus_by_group(counts: Mapping[str, int], vcpus: Mapping[str, int]) -> dict[str, int]:
    """Sum vCPUs of ``counts`` (instance type → instances) per quota group."""
    out: dict[str, int] = {}
    for t, n in counts.items():
        g = quota_group(t)
        if g is not None and t in vcpus:
            out[g] = out.get(g, 0) + n * vcpus[t]
    return out


@dataclass(frozen=True)
class QuotaCheck:
    group: str
    code: str
    needed: int
    in_use: int
    limit: int | None
    source: str  # "service-quotas", "config perf.vcpu_limit", or why it was not checked

    @property
    def fits(self) -> bool:
        return self.limit is None or self.in_use + self.needed <= self.limit

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"fits": self.fits}

    def message(self) -> str:
        name = QUOTA_CODES[self.group][1]
        if self.limit is None:
            return f"{name} ({self.code}): not checked — {self.source}"
        return (
            f"{name} ({self.code}): fleet needs {self.needed} vCPUs, {self.in_use} in use, "
            f"limit {self.limit} ({self.source}); headroom {self.limit - self.in_use}"
        )
