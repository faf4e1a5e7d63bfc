"""The local Prometheus: Debian's real server, started, refused and stopped; and scraping the
exporter through the file-SD list.

The server discovers and scrapes on the wall clock: it applies a changed target list at most
every 5 s (its discovery manager's fixed throttle), so the test that follows instances coming
and going waits about 10 s and is marked slow. Its points carry timestamps from ten minutes ago:
Prometheus ingests a scraped point only within an hour before the newest one it has (its own
``up`` series is stamped now) and at most ten minutes after now.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagefleet.cli import raw_main
from orchestrator.clock import Clock
from orchestrator.context import Context
from orchestrator.errors import StateError, ToolError
from orchestrator.local import processes
from orchestrator.local.exporter import Exporter, Point, Target
from orchestrator.local.prometheus import LocalPrometheus, ServerInfo, binary, ready
from orchestrator.output import Output

try:
    binary()
    INSTALLED = True
except ToolError:
    INSTALLED = False
needs_prometheus = pytest.mark.skipif(
    not INSTALLED, reason="prometheus is not installed (make test installs it with apt)"
)

R5 = Target("i-r5", "us-east-1", "demo-r5-large", "r5.large", "10.0.0.5")
M5 = Target("i-m5", "us-east-1", "demo-m5-large", "m5.large", "10.0.0.6")


def api(url: str, path: str, **params: Any) -> Any:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}/api/v1/{path}?{query}", timeout=10) as resp:
        doc = json.load(resp)
    assert doc["status"] == "success", doc
    return doc["data"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalPrometheus]:
    prom = LocalPrometheus(tmp_path)
    try:
        yield prom
    finally:
        record = prom.recorded()
        prom.down()
        if record is not None:  # no server outlives its test
            assert processes.identify(record.process).state is not processes.State.OURS


@needs_prometheus
def test_up_waits_until_ready_and_down_leaves_no_process(server: LocalPrometheus) -> None:
    # a stale record whose pid now runs something else (this test) is forgotten, not signalled
    server.info_path.parent.mkdir(parents=True, exist_ok=True)
    stale = ServerInfo(os.getpid(), 1, "http://127.0.0.1:1", "", "", "", "1s", 0.0, ("prometheus",))
    server.info_path.write_text(json.dumps(stale.to_json()))
    assert server.recorded() == stale and server.info() is None
    info, started = server.up(0)
    assert started and ready(info.url)
    assert server.up(0) == (info, False)  # running already: the same server
    config = json.loads(Path(info.config).read_text())
    assert config["global"]["scrape_interval"] == "1s"
    assert config["scrape_configs"][0]["file_sd_configs"][0]["files"] == [info.targets]
    assert json.loads(Path(info.targets).read_text()) == []  # no instance until the agents run
    assert server.down() is True
    assert processes.identify(info.process).state is processes.State.GONE
    assert server.info() is None and not ready(info.url)
    assert server.down() is False


@needs_prometheus
@pytest.mark.slow
def test_the_server_scrapes_each_instance_through_file_sd(server: LocalPrometheus) -> None:
    info, _ = server.up(0, scrape_interval="500ms")
    t0 = float(int(time.time()) - 600)
    with Exporter(server.targets_file, scraped=True) as exporter:
        exporter.publish(
            [R5, M5],
            [
                *(Point("i-r5", "latency_ms", t0 + 10 * k, 30.0 + k) for k in range(6)),
                *(Point("i-m5", "latency_ms", t0 + 10 * k, 20.0) for k in range(6)),
            ],
        )
        assert exporter.wait_scraped(20.0) == []  # every point in its database
        data = api(info.url, "query_range", query="latency_ms", start=t0, end=t0 + 50, step="10s")
        series = {s["metric"]["instance_id"]: s for s in data["result"]}
        assert series["i-r5"]["metric"] == {
            "__name__": "latency_ms",
            "instance_id": "i-r5",
            "asg": "demo-r5-large",
            "instance_type": "r5.large",
            "region": "us-east-1",
            "instance": f"10.0.0.5:{exporter.port}",
            "job": "imagefleet-local",
        }
        # each point at the agent's timestamp, not at the scrape's
        assert [(t, float(v)) for t, v in series["i-r5"]["values"]] == [
            (t0 + 10 * k, 30.0 + k) for k in range(6)
        ]
        exporter.publish([M5], [])  # the r5 instance terminated: its target goes

        def active() -> list[str]:
            targets = api(info.url, "targets", state="active")["activeTargets"]
            return sorted(t["labels"]["instance_id"] for t in targets)

        assert Clock().poll_until(active, lambda ids: ids == ["i-m5"], timeout=20, every=0.2)[1]


def test_a_missing_binary_is_named_with_the_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGEFLEET_PROMETHEUS", str(tmp_path / "no-such-prometheus"))
    with pytest.raises(ToolError, match="install it with apt-get install prometheus"):
        LocalPrometheus(tmp_path).up(0)
    # the command says it before it starts anything
    assert raw_main(["init", str(tmp_path)], obj=Context(output=Output(stdout=io.StringIO()))) == 0
    err = io.StringIO()
    code = raw_main(
        ["--config", str(tmp_path / "imagefleet.toml"), "local", "up", "--prometheus"],
        obj=Context(output=Output(stdout=io.StringIO(), stderr=err)),
    )
    assert code == 3 and "error: prometheus is not installed" in err.getvalue()
    assert not (tmp_path / ".imagefleet" / "local.json").exists()  # no endpoint was started


@needs_prometheus
def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StateError, match=f"port {port} is already in use"):
            LocalPrometheus(tmp_path).up(port)
    assert LocalPrometheus(tmp_path).recorded() is None


@needs_prometheus
@pytest.mark.integration
def test_local_up_prometheus_status_and_down(tmp_path: Path) -> None:
    assert raw_main(["init", str(tmp_path)], obj=Context(output=Output(stdout=io.StringIO()))) == 0
    config = tmp_path / "imagefleet.toml"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*args: str) -> tuple[int, Any, str]:
        out, err = io.StringIO(), io.StringIO()
        code = raw_main(
            ["--config", str(config), "local", *args, "--json"],
            obj=Context(output=Output(stdout=out, stderr=err)),
        )
        return code, json.loads(out.getvalue() or "null"), err.getvalue()

    try:
        code, up, err = run(
            "up", "--no-agents", "--no-seed", "--prometheus", "--prometheus-port", str(port)
        )
        assert code == 0, err
        prom = up["prometheus"]
        assert prom["started"] and prom["url"] == f"http://127.0.0.1:{port}" and ready(prom["url"])
        assert prom["targets"] == str(tmp_path / ".imagefleet" / "prometheus" / "targets.json")
        code, status, _ = run("status")
        assert code == 0 and status["prometheus"]["url"] == prom["url"]
        assert status["prometheus"]["pid"] == prom["pid"]
    finally:
        code, down, _ = run("down")
    assert code == 0 and down == {"stopped": True, "prometheus_stopped": True}
    assert not ready(prom["url"]) and not processes.pid_alive(prom["pid"])
    code, status, _ = run("status")
    assert code == 1 and status == {"running": False, "prometheus": None}
