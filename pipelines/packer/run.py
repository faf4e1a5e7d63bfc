"""Run the ``packer`` binary: version, validate, and a build followed line by line.

Packer runs as a child in its own process group, in the directory imagefleet was given the
template from (the config file's), with the template path as configured, so ``{{template_dir}}``,
``path.root`` and relative paths mean what they mean to Packer. (packer.py, used before, can set
neither the working directory nor several ``-var-file``, and hides its process.) A timeout or
Ctrl-C interrupts Packer, which cleans up what it started, and kills its group after a grace.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from orchestrator.clock import Clock
from orchestrator.errors import ConfigError, PackerError, ToolError
from orchestrator.local.processes import ProcessRecord, State, identify
from pipelines.packer import machine_readable as mr
from pipelines.packer import validate_errors

STOP_GRACE_S = 10.0


def packer_path() -> str:
    found = shutil.which("packer")
    if not found:
        raise ToolError(
            "packer is not installed",
            hint="run 'make test' or 'make demo' (they install it), or 'sudo apt-get install -y "
            "packer'",
        )
    return found


def packer_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment plus imagefleet's part; Packer's version check phones home, so
    off."""
    return {**os.environ, "CHECKPOINT_DISABLE": "1", **extra}


def _args(command: str, template: str, var_files: Sequence[Path]) -> list[str]:
    return [
        packer_path(),
        command,
        "-machine-readable",
        *[f"-var-file={f}" for f in var_files],
        template,
    ]


def version(env: dict[str, str]) -> str:
    """The installed Packer's version, e.g. ``1.6.6``."""
    proc = subprocess.run(
        [packer_path(), "version", "-machine-readable"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    for line in mr.parse(proc.stdout.splitlines()):
        if line.type == "version" and line.data:
            return line.data[0]
    raise ToolError(
        f"cannot tell the installed Packer's version: {proc.stderr.strip() or proc.stdout.strip()}"
    )


def validate(
    template: str,
    var_files: Sequence[Path],
    *,
    cwd: Path,
    env: dict[str, str],
    where: str,
    installed: str | None = None,
) -> None:
    """``packer validate`` with imagefleet's variables; a template Packer refuses is bad input (exit
    2), said in one line (``validate_errors``; ``installed`` is the Packer version, for keys an
    older Packer does not know)."""
    proc = subprocess.run(
        _args("validate", template, var_files),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
        timeout=300,
    )
    if proc.returncode != 0:
        lines = mr.parse(proc.stdout.splitlines())
        text = "\n".join(mr.errors(lines)) or proc.stderr.strip() or proc.stdout.strip()
        message, hint = validate_errors.message(template, text, installed)
        raise ConfigError(f"{where}: {message}", hint=hint)


def stop(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> None:
    """Interrupt Packer's group (it deregisters what it started), then kill whatever is left."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # provisioner shells that outlived Packer too
    proc.wait()


def stop_orphan(record: ProcessRecord, grace: float = STOP_GRACE_S) -> bool:
    """Stop a Packer left running by a bake that was killed: SIGINT to its group (Packer removes
    what
    it started), SIGKILL after ``grace``. Only while the pid still runs the recorded command,
    started
    at the recorded time; False when it was not running."""
    if identify(record).state is not State.OURS:
        return False
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(record.pid, sig)
        except ProcessLookupError:
            return True
        Clock().poll_until(
            lambda: identify(record).state,
            lambda state: state is not State.OURS,
            timeout=wait,
            every=0.2,
        )
        if identify(record).state is not State.OURS:
            return True
    raise ToolError(
        f"packer (pid {record.pid}) of a killed bake does not stop", hint=f"kill -9 -{record.pid}"
    )


def build(
    template: str,
    var_files: Sequence[Path],
    *,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    timeout: float,
    on_line: Callable[[mr.Line], None] = lambda _l: None,
    on_start: Callable[[ProcessRecord], None] = lambda _p: None,
) -> list[mr.Line]:
    """``packer build -machine-readable``; ``on_line`` sees each line as it comes. PackerError on
    failure.

    ``on_start`` is told Packer's process (pid = its process group, command line, start time) as
    soon as it runs, so that a bake killed outright leaves a record a rerun can stop it by."""
    with open(log_path, "wb") as out, open(log_path.with_suffix(".stderr"), "wb") as err:
        proc = subprocess.Popen(
            _args("build", template, var_files),
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    started, position = time.monotonic(), 0
    try:
        on_start(ProcessRecord.started(proc))
        while proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.25)
            position = _follow(log_path, position, on_line)
            if time.monotonic() - started > timeout:
                stop(proc)
                raise PackerError(f"packer build timed out after {timeout:.0f}s (log: {log_path})")
    except BaseException:
        stop(proc)
        _follow(log_path, position, on_line)
        raise
    _follow(log_path, position, on_line)
    lines = mr.parse(log_path.read_text(errors="replace").splitlines())
    if proc.returncode != 0:
        messages = mr.errors(lines) or [
            log_path.with_suffix(".stderr").read_text(errors="replace").strip()
        ]
        text = "; ".join(p.text for p in validate_errors.problems("\n".join(messages)))
        raise PackerError(
            f"packer build failed: {text or f'exit code {proc.returncode}'}",
            hint=f"full log: {log_path}",
        )
    return lines


def _follow(path: Path, position: int, on_line: Callable[[mr.Line], None]) -> int:
    try:
        with open(path, "rb") as f:
            f.seek(position)
            chunk = f.read()
    except OSError:
        return position
    complete = chunk.rfind(b"\n") + 1
    for raw in chunk[:complete].decode(errors="replace").splitlines():
        line = mr.parse_line(raw)
        if line is not None:
            on_line(line)
    return position + complete
