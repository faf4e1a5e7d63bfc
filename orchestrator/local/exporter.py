"""The local instances' metrics in Prometheus' exposition format, and the file-SD list naming them.

On AWS every instance runs an exporter (node_exporter, or the application's own ``/metrics``) and
Prometheus finds them with ``ec2_sd_configs``, relabelling ``__meta_ec2_instance_id`` to
``instance_id``. Instances on the embedded endpoint run nothing, so the local agent runner serves
them all from one HTTP endpoint on 127.0.0.1 and keeps a file-SD list (``file_sd_configs``) of one
scrape target per instance: ``/metrics?instance_id=i-…`` (the ``__param_instance_id`` label) with
the labels ``ec2_sd`` relabelling would give it (``instance_id``, ``asg``, ``instance_type``,
``region``, and ``instance`` = its private IP and the exporter's port, as ``__address__`` is on
AWS). One endpoint rather than a port per instance: a demo fleet of 100 instances would hold 100
listening sockets; the targets are still one per instance, so Prometheus sees instances come and
go as it would on AWS. Without ``instance_id`` the endpoint serves every instance, labelled (for a
look with curl).

The points are the health agent's (``canary.local_health``), each with its timestamp on the
runner's clock: the very datapoints CloudWatch gets. A scrape of an instance serves the points
newer than those its previous scrape served, so each point is ingested once whatever the scrape
interval (Prometheus drops a re-sent older point as out of order, and logs it). Prometheus scrapes
a target, appends and commits before it scrapes that target again, so a point is in its database
once a later scrape of its instance began: ``wait_scraped`` waits for that, which is how agents on
a ``VirtualClock`` know the server can answer for the time they just published.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

HOST = "127.0.0.1"
KEEP_POINTS = 600  # per instance, while nothing scrapes it: 200 emissions of three metrics
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Target:
    """One simulated instance as Prometheus discovers it."""

    instance_id: str
    region: str
    asg: str = ""  # "" for a canary baseline, launched outside any group
    instance_type: str = ""
    private_ip: str = ""

    def labels(self, port: int) -> dict[str, str]:
        """Its target labels: what ``ec2_sd_configs`` relabelling gives an instance on AWS."""
        labels = {
            "instance_id": self.instance_id,
            "region": self.region,
            "instance_type": self.instance_type,
            "asg": self.asg,
            "__param_instance_id": self.instance_id,
        }
        if self.private_ip:
            labels["instance"] = f"{self.private_ip}:{port}"
        return {k: v for k, v in labels.items() if v}


@dataclass(frozen=True)
class Point:
    """One datapoint of one instance's metric, at ``t`` (seconds since the epoch)."""

    instance_id: str
    metric: str
    t: float
    value: float


@dataclass
class _Series:
    """An instance's points not yet served, and how far its scrapes got."""

    target: Target
    points: deque[Point] = field(default_factory=lambda: deque(maxlen=KEEP_POINTS))
    served: float = float("-inf")  # newest point the latest scrape served
    committed: float = float("-inf")  # newest point a scrape served before another one began
    scrapes: int = 0
    latest: dict[str, Point] = field(default_factory=dict)  # per metric, for the unfiltered view


class _Points(Collector):
    def __init__(self, points: Sequence[Point], targets: dict[str, Target] | None) -> None:
        self.points = points
        self.targets = targets  # label the samples with their instance (the unfiltered view)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        names = ["instance_id", "asg", "instance_type", "region"] if self.targets else []
        families: dict[str, GaugeMetricFamily] = {}
        for p in self.points:
            family = families.get(p.metric)
            if family is None:
                family = families[p.metric] = GaugeMetricFamily(
                    p.metric, f"{p.metric} of a simulated instance", labels=names
                )
            values = []
            if self.targets:
                t = self.targets[p.instance_id]
                values = [t.instance_id, t.asg, t.instance_type, t.region]
            family.add_metric(values, p.value, timestamp=p.t)
        return list(families.values())


class Exporter:
    """The exposition endpoint of every simulated instance, and its file-SD list."""

    def __init__(
        self,
        targets_file: Path,
        *,
        host: str = HOST,
        port: int = 0,
        scraped: bool = False,
        lag: float = 0.0,
        shift: float = 0.0,
    ) -> None:
        self.targets_file = Path(targets_file)
        # A Prometheus is known to scrape this endpoint: agents on a virtual clock wait for it,
        # for the points at least ``lag`` seconds old on their clock. The canary reads a window
        # ``metric_delay`` after it ends, so with ``lag`` = that delay they wait only when a query
        # may need the points; the ones a short sleep publishes get scraped in the meantime.
        self.scraped = scraped
        self.lag = lag
        # Seconds taken off every timestamp served. Prometheus ingests a scraped point at most
        # 10 minutes ahead of its wall clock; agents on a virtual clock that ran ahead (the demo,
        # a virtual day of soak) serve their points that far back, and its queries read them
        # there with PromQL's ``offset``. CloudWatch gets the points unshifted.
        self.shift = shift
        self._lock = threading.Condition()
        self._series: dict[str, _Series] = {}
        self._written: str | None = None
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/metrics":
                    self.send_error(404, "only /metrics is served")
                    return
                query = urllib.parse.parse_qs(url.query)
                body = exporter.render(query.get("instance_id", [None])[0])
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                # Prometheus closes a scrape when its target leaves the list or times out.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)  # type: ignore[arg-type]

        self._host = host
        self._server = Server((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        return f"{self._host}:{self.port}"

    def start(self) -> Exporter:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="local-exporter", daemon=True
        )
        self._thread.start()
        self._write_targets()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Exporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what the agents publish ---------------------------------------------------------------
    def publish(self, targets: Iterable[Target], points: Iterable[Point]) -> None:
        """The instances running now (the file-SD list follows them) and their new points."""
        with self._lock:
            now = {t.instance_id: t for t in targets}
            for iid in [i for i in self._series if i not in now]:
                del self._series[iid]  # gone from the list, Prometheus stops scraping it
            for iid, target in now.items():
                series = self._series.get(iid)
                if series is None:
                    self._series[iid] = _Series(target)
                elif series.target != target:
                    series.target = target
            for p in points:
                if (series := self._series.get(p.instance_id)) is not None:
                    series.points.append(p)
                    series.latest[p.metric] = p
            self._write_targets()
            self._lock.notify_all()

    def _write_targets(self) -> None:
        """The file-SD list, replaced atomically (Prometheus may read it at any time) and only
        when it changed (each write makes Prometheus re-read it)."""
        groups = [
            {"targets": [self.address], "labels": s.target.labels(self.port)}
            for _, s in sorted(self._series.items())
        ]
        text = json.dumps(groups, indent=1) + "\n"
        if text == self._written:
            return
        self.targets_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.targets_file.with_name(f".{self.targets_file.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, self.targets_file)
        self._written = text

    # --- what the scrapes get ------------------------------------------------------------------
    def render(self, instance_id: str | None) -> bytes:
        """The exposition of one instance's unserved points (a scrape), or of every instance's
        latest point per metric, labelled (``instance_id`` None), which consumes nothing."""
        with self._lock:
            if instance_id is None:
                collector = _Points(
                    [p for s in self._series.values() for p in s.latest.values()],
                    {i: s.target for i, s in self._series.items()},
                )
            else:
                series = self._series.get(instance_id)
                points: list[Point] = []
                if series is not None:
                    # The previous scrape's points are in the database now: it committed them
                    # before this scrape began.
                    series.committed = series.served
                    while series.points and series.points[0].t <= series.committed:
                        series.points.popleft()
                    points = list(series.points)
                    series.served = max([series.committed, *(p.t for p in points)])
                    series.scrapes += 1
                    self._lock.notify_all()
                collector = _Points(points, None)
            if self.shift:
                collector.points = [replace(p, t=p.t - self.shift) for p in collector.points]
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        return generate_latest(registry)

    def pending(self, before: float = float("inf")) -> list[str]:
        """Instances with points at or before ``before`` that Prometheus has not committed yet."""
        with self._lock:
            return sorted(
                iid
                for iid, s in self._series.items()
                if any(s.committed < p.t <= before for p in s.points)
            )

    def wait_scraped(self, timeout: float, before: float = float("inf")) -> list[str]:
        """Wait (wall-clock seconds: the server scrapes on its own time) until every point
        published so far, up to ``before``, is in Prometheus' database; returns the instances
        still pending."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while (left := self.pending(before)) and (rest := deadline - time.monotonic()) > 0:
                self._lock.wait(min(rest, 0.5))
            return left
