"""The embedded AWS endpoint: moto's server on 127.0.0.1, started and stopped by imagefleet.

`imagefleet local up` starts it detached (its pid, port and log live in the state directory), waits
until it answers, and creates the artifact bucket.
Nothing else in imagefleet knows it is local — it only gets an endpoint URL (see
``AwsFactory.from_settings``). moto keeps its data in memory: `local down` forgets every AMI, while
the state store keeps its records (start over with a fresh state directory for a clean demo).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.clock import Clock
from orchestrator.errors import StateError, ToolError
from orchestrator.local import faultproxy, processes
from orchestrator.local.faults import parse_spec

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory

HOST = "127.0.0.1"
LOCAL_EXTRA = "imagefleet[local]"  # the install extra that brings moto's server


def require_moto() -> None:
    """Fail with one line naming the extra when moto's server is not installed.

    moto is only needed for the embedded endpoint, so it is an optional extra rather than a
    dependency of every install (a team running against AWS never loads it)."""
    try:
        found = importlib.util.find_spec("moto") is not None
    except (ImportError, ValueError):  # a module entry of None (made unimportable) raises
        found = False
    if not found:
        raise ToolError(
            f"the embedded endpoint needs moto's server, which is not installed: "
            f"pip install '{LOCAL_EXTRA}'",
            hint="'make install' includes it",
        )


@dataclass(frozen=True)
class EndpointInfo:
    pid: int
    port: int
    url: str
    log: str
    started_at: float
    cmdline: tuple[str, ...] = ()  # what /proc showed at the start: `local down` signals only that
    start_ticks: int | None = None
    # With `local up --faults`: ``url`` is the fault proxy's, in front of moto at ``upstream_url``.
    upstream_url: str | None = None
    proxy_pid: int | None = None
    proxy_cmdline: tuple[str, ...] = ()
    proxy_start_ticks: int | None = None
    faults: str | None = None

    @property
    def process(self) -> processes.ProcessRecord:
        return processes.ProcessRecord(self.pid, tuple(self.cmdline), self.start_ticks)

    @property
    def proxy_process(self) -> processes.ProcessRecord | None:
        if self.proxy_pid is None:
            return None
        return processes.ProcessRecord(
            self.proxy_pid, tuple(self.proxy_cmdline), self.proxy_start_ticks
        )

    def env(self, region: str = "us-east-1") -> dict[str, str]:
        """The environment any AWS tool (boto3, the CLI, Terraform) needs to use this endpoint."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": region,
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def answers(url: str, timeout: float = 1.0) -> bool:
    """Does an endpoint answer at ``url`` (any answer below 500 counts)?"""
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=timeout) as resp:
            return int(resp.status) < 500  # urlopen's response is typed Any
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False


class LocalEndpoint:
    """moto's server as a managed background process, described by ``<state_dir>/local.json``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.info_path = self.state_dir / "local.json"
        self.log_path = self.state_dir / "local-endpoint.log"

    def recorded(self) -> EndpointInfo | None:
        """What ``local.json`` says, whether or not that process still runs."""
        try:
            data = json.loads(self.info_path.read_text())
            return EndpointInfo(
                **{
                    **data,
                    "cmdline": tuple(data.get("cmdline") or ()),
                    "proxy_cmdline": tuple(data.get("proxy_cmdline") or ()),
                }
            )
        except (OSError, ValueError, TypeError):
            return None

    def info(self) -> EndpointInfo | None:
        """The running endpoint, or None (a record whose pid exited or was reused is not
        running)."""
        info = self.recorded()
        if info is None:
            return None
        running = (processes.State.OURS, processes.State.UNVERIFIABLE)
        proxy = info.proxy_process
        alive = processes.identify(info.process).state in running and (
            proxy is None or processes.identify(proxy).state in running
        )
        return info if alive else None

    def require_url(self) -> str:
        info = self.info()
        if info is None:
            raise StateError(
                "the local endpoint is not running",
                hint="run 'imagefleet local up' (config has aws.endpoint_url = \"local\")",
            )
        return info.url

    def up(
        self,
        port: int | None = None,
        timeout: float = 60.0,
        faults: str | None = None,
        fault_seed: int = 0,
    ) -> tuple[EndpointInfo, bool]:
        """Start the server unless it runs already. Returns (info, started_now).

        With ``faults`` (a fault spec), moto listens on a free port and the fault proxy on
        ``port``: the endpoint everyone is given is the proxy's."""
        current = self.info()
        if current is not None:
            return current, False
        if faults is not None:
            parse_spec(faults)  # bad input before anything starts
        self._stop_leftovers()
        require_moto()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        public_port = port or free_port()
        port = free_port() if faults is not None else public_port
        url = f"http://{HOST}:{port}"
        if answers(url, timeout=0.5):
            raise StateError(
                f"port {port} is already in use by another server", hint="pick another with --port"
            )
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.local.moto_server", "-H", HOST, "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives this command; not killed by the terminal's Ctrl-C
        )
        log.close()

        def answering() -> bool:
            if answers(url):
                return True
            if proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-800:]
                raise ToolError(
                    f"the local endpoint exited at start (code {proc.returncode}):\n{tail}"
                )
            return False

        if not Clock().poll_until(answering, bool, timeout=timeout, every=0.1)[1]:
            proc.kill()
            raise ToolError(f"the local endpoint did not answer on {url} within {timeout:.0f}s")
        started = processes.ProcessRecord.started(proc)
        info = EndpointInfo(
            pid=proc.pid,
            port=port,
            url=url,
            log=str(self.log_path),
            started_at=time.time(),
            cmdline=started.cmdline,
            start_ticks=started.start_ticks,
        )
        if faults is not None:
            try:
                proxy = faultproxy.start(
                    url, faults, fault_seed, public_port, self.state_dir / "faultproxy.log"
                )
            except ToolError:
                processes.terminate(started, 10.0)
                raise
            proxied = processes.ProcessRecord.started(proxy)
            info = replace(
                info,
                port=public_port,
                url=f"http://{HOST}:{public_port}",
                upstream_url=url,
                proxy_pid=proxy.pid,
                proxy_cmdline=proxied.cmdline,
                proxy_start_ticks=proxied.start_ticks,
                faults=faults,
            )
        tmp = self.info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info), indent=2))
        os.replace(tmp, self.info_path)
        return info, True

    def _stop_leftovers(self) -> None:
        """Half of an earlier endpoint still running (moto died and left its fault proxy, or the
        reverse) is stopped before a new one starts, so no proxy outlives the server it fronted."""
        stale = self.recorded()
        if stale is None:
            return
        for process in (stale.proxy_process, stale.process):  # the fault proxy, the local endpoint
            if process is not None and processes.identify(process).state is processes.State.OURS:
                processes.terminate(process, 10.0)
        self.info_path.unlink(missing_ok=True)

    def down(self, timeout: float = 10.0) -> bool:
        """Stop the server. Returns False when nothing was running; RefusedError when the recorded
        pid is not the server this state directory started (it is then left alone)."""
        info = self.recorded()
        if info is None:
            self.info_path.unlink(missing_ok=True)
            return False
        try:
            return processes.stop(info.process, "the local endpoint", self.info_path, timeout)
        finally:
            if info.proxy_process is not None:
                processes.stop(info.proxy_process, "the fault proxy", self.info_path, timeout)


def state_table(aws: AwsFactory, region: str, table: str) -> bool:
    """The team backend's table on the endpoint (``[state] backend = "dynamodb"``), made as
    ``imagefleet state init`` makes it on AWS; True when created now. Safe to run again."""
    # boto3's DynamoDB types load only when used
    from orchestrator.store.dynamodb import DynamoStore

    return DynamoStore(aws.client("dynamodb", region), table).init_table()


def seed(aws: AwsFactory, regions: tuple[str, ...], bucket: str) -> dict[str, Any]:
    s3 = aws.client("s3", regions[0])
    try:
        s3.head_bucket(Bucket=bucket)
        created = False
    except Exception:  # any "not there" answer: create it
        s3.create_bucket(Bucket=bucket)
        created = True
    return {"bucket": bucket, "bucket_created": created}
