"""`make demo`: the main job, `imagefleet run`, on the embedded endpoint, with the real CLI and
Packer.

The story: a released base runs a fleet of four cohorts (one Auto Scaling group per instance type,
100 instances); `imagefleet run demo` takes a new base from bake to release; the new base answers
60 % slower on r5 instances (an injected fault, labelled as such); the canary catches it, rolls
that cohort back and lets the others go on; release is refused (exit 1 with the reason); the
report site says what happened.

The demo runs on a virtual clock with the local agents attached to it (``local up --no-agents``;
`orchestrator.local.agents.attach`): the soak, canary windows and benchmark waits take no
wall time, and every metric a verdict reads is published before the verdict is taken, so the
outcome is the same on an idle laptop and a loaded CI runner. It works in ``demo-output/`` (a
fresh `imagefleet init` there each time); ``KEEP=1`` leaves the endpoint running afterwards.
``DEMO_FAULTS=consistency=5s,clock=manual`` puts the fault proxy in front (`local up --faults`);
with ``clock=manual`` its clock follows the demo's, so AWS's eventual consistency lasts 5 s of it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from imagefleet.cli import cohort_outcomes, in_flight, raw_main, virtual_clock_agents
from orchestrator.clock import VirtualClock
from orchestrator.context import Context
from orchestrator.local import faultproxy
from orchestrator.local.agents import AgentEnv, Attached, Handler, attach
from orchestrator.local.endpoint import LocalEndpoint
from orchestrator.output import Output

FAMILY = "demo"
FLEET_PER_TYPE = 25  # 4 cohort types × 25 = 100 instances
REGRESSED_TYPES = "r5.*"
INJECTED_COHORT = "r5.large"
REGRESSION = ("latency_ms", 1.6)  # the canary's metric, 60 % worse; the benchmarks are untouched
# The agents the demo runs on its clock, by role, each with what it serves (the handlers and the
# in-flight checks come from the CLI's mounting: the core does not import the areas).
AGENTS = {"health": "rollout", "benchmarks": "perf run"}

# The next base's recipe: security upgrades, one added and one removed package.
NEXT_MANIFEST_CHANGES = {
    "curl": "8.5.0-2ubuntu10.4",
    "libcurl4t64:amd64": "8.5.0-2ubuntu10.4",
    "libssl3t64:amd64": "3.0.13-0ubuntu3.4",
    "openssl": "3.0.13-0ubuntu3.4",
    "openssh-server": "1:9.6p1-3ubuntu13.5",
    "linux-image-aws": "6.8.0.1015.16",
    "jq": "1.7.1-3build1",
}
NEXT_MANIFEST_REMOVED = {"e2fsprogs"}

# The demo's canary: two waves per cohort (one instance, then the rest), windows long enough for
# nine points per instance, half a group replaced at a time, and "continue": a failing cohort is
# rolled back while the others go on. Virtual seconds: they cost no wall time.
CANARY_DEMO_CONFIG = """
[canary]
waves = [1, 1.0]
on_fail = "continue"
cohorts_in_flight = 4
min_healthy_pct = 50
warmup = "30s"
analysis = "90s"
period = "10s"
metric_delay = "10s"
batch_spacing = "5s"
jitter = "2s"
poll = "5s"
instance_timeout = "5m"
"""


@dataclass
class Outcome:
    """What the demo ended with: the run's exit code, each cohort's canary status, the report."""

    root: Path
    run_exit: int = -1
    cohorts: dict[str, str] = field(default_factory=dict)  # cohort -> passed / rolled_back / ...
    released: int | None = None  # the release pointer at the end
    report: Path | None = None
    seconds: float = 0.0

    @property
    def as_told(self) -> bool:
        """The story held: only the injected cohort rolled back, the others passed, release
        refused."""
        return (
            self.run_exit == 1
            and self.released == 1
            and self.cohorts.get(INJECTED_COHORT) == "rolled_back"
            and len(self.cohorts) >= 4
            and all(s == "passed" for k, s in self.cohorts.items() if k != INJECTED_COHORT)
        )

    def summary(self) -> str:
        rolled = sorted(k for k, s in self.cohorts.items() if s == "rolled_back")
        passed = sorted(k for k, s in self.cohorts.items() if s == "passed")
        other = sorted(
            f"{k} {s}" for k, s in self.cohorts.items() if s not in ("passed", "rolled_back")
        )
        return (
            f"the canary rolled back {', '.join(rolled) or 'no cohort'}; "
            f"{', '.join(passed) or 'no cohort'} passed and now run {FAMILY}:2"
            + (f"; {', '.join(other)}" if other else "")
            + f"; release {'refused' if self.released == 1 else 'moved to ' + str(self.released)}"
            f" (imagefleet run exit {self.run_exit})"
        )


class Demo:
    def __init__(self, root: Path, faults: str | None = None) -> None:
        self.root = root
        self.faults = faults
        self.config = root / "imagefleet.toml"
        self.clock = VirtualClock()
        self.step_no = 0
        self.outcome = Outcome(root)

    def say(self, title: str) -> None:
        self.step_no += 1
        print(f"\n\033[1m== {self.step_no}. {title}\033[0m", flush=True)

    def run(self, *args: str, expect: int = 0) -> int:
        print(f"$ imagefleet {shlex.join(args)}", flush=True)
        started = time.monotonic()
        code = raw_main(
            ["--config", str(self.config), *args],
            obj=Context(clock=self.clock, output=Output(transcript=True)),
        )
        print(f"\033[2m({time.monotonic() - started:.1f}s, exit {code})\033[0m", flush=True)
        if code != expect:
            raise SystemExit(
                f"demo: 'imagefleet {shlex.join(args)}' exited {code}, expected {expect}"
            )
        return code

    def context(self) -> Context:
        return Context(config_path=self.config, clock=self.clock)

    def configure(self) -> None:
        """The demo's canary in place of `init`'s."""
        block = CANARY_DEMO_CONFIG.strip()
        print(f"$ # replace the [canary] table of imagefleet.toml with:\n{block}", flush=True)
        text = re.sub(
            r"^\[canary\]\n(?:(?!\[).*\n?)*", "", self.config.read_text(), flags=re.MULTILINE
        )
        self.config.write_text(text.rstrip("\n") + "\n\n" + block + "\n")

    def update_recipe(self) -> None:
        """The recipe moves on: newer packages for the next bake (its changelog shows them)."""
        path = self.root / "recipes" / "demo.manifest"
        versions = dict(
            line.split("\t", 1) for line in path.read_text().splitlines() if "\t" in line
        )
        versions = {
            n: v
            for n, v in {**versions, **NEXT_MANIFEST_CHANGES}.items()
            if n not in NEXT_MANIFEST_REMOVED
        }
        path.write_text("".join(f"{n}\t{v}\n" for n, v in sorted(versions.items())))
        print(
            f"$ # {path.name}: {len(NEXT_MANIFEST_CHANGES)} packages upgraded or added, "
            f"{len(NEXT_MANIFEST_REMOVED)} removed",
            flush=True,
        )

    def ami(self, stage_or_version: str) -> str:
        """The first region's AMI of a base (what the fleet and the injection name)."""
        ctx = self.context()
        base = ctx.resolve_base(f"{FAMILY}:{stage_or_version}")
        return base.amis[ctx.settings.aws.regions[0]]

    def attach_agents(self) -> Attached:
        """The local agents (health metrics, benchmark agents) inside the demo clock's sleeps."""
        ctx = self.context()
        env = AgentEnv(
            aws=ctx.aws,
            state_dir=ctx.settings.state_dir,
            regions=ctx.settings.aws.regions,
            clock=self.clock,
        )
        agents, busy = virtual_clock_agents(), in_flight(ctx.store)
        handlers = [
            (f"{name} (while a {what} is in flight)", only_while(busy[name], agents[name]))
            for name, what in AGENTS.items()
        ]
        # every 10 minutes inside a long sleep: the health agent catches up at most that much per
        # tick
        return attach(self.clock, env, handlers, interval=600.0)


def only_while(busy: Callable[[], bool], handler: Handler) -> Handler:
    """An agent that is idle unless ``busy`` says a record it serves is in flight.

    The judge reads health metrics only during a rollout, the collector benchmark results only
    during a perf run; a day of soak would otherwise be 2.6 million datapoints from 100 instances,
    minutes of the endpoint's time for numbers nobody reads."""

    def tick(env: AgentEnv) -> None:
        if busy():
            handler(env)

    return tick


def story(d: Demo) -> None:
    """The commands, in order, each printed before it runs."""
    d.say("Write a config and a Packer template for the embedded endpoint")
    print(f"$ imagefleet init {d.root}")
    if raw_main(["init", str(d.root)], obj=Context(clock=d.clock)) != 0:
        raise SystemExit("demo: init failed")
    d.configure()
    d.say(
        "Start the embedded AWS endpoint (moto's server on 127.0.0.1); the demo runs the agents "
        "itself"
    )
    d.run("local", "up", "--no-agents", *(("--faults", d.faults) if d.faults else ()))
    if d.faults and "clock=manual" in d.faults:
        faultproxy.follow(LocalEndpoint(d.context().settings.state_dir).require_url(), d.clock)
    agents = d.attach_agents()
    try:
        d.say(
            "Bootstrap: the family's first base, tested, released (forced past its gates; the "
            "reason is audited)"
        )
        d.run("bake", FAMILY)
        d.run("test", f"{FAMILY}:1")
        d.run("promote", f"{FAMILY}:1", "--to", "candidate")
        d.run(
            "promote",
            f"{FAMILY}:1",
            "--to",
            "release",
            "--force",
            "--reason",
            "bootstrap: first release of the demo family",
        )
        d.say(
            "A fleet on the release: one Auto Scaling group per cohort type (4 × "
            f"{FLEET_PER_TYPE} instances)"
        )
        d.run(
            "local",
            "fleet",
            "--family",
            FAMILY,
            "--ami",
            d.ami("release"),
            "--per-type",
            str(FLEET_PER_TYPE),
        )
        d.say(
            "The recipe moves on; `imagefleet run` bakes and tests the next base, then stops "
            "(--until unstable)"
        )
        d.update_recipe()
        d.run("run", FAMILY, "--until", "unstable")
        d.say(
            f"FAULT INJECTION (local only): {FAMILY}:2 answers 60% slower on {REGRESSED_TYPES} "
            "instances"
        )
        metric, factor = REGRESSION
        d.run(
            "local",
            "inject",
            "--ami",
            d.ami("2"),
            "--instance-types",
            REGRESSED_TYPES,
            "--metric",
            metric,
            "--factor",
            str(factor),
        )
        d.say(
            "The main job goes on where it stopped: perf → candidate → notify → soak → canary → "
            "release"
        )
        d.outcome.run_exit = d.run("run", FAMILY, expect=1)
        d.run("canary", "status")
    finally:
        agents.cancel()
    store = d.context().store
    d.outcome.released = store.pointer(FAMILY, "release")
    d.outcome.cohorts = cohort_outcomes(store)
    d.say("The report site: stages, changelogs, perf, the canary matrix, retrospectives, audit")
    report = d.root / "report"
    d.run("report", "--out", str(report))
    d.outcome.report = report / "index.html"


def main(root: Path | None = None, keep: bool | None = None, faults: str | None = None) -> Outcome:
    root = (root or Path(os.environ.get("DEMO_DIR", "demo-output"))).resolve()
    keep = os.environ.get("KEEP") == "1" if keep is None else keep
    faults = faults or os.environ.get("DEMO_FAULTS") or None
    started = time.monotonic()
    if (root / "imagefleet.toml").exists():
        raw_main(["--config", str(root / "imagefleet.toml"), "local", "down"], obj=Context())
    shutil.rmtree(root, ignore_errors=True)
    d = Demo(root, faults)
    print(
        f"imagefleet demo in {root}; it runs on a virtual clock: soak, canary windows and "
        "benchmark waits "
        "take no wall time, and the outcome does not depend on how busy the machine is",
        flush=True,
    )
    try:
        story(d)
    finally:
        if not keep and d.config.exists():
            print()
            raw_main(["--config", str(d.config), "local", "down"], obj=Context())
    d.outcome.seconds = time.monotonic() - started
    print(f"\ndemo finished in {d.outcome.seconds:.0f}s: {d.outcome.summary()}")
    print(f"report: {d.outcome.report}  (open file://{d.outcome.report})")
    print(
        f"files: {root}"
        + (
            ""
            if not keep
            else f"\nthe endpoint is still up: imagefleet --config {d.config} local down"
        )
    )
    if not d.outcome.as_told:
        raise SystemExit(f"demo: expected only {INJECTED_COHORT} rolled back and release refused")
    return d.outcome


if __name__ == "__main__":
    main()
