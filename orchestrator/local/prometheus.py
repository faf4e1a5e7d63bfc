"""A real Prometheus server for the local endpoint's instances (`imagefleet local up --prometheus`).

Debian's ``prometheus`` (``/usr/bin/prometheus``; ``make install`` puts it there with apt) runs
detached with a configuration imagefleet writes in ``<state_dir>/prometheus/``: one scrape job
whose targets come from a file-SD list (``file_sd_configs``) that the local agent runner keeps
current as instances come and go (``orchestrator.local.exporter``). Its data lives in
``<state_dir>/prometheus/data``; its pid, command line and start time in ``prometheus.json``, so
`local down` signals only the server this state directory started (``processes``).

The real counterpart is a team's own Prometheus with ``ec2_sd_configs`` and an exporter on every
instance (docs/local.md). ``[canary] prometheus_url`` points the canary at either.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.clock import Clock
from orchestrator.errors import StateError, ToolError
from orchestrator.local import processes

HOST = "127.0.0.1"
# Not Prometheus' own 9090: on a Debian machine with systemd, `apt-get install prometheus` starts
# the system's server there, which scrapes other things.
DEFAULT_PORT = 19090
BINARY = "/usr/bin/prometheus"  # Debian's package; PATH is searched when it is not there
BINARY_ENV = "IMAGEFLEET_PROMETHEUS"  # another binary, e.g. an upstream release's
JOB = "imagefleet-local"
TARGETS_FILE = "targets.json"
# Short for local use: an instance's points reach the server within a second of the agent
# publishing them, and agents on a virtual clock wait about two intervals for their points.
SCRAPE_INTERVAL = "1s"
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    port: int
    url: str
    config: str
    targets: str
    log: str
    scrape_interval: str
    started_at: float
    cmdline: tuple[str, ...] = ()
    start_ticks: int | None = None

    @property
    def process(self) -> processes.ProcessRecord:
        return processes.ProcessRecord(self.pid, tuple(self.cmdline), self.start_ticks)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "cmdline": list(self.cmdline)}


def binary() -> str:
    """The prometheus binary, or ToolError naming how to install it."""
    chosen = os.environ.get(BINARY_ENV) or (BINARY if Path(BINARY).exists() else None)
    found = shutil.which(chosen or "prometheus")
    if found is None:
        raise ToolError(
            f"prometheus is not installed ({chosen or 'no prometheus on PATH'}): install it with "
            "apt-get install prometheus",
            hint="'make install' installs it; or set IMAGEFLEET_PROMETHEUS to a prometheus binary",
        )
    return found


def config(targets_file: Path, scrape_interval: str = SCRAPE_INTERVAL) -> dict[str, Any]:
    """The server's configuration (written as JSON, which is YAML too): the local instances
    through file SD, re-read when the file changes (and every few seconds in case a change
    notification was missed)."""
    return {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval},
        "scrape_configs": [
            {
                "job_name": JOB,
                "honor_timestamps": True,  # the agent's own timestamps, as CloudWatch gets them
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "5s"}],
            }
        ],
    }


def ready(url: str, timeout: float = 1.0) -> bool:
    """Does a Prometheus answer ``/-/ready`` with 200 at ``url``?"""
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=timeout) as resp:
            return int(resp.status) == 200
    except (OSError, ValueError):
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


class LocalPrometheus:
    """The server as a managed background process, described by ``<state_dir>/prometheus.json``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.dir = self.state_dir / "prometheus"
        self.info_path = self.state_dir / "prometheus.json"
        self.targets_file = self.dir / TARGETS_FILE
        self.config_path = self.dir / "prometheus.yml"
        self.log_path = self.state_dir / "prometheus.log"

    def recorded(self) -> ServerInfo | None:
        try:
            data = json.loads(self.info_path.read_text())
            return ServerInfo(**{**data, "cmdline": tuple(data.get("cmdline") or ())})
        except (OSError, ValueError, TypeError):
            return None

    def info(self) -> ServerInfo | None:
        """The running server, or None (a record whose pid exited or was reused is not)."""
        info = self.recorded()
        running = (processes.State.OURS, processes.State.UNVERIFIABLE)
        if info is None or processes.identify(info.process).state not in running:
            return None
        return info

    def up(
        self,
        port: int = DEFAULT_PORT,
        *,
        scrape_interval: str = SCRAPE_INTERVAL,
        timeout: float = READY_TIMEOUT_S,
        progress: Any = None,
    ) -> tuple[ServerInfo, bool]:
        """Start the server unless it runs; wait until ``/-/ready``. Returns (info, started_now).

        ``port`` 0 picks a free one (tests). ``progress``, if given, is called with a line now
        and then while the server replays its data and gets ready."""
        current = self.info()
        if current is not None:
            return current, False
        exe = binary()
        # A record of a server that exited (or whose pid now runs something else): forget it.
        self.info_path.unlink(missing_ok=True)
        if port == 0:
            with socket.socket() as s:
                s.bind((HOST, 0))
                port = int(s.getsockname()[1])
        elif not _port_free(port):
            raise StateError(
                f"port {port} is already in use: another Prometheus or another server listens "
                "there",
                hint="pick another with --prometheus-port, and set [canary] prometheus_url to "
                "match",
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.targets_file.exists():  # the agent runner writes it; until then, none
            self.targets_file.write_text("[]\n")
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config(self.targets_file, scrape_interval), indent=2) + "\n")
        os.replace(tmp, self.config_path)
        url = f"http://{HOST}:{port}"
        args = [
            exe,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            "--storage.tsdb.retention.time=2d",
        ]
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives this command, as the endpoint does
            )
        started = time.monotonic()
        said = [started]

        def answering() -> bool:
            if ready(url):
                return True
            if proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-800:]
                raise ToolError(
                    f"prometheus exited at start (code {proc.returncode}); its log "
                    f"{self.log_path} ends:\n{tail}"
                )
            if progress is not None and time.monotonic() - said[0] >= 5:
                said[0] = time.monotonic()
                progress(f"waiting for prometheus at {url}/-/ready ({said[0] - started:.0f}s)")
            return False

        try:
            if not Clock().poll_until(answering, bool, timeout=timeout, every=0.1)[1]:
                raise ToolError(
                    f"prometheus did not become ready on {url} within {timeout:.0f}s "
                    f"(log: {self.log_path})"
                )
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        record = processes.ProcessRecord.started(proc)
        info = ServerInfo(
            pid=proc.pid,
            port=port,
            url=url,
            config=str(self.config_path),
            targets=str(self.targets_file),
            log=str(self.log_path),
            scrape_interval=scrape_interval,
            started_at=time.time(),
            cmdline=record.cmdline,
            start_ticks=record.start_ticks,
        )
        tmp = self.info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info.to_json(), indent=2))
        os.replace(tmp, self.info_path)
        return info, True

    def down(self, timeout: float = 10.0) -> bool:
        """Stop the server. False when none was running; RefusedError when the recorded pid is
        not the server this state directory started (it is then left alone)."""
        info = self.recorded()
        if info is None:
            self.info_path.unlink(missing_ok=True)
            return False
        return processes.stop(info.process, "the local Prometheus", self.info_path, timeout)
