"""`make demo`: the main job, `imagefleet run`, on the embedded endpoint, with the real CLI and
Packer.

The story: a released base runs a fleet of four cohorts (one Auto Scaling group per instance type,
100 instances) in the operator's account, and two more groups in a second AWS account of the
organisation (``[accounts.stream]``, reached by assuming its role, as StackSets set it up);
`imagefleet fleet` shows both accounts; `imagefleet run demo` takes a new base from bake to
release, sharing it with the second account (the candidate stage's launch permission) before any
group rolls; the new base answers 60 % slower on r5 instances (an injected fault, labelled as
such); the canary catches it, rolls that cohort back and lets the others go on; release is refused
(exit 1 with the reason); then the base's whole life: Canonical's parameter moves and
`upstream` sees it, `exposure` finds where the unfixed openssl still runs, the scorecard grades
the family; the report site says what happened. The canary rolls whichever accounts
it reads: the second account's groups are cohorts m5.large and r5.large like the first's.

The demo runs on a virtual clock with the local agents attached to it (``local up --no-agents``;
`orchestrator.local.agents.attach`): the soak, canary windows and benchmark waits take no
wall time, and every metric a verdict reads is published before the verdict is taken, so the
outcome is the same on an idle laptop and a loaded CI runner. It works in ``demo-output/`` (a
fresh `imagefleet init` there each time); ``KEEP=1`` leaves the endpoint running afterwards.
``DEMO_FAULTS=consistency=5s,clock=manual`` puts the fault proxy in front (`local up --faults`);
with ``clock=manual`` its clock follows the demo's, so AWS's eventual consistency lasts 5 s of it.

The canary's metrics come from PromQL answered by a real Prometheus (`local up --prometheus`,
scraping the health agent through its file-SD list) when Debian's ``prometheus`` is installed
(``make demo`` installs it), else from CloudWatch; ``DEMO_METRICS=cloudwatch`` chooses CloudWatch.
Prometheus ingests a scraped point at most 10 minutes ahead of its wall clock, and the demo's clock
is ahead of it by the canary (the soak, the perf waits): the agent serves its points
``PROMQL_SHIFT`` back and the queries read them there (``offset``). The story says which source
judged.
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
from orchestrator.errors import ToolError
from orchestrator.local import faultproxy, prometheus
from orchestrator.local.agents import AgentEnv, Attached, Handler, attach
from orchestrator.local.endpoint import LocalEndpoint, free_port
from orchestrator.local.exporter import Exporter
from orchestrator.output import Output
from tools.demo_settings import (
    ACCOUNTS_DEMO_CONFIG,
    AGENTS,
    CANARY_DEMO_CONFIG,
    EXPOSURE_CVE,
    EXPOSURE_PACKAGE,
    FAMILY,
    FLEET_PER_TYPE,
    IMAGE_TESTS_DEMO_CONFIG,
    INJECTED_COHORT,
    LIFE_DEMO_CONFIG,
    MEMBER,
    MEMBER_ID,
    MEMBER_PER_TYPE,
    MEMBER_TYPES,
    METRIC_DELAY_S,
    NEXT_MANIFEST_CHANGES,
    NEXT_MANIFEST_REMOVED,
    OS_RELEASES_DEMO_CONFIG,
    PARENT_PARAMETER,
    PROMQL_METRICS,
    PROMQL_SHIFT,
    PROMQL_SHIFT_S,
    REGRESSED_TYPES,
    REGRESSION,
)


def metrics_source() -> str:
    """``prometheus`` when Debian's server is installed (and ``DEMO_METRICS`` does not say
    ``cloudwatch``), else ``cloudwatch``."""
    chosen = os.environ.get("DEMO_METRICS", "")
    if chosen not in ("", "prometheus", "cloudwatch"):
        raise SystemExit(f"demo: DEMO_METRICS must be prometheus or cloudwatch, not {chosen!r}")
    if chosen == "cloudwatch":
        return "cloudwatch"
    try:
        prometheus.binary()
    except ToolError as exc:
        if chosen == "prometheus":
            raise SystemExit(f"demo: {exc}") from None
        return "cloudwatch"
    return "prometheus"


@dataclass
class Outcome:
    """What the demo ended with: the run's exit code, each cohort's canary status, the report."""

    root: Path
    run_exit: int = -1
    cohorts: dict[str, str] = field(default_factory=dict)  # cohort -> passed / rolled_back / ...
    released: int | None = None  # the release pointer at the end
    report: Path | None = None
    seconds: float = 0.0
    source: str = "cloudwatch"  # where the canary's metrics came from
    exposure_exit: int = -1  # `exposure openssl --cve …`: 1, the release lacks the fix

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
            f" (imagefleet run exit {self.run_exit}); canary metrics from "
            + ("PromQL (local Prometheus)" if self.source == "prometheus" else "CloudWatch")
        )


class Demo:
    def __init__(self, root: Path, faults: str | None = None, source: str = "cloudwatch") -> None:
        self.root = root
        self.faults = faults
        self.source = source
        self.prometheus_port = free_port() if source == "prometheus" else 0
        self.exporter: Exporter | None = None
        self.config = root / "imagefleet.toml"
        self.clock = VirtualClock()
        self.step_no = 0
        self.outcome = Outcome(root, source=source)

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
        """The demo's canary in place of `init`'s, image tests inside the image, and the family's
        parent named by Canonical's public parameter (in place of init's source filter)."""
        tests = IMAGE_TESTS_DEMO_CONFIG.strip()
        life = LIFE_DEMO_CONFIG.strip()
        print(
            f"$ # in [families.{FAMILY}] of imagefleet.toml, for its source_filter:\n{life}\n"
            f"$ # and add:\n{tests}",
            flush=True,
        )
        text, parents = re.subn(
            r"^source_filter = .*$",
            lambda _: life,
            self.config.read_text(),
            count=1,
            flags=re.MULTILINE,
        )
        if not parents:
            raise SystemExit(f"demo: init's [families.{FAMILY}] has no source_filter to replace")
        text = text.replace(f"[families.{FAMILY}]\n", f"[families.{FAMILY}]\n{tests}\n", 1)
        block = CANARY_DEMO_CONFIG.strip()
        if self.source == "prometheus":
            url = f"http://127.0.0.1:{self.prometheus_port}"
            block += "\n" + PROMQL_METRICS.format(url=url, shift=PROMQL_SHIFT).strip()
        print(f"$ # replace the [canary] table of imagefleet.toml with:\n{block}", flush=True)
        text = re.sub(
            r"^\[\[?canary(?:\.metrics)?\]\]?\n(?:(?!\[).*\n?)*",
            "",
            text,
            flags=re.MULTILINE,
        )
        # The second account: its [accounts] table, and the candidate shared with it, so the
        # new base may launch there before its groups roll (the release stage shares with it too)
        accounts = ACCOUNTS_DEMO_CONFIG.strip() + "\n\n" + OS_RELEASES_DEMO_CONFIG.strip()
        print(
            f"$ # add to imagefleet.toml, and share candidates with {MEMBER_ID} too:\n{accounts}",
            flush=True,
        )
        text, shared = re.subn(
            r"^(\[stages\.candidate\]\naccounts = \[)([^\]]*)\]",
            lambda m: (
                f'{m.group(1)}{m.group(2)}, "{MEMBER_ID}"]'
                if MEMBER_ID not in m.group(2)
                else m.group(0)
            ),
            text,
            count=1,
            flags=re.MULTILINE,
        )
        if not shared:
            raise SystemExit("demo: init's config has no [stages.candidate] accounts to extend")
        self.config.write_text(text.rstrip("\n") + "\n\n" + block + "\n\n" + accounts + "\n")

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
        """The local agents (health metrics, benchmark agents, the SSM agent that runs the image
        tests' commands) inside the demo clock's sleeps."""
        ctx = self.context()
        if self.source == "prometheus":  # the health agent's points, for the local Prometheus
            self.exporter = Exporter(
                prometheus.LocalPrometheus(ctx.settings.state_dir).targets_file,
                scraped=True,
                lag=METRIC_DELAY_S,
                shift=PROMQL_SHIFT_S,
            ).start()
        env = AgentEnv(
            aws=ctx.aws,
            state_dir=ctx.settings.state_dir,
            regions=ctx.settings.aws.regions,
            clock=self.clock,
            artifact_bucket=ctx.settings.aws.artifact_bucket,
            exporter=self.exporter,
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
    promql = d.source == "prometheus"
    d.say(
        "Start the embedded AWS endpoint (moto's server on 127.0.0.1)"
        + (" and a local Prometheus that scrapes the instances" if promql else "")
        + "; the demo runs the agents itself"
    )
    d.run(
        "local",
        "up",
        "--no-agents",
        *(("--faults", d.faults) if d.faults else ()),
        *(("--prometheus", "--prometheus-port", str(d.prometheus_port)) if promql else ()),
    )
    if d.faults and "clock=manual" in d.faults:
        faultproxy.follow(LocalEndpoint(d.context().settings.state_dir).require_url(), d.clock)
    agents = d.attach_agents()
    try:
        d.say(
            "Bootstrap: the family's first base, tested, released (forced past its gates; the "
            "reason is audited). The image tests run inside each test instance: EC2's status "
            "checks, and the 'packages' check through SSM Run Command, which the local SSM agent "
            "runs on this host against the base's package manifest"
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
            f"The organisation's second account ({MEMBER}, {MEMBER_ID}): imagefleet assumes its "
            "role there; its groups run the release too, shared with it by launch permission"
        )
        d.run("accounts", "check")
        d.run(
            "local",
            "fleet",
            "--family",
            FAMILY,
            "--ami",
            d.ami("release"),
            "--types",
            ",".join(MEMBER_TYPES),
            "--per-type",
            str(MEMBER_PER_TYPE),
            "--account",
            MEMBER,
        )
        d.run("fleet")
        d.say(
            "Is the family due a rebake? Its parent is Canonical's public parameter; the release "
            "was baked from what it names now, with the current recipe"
        )
        d.run("upstream", FAMILY)
        d.say(
            "The recipe moves on. An hourly scheduler runs `imagefleet run --if-changed`: the "
            "recipe changed, so it bakes and tests the next base, then stops (--until unstable)"
        )
        d.update_recipe()
        d.run("upstream", FAMILY)
        d.run("run", FAMILY, "--if-changed", "--until", "unstable")
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
            "release; the canary judges from "
            + (
                "PromQL, answered by the local Prometheus scraping the health agent"
                if promql
                else "CloudWatch, where the health agent publishes"
            )
        )
        d.outcome.run_exit = d.run("run", FAMILY, expect=1)
        d.run("canary", "status")
        d.say(
            "Canonical releases a new Ubuntu image: the parameter moves, and the family is "
            "outdated upstream (the next hourly `run --if-changed` would bake; here a dry run)"
        )
        d.run("local", "publish", PARENT_PARAMETER)
        d.run("upstream", FAMILY)
        d.run("run", FAMILY, "--if-changed", "--dry-run")
        d.say(
            f"Where does this run? {EXPOSURE_CVE} is fixed in {FAMILY}:2's openssl; the release "
            "(demo:1) still runs on the groups the canary rolled back (exit 1: exposed)"
        )
        d.outcome.exposure_exit = d.run("exposure", "openssl", "--cve", EXPOSURE_CVE, expect=1)
        package, version = EXPOSURE_PACKAGE
        d.run("exposure", package, "--version-below", version, expect=1)
        d.say(
            "The fleet at a glance: a fresh fleet snapshot, then the hygiene scorecard per family "
            "(also on the report's index)"
        )
        d.run("fleet")
        d.run("scorecard")
    finally:
        agents.cancel()
        if d.exporter is not None:
            d.exporter.close()
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
    d = Demo(root, faults, metrics_source())
    print(
        f"imagefleet demo in {root}; it runs on a virtual clock: soak, canary windows and "
        "benchmark waits "
        "take no wall time, and the outcome does not depend on how busy the machine is; the "
        "canary's metrics come from "
        + (
            "PromQL (a real Prometheus)"
            if d.source == "prometheus"
            else "CloudWatch (prometheus is not installed, or DEMO_METRICS=cloudwatch)"
        ),
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
