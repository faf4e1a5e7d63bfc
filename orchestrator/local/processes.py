"""Background processes imagefleet starts, recorded so that it only ever signals those.

A record keeps the pid, the command line ``/proc`` showed right after the start, and the start
time (field 22 of ``/proc/<pid>/stat``, clock ticks since boot). A pid is signalled only while both
still match: a record whose process exited and whose pid now belongs to something else, or a
record edited to name another process, is refused instead of killing a stranger.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from orchestrator.clock import Clock
from orchestrator.errors import RefusedError


def read_cmdline(pid: int) -> tuple[str, ...] | None:
    """The process's argv, or None when there is no such process (or it is a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return tuple(raw.decode(errors="replace").split("\0")[:-1]) or None


def read_start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks after boot (``/proc/<pid>/stat`` field 22)."""
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if after_name[0] == "Z":  # a zombie has exited; only its parent's wait is missing
        return None
    return int(after_name[19])


def pid_alive(pid: int) -> bool:
    """Is a process with this pid running (zombies count as gone)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (started by this very process) still answers kill(0); check /proc.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        return state != "Z"
    except (OSError, IndexError):
        return True


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    cmdline: tuple[str, ...] = ()
    start_ticks: int | None = None

    @classmethod
    def started(cls, proc: subprocess.Popen[Any]) -> ProcessRecord:
        """The record of a process just started (Popen returns after its exec, so /proc shows
        it)."""
        cmdline = read_cmdline(proc.pid) or tuple(str(a) for a in proc.args)  # type: ignore[union-attr]
        return cls(proc.pid, cmdline, read_start_ticks(proc.pid))

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "cmdline": list(self.cmdline), "start_ticks": self.start_ticks}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(
            int(data["pid"]),
            tuple(str(a) for a in data.get("cmdline") or ()),
            data.get("start_ticks"),
        )


class State(Enum):
    OURS = "ours"  # the recorded process, still running
    GONE = "gone"  # no process with that pid: the record is stale
    OTHER = "other"  # the pid belongs to another process: the record is stale
    UNVERIFIABLE = "unverifiable"  # a process runs, but the record has nothing to check it against


@dataclass(frozen=True)
class Identity:
    state: State
    reason: str = ""


def identify(record: ProcessRecord) -> Identity:
    """Is the process running under ``record.pid`` the one the record describes?"""
    now = read_cmdline(record.pid)
    ticks = read_start_ticks(record.pid)
    if ticks is None:
        return Identity(State.GONE, f"no process {record.pid} is running")
    if now is None:  # a kernel thread, or a process mid-exec: not the one recorded
        return Identity(State.OTHER, f"pid {record.pid} runs a process whose command line is empty")
    if not record.cmdline:
        return Identity(
            State.UNVERIFIABLE,
            f"the record of pid {record.pid} names no command line to check "
            f"(pid {record.pid} now runs {_shown(now)})",
        )
    if now != record.cmdline:
        return Identity(
            State.OTHER, f"pid {record.pid} now runs {_shown(now)}, not {_shown(record.cmdline)}"
        )
    if record.start_ticks is not None and ticks != record.start_ticks:
        return Identity(
            State.OTHER,
            f"pid {record.pid} runs the same command but started at another time "
            "(its pid was reused)",
        )
    return Identity(State.OURS)


def _shown(cmdline: tuple[str, ...], limit: int = 80) -> str:
    text = " ".join(cmdline)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _owned_by_us(path: Path) -> bool:
    """Whether ``path`` belongs to this user and no one else may write it."""
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def leads_its_group(record: ProcessRecord, record_path: Path | None) -> bool:
    """Whether signalling the recorded pid's whole process group is safe.

    A record's command line and start time can be copied from any process, so the group (the
    children the process started) is signalled only when the process runs as this user, leads
    its own session and group (as everything imagefleet starts with ``start_new_session`` does),
    and the record itself is this user's file that no one else can write. Otherwise only the pid.
    """
    try:
        mine = Path(f"/proc/{record.pid}").stat().st_uid == os.getuid()
        leader = os.getpgid(record.pid) == record.pid == os.getsid(record.pid)
    except OSError:
        return False
    return mine and leader and record_path is not None and _owned_by_us(record_path)


def terminate(
    record: ProcessRecord, timeout: float = 10.0, record_path: Path | None = None
) -> bool:
    """SIGTERM the recorded process (SIGKILL after ``timeout``), only while it is ours.

    Returns False when it was not running. The process was started in its own session, so its
    group holds the children it started too (benchmark runs of the agent runner); the group is
    signalled only when ``leads_its_group`` proves it is the group imagefleet started.
    """
    if identify(record).state is not State.OURS:
        return False
    group = leads_its_group(record, record_path)

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, sig) if group else os.kill(record.pid, sig)

    send(signal.SIGTERM)
    Clock().poll_until(
        lambda: identify(record).state,
        lambda state: state is not State.OURS,
        timeout=timeout,
        every=0.1,
    )
    if identify(record).state is State.OURS:
        send(signal.SIGKILL)
    return True


def stop(record: ProcessRecord, what: str, record_path: Path, timeout: float = 10.0) -> bool:
    """Stop the recorded process and remove its record; refuse when the pid is not ``what``.

    Returns False when nothing was running. A pid now running something else is never signalled:
    RefusedError names it, and the stale record is removed so the next `local up` starts afresh.
    """
    ident = identify(record)
    if ident.state is State.UNVERIFIABLE:
        raise RefusedError(
            f"not signalling pid {record.pid}: cannot tell it is {what} ({ident.reason})",
            hint=f"if it is, stop it with 'kill {record.pid}', then delete {record_path}",
        )
    if ident.state is State.OTHER:
        record_path.unlink(missing_ok=True)
        raise RefusedError(
            f"not signalling pid {record.pid}: it is not {what} imagefleet started "
            f"({ident.reason})",
            hint=f"the stale record {record_path} was removed",
        )
    stopped = ident.state is State.OURS and terminate(record, timeout, record_path)
    record_path.unlink(missing_ok=True)
    return stopped
