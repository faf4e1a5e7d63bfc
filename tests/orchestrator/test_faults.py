"""The fault proxy's decisions and answers, as plain data: the spec, the seeded plan, the protocols.

Requests are serialized and signed by botocore itself (no network), and the proxy's error answers
are read back by botocore's own response parsers, so "looks like AWS" is checked by the code
that reads real AWS answers.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

import botocore.exceptions as bex
import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import HeadersDict, create_request_object, prepare_request_dict
from botocore.credentials import Credentials
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from orchestrator.aws import is_retryable
from orchestrator.errors import ExitStatus, UsageError
from orchestrator.local.faults import (
    Decision,
    Fault,
    FaultPlan,
    FaultSpec,
    Request,
    cbor_text_map,
    error_response,
    is_packer,
    parse_spec,
    protocol_of,
)


# --- the spec
# -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "spec"),
    [
        (
            "throttle=0.1,5xx=0.05,reset=0.02,latency=200ms",
            FaultSpec(throttle=0.1, error_5xx=0.05, reset=0.02, latency_s=0.2),
        ),
        ("reset-after=0.5", FaultSpec(reset_after=0.5)),
        (" throttle = 1 ", FaultSpec(throttle=1.0)),
        ("latency=1.5s,packer=on", FaultSpec(latency_s=1.5, packer=True)),
        ("throttle=0", FaultSpec()),
        ("consistency=5s,throttle=0.1", FaultSpec(throttle=0.1, consistency_s=5.0)),
        ("consistency=500ms,clock=manual", FaultSpec(consistency_s=0.5, clock="manual")),
    ],
)
def test_specs_parse(text: str, spec: FaultSpec) -> None:
    assert parse_spec(text) == spec
    if spec == FaultSpec():
        assert str(spec) == "none"
    else:
        assert parse_spec(str(spec)) == spec  # the proxy's banner reads back as the same spec


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "expected key=value"),
        ("throttle", "expected key=value"),
        ("throttle=", "expected key=value"),
        ("throttle=0.1,", "expected key=value"),
        ("throttle=1.5", "between 0 and 1"),
        ("throttle=-0.1", "between 0 and 1"),
        ("throttle=lots", "between 0 and 1"),
        ("throttle=0.1,throttle=0.2", "given twice"),
        ("throttle=0.6,5xx=0.5", "add up to 1.1"),
        ("timeout=0.1", "unknown fault 'timeout'"),
        ("latency=200", "200ms or 1.5s"),
        ("latency=fast", "200ms or 1.5s"),
        ("packer=yes", "on or off"),
        ("consistency=5", "consistency must look like 200ms or 1.5s"),
        ("clock=virtual", "wall or manual"),
    ],
)
def test_bad_specs_are_bad_input(text: str, says: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_spec(text)
    assert says in str(err.value) and err.value.exit_code == ExitStatus.BAD_INPUT


# --- the decisions
# ------------------------------------------------------------------------------------
SPEC = FaultSpec(throttle=0.1, error_5xx=0.05, reset=0.02, reset_after=0.01)


def test_the_same_seed_gives_the_same_decisions_and_another_seed_others() -> None:
    def draws(seed: int) -> list[Decision]:
        plan = FaultPlan(SPEC, seed)
        return [plan.decide() for _ in range(500)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)


def test_decisions_follow_the_rates() -> None:
    n = 40_000
    plan = FaultPlan(SPEC, 1)
    decisions = [plan.decide() for _ in range(n)]
    counts = plan.snapshot()
    assert sum(counts.values()) == n
    expected = {"throttle": 0.1, "5xx": 0.05, "reset": 0.02, "reset-after": 0.01, "forward": 0.82}
    for fault, p in expected.items():
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[fault] - n * p) < 5 * sigma, (fault, counts[fault], n * p)
    statuses = [d.status for d in decisions if d.fault is Fault.ERROR_5XX]
    assert set(statuses) == {500, 503}
    assert abs(statuses.count(500) - len(statuses) / 2) < 5 * math.sqrt(len(statuses) / 4)
    assert all(d.status == 0 for d in decisions if d.fault is not Fault.ERROR_5XX)


def test_no_faults_forwards_everything_and_certain_faults_always_happen() -> None:
    assert {FaultPlan(FaultSpec(), 3).decide().fault for _ in range(1000)} == {Fault.FORWARD}
    plan = FaultPlan(FaultSpec(reset=1.0), 3)
    assert {plan.decide().fault for _ in range(1000)} == {Fault.RESET}


# --- the answers
# --------------------------------------------------------------------------------------
_SESSION = botocore.session.get_session()


def signed(service: str, operation: str, params: dict[str, Any]) -> tuple[Request, Any]:
    """``operation`` as botocore puts it on the wire (serialized and SigV4-signed), and its
    model."""
    model = _SESSION.get_service_model(service)
    op = model.operation_model(operation)
    req = create_serializer(model.protocol).serialize_to_request(params, op)
    prepare_request_dict(req, endpoint_url="http://127.0.0.1:4566")
    aws_req = create_request_object(req)
    SigV4Auth(Credentials("testing", "testing"), model.signing_name, "us-east-1").add_auth(aws_req)
    prepared = aws_req.prepare()
    body = prepared.body or b""
    headers = {
        k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in prepared.headers.items()
    }
    return Request(
        prepared.method,
        urlsplit(prepared.url).path,
        headers,
        body.encode() if isinstance(body, str) else body,
    ), op


def parsed_error(
    service: str, operation: str, params: dict[str, Any], decision: Decision
) -> tuple[str, dict[str, Any]]:
    req, op = signed(service, operation, params)
    resp = error_response(req, decision)
    headers = HeadersDict(resp.headers)
    parsed = create_parser(_SESSION.get_service_model(service).protocol).parse(
        {"status_code": resp.status, "headers": headers, "body": resp.body}, op.output_shape
    )
    parsed.setdefault("ResponseMetadata", {})["HTTPStatusCode"] = (
        resp.status
    )  # as botocore's endpoint adds it
    return protocol_of(req), parsed


CASES = [
    # service, operation, params, protocol, throttle (status, code)
    ("ec2", "DescribeInstances", {}, "ec2", (503, "RequestLimitExceeded")),
    ("autoscaling", "DescribeAutoScalingGroups", {}, "query", (400, "Throttling")),
    ("sts", "GetCallerIdentity", {}, "query", (400, "Throttling")),
    (
        "ssm",
        "GetParameter",
        {"Name": "/imagefleet/demo/candidate"},
        "json",
        (400, "ThrottlingException"),
    ),
    (
        "dynamodb",
        "GetItem",
        {"TableName": "imagefleet-state", "Key": {"pk": {"S": "x"}}},
        "json",
        (400, "ThrottlingException"),
    ),
    (
        "cloudwatch",
        "ListMetrics",
        {"Namespace": "imagefleet"},
        "cbor",
        (400, "ThrottlingException"),
    ),
    (
        "s3",
        "GetObject",
        {"Bucket": "imagefleet-artifacts", "Key": "a/b.txt"},
        "rest-xml",
        (503, "SlowDown"),
    ),
]


@pytest.mark.parametrize(("service", "operation", "params", "protocol", "throttle"), CASES)
def test_throttles_read_as_each_services_own_throttling(
    service: str, operation: str, params: dict[str, Any], protocol: str, throttle: tuple[int, str]
) -> None:
    seen, parsed = parsed_error(service, operation, params, Decision(Fault.THROTTLE))
    assert seen == protocol
    assert (parsed["ResponseMetadata"]["HTTPStatusCode"], parsed["Error"]["Code"]) == throttle
    assert is_retryable(bex.ClientError(parsed, operation))


@pytest.mark.parametrize(("service", "operation", "params", "protocol", "throttle"), CASES)
@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_read_as_5xx(
    service: str,
    operation: str,
    params: dict[str, Any],
    protocol: str,
    throttle: tuple[int, str],
    status: int,
) -> None:
    _, parsed = parsed_error(service, operation, params, Decision(Fault.ERROR_5XX, status))
    expected = {
        500: {"json": "InternalServerError", "cbor": "InternalServerError"}.get(
            protocol, "InternalError"
        ),
        503: "ServiceUnavailable",
    }[status]
    assert (parsed["ResponseMetadata"]["HTTPStatusCode"], parsed["Error"]["Code"]) == (
        status,
        expected,
    )
    assert is_retryable(bex.ClientError(parsed, operation))


def test_cbor_maps_are_rfc_8949() -> None:
    # RFC 8949 appendix A: {"a": "A"} is a1 61 61 61 41; a 24-byte string takes a one-byte length.
    assert cbor_text_map({"a": "A"}) == bytes.fromhex("a161616141")
    assert cbor_text_map({"k": "x" * 24})[:5] == bytes.fromhex("a1616b7818")


def test_packer_is_told_apart_by_its_go_sdk() -> None:
    assert is_packer(
        "aws-sdk-go/1.36.0 (go1.15.9; linux; amd64) APN/1.0 HashiCorp/1.0 Packer/1.6.6"
    )
    assert not is_packer("Boto3/1.44.8 md/Botocore#1.44.8 ua/2.1 os/linux#6.1 lang/python#3.11.7")
