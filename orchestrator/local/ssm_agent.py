"""The local SSM agent: runs SSM Run Command invocations on the host for endpoint instances.

On AWS the SSM agent in the image (with an instance profile that has
``AmazonSSMManagedInstanceCore``) picks up each command sent to its instance, runs it and reports
exit code and output; ``GetCommandInvocation`` then shows them. Instances on the embedded endpoint
run nothing, so this handler of the local agent runner plays that agent: every tick it lists the
commands still ``InProgress`` (``ListCommands``, ``GetCommandInvocation``: the real SSM API), and
for each invocation of document ``AWS-RunShellScript`` on an instance running on the endpoint it
runs the script with ``/bin/sh`` on the host, in a sandbox working directory of its own under the
state directory, with the document's ``executionTimeout`` (default 3600 s; past it the script is
killed and the invocation is ``TimedOut``). The result goes back through the endpoint's reply route
(``orchestrator.local.ssm_commands``), after which the real API answers with it.

The script's environment is small and says where it runs: ``IMAGEFLEET_LOCAL=1``,
``IMAGEFLEET_INSTANCE_ID``, ``IMAGEFLEET_IMAGE_ID``, ``IMAGEFLEET_INSTANCE_TYPE``,
``IMAGEFLEET_REGION``, ``HOME`` and ``TMPDIR`` (the sandbox), ``PATH``; an area adds its own
(``SsmAgent(environment=...)``: the image tests give the base's package manifest). ``tick`` starts
scripts and collects finished ones on later ticks; ``settle`` (for a ``VirtualClock``) waits for
the scripts it starts within the call.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.local.ssm_commands import REPLY_PATH

if TYPE_CHECKING:
    from orchestrator.local.agents import AgentEnv

log = logging.getLogger("imagefleet.local_ssm_agent")

DOCUMENT = "AWS-RunShellScript"
DEFAULT_EXECUTION_TIMEOUT = 3600.0  # AWS-RunShellScript's executionTimeout default
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# (env, region, DescribeInstances' instance, sandbox) -> extra environment variables
Environment = Callable[["AgentEnv", str, dict[str, Any], Path], dict[str, str]]


@dataclass
class Running:
    region: str
    command_id: str
    instance_id: str
    proc: subprocess.Popen[bytes]
    sandbox: Path
    started: str
    deadline: float  # time.monotonic() past which the script is killed
    status: str | None = None  # the final status, once the script ended (kept until reported)


class SsmAgent:
    """The handler (``tick``) and its ``settle`` for a virtual clock; ``environment`` adds
    variables per invocation."""

    def __init__(self, environment: Environment | None = None) -> None:
        self.environment = environment

    def tick(self, env: AgentEnv) -> None:
        self._collect(env, wait=False)
        for region in env.regions:
            self._start(env, region)
        self._collect(env, wait=False)

    def settle(self, env: AgentEnv) -> None:
        self._collect(env, wait=True)
        for region in env.regions:
            self._start(env, region)
        self._collect(env, wait=True)

    # --- internals --------------------------------------------------------------------------------
    def _running(self, env: AgentEnv) -> dict[tuple[str, str], Running]:
        running: dict[tuple[str, str], Running] = env.memory.setdefault("ssm_agent", {})
        return running

    def _start(self, env: AgentEnv, region: str) -> None:
        ssm = env.aws.client("ssm", region)
        running = self._running(env)
        gone: set[tuple[str, str]] = env.memory.setdefault("ssm_agent_gone", set())
        for page in ssm.paginate("list_commands"):
            for cmd in page.get("Commands", []):
                if cmd.get("Status") not in ("Pending", "InProgress"):
                    continue
                if cmd.get("DocumentName") != DOCUMENT:
                    continue
                for instance_id in cmd.get("InstanceIds", []):
                    key = (cmd["CommandId"], instance_id)
                    if key in running or key in gone:
                        continue
                    inv = ssm.get_command_invocation(
                        CommandId=cmd["CommandId"], InstanceId=instance_id
                    )
                    if inv["Status"] not in ("Pending", "InProgress"):
                        continue
                    instance = _instance(env, region, instance_id)
                    state = instance["State"]["Name"] if instance else "terminated"
                    if state in ("shutting-down", "terminated"):
                        gone.add(key)  # never runs it: not asked again
                    if instance is None or state != "running":
                        continue  # a stopped instance's agent runs nothing
                    running[key] = self._launch(env, region, cmd, instance)

    def _launch(
        self, env: AgentEnv, region: str, cmd: dict[str, Any], instance: dict[str, Any]
    ) -> Running:
        params = cmd.get("Parameters", {})
        script = "\n".join(params.get("commands", []))
        timeout = float((params.get("executionTimeout") or [DEFAULT_EXECUTION_TIMEOUT])[0])
        instance_id = instance["InstanceId"]
        sandbox = Path(env.state_dir) / "ssm-agent" / f"{cmd['CommandId']}-{instance_id}"
        shutil.rmtree(sandbox, ignore_errors=True)
        sandbox.mkdir(parents=True)
        variables = {
            "PATH": PATH,
            "HOME": str(sandbox),
            "TMPDIR": str(sandbox),
            "LANG": "C.UTF-8",
            "IMAGEFLEET_LOCAL": "1",
            "IMAGEFLEET_INSTANCE_ID": instance_id,
            "IMAGEFLEET_IMAGE_ID": instance.get("ImageId", ""),
            "IMAGEFLEET_INSTANCE_TYPE": instance.get("InstanceType", ""),
            "IMAGEFLEET_REGION": region,
        }
        if self.environment is not None:
            try:
                variables.update(self.environment(env, region, instance, sandbox))
            except Exception:  # the script still runs; what it lacks shows in its output
                log.exception("no extra environment for %s", instance_id)
        (sandbox / "script.sh").write_text(script + "\n")
        with open(sandbox / "stdout", "wb") as out, open(sandbox / "stderr", "wb") as err:
            proc = subprocess.Popen(
                ["/bin/sh", str(sandbox / "script.sh")],
                cwd=sandbox,
                env=variables,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        log.info("running command %s on %s (pid %d)", cmd["CommandId"], instance_id, proc.pid)
        return Running(
            region,
            cmd["CommandId"],
            instance_id,
            proc,
            sandbox,
            datetime.now(UTC).isoformat(),
            time.monotonic() + timeout,
        )

    def _collect(self, env: AgentEnv, *, wait: bool) -> None:
        running = self._running(env)
        for key, run in list(running.items()):
            status = run.status or _finish(run, wait=wait)
            if status is None:
                continue
            run.status = status
            if not _reply(env, run, status):
                continue  # the endpoint did not take it: again next tick
            shutil.rmtree(run.sandbox, ignore_errors=True)
            del running[key]


def _finish(run: Running, *, wait: bool) -> str | None:
    """The invocation's final status once the script ended or overran (None: still running)."""
    left = run.deadline - time.monotonic()
    try:
        code = run.proc.wait(timeout=max(0.0, left)) if wait else run.proc.poll()
    except subprocess.TimeoutExpired:
        code = None
    if code is not None:
        return "Success" if code == 0 else "Failed"
    if time.monotonic() < run.deadline:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(run.proc.pid, signal.SIGKILL)
    run.proc.wait()
    return "TimedOut"


def _reply(env: AgentEnv, run: Running, status: str) -> bool:
    """Report one finished invocation; False when the endpoint could not be reached (retry)."""
    body = {
        "region": run.region,
        "command_id": run.command_id,
        "instance_id": run.instance_id,
        "status": status,
        "response_code": run.proc.returncode if status != "TimedOut" else -1,
        "started": run.started,
        "stdout": (run.sandbox / "stdout").read_bytes().decode(errors="replace"),
        "stderr": (run.sandbox / "stderr").read_bytes().decode(errors="replace"),
    }
    url = (env.aws.endpoint_url or "").rstrip("/") + REPLY_PATH
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=30):
            return True
    except urllib.error.HTTPError as exc:  # 404: the command is gone (the endpoint restarted)
        log.warning("reply for %s on %s: HTTP %s", run.command_id, run.instance_id, exc.code)
        return exc.code < 500
    except OSError as exc:
        log.warning("reply for %s on %s: %s", run.command_id, run.instance_id, exc)
        return False


def _instance(env: AgentEnv, region: str, instance_id: str) -> dict[str, Any] | None:
    found = env.aws.client("ec2", region).describe_instances(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )
    for r in found.get("Reservations", []):
        for i in r.get("Instances", []):
            return dict(i)
    return None
