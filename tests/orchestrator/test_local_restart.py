"""An embedded endpoint that lost half of itself, and `local up --faults` on a running one."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path

from imagefleet.cli import raw_main
from orchestrator.context import Context
from orchestrator.local.endpoint import LocalEndpoint
from orchestrator.output import Output


def running(pid: int) -> bool:
    """Alive and not a zombie (a child killed but not yet reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_restart_after_moto_died_stops_the_orphaned_fault_proxy(tmp_path: Path) -> None:
    ep = LocalEndpoint(tmp_path / "state")
    old, _ = ep.up(faults="throttle=0.1", fault_seed=1)
    assert old.proxy_pid is not None and running(old.proxy_pid)
    os.kill(old.pid, signal.SIGKILL)  # moto dies; its fault proxy lives on
    os.waitpid(old.pid, 0)
    assert ep.info() is None and running(old.proxy_pid)
    new, started = ep.up()
    try:
        assert started and new.pid != old.pid
        assert not running(old.proxy_pid)  # the orphan was stopped, not left holding its port
    finally:
        assert ep.down()


def test_local_up_with_other_faults_on_a_running_endpoint_is_refused(tmp_path: Path) -> None:
    assert (
        raw_main(
            ["init", str(tmp_path)],
            obj=Context(output=Output(stdout=io.StringIO(), stderr=io.StringIO())),
        )
        == 0
    )
    config = str(tmp_path / "imagefleet.toml")
    ctx = Context(output=Output(stdout=io.StringIO(), stderr=io.StringIO()))
    assert raw_main(["--config", config, "local", "up", "--no-agents", "--no-seed"], obj=ctx) == 0
    ep = LocalEndpoint(tmp_path / ".imagefleet")
    before = ep.info()
    try:
        err = io.StringIO()
        code = raw_main(
            ["--config", config, "local", "up", "--no-agents", "--faults", "throttle=0.2"],
            obj=Context(output=Output(stdout=io.StringIO(), stderr=err)),
        )
        lines = err.getvalue().strip().splitlines()
        assert code == 2 and len(lines) == 2, err.getvalue()
        assert "already running without faults" in lines[0] and "nothing was changed" in lines[0]
        assert lines[1].startswith("hint: 'imagefleet local down'")
        assert ep.info() == before and before is not None and before.faults is None
    finally:
        assert (
            raw_main(
                ["--config", config, "local", "down"],
                obj=Context(output=Output(stdout=io.StringIO())),
            )
            == 0
        )
