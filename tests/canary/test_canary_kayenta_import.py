"""`canary import-config`: Kayenta canary configs (tests/canary/data/kayenta-configs) as [canary]
TOML, on plain data, and the command's exit codes and files."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any, cast

import pytest
from canary_support import load_kayenta_cases
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from canary import config as canary_config
from canary import kayenta_import as k
from canary import kayenta_prometheus as kp
from canary.judge.classifier import Direction, classify
from canary.judge.scoring import judge_metrics
from imagefleet.cli import raw_main
from orchestrator import schema as s
from orchestrator.context import Context
from orchestrator.output import Output

DATA = Path(__file__).parent / "data" / "kayenta-configs"
FILES = sorted(DATA.glob("*.json"))
INSTANCE = 'instance_id="{instance_id}"'

# file → (converted, skipped, exact), with --param namespace=prod for the integration tests'
# template ``namespace='${namespace}', scope='${scope}'``
EXPECTED = {
    "atlas-judge-test-config.json": (0, 3, False),
    "atlas-sample-config.json": (0, 2, False),
    "duplicated-metric-name.json": (0, 2, False),
    "graphite-integration-test-cpu.json": (0, 1, False),
    "newrelic-adhoc-request.json": (0, 2, False),
    "newrelic-scratch.json": (0, 4, False),
    "prometheus-ec2-adhoc-request.json": (3, 2, False),
    "prometheus-integration-test-cpu.json": (1, 0, True),
    "prometheus-muted-metric.json": (1, 1, False),
    "prometheus-scratch.json": (1, 0, True),
    "prometheus-spec-queries.json": (6, 3, False),
    "signalfx-integration-test.json": (0, 4, False),
    "stackdriver-scratch.json": (0, 1, False),
}
PARAMS = {"namespace": "prod"}
ADHOC = "prometheus-ec2-adhoc-request.json"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def convert(name: str, **kw: Any) -> k.Conversion:
    return k.convert(load(name), **{"params": PARAMS, **kw})


def test_every_data_file_is_listed_with_its_source() -> None:
    readme = (DATA / "README.md").read_text()
    assert {f.name for f in FILES} == set(EXPECTED)
    assert all(f"`{f.name}`" in readme for f in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_metric_is_converted_or_skipped_with_a_reason(path: Path) -> None:
    doc = json.loads(path.read_text())
    conv = k.convert(doc, params=PARAMS)
    raw = (doc.get("canaryConfig") or doc)["metrics"]
    assert len(conv.metrics) == len(raw)
    assert (len(conv.converted), len(conv.skipped), conv.exact) == EXPECTED[path.name]
    for outcome, metric in zip(conv.metrics, raw, strict=True):
        source = (metric.get("query") or {}).get("type", "")
        if outcome.converted:
            assert source == "prometheus"
            assert outcome.entry is not None and INSTANCE in outcome.entry["query"]
            assert "${" not in outcome.entry["query"]
        else:
            assert outcome.reason
            if source not in ("", "prometheus", "cloudwatch"):
                assert outcome.reason.startswith(f"{source} is not a source imagefleet reads")
    # the TOML says the same as the data: converted entries, and a comment per skipped metric
    text = k.to_toml(conv, path.name)
    expected = conv.canary if conv.converted else {k: v for k, v in conv.canary.items() if v}
    assert tomllib.loads(text) == {"canary": expected}
    for m in conv.skipped:
        assert f"# skipped {m.name!r}" in text


def test_kayenta_integration_test_config() -> None:
    conv = convert("prometheus-integration-test-cpu.json")
    assert conv.canary == {
        "prometheus_url": "http://localhost:9090",
        "pass_threshold": 75.0,
        "marginal_threshold": 50.0,
        "group_weights": {"pod-group": 100.0},
        "metrics": [
            {
                "name": "CPU usage for service",
                "source": "prometheus",
                "query": f"avg(integration_test_cpu{{namespace='prod',{INSTANCE}}})",
                "group": "pod-group",
                "direction": "increase",
                "critical": True,
            }
        ],
    }


def test_a_template_variable_without_a_value_skips_the_metric_and_says_how() -> None:
    conv = k.convert(load("prometheus-integration-test-cpu.json"))
    assert conv.converted == ()
    assert "pass --param namespace=VALUE" in conv.metrics[0].reason


def test_muted_metric_is_left_out_with_its_reason() -> None:
    conv = convert("prometheus-muted-metric.json")
    assert [m.name for m in conv.converted] == ["Successful metric"]
    assert conv.skipped[0].reason.startswith("muted")


# Kayenta's PrometheusMetricsServiceSpec rows: its query for a server group, ours per instance.
SPEC = {
    # avg(some-metric-name{a=b,asg_groupName="some-server-group",zone=~"us-central1.{1}"})
    "ec2 default": f"avg(some-metric-name{{a=b,{INSTANCE}}})",
    # avg(some-metric-name{a=b,instance=~"some-server-group-.{4}",
    #     zone=~".+/zones/us-central1-.{1}"})
    "gce default": f"avg(some-metric-name{{a=b,{INSTANCE}}})",
    # avg(some-metric-name{some-label=some-app-canary,a=b})
    "filter template": f"avg(some-metric-name{{{INSTANCE},a=b}})",
    # avg(some-metric-name{customFilter=something,andSomething=else,a=b}): no scope in it
    "inline filter": "avg(some-metric-name{customFilter=something,andSomething=else,a=b,"
    f"{INSTANCE}}})",
    "other filter template": f"avg(some-metric-name{{{INSTANCE},a=b}})",
    "promql scope": "histogram_quantile(0.5, prometheus_http_response_size_bytes_bucket"
    f'{{instance="localhost:9090",{INSTANCE}}})',
}


def test_kayenta_prometheus_query_shapes() -> None:
    conv = convert("prometheus-spec-queries.json")
    assert {m.name: m.entry["query"] for m in conv.converted if m.entry} == SPEC
    reasons = {m.name: m.reason for m in conv.skipped}
    assert "Kayenta refuses it too" in reasons["unsupported resource type"]
    assert "no ${scope} matcher" in reasons["promql fixed"]
    assert "--param quantile=VALUE" in reasons["promql quantile"]
    with_quantile = convert("prometheus-spec-queries.json", params={"quantile": "0.99"})
    (q,) = [m.entry for m in with_quantile.converted if m.name == "promql quantile"]
    assert q is not None and q["query"].startswith("histogram_quantile(0.99, ")


def test_match_by_the_instance_label() -> None:
    conv = convert("prometheus-scratch.json", match_by="instance")
    assert conv.canary["metrics"][0]["query"] == (
        'avg(node_cpu{mode=~"user|system",job="node",instance=~"{instance}(:[0-9]+)?"})'
    )


def test_ad_hoc_request_scopes_thresholds_and_what_is_dropped() -> None:
    conv = convert("prometheus-ec2-adhoc-request.json")
    c = conv.canary
    # the execution request's thresholds win over the config's, as in Kayenta
    assert (c["pass_threshold"], c["marginal_threshold"]) == (90.0, 60.0)
    # latency and credits lost their metrics: the other weights scale back to 100
    assert c["group_weights"] == {"saturation": 50.0, "errors": 50.0}
    load1, memory, errors = c["metrics"]
    # asgName differs between control and experiment: it scopes the sides like ${scope}; job is
    # the same on both sides: a value; the region matcher goes
    assert load1["query"] == f"avg(node_load1{{job='node',{INSTANCE}}})"
    assert load1 == {
        "name": "load1",
        "source": "prometheus",
        "query": load1["query"],
        "group": "saturation",
        "direction": "increase",
        "critical": True,
        "data_required": True,
        "allowed_increase": 1.2,
        "critical_increase": 3.0,
    }
    assert memory["query"] == f'avg(node_memory_MemAvailable_bytes{{job="node",{INSTANCE}}})'
    assert errors["query"] == f'sum(rate(http_requests_total{{code=~"5..",{INSTANCE}}}[1m]))'
    assert "allowed_increase" not in errors  # a CLES threshold is no ratio of means
    dropped = {m.name: m.dropped for m in conv.metrics}
    assert [d.split(" ")[0] for d in dropped["memory available"]] == [
        "nanStrategy",
        "outliers.strategy",
        "groupByFields",
        "groups",
    ]
    assert dropped["http 5xx rate"][0].startswith("effectSize.measure 'cles'")
    reasons = {m.name: m.reason for m in conv.skipped}
    assert "Kayenta has no CloudWatch source" in reasons["cpu credit balance"]
    assert reasons["p99 latency"].startswith("datadog is not a source")


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ([], "expected a JSON object"),
        ({"name": "x"}, "no 'metrics' list"),
        ({"metrics": []}, "has no metrics"),
        ({"metrics": ["cpu"]}, "no 'metrics' list"),
        ({"canaryConfig": [], "executionRequest": {}}, "must be JSON objects"),
    ],
)
def test_not_a_kayenta_config(doc: Any, needle: str) -> None:
    with pytest.raises(k.NotKayentaConfig, match=needle):
        k.convert(doc)


def test_names_imagefleet_cannot_take_are_renamed_and_duplicates_skipped() -> None:
    metric = {
        "query": {"type": "prometheus", "metricName": "m", "resourceType": "aws_ec2_instance"},
        "groups": ["g (main)"],
        "analysisConfigurations": {"canary": {"effectSize": {"allowedIncrease": "big"}}},
    }
    doc = {
        "metrics": [
            {**metric, "name": "p99 (ms)", "analysisConfigurations": {}},
            {**metric, "name": "p99 [ms]", "analysisConfigurations": {}},
            {**metric, "name": "bad effect"},
        ],
        "classifier": {
            "groupWeights": {"g (main)": 100},
            "scoreThresholds": {"pass": 50, "marginal": 70},
        },
    }
    conv = k.convert(doc)
    first, second, bad = conv.metrics
    assert first.entry is not None and first.entry["name"] == "p99 _ms_"
    assert first.entry["group"] == "g _main_" and conv.canary["group_weights"] == {
        "g _main_": 100.0
    }
    assert second.entry is None and "comes before it" in second.reason
    assert bad.entry is None and "effectSize.allowedIncrease must be a number" in bad.reason
    assert "pass_threshold" not in conv.canary and "marginal <= pass" in conv.dropped[0]


def test_query_length_limit_is_the_configs() -> None:
    query = canary_config.METRIC.fields["query"]
    assert isinstance(query, s.Str) and query.max_len == kp.MAX_QUERY


@pytest.mark.parametrize(
    ("query", "params", "needle"),
    [
        ({"customInlineTemplate": "job='{asg}', s='${scope}'"}, {}, "{asg} in its query would"),
        ({"customInlineTemplate": "a='${x}',s='${scope}'"}, {"x": "{y}"}, "{y} in its query"),
        ({"labelBindings": ['a="${x}"']}, {"x": "1"}, "{x} in its query would"),
        ({"labelBindings": ['a="' + "x" * 9000 + '"']}, {}, "more than 8192"),
    ],
)
def test_queries_imagefleet_would_read_otherwise_are_skipped(
    query: dict[str, Any], params: dict[str, str], needle: str
) -> None:
    q = {"type": "prometheus", "metricName": "m", "resourceType": "aws_ec2_instance", **query}
    conv = k.convert({"metrics": [{"name": "m", "query": q, "groups": ["g"]}]}, params=params)
    assert not conv.converted and needle in conv.metrics[0].reason


def test_scaled_group_weights_still_add_up_to_100_for_the_judge() -> None:
    def metric(name: str, group: str, source: str) -> dict[str, Any]:
        q = {"type": source, "metricName": name, "resourceType": "aws_ec2_instance"}
        return {"name": name, "query": q, "groups": [group]}

    doc = {
        "metrics": [metric(g, g, "prometheus") for g in "abc"] + [metric("d", "d", "atlas")],
        "classifier": {"groupWeights": {"a": 30, "b": 30, "c": 30, "d": 10}},
    }
    conv = k.convert(doc)
    cfg = canary_config.parse(tomllib.loads(k.to_toml(conv))["canary"])
    samples = {m: [1.0, 1.1, 0.9, 1.0] for m in "abc"}
    result = judge_metrics(samples, samples, cfg.metric_configs(), group_weights=cfg.weights())
    assert result.score == 100.0 and result.decision == "pass"
    only_atlas_weighted = {**doc, "classifier": {"groupWeights": {"d": 100}}}
    assert "share the score equally" in k.convert(only_atlas_weighted).notes[-1]


PRINTABLE = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)


@settings(max_examples=40, deadline=None)
@given(name=PRINTABLE, label=PRINTABLE, group=PRINTABLE)
def test_any_text_survives_the_toml(name: str, label: str, group: str) -> None:
    doc = {
        "metrics": [
            {
                "name": name,
                "query": {
                    "type": "prometheus",
                    "metricName": "m",
                    "labelBindings": [f"l={json.dumps(label)}"],
                    "resourceType": "aws_ec2_instance",
                },
                "groups": [group],
            }
        ],
        "classifier": {"groupWeights": {group: 100}},
    }
    conv = k.convert(doc)
    assume(conv.converted)  # a blank name is skipped
    assert tomllib.loads(k.to_toml(conv)) == {"canary": conv.canary}


@pytest.mark.parametrize("name", [n for n, (c, _, _) in EXPECTED.items() if c])
def test_output_loads_with_imagefleets_config_loader(name: str) -> None:
    conv = convert(name)
    raw = tomllib.loads(k.to_toml(conv))["canary"]
    cfg = canary_config.parse(raw)
    assert [m.name for m in cfg.metrics] == [m.entry["name"] for m in conv.converted if m.entry]
    assert cfg.prometheus_url == "http://localhost:9090"
    assert [(m.source, m.query) for m in cfg.metrics] == [
        ("prometheus", e["query"]) for e in conv.canary["metrics"]
    ]
    assert cfg.group_weights == conv.canary.get("group_weights", {})
    assert (cfg.pass_threshold, cfg.marginal_threshold) == (
        conv.canary.get("pass_threshold", 95.0),
        conv.canary.get("marginal_threshold", 75.0),
    )
    for m, entry in zip(cfg.metrics, conv.canary["metrics"], strict=True):
        assert m.direction == entry["direction"] and m.critical == entry.get("critical", False)
        assert m.allowed_increase == entry.get("allowed_increase", 1.0)


# --- the command -------------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = raw_main(
        ["canary", "import-config", *args], obj=Context(output=Output(stdout=out, stderr=err))
    )
    return code, out.getvalue(), err.getvalue()


def test_command_prints_toml_and_exits_0_when_all_converted() -> None:
    code, out, err = run(str(DATA / "prometheus-scratch.json"))
    assert code == 0, err
    assert tomllib.loads(out)["canary"]["metrics"][0]["name"] == "cpu"
    assert "cpu (prometheus): converted" in err
    assert "prometheus_url = 'http://localhost:9090': Kayenta's config does not name" in err


def test_command_exits_1_listing_what_it_skipped(tmp_path: Path) -> None:
    out_file = tmp_path / "canary.toml"
    code, out, err = run(
        str(DATA / "prometheus-ec2-adhoc-request.json"), "--output", str(out_file), "--json"
    )
    assert code == 1
    report = json.loads(out)
    assert (report["converted"], report["skipped"], report["exact"]) == (3, 2, False)
    assert report["output"] == str(out_file)
    assert tomllib.loads(out_file.read_text())["canary"] == report["canary"]
    assert err.strip().splitlines()[-2] == (
        "error: 3 of 5 metrics converted, 2 skipped, 5 settings dropped"
    )


def test_command_reads_a_separate_execution_request(tmp_path: Path) -> None:
    adhoc = load("prometheus-ec2-adhoc-request.json")
    (tmp_path / "config.json").write_text(json.dumps(adhoc["canaryConfig"]))
    (tmp_path / "request.json").write_text(json.dumps(adhoc["executionRequest"]))
    args = (str(tmp_path / "config.json"), "--json")
    code, out, _ = run(*args, "--execution-request", str(tmp_path / "request.json"))
    assert code == 1 and json.loads(out)["canary"] == convert(ADHOC).canary
    # without the request, asgName has no value: the metric that needs it is skipped
    code, out, _ = run(*args)
    skipped = {m["name"]: m["reason"] for m in json.loads(out)["metrics"] if m["entry"] is None}
    assert "--param asgName=VALUE" in skipped["load1"]
    code, _, err = run(*args, "--execution-request", str(tmp_path / "config.json"))
    assert code == 2 and "not a Kayenta execution request" in err.splitlines()[0]


def test_command_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out_file = tmp_path / "canary.toml"
    out_file.write_text("mine\n")
    code, _, err = run(str(DATA / "prometheus-scratch.json"), "-o", str(out_file))
    assert code == 2 and err.startswith(f"error: {out_file} exists")
    assert out_file.read_text() == "mine\n"
    code, _, _ = run(str(DATA / "prometheus-scratch.json"), "-o", str(out_file), "--force")
    assert code == 0 and "[[canary.metrics]]" in out_file.read_text()


def test_command_writes_nothing_when_no_metric_converts(tmp_path: Path) -> None:
    out_file = tmp_path / "canary.toml"
    code, out, err = run(str(DATA / "atlas-sample-config.json"), "-o", str(out_file))
    assert code == 1 and not out_file.exists() and out == ""
    assert "write this metric's [[canary.metrics]] entry" in err  # not eaten as markup
    assert "error: none of the 2 metrics could be converted; nothing written" in err


@pytest.mark.parametrize(
    ("text", "args", "needle"),
    [
        ('{"metrics": [', (), "in.json:1:14: not valid JSON"),
        ('{"name": "x"}', (), "not a Kayenta canary config"),
        ('{"metrics": [{}]}', ("--param", "novalue"), "--param 'novalue': expected KEY=VALUE"),
        ('{"metrics": [{}]}', ("--prometheus-url", "localhost"), "expected an http(s) URL"),
    ],
)
def test_command_bad_input_is_one_line_exit_2(
    tmp_path: Path, text: str, args: tuple[str, ...], needle: str
) -> None:
    path = tmp_path / "in.json"
    path.write_text(text)
    code, out, err = run(str(path), *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and needle in err.splitlines()[0]


# --- Kayenta's classifier vectors (../shared/testdata) through the import ------------------------

VECTORS = load_kayenta_cases()


def _analysis(case: dict[str, Any]) -> dict[str, Any]:
    """A case's classifier settings as Kayenta's ``analysisConfigurations.canary``."""
    k_ = case["classifier"]
    effect: dict[str, Any] = {}
    if "effectSizeThresholds" in k_:
        effect["allowedDecrease"], effect["allowedIncrease"] = k_["effectSizeThresholds"]
    if "criticalThresholds" in k_:
        effect["criticalDecrease"], effect["criticalIncrease"] = k_["criticalThresholds"]
    if "effectSizeMeasure" in k_:
        effect["measure"] = k_["effectSizeMeasure"]
    return {
        "direction": case["direction"],
        "nanStrategy": case["nan_strategy"],
        "critical": case["critical_metric"],
        "effectSize": effect,
    }


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_kayenta_vectors_judge_alike_after_the_import(case: dict[str, Any]) -> None:
    """Kayenta's analysis settings → TOML → imagefleet's config loader → its judge gives the
    classification Kayenta's suite asserts; settings the TOML cannot carry are reported."""
    metric = {
        "name": "m",
        "query": {"type": "prometheus", "metricName": "m", "resourceType": "aws_ec2_instance"},
        "groups": ["g"],
        "analysisConfigurations": {"canary": _analysis(case)},
    }
    conv = k.convert({"metrics": [metric]})
    (outcome,) = conv.metrics
    if case["nan_strategy"] == "replace" or case["classifier"].get("effectSizeMeasure") == "cles":
        assert outcome.dropped and not conv.exact
        return
    assert conv.exact
    raw = tomllib.loads(k.to_toml(conv))["canary"]
    raw["tolerance"] = case["classifier"]["tolerance"]  # the vectors' own classifier parameters
    raw["confidence"] = case["classifier"]["confLevel"]
    cfg = canary_config.parse(raw)
    mc = cfg.metrics[0].judge_config()
    result = classify(
        case["control"],
        case["experiment"],
        direction=cast(Direction, mc.direction),
        tolerance=cfg.tolerance,
        confidence=cfg.confidence,
        allowed_increase=mc.allowed_increase,
        allowed_decrease=mc.allowed_decrease,
        critical_increase=mc.critical_increase,
        critical_decrease=mc.critical_decrease,
        critical=mc.critical,
    )
    assert result.classification == case["expected"], result.reason
    if "expected_critical" in case:
        assert result.critical is case["expected_critical"], result.reason


# --- the queries parse in a real Prometheus (promtool, Debian's prometheus package) -------------

PROMTOOL = shutil.which("promtool")
# Kayenta's unit-test shapes (some-metric-name{a=b}) are not PromQL; the others are real configs.
REAL = [n for n, (c, _, _) in EXPECTED.items() if c and n != "prometheus-spec-queries.json"]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus package) not installed")
def test_converted_queries_parse_in_prometheus(tmp_path: Path) -> None:
    values = {"instance_id": "i-0123456789abcdef0", "instance": "10.0.1.23"}
    exprs = [
        canary_config.render(entry["query"], values)
        for name in REAL
        for match_by in k.MATCH_BY
        for entry in convert(name, match_by=match_by).canary["metrics"]
    ]
    rules = {
        "groups": [
            {
                "name": "import",
                "rules": [{"record": f"r{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout, done.stdout
    assert len(exprs) == 2 * 6  # six metrics over four configs, both matchers
