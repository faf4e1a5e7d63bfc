"""The local agent runner: what instances would do on their own, done on the host.

Instances on the embedded endpoint run nothing, so `imagefleet local up` also starts this runner
in the background (`imagefleet local agents`). Every tick it calls each registered handler with an
``AgentEnv``; a handler looks at what runs on the endpoint and acts for those instances. The areas
register theirs (``register``); the top layer (``imagefleet.cli``) mounts them with ``mount``, so
this core module never imports an area, nor knows the program that runs it:

- ``canary.local_health.tick``: publishes per-instance health metrics to CloudWatch for running
  instances of managed Auto Scaling groups, and the same points to the runner's exposition
  endpoint (``orchestrator.local.exporter``), which a local Prometheus scrapes through the file-SD
  list it keeps (`local up --prometheus`);
- ``perf.local_runner.tick``: runs the benchmark agent (`imagefleet-agent bench`) on the host for
  launched benchmark instances, one or two at a time, alternating arms;
- ``orchestrator.local.ssm_agent``: plays the SSM agent, running SSM Run Command scripts on the
  host for the instances they target (with ``pipelines.local_imagetest``'s environment).

Tests and simulations run the same handlers on a ``VirtualClock`` instead (``attach``): each
tick runs inside the clock's sleeps, so nothing depends on how fast the machine is.

Handlers read fault injections (``orchestrator.local.injection``) from the state directory. A
handler
that fails is logged and retried on the next tick; one area's bug never stops the other's agents.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.clock import Clock, VirtualClock
from orchestrator.errors import UsageError
from orchestrator.local import injection, processes

if TYPE_CHECKING:  # mounting this module costs no boto3; it loads when an agent runs
    from orchestrator.aws import AwsFactory
    from orchestrator.local.exporter import Exporter

log = logging.getLogger("imagefleet.local_agents")

PID_FILE = "local-agents.pid"
LOG_FILE = "local-agents.log"


@dataclass
class AgentEnv:
    aws: AwsFactory
    state_dir: Path
    regions: tuple[str, ...]
    clock: Clock
    memory: dict[str, Any] = field(default_factory=dict)  # per-handler state kept between ticks
    artifact_bucket: str = ""  # [aws].artifact_bucket: what bakes published (manifests)
    # The instances' exposition endpoint and file-SD list, for a local Prometheus to scrape.
    exporter: Exporter | None = None

    def injections(self) -> list[injection.Injection]:
        return injection.load(self.state_dir)


Handler = Callable[[AgentEnv], None]


_REGISTRY: dict[str, Handler] = {}
_LOADERS: list[Callable[[], None]] = []
_PROGRAM: list[tuple[str, ...]] = []


def mount(program: Sequence[str], load: Callable[[], None]) -> None:
    """How the top layer plugs in: ``program`` is the command line that runs `imagefleet` again (the
    background runner is `PROGRAM local agents`), ``load`` registers the areas' handlers, called
    once
    when they are first needed so that start-up imports no area."""
    _PROGRAM[:] = [tuple(program)]
    if load not in _LOADERS:
        _LOADERS.append(load)


def register(name: str, handler: Handler) -> None:
    """Make ``handler`` one the background runner calls every tick (registering a name again
    replaces it)."""
    _REGISTRY[name] = handler


def registered() -> list[tuple[str, Handler]]:
    """The handlers registered so far (the mounted ones loaded first), in the order first
    registered."""
    while _LOADERS:
        _LOADERS.pop(0)()
    return list(_REGISTRY.items())


def tick_all(env: AgentEnv, handlers: list[tuple[str, Handler]]) -> list[BaseException]:
    """Call every handler once; a failure is logged and returned, and the others still run."""
    failures: list[BaseException] = []
    for name, handler in handlers:
        try:
            handler(env)
        except Exception as exc:
            log.exception("handler %s failed; retrying next tick", name)
            failures.append(exc)
    return failures


def run(
    env: AgentEnv,
    *,
    interval: float = 1.0,
    ticks: int | None = None,
    handlers: list[tuple[str, Handler]] | None = None,
) -> None:
    """Call every handler each ``interval`` seconds of the wall clock, ``ticks`` times (forever when
    None)."""
    handlers = registered() if handlers is None else handlers
    n = 0
    while ticks is None or n < ticks:
        started = time.monotonic()
        tick_all(env, handlers)
        n += 1
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


@dataclass
class Attached:
    """Agents running inside a ``VirtualClock``'s sleeps: how often they ran and what failed."""

    ticks: int = 0
    failures: list[BaseException] = field(default_factory=list)
    cancel: Callable[[], None] = lambda: None


def attach(
    clock: VirtualClock,
    env: AgentEnv,
    handlers: list[tuple[str, Handler]],
    *,
    interval: float = 60.0,
) -> Attached:
    """Run ``handlers`` on a virtual clock, synchronously: when a sleep begins and ends, and at
    least every ``interval`` seconds in between.

    Tests and simulations use this instead of the background runner. The clock moves only in
    sleeps, and the fleet changes only between them, so a tick as a sleep begins sees what the
    sleeper just launched, and one as it ends publishes everything due for the time slept
    (``canary.local_health`` catches up on missed emission times) before the sleeper looks;
    however loaded the machine. Handlers must finish their work within the call
    (``perf.local_runner.settle``, not ``tick``, which leaves agents running)."""
    if env.clock is not clock:
        raise ValueError("the agents must run on the clock they are attached to")
    state = Attached()

    def one_tick() -> None:
        state.ticks += 1
        state.failures += tick_all(env, handlers)

    state.cancel = clock.every(interval, one_tick, around_sleeps=True)
    return state


# --- the background process -----------------------------------------------------------------------
def start_background(state_dir: Path, config_path: Path | None) -> int:
    """Start `imagefleet local agents` detached; returns its pid (the running one if any)."""
    pid = running_pid(state_dir)
    if pid:
        return pid
    if not _PROGRAM:
        raise UsageError(
            "the local agent runner has no program to start: nothing mounted the areas' agents",
            hint="run it through the `imagefleet` command, or pass --no-agents",
        )
    args = list(_PROGRAM[0])
    if config_path:
        args += ["--config", str(config_path)]
    args += ["local", "agents"]
    with open(Path(state_dir) / LOG_FILE, "ab") as logf:
        proc = subprocess.Popen(
            args,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (Path(state_dir) / PID_FILE).write_text(
        json.dumps(processes.ProcessRecord.started(proc).to_dict())
    )
    return proc.pid


def recorded(state_dir: Path) -> processes.ProcessRecord | None:
    """The runner's record: JSON with its command line and start time (a bare pid from older
    releases)."""
    try:
        text = (Path(state_dir) / PID_FILE).read_text()
        data = json.loads(text)
        return (
            processes.ProcessRecord(data)
            if isinstance(data, int)
            else processes.ProcessRecord.from_dict(data)
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None


def running_pid(state_dir: Path) -> int | None:
    record = recorded(state_dir)
    if record is None:
        return None
    state = processes.identify(record).state
    return record.pid if state in (processes.State.OURS, processes.State.UNVERIFIABLE) else None


def stop_background(state_dir: Path) -> bool:
    """Stop the runner this state directory started; RefusedError when its pid is someone else's."""
    record = recorded(state_dir)
    if record is None:
        (Path(state_dir) / PID_FILE).unlink(missing_ok=True)
        return False
    return processes.stop(record, "the local agent runner", Path(state_dir) / PID_FILE, timeout=5.0)
