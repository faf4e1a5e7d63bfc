"""The [canary] schema: defaults, and errors that name the key and what was expected."""

from __future__ import annotations

import json
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
