"""The family's image tests (``[families.X] tests``) on one booted test instance.

- ``ec2-status``: DescribeInstanceStatus until the instance and system status checks are both
  ``ok`` (``impaired`` fails at once; ``initializing`` is waited out until the test's timeout);
- ``ssm``: SSM Run Command (document ``AWS-RunShellScript``): SendCommand, retried while SSM says
  ``InvalidInstanceId`` (the instance's agent is not online yet), then GetCommandInvocation until
  a final status. Exit 0 passes; anything else fails with the end of stdout and stderr.

Each test is one ``Check``; a long wait prints progress every ``PROGRESS_EVERY`` seconds. The
verdicts are plain functions of what AWS answered (``status_verdict``, ``invocation_verdict``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.aws import AwsFactory
from orchestrator.clock import Clock
from orchestrator.config import ImageTestSpec
from orchestrator.errors import AwsError
from pipelines import aws as images

PROGRESS_EVERY = 30.0  # seconds of the clock between progress lines of one wait
EXCERPT = 2000  # characters of each stream kept in a failed check's output
FINAL = {"Success", "Failed", "Cancelled", "TimedOut"}


@dataclass(frozen=True)
class Check:
    """One check of one test instance; ``output`` is what a failed command printed (its end)."""

    name: str
    passed: bool
    message: str = ""
    output: str = ""

    @classmethod
    def of(cls, name: str, passed: bool, failure: str) -> Check:
        """A check that carries ``failure`` as its message only when it failed."""
        return cls(name, passed, "" if passed else failure)


# --- verdicts (pure) ------------------------------------------------------------------------------
def status_verdict(entry: dict[str, Any] | None) -> tuple[bool | None, str]:
    """(passed, what it says) of a DescribeInstanceStatus entry; passed None: wait on."""
    if entry is None:
        return None, "no status reported yet"
    inst = entry.get("InstanceStatus", {}).get("Status", "")
    system = entry.get("SystemStatus", {}).get("Status", "")
    said = f"instance status {inst or '?'}, system status {system or '?'}"
    if inst == "ok" and system == "ok":
        return True, said
    if "impaired" in (inst, system):
        return False, said
    return None, said


def invocation_verdict(inv: dict[str, Any]) -> tuple[bool | None, str]:
    """(passed, what it says) of a GetCommandInvocation answer; passed None: not final yet."""
    status = str(inv.get("Status", ""))
    if status not in FINAL:
        return None, status or "Pending"
    code = inv.get("ResponseCode", -1)
    if status == "Success":
        return True, "exit 0"
    details = inv.get("StatusDetails", status)
    return False, f"{details} (exit {code})" if code not in (None, -1) else str(details)


def excerpt(stdout: str, stderr: str, limit: int = EXCERPT) -> str:
    """The end of each stream, labelled (what a failed check shows)."""
    parts = []
    for label, text in (("stdout", stdout), ("stderr", stderr)):
        text = text.rstrip()
        if text:
            cut = text if len(text) <= limit else "…" + text[-limit:]
            parts.append(f"--- {label}\n{cut}")
    return "\n".join(parts)


# --- running --------------------------------------------------------------------------------------
class _Waiting:
    """Progress lines for one wait: one every ``PROGRESS_EVERY`` seconds of the clock."""

    def __init__(self, clock: Clock, label: str, on_progress: Callable[[str], None]) -> None:
        self.clock, self.label, self.on_progress = clock, label, on_progress
        self.started = self.next = clock.monotonic()
        self.next += PROGRESS_EVERY

    def __call__(self, state: str) -> None:
        now = self.clock.monotonic()
        if now >= self.next:
            self.next = now + PROGRESS_EVERY
            self.on_progress(f"{self.label}: {state} after {now - self.started:.0f}s")


def run_checks(
    aws: AwsFactory,
    clock: Clock,
    region: str,
    instance_id: str,
    tests: tuple[ImageTestSpec, ...],
    *,
    label: str,
    comment: str,
    on_progress: Callable[[str], None],
    poll: float,
) -> list[Check]:
    out = []
    for spec in tests:
        wait = _Waiting(clock, f"{label} {spec.name}", on_progress)
        if spec.type == "ec2-status":
            out.append(_ec2_status(aws, clock, region, instance_id, spec, wait, poll))
        else:
            out.append(_ssm(aws, clock, region, instance_id, spec, wait, poll, comment))
    return out


def _ec2_status(
    aws: AwsFactory,
    clock: Clock,
    region: str,
    instance_id: str,
    spec: ImageTestSpec,
    wait: _Waiting,
    poll: float,
) -> Check:
    def look() -> tuple[bool | None, str]:
        verdict = status_verdict(images.instance_status(aws, region, instance_id))
        wait(verdict[1])
        return verdict

    (passed, said), _ = clock.poll_until(
        look, lambda v: v[0] is not None, timeout=spec.timeout_s, every=poll
    )
    if passed is None:
        return Check(spec.name, False, f"{said} after {spec.timeout_s}s")
    return Check.of(spec.name, passed, said)


def _ssm(
    aws: AwsFactory,
    clock: Clock,
    region: str,
    instance_id: str,
    spec: ImageTestSpec,
    wait: _Waiting,
    poll: float,
    comment: str,
) -> Check:
    deadline = clock.monotonic() + spec.timeout_s

    def send() -> str | None:
        try:
            return images.send_shell_command(
                aws, region, instance_id, spec.command, timeout_s=spec.timeout_s, comment=comment
            )
        except AwsError as exc:
            if exc.code != "InvalidInstanceId":
                raise
            wait("the instance's SSM agent is not online")
            return None

    command_id, sent = clock.poll_until(
        send, lambda c: c is not None, timeout=spec.timeout_s, every=poll
    )
    if not sent or command_id is None:
        return Check(
            spec.name,
            False,
            f"SSM never accepted the command (InvalidInstanceId for {spec.timeout_s}s): "
            "is the SSM agent in the image and the instance profile set?",
        )

    def look() -> dict[str, Any]:
        try:
            inv = images.command_invocation(aws, region, command_id, instance_id)
        except AwsError as exc:
            if exc.code != "InvocationDoesNotExist":  # just sent: not visible yet
                raise
            inv = {"Status": "Pending"}
        wait(f"command {command_id} {inv.get('Status')}")
        return inv

    inv, _ = clock.poll_until(
        look,
        lambda i: invocation_verdict(i)[0] is not None,
        timeout=max(0.0, deadline - clock.monotonic()),
        every=poll,
    )
    passed, said = invocation_verdict(inv)
    output = excerpt(
        str(inv.get("StandardOutputContent", "")), str(inv.get("StandardErrorContent", ""))
    )
    if passed is None:
        return Check(
            spec.name,
            False,
            f"no result after {spec.timeout_s}s (command {command_id} still {said})",
            output,
        )
    if passed:
        return Check(spec.name, True)
    return Check(spec.name, False, f"{said}, command {command_id}", output)
