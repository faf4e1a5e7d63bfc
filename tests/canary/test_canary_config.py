"""The [canary] schema: defaults, and errors that name the key and what was expected."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from canary.config import parse
from canary.judge.decision import verdict
from orchestrator.errors import ConfigError


def test_defaults_match_the_local_health_agent() -> None:
    cfg = parse(None)
    assert [m.name for m in cfg.metrics] == ["latency_ms", "error_rate", "cpu"]
    assert cfg.policy.waves == (1, 0.05, 0.25, 1.0)
    assert (cfg.warmup_s, cfg.analysis_s, cfg.period_s, cfg.on_fail) == (120, 600, 60, "halt")


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"on_fail": "ignore"}, "canary.on_fail"),
        ({"metrics": [{"name": "lat", "statistic": "p99"}]}, "canary.metrics[0].statistic"),
        ({"metrics": [{"name": "lat", "direction": "up"}]}, "canary.metrics[0].direction"),
        ({"metrics": [{"statistic": "Average"}]}, "canary.metrics[0].name"),
        ({"metrics": [{"name": "lat", "colour": 1}]}, "canary.metrics[0]"),
        ({"waves": [1, 0.5]}, "canary.waves"),
        ({"warmup": "soon"}, "canary.warmup"),
        ({"period": "7s"}, "canary.period"),
        ({"min_healthy_pct": 100}, "canary.min_healthy_pct"),
        ({"marginal_threshold": 99}, "canary.marginal_threshold"),
        ({"cohort_by": "colour"}, "canary.cohort_by"),
        ({"bogus": 1}, "canary.bogus: expected one of the keys"),
    ],
)
def test_errors_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(raw)
    assert key in str(err.value)


def test_verdict_keeps_samples_thresholds_and_maps_no_data_to_pause() -> None:
    cfg = parse({"metrics": [{"name": "a"}, {"name": "b"}]})
    base = {"a": [1.0, 1.1, 0.9, 1.0], "b": [2.0, 2.1, 1.9, 2.0]}
    v = verdict(cfg, base, {"a": [1.0, 1.05, 0.95, 1.0], "b": [2.0, 2.05]})  # b: 2 < min_samples
    assert v["decision"] == "nodata"
    assert v["samples"]["baseline"] == base and v["thresholds"]["pass"] == 95.0
    json.dumps(v)  # storable as is
    v = verdict(cfg, base, {"a": [3.0, 3.1, 2.9, 3.0, 3.2], "b": [2.0, 2.1, 1.9, 2.0]})
    assert v["decision"] == "fail"
    assert next(m for m in v["judge"]["metrics"] if m["name"] == "a")["classification"] == "High"


PROM = {"name": "load", "source": "prometheus", "query": 'avg(node_load1{instance="{instance}"})'}


@pytest.mark.parametrize(
    "raw, says",
    [
        (
            {
                "metrics": [
                    {"name": "m", "dimensions": {"InstanceId": "{instance_id}", "Az": "{az}"}}
                ]
            },
            "canary.metrics[0].dimensions.Az: expected placeholders among {instance_id}, {asg}, "
            "{instance_type} ({az} is unknown)",
        ),
        (
            {"metrics": [{"name": "m", "dimensions": {"AutoScalingGroupName": "{asg}"}}]},
            "canary.metrics[0].dimensions: expected a table with a dimension whose value names",
        ),
        ({"metrics": [PROM]}, "canary.prometheus_url: expected the Prometheus server's URL"),
        (
            {"prometheus_url": "http://p:9090", "metrics": [{**PROM, "query": "up{x='{ip}'}"}]},
            "canary.metrics[0].query: expected placeholders among",
        ),
        (
            {"prometheus_url": "http://p:9090", "metrics": [{**PROM, "query": "avg(up)"}]},
            "canary.metrics[0].query: expected a query that selects one instance",
        ),
        (
            {"prometheus_url": "http://p:9090", "metrics": [{**PROM, "metric": "x"}]},
            "canary.metrics[0].metric: expected no metric with source = 'prometheus'",
        ),
        (
            {"prometheus_url": "http://p:9090", "metrics": [{"name": "l", "source": "prometheus"}]},
            "canary.metrics[0].query: expected a PromQL query template (required)",
        ),
        ({"metrics": [{"name": "m", "query": "up"}]}, "canary.metrics[0].query: expected no query"),
        (
            {
                "metrics": [
                    {"name": "m", "source": "cloudwatch-target-group", "dimensions": {"A": "b"}}
                ]
            },
            "canary.metrics[0].dimensions: expected no dimensions with source = "
            "'cloudwatch-target-group'",
        ),
        ({"prometheus_url": "ftp://p"}, "canary.prometheus_url: expected an http(s) URL"),
    ],
)
def test_metric_sources_are_checked_per_source(raw: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(raw)
    assert says in str(err.value)


def test_existing_metric_tables_keep_their_meaning_and_new_keys_have_defaults() -> None:
    (m,) = parse({"metrics": [{"name": "lat", "namespace": "app"}]}).metrics
    assert (m.source, m.metric, m.dimensions, m.query) == (
        "cloudwatch",
        "lat",
        (("InstanceId", "{instance_id}"),),
        "",
    )
    cfg = parse(
        {
            "prometheus_url": "http://127.0.0.1:9090/",
            "metrics": [
                {
                    "name": "mem",
                    "namespace": "CWAgent",
                    "metric": "mem_used_percent",
                    "dimensions": {"InstanceId": "{instance_id}", "AutoScalingGroupName": "{asg}"},
                },
                PROM,
            ],
        }
    )
    assert cfg.prometheus_url == "http://127.0.0.1:9090"
    assert cfg.metrics[0].metric == "mem_used_percent"
    assert cfg.metrics[0].dimensions[1] == ("AutoScalingGroupName", "{asg}")
    assert cfg.metrics[1].query == PROM["query"] and cfg.metrics[1].dimensions == ()
    doc = json.loads(json.dumps(cfg.to_dict()))  # a rollout keeps its config as JSON
    assert doc["metrics"][0]["dimensions"] == {
        "InstanceId": "{instance_id}",
        "AutoScalingGroupName": "{asg}",
    }


def test_file_errors_name_the_line_of_the_metric(tmp_path: Any) -> None:
    text = '[canary]\n[[canary.metrics]]\nname = "m"\ndimensions = { InstanceId = "{id}" }\n'
    with pytest.raises(ConfigError) as err:
        parse(
            {"metrics": [{"name": "m", "dimensions": {"InstanceId": "{id}"}}]},
            path=tmp_path / "imagefleet.toml",
            text=text,
        )
    assert "imagefleet.toml:4: canary.metrics[0].dimensions.InstanceId" in str(err.value)


ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_metric_examples_are_valid_config() -> None:
    """The ``[[canary.metrics]]`` examples of docs/aws.md and of imagefleet init's file (commented
    there) load as they are written."""
    doc = (ROOT / "docs" / "aws.md").read_text()
    section = doc[doc.index("## Canary metrics") : doc.index("## 8.")]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    cloudwatch = parse(tomllib.loads("[canary]\n" + blocks[0])["canary"])
    assert [m.metric for m in cloudwatch.metrics] == [
        "mem_used_percent",
        "cpu_usage_active",
        "disk_used_percent",
    ]
    prom = parse(tomllib.loads(blocks[1])["canary"])
    assert {m.source for m in prom.metrics} == {"prometheus"} and prom.prometheus_url
    init = (ROOT / "orchestrator" / "templates" / "init" / "imagefleet.toml").read_text()
    commented = init[init.index("# [[canary.metrics]]") :].splitlines()
    lines = [line[2:] for line in commented if re.match(r"# (\[\[|[a-z_]+ = )", line)]
    url = next(line.split("#")[0] for line in lines if line.startswith("prometheus_url"))
    rest = "\n".join(line for line in lines if not line.startswith("prometheus_url"))
    metrics = parse(tomllib.loads(f"[canary]\n{url}\n{rest}")["canary"]).metrics
    assert [(m.name, m.source) for m in metrics] == [
        ("mem_used_percent", "cloudwatch"),
        ("cpu_busy", "cloudwatch"),
        ("load1", "prometheus"),
    ]
