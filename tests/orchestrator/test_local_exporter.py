"""The local instances' exposition endpoint and its file-SD list, read over HTTP as Prometheus
reads them (no server here: ``test_local_prometheus.py`` runs the real one)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.local.exporter import Exporter, Point, Target

R5 = Target("i-r5", "us-east-1", "demo-r5-large", "r5.large", "10.0.0.5")
BASELINE = Target("i-base", "us-east-1", "", "m5.large")


def scrape(
    exporter: Exporter, instance_id: str | None
) -> list[tuple[str, dict[str, str], float, float]]:
    query = "" if instance_id is None else f"?instance_id={instance_id}"
    with urllib.request.urlopen(f"http://{exporter.address}/metrics{query}", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    return [
        (s.name, s.labels, s.value, s.timestamp)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def test_the_file_sd_list_has_one_target_per_instance_with_its_labels(tmp_path: Path) -> None:
    targets = tmp_path / "prometheus" / "targets.json"
    with Exporter(targets) as exporter:
        assert json.loads(targets.read_text()) == []  # written at start: Prometheus reads it
        exporter.publish([R5, BASELINE], [])
        groups = json.loads(targets.read_text())
        assert [g["targets"] for g in groups] == [[exporter.address]] * 2
        assert groups[1]["labels"] == {
            "instance_id": "i-r5",
            "region": "us-east-1",
            "instance_type": "r5.large",
            "asg": "demo-r5-large",
            "__param_instance_id": "i-r5",  # the scrape URL's ?instance_id=
            "instance": f"10.0.0.5:{exporter.port}",  # as __address__ is with ec2_sd on AWS
        }
        assert "asg" not in groups[0]["labels"]  # a baseline is in no group
        written = targets.stat().st_mtime_ns
        exporter.publish([R5, BASELINE], [])
        assert targets.stat().st_mtime_ns == written  # unchanged list, no rewrite
        exporter.publish([BASELINE], [])  # the r5 instance went away
        assert [g["labels"]["instance_id"] for g in json.loads(targets.read_text())] == ["i-base"]
        assert not list(targets.parent.glob(".*.tmp"))  # replaced atomically, nothing left over


def test_a_scrape_serves_each_point_once_with_the_agents_timestamp(tmp_path: Path) -> None:
    with Exporter(tmp_path / "targets.json") as exporter:
        exporter.publish(
            [R5, BASELINE],
            [
                Point("i-r5", "latency_ms", 1000.0, 32.0),
                Point("i-r5", "latency_ms", 1010.0, 33.0),
                Point("i-r5", "cpu", 1010.0, 40.0),
                Point("i-base", "latency_ms", 1010.0, 20.0),
            ],
        )
        assert exporter.pending() == ["i-base", "i-r5"]
        # only points at least as old as asked for (the canary's metric delay) are waited for
        assert exporter.pending(before=999.0) == []
        assert exporter.pending(before=1000.0) == ["i-r5"]
        assert exporter.wait_scraped(5.0, before=999.0) == []
        assert sorted(scrape(exporter, "i-r5")) == [
            ("cpu", {}, 40.0, 1010.0),  # the labels come from the file-SD list, not the exposition
            ("latency_ms", {}, 32.0, 1000.0),
            ("latency_ms", {}, 33.0, 1010.0),
        ]
        assert exporter.pending() == ["i-base", "i-r5"]  # served, not yet known to be committed
        exporter.publish([R5, BASELINE], [Point("i-r5", "latency_ms", 1020.0, 34.0)])
        assert scrape(exporter, "i-r5") == [("latency_ms", {}, 34.0, 1020.0)]  # only the new one
        assert scrape(exporter, "i-r5") == []
        assert exporter.pending() == ["i-base"]  # a later scrape began: the r5 points are in
        assert exporter.wait_scraped(0.2) == ["i-base"]
        assert scrape(exporter, "i-nobody") == []
        # Without an instance: every instance's latest point per metric, labelled; consumes
        # nothing.
        everything = scrape(exporter, None)
        assert ("latency_ms", {**_labels(R5)}, 34.0, 1020.0) in everything
        assert ("latency_ms", {**_labels(BASELINE)}, 20.0, 1010.0) in everything
        assert scrape(exporter, "i-base") == [("latency_ms", {}, 20.0, 1010.0)]
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://{exporter.address}/other", timeout=5)
        assert err.value.code == 404


def _labels(t: Target) -> dict[str, str]:
    return {
        "instance_id": t.instance_id,
        "asg": t.asg,
        "instance_type": t.instance_type,
        "region": t.region,
    }


def test_a_shift_serves_the_points_that_far_back(tmp_path: Path) -> None:
    with Exporter(tmp_path / "targets.json", shift=86_400.0) as exporter:
        exporter.publish([R5], [Point("i-r5", "cpu", 90_000.0, 40.0)])
        assert scrape(exporter, "i-r5") == [("cpu", {}, 40.0, 3_600.0)]
        assert exporter.pending(before=90_000.0) == ["i-r5"]  # waits are on the agent's clock
