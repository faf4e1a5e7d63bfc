"""`make demo`: the main job end to end on the embedded endpoint, with the real CLI and real Packer.

It works in ``demo-output/`` (a fresh `imagefleet init` there each time) and runs exactly the
commands an operator would type, printing each one first. ``KEEP=1`` leaves the endpoint running
afterwards so you can go on with the same state.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

from orchestrator.cli import raw_main
from orchestrator.context import Context
from orchestrator.output import Output

# A newer package set for the second bake: security upgrades, one added and one removed package.
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

# The demo's canary: three waves per cohort, short windows (on a 10x clock), and "continue" so a
# failing cohort is rolled back while the others go on.
CANARY_DEMO_CONFIG = """
[canary]
waves = [1, 0.3, 1.0]
on_fail = "continue"
warmup = "30s"
analysis = "90s"
period = "10s"
metric_delay = "10s"
batch_spacing = "5s"
jitter = "2s"
poll = "5s"
"""
TIME_SCALE = "10"


class Demo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "imagefleet.toml"
        self.step_no = 0

    def say(self, title: str) -> None:
        self.step_no += 1
        print(f"\n\033[1m== {self.step_no}. {title}\033[0m", flush=True)

    def run(self, *args: str, expect: int = 0, output: Output | None = None) -> int:
        print(f"$ imagefleet {shlex.join(args)}", flush=True)
        code = raw_main(["--config", str(self.config), *args], obj=Context(output=output))
        sys.stdout.flush()
        if code != expect:
            raise SystemExit(f"demo: 'imagefleet {' '.join(args)}' exited {code}, expected {expect}")
        return code

    def capture(self, *args: str) -> str:
        """Run a command and return its output (also shown)."""
        out = io.StringIO()
        self.run(*args, output=Output(stdout=out))
        print(out.getvalue(), end="", flush=True)
        return out.getvalue().strip()

    def tune_canary(self) -> None:
        """The demo's waves in place of `init`'s [canary] table (the defaults suit production)."""
        block = CANARY_DEMO_CONFIG.strip()
        print(f"$ # replace the [canary] table of imagefleet.toml with:\n{block}", flush=True)
        text = re.sub(r"^\[canary\]\n(?:(?!\[).*\n?)*", "", Path(self.config).read_text(), flags=re.MULTILINE)
        Path(self.config).write_text(text.rstrip("\n") + "\n\n" + block + "\n")

    def next_manifest(self) -> Path:
        src = self.root / "recipes" / "demo.manifest"
        lines = []
        for line in src.read_text().splitlines():
            name = line.split("\t", 1)[0]
            if name in NEXT_MANIFEST_REMOVED:
                continue
            lines.append(f"{name}\t{NEXT_MANIFEST_CHANGES.get(name, line.split(chr(9))[1])}")
        lines += [f"{n}\t{v}" for n, v in NEXT_MANIFEST_CHANGES.items() if n not in {ln.split("\t")[0] for ln in lines}]
        dest = self.root / "recipes" / "demo-next.manifest"
        dest.write_text("\n".join(sorted(lines)) + "\n")
        return dest


def main() -> None:
    root = Path(os.environ.get("DEMO_DIR", "demo-output")).resolve()
    keep = os.environ.get("KEEP") == "1"
    # Soak, canary windows and perf waits run on a 10x clock, shared with the local agent runner.
    os.environ.setdefault("IMAGEFLEET_TIME_SCALE", TIME_SCALE)
    started = time.monotonic()
    if (root / "imagefleet.toml").exists():
        raw_main(["--config", str(root / "imagefleet.toml"), "local", "down"], obj=Context())
    shutil.rmtree(root, ignore_errors=True)
    d = Demo(root)
    print(f"imagefleet demo in {root}; its clock runs {os.environ['IMAGEFLEET_TIME_SCALE']}x "
          "(IMAGEFLEET_TIME_SCALE), so soak times and ages read longer than the wall clock", flush=True)
    try:
        d.say("Write a config and a Packer template for the embedded endpoint")
        print(f"$ imagefleet init {root}")
        if raw_main(["init", str(root)], obj=Context()) != 0:
            raise SystemExit("demo: init failed")
        d.say("Start the embedded AWS endpoint (moto's server on 127.0.0.1)")
        d.run("local", "up")
        d.say("Bake the first base with Packer (amazon-ebs against the local endpoint)")
        d.run("bake", "demo")
        d.say("Image tests: one smoke instance per cohort type and region, JUnit for CI")
        d.run("test", "demo:1", "--junit", str(root / "junit-demo-1.xml"))
        d.say("Promote to candidate (gates: image tests) and publish the SSM parameter")
        d.run("promote", "demo:1", "--to", "candidate")
        d.say("A friend team resolves its AMI from the candidate")
        d.run("resolve", "demo", "--team", "payments")
        d.say("Bootstrap: the family's first release, forced past its gates (the reason is audited)")
        d.run("promote", "demo:1", "--to", "release", "--force", "--reason",
              "bootstrap: first release of the demo family")
        d.say("Bake the next base with newer packages; its changelog is made automatically")
        nxt = d.next_manifest()
        d.run("bake", "demo", "--var", f"recipe_manifest={nxt}")
        d.run("changelog", "show", "demo:2")
        d.run("test", "demo:2", "--junit", str(root / "junit-demo-2.xml"))
        d.say("Benchmark fleet: demo:2 against the release, interleaved instances, statistics")
        d.run("perf", "run", "demo:2")
        d.say("Promote demo:2 to candidate; friend teams now resolve the new base")
        d.run("promote", "demo:2", "--to", "candidate")
        d.run("resolve", "demo", "--team", "payments")
        d.say("A fleet on the release: one Auto Scaling group per cohort instance type (4 × 10)")
        release_ami = d.capture("resolve", "demo", "--stage", "release")
        d.run("local", "fleet", "--family", "demo", "--ami", release_ami, "--per-type", "10")
        d.say("FAULT INJECTION (local only): demo:2 answers 60% slower on r5.* instances")
        new_ami = d.capture("resolve", "demo", "--stage", "candidate")
        d.run("local", "inject", "--ami", new_ami, "--instance-types", "r5.*", "--metric", "latency_ms",
              "--factor", "1.6")
        d.say("Canary: the plan first (dry run), then roll demo:2 cohort by cohort")
        d.tune_canary()
        d.run("canary", "start", "demo:2", "--dry-run")
        d.run("canary", "start", "demo:2", expect=1)  # the r5 cohort fails and is rolled back
        d.run("canary", "status")
        d.say("Release needs a passed canary and a 24h soak: promoting now is refused (exit 1)")
        d.run("promote", "demo:2", "--to", "release", expect=1)
        d.say("Where everything stands")
        d.run("status")
        d.run("history", "demo")
    finally:
        if not keep and (root / "imagefleet.toml").exists():
            print()
            raw_main(["--config", str(root / "imagefleet.toml"), "local", "down"], obj=Context())
    print(f"\ndemo finished in {time.monotonic() - started:.0f}s; files in {root}"
          + ("" if not keep else f"\nthe endpoint is still up: imagefleet --config {d.config} local down"))


if __name__ == "__main__":
    main()
