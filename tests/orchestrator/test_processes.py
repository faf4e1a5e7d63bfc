"""`local down` signals only the processes it started: a record naming anything else is refused."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefleet.cli import raw_main
from orchestrator.context import Context
from orchestrator.local import agents as local_agents
from orchestrator.local import processes
from orchestrator.local.endpoint import LocalEndpoint
from orchestrator.output import Output

MOTO = (sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "5999")


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process (``sleep 60``) that a pid file can be made to name."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    # Popen returns once exec began; /proc shows the new command line a moment later
    for _ in range(1000):
        if processes.read_cmdline(proc.pid) == ("sleep", "60"):
            break
        time.sleep(0.01)
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    assert raw_main(["init", str(tmp_path)], obj=Context(output=Output(stdout=io.StringIO()))) == 0
    (tmp_path / ".imagefleet").mkdir()
    return tmp_path / "imagefleet.toml"


def down(config: Path) -> tuple[int, str]:
    err = io.StringIO()
    code = raw_main(
        ["--config", str(config), "local", "down"],
        obj=Context(output=Output(stdout=io.StringIO(), stderr=err)),
    )
    return code, " ".join(err.getvalue().split())


def write_endpoint_record(
    state_dir: Path, pid: int, cmdline: tuple[str, ...], ticks: int | None
) -> Path:
    path = state_dir / "local.json"
    path.write_text(
        json.dumps(
            {
                "pid": pid,
                "port": 5999,
                "url": "http://127.0.0.1:5999",
                "log": "x",
                "started_at": 0.0,
                "cmdline": list(cmdline),
                "start_ticks": ticks,
            }
        )
    )
    return path


def test_an_endpoint_record_naming_another_process_is_refused(
    config: Path, stranger: subprocess.Popen[bytes]
) -> None:
    record = write_endpoint_record(config.parent / ".imagefleet", stranger.pid, MOTO, 12345)
    code, err = down(config)
    assert code == 1
    assert (
        f"not signalling pid {stranger.pid}: it is not the local endpoint imagefleet started" in err
    )
    assert "'sleep 60'" in err  # says what the pid runs now
    assert stranger.poll() is None  # still running
    assert not record.exists()  # the stale record is gone: the next `local up` starts afresh
    assert down(config) == (0, "")


def test_a_reused_pid_with_the_same_command_is_refused(
    config: Path, stranger: subprocess.Popen[bytes]
) -> None:
    mine = processes.ProcessRecord.started(stranger)
    assert processes.identify(mine).state is processes.State.OURS
    reused = processes.ProcessRecord(mine.pid, mine.cmdline, (mine.start_ticks or 0) - 1)
    write_endpoint_record(
        config.parent / ".imagefleet", reused.pid, reused.cmdline, reused.start_ticks
    )
    code, err = down(config)
    assert code == 1 and "started at another time (its pid was reused)" in err
    assert stranger.poll() is None


def test_an_agent_runner_pid_file_naming_another_process_is_refused(
    config: Path, stranger: subprocess.Popen[bytes]
) -> None:
    state_dir = config.parent / ".imagefleet"
    pid_file = state_dir / local_agents.PID_FILE
    pid_file.write_text(
        json.dumps(
            {
                "pid": stranger.pid,
                "cmdline": [sys.executable, "-m", "imagefleet.cli"],
                "start_ticks": 1,
            }
        )
    )
    code, err = down(config)
    assert code == 1 and "it is not the local agent runner imagefleet started" in err
    assert stranger.poll() is None
    pid_file.write_text(
        str(stranger.pid)
    )  # a bare pid, as older releases wrote it: nothing to check
    code, err = down(config)
    assert (
        code == 1
        and "cannot tell it is the local agent runner" in err
        and f"kill {stranger.pid}" in err
    )
    assert stranger.poll() is None and pid_file.exists()  # kept: the user decides
    assert (
        local_agents.running_pid(state_dir) == stranger.pid
    )  # still counted as running, so no second runner


def test_the_recorded_process_is_stopped(tmp_path: Path, stranger: subprocess.Popen[bytes]) -> None:
    record = processes.ProcessRecord.started(stranger)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(record.to_dict()))
    assert (
        processes.stop(
            processes.ProcessRecord.from_dict(json.loads(path.read_text())), "sleep", path
        )
        is True
    )
    assert stranger.wait(timeout=30) == -15  # SIGTERM
    assert not path.exists()
    assert processes.identify(record).state is processes.State.GONE
    assert processes.stop(record, "sleep", path) is False  # nothing left to stop


def test_an_endpoint_record_of_an_exited_process_is_not_running(tmp_path: Path) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    write_endpoint_record(tmp_path, proc.pid, ("true",), None)
    ep = LocalEndpoint(tmp_path)
    assert ep.info() is None and ep.down() is False and not (tmp_path / "local.json").exists()


@pytest.fixture
def group() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A shell leading its own process group, with a child ``sleep`` in the same group."""
    proc = subprocess.Popen(["sh", "-c", "sleep 60 & wait"], start_new_session=True)
    child = None
    for _ in range(1000):
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        text = kids.read_text().split() if kids.exists() else []
        if text and processes.read_cmdline(int(text[0])) == ("sleep", "60"):
            child = int(text[0])
            break
        time.sleep(0.01)
    assert child is not None
    yield proc, child
    for pid in (proc.pid, child):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    proc.wait()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_record_others_could_write_signals_only_the_pid(tmp_path: Path, group) -> None:
    """A forged record (a perfect copy of a group leader's cmdline and start time) reaches no
    group."""
    proc, child = group
    path = tmp_path / "p.json"
    path.write_text(json.dumps(processes.ProcessRecord.started(proc).to_dict()))
    path.chmod(0o666)  # anyone could have written it
    assert (
        processes.stop(processes.ProcessRecord.from_dict(json.loads(path.read_text())), "sh", path)
        is True
    )
    assert proc.wait(timeout=30) == -15
    assert alive(child)  # the rest of the group was not signalled


def test_our_own_record_of_a_group_leader_stops_its_group(tmp_path: Path, group) -> None:
    proc, child = group
    path = tmp_path / "p.json"
    path.write_text(json.dumps(processes.ProcessRecord.started(proc).to_dict()))
    path.chmod(0o600)
    assert (
        processes.stop(processes.ProcessRecord.from_dict(json.loads(path.read_text())), "sh", path)
        is True
    )
    assert proc.wait(timeout=30) == -15
    for _ in range(3000):
        if not alive(child):
            break
        time.sleep(0.01)
    assert not alive(child)
