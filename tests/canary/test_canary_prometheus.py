"""The Prometheus source: answers of a real server parsed, errors named, queries rendered."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from canary.config import parse
from canary.metrics import InstanceRef, prometheus_queries
from canary.prometheus import PrometheusError, PromQLError, parse_response, query_range

DATA = Path(__file__).parent / "data" / "prometheus"


def answer(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_a_matrix_gives_its_series_and_values() -> None:
    series = parse_response(200, answer("matrix.json"))
    assert len(series) == 1 and series[0].labels == {}
    assert series[0].values()[:3] == [1.0, 1.0, 0.5]
    assert len(series[0].points) == 6 and series[0].points[1][0] - series[0].points[0][0] == 2


def test_nan_values_are_left_out_and_an_empty_matrix_has_no_series() -> None:
    (nan,) = parse_response(200, answer("matrix_nan.json"))
    assert nan.labels["instance_id"] == "i-0123456789abcdef0"
    assert len(nan.points) == 4 and nan.values() == []
    assert parse_response(200, answer("matrix_empty.json")) == []


def test_a_malformed_query_is_a_promql_error_naming_it() -> None:
    with pytest.raises(PromQLError) as err:
        parse_response(400, answer("error_bad_data_400.json"), query="avg(up")
    assert err.value.exit_code == 2 and err.value.status == 400
    assert "'avg(up'" in err.value.message and "unclosed left parenthesis" in err.value.message
    assert "bad_data" in err.value.message


def test_an_execution_error_is_a_prometheus_failure() -> None:
    with pytest.raises(PrometheusError) as err:
        parse_response(422, answer("error_execution_422.json"), query="q")
    assert err.value.exit_code == 3 and err.value.error_type == "execution"
    assert "many-to-many" in err.value.message


@pytest.mark.parametrize(
    "status, body, says",
    [
        (502, b"<html>Bad Gateway</html>", "HTTP 502, not a JSON answer"),
        (200, b'{"status": "success"}', "without data"),
        (200, b'{"status":"success","data":{"resultType":"string","result":[1,"x"]}}', "string"),
        (
            200,
            b'{"status":"success","data":{"resultType":"matrix","result":[{"values":[1]}]}}',
            "malformed matrix",
        ),
    ],
)
def test_unexpected_answers_are_named(status: int, body: bytes, says: str) -> None:
    with pytest.raises(PrometheusError) as err:
        parse_response(status, body)
    assert says in err.value.message


def test_an_unreachable_server_is_a_clear_failure() -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        t = datetime(2026, 1, 1, tzinfo=UTC)
        with pytest.raises(PrometheusError) as err:
            query_range(f"http://127.0.0.1:{port}", "up", t, t, 60, timeout_s=5)
    assert f"127.0.0.1:{port} unreachable" in err.value.message and "'up'" in err.value.message


def test_queries_render_placeholders_and_keep_promql_braces() -> None:
    cfg = parse(
        {
            "prometheus_url": "http://127.0.0.1:9090",
            "metrics": [
                {
                    "name": "load",
                    "source": "prometheus",
                    "query": 'avg(node_load1{instance="{instance}:9100", type="{instance_type}"})',
                },
                {"name": "up", "source": "prometheus", "query": 'up{instance_id="{instance_id}"}'},
            ],
        }
    )
    members = [
        ("canary", InstanceRef("us-east-1", "i-1", "web", "m5.large")),
        ("baseline", InstanceRef("us-east-1", "i-2", "", "m5.large")),
    ]
    queries = prometheus_queries(cfg.metrics, members, {"i-1": "10.0.0.7"})
    assert queries == [
        ("canary", "load", 'avg(node_load1{instance="10.0.0.7:9100", type="m5.large"})'),
        # i-2's private IP is unknown (gone): no query, so no samples for it
        ("canary", "up", 'up{instance_id="i-1"}'),
        ("baseline", "up", 'up{instance_id="i-2"}'),
    ]
