"""What the fault proxy injects, and how each fault looks on the wire: pure, seeded, no I/O.

A spec such as ``throttle=0.1,5xx=0.05,reset=0.02,latency=200ms`` is parsed strictly into a
``FaultSpec``; a ``FaultPlan`` draws one decision per AWS request from a seeded RNG; and
``error_response`` renders a throttle or a 5xx the way the service's own protocol does, so the
client's error parser and retry policy see exactly what real AWS sends (see docs/faults.md).
"""

from __future__ import annotations

import json
import random
import re
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import parse_qs

from orchestrator.errors import UsageError

_RATE_KEYS = {
    "throttle": "throttle",
    "5xx": "error_5xx",
    "reset": "reset",
    "reset-after": "reset_after",
}
_OTHER_KEYS = ("latency", "packer", "consistency", "clock")
_LATENCY = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)$")


@dataclass(frozen=True)
class FaultSpec:
    """Per-request probabilities of each fault, and a fixed latency added to every AWS request."""

    throttle: float = 0.0
    error_5xx: float = 0.0
    reset: float = 0.0  # close the connection after reading the request; AWS never sees it
    reset_after: float = 0.0  # forward to AWS, then close without relaying the answer
    latency_s: float = 0.0
    # Packer 1.6.6 does not retry its source-AMI lookup (one throttle fails the bake), so its
    # calls (Go SDK) pass untouched unless ``packer=on``; imagefleet's own clients always get
    # faults.
    packer: bool = False
    # Eventual consistency (orchestrator.local.consistency): for this long after a create or a
    # change, reads of that resource answer as AWS may (NotFound, left out of listings, the old
    # value).
    consistency_s: float = 0.0
    # The clock that window is counted on: "wall" (scaled like the demo's, IMAGEFLEET_TIME_SCALE) or
    # "manual" (it moves only by /__faultproxy__/advance: a test's virtual clock drives it).
    clock: str = "wall"

    def __str__(self) -> str:
        parts = [
            f"{key}={getattr(self, attr):g}"
            for key, attr in _RATE_KEYS.items()
            if getattr(self, attr)
        ]
        if self.latency_s:
            parts.append(f"latency={self.latency_s * 1000:g}ms")
        if self.packer:
            parts.append("packer=on")
        if self.consistency_s:
            parts.append(f"consistency={self.consistency_s:g}s")
        if self.clock != "wall":
            parts.append(f"clock={self.clock}")
        return ",".join(parts) or "none"


def parse_spec(text: str) -> FaultSpec:
    """``throttle=0.1,5xx=0.05,reset=0.02,reset-after=0.01,latency=200ms,packer=on,consistency=5s,clock=manual``
    -> FaultSpec; strict."""
    values: dict[str, Any] = {}
    seen: set[str] = set()
    for item in text.split(","):
        key, eq, raw = (s.strip() for s in item.partition("="))
        if not eq or not key or not raw:
            raise UsageError(f"fault spec: expected key=value, got {item.strip()!r} in {text!r}")
        if key in seen:
            raise UsageError(f"fault spec: {key} given twice")
        seen.add(key)
        if key in ("latency", "consistency"):
            m = _LATENCY.match(raw)
            if not m:
                raise UsageError(f"fault spec: {key} must look like 200ms or 1.5s, got {raw!r}")
            values[f"{key}_s"] = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
            continue
        if key == "clock":
            if raw not in ("wall", "manual"):
                raise UsageError(f"fault spec: clock must be wall or manual, got {raw!r}")
            values["clock"] = raw
            continue
        if key == "packer":
            if raw not in ("on", "off"):
                raise UsageError(f"fault spec: packer must be on or off, got {raw!r}")
            values["packer"] = raw == "on"
            continue
        if key not in _RATE_KEYS:
            raise UsageError(
                f"fault spec: unknown fault {key!r} (known: "
                f"{', '.join([*_RATE_KEYS, *_OTHER_KEYS])})"
            )
        try:
            rate = float(raw)
        except ValueError:
            raise UsageError(
                f"fault spec: {key} must be a probability between 0 and 1, got {raw!r}"
            ) from None
        if not 0.0 <= rate <= 1.0:
            raise UsageError(
                f"fault spec: {key} must be a probability between 0 and 1, got {raw!r}"
            )
        values[_RATE_KEYS[key]] = rate
    spec = FaultSpec(**values)
    total = spec.throttle + spec.error_5xx + spec.reset + spec.reset_after
    if total > 1.0:
        raise UsageError(f"fault spec: the fault probabilities add up to {total:g}, more than 1")
    return spec


class Fault(Enum):
    FORWARD = "forward"
    THROTTLE = "throttle"
    ERROR_5XX = "5xx"
    RESET = "reset"
    RESET_AFTER = "reset-after"


@dataclass(frozen=True)
class Decision:
    fault: Fault
    status: int = 0  # for ERROR_5XX: 500 or 503


def is_packer(user_agent: str) -> bool:
    """Packer's AWS calls: the only Go SDK client that talks to the local endpoint."""
    return "aws-sdk-go" in user_agent


class FaultPlan:
    """One seeded decision per request; thread-safe, and it counts what it decided."""

    def __init__(self, spec: FaultSpec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def decide(self) -> Decision:
        with self._lock:
            # Two draws per request, always, so the n-th decision depends on the seed alone.
            u, v = self._rng.random(), self._rng.random()
            decision = _decision(self.spec, u, v)
            self.counts[decision.fault.value] += 1
        return decision

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f.value: self.counts.get(f.value, 0) for f in Fault}


def _decision(spec: FaultSpec, u: float, v: float) -> Decision:
    edge = 0.0
    for fault, rate in (
        (Fault.THROTTLE, spec.throttle),
        (Fault.ERROR_5XX, spec.error_5xx),
        (Fault.RESET, spec.reset),
        (Fault.RESET_AFTER, spec.reset_after),
    ):
        edge += rate
        if u < edge:
            return Decision(fault, (500 if v < 0.5 else 503) if fault is Fault.ERROR_5XX else 0)
    return Decision(Fault.FORWARD)


# --- what the protocols look like
# -------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """What the proxy knows of a request when it decides how to fail it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


def service_of(req: Request) -> str:
    """The signing name from SigV4's credential scope (``.../us-east-1/ec2/aws4_request``)."""
    m = re.search(
        r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request", req.headers.get("authorization", "")
    )
    return m.group(1) if m else ""


def region_of(req: Request) -> str:
    """The region from SigV4's credential scope (``.../20260101/us-east-1/ec2/aws4_request``)."""
    m = re.search(
        r"Credential=[^/]+/\d{8}/([^/]+)/[^/]+/aws4_request", req.headers.get("authorization", "")
    )
    return m.group(1) if m else ""


def protocol_of(req: Request) -> str:
    """``ec2``, ``query``, ``json``, ``cbor`` or ``rest-xml``, from the request's shape."""
    if req.headers.get("smithy-protocol") == "rpc-v2-cbor":
        return "cbor"
    if "x-amz-target" in req.headers:
        return "json"
    form = req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    if req.method == "POST" and form and "Action" in parse_qs(req.body.decode("latin-1")):
        return "ec2" if service_of(req) == "ec2" else "query"
    return "rest-xml"


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


# (status, code, message) per protocol, as the services document them: EC2 throttles with 503
# RequestLimitExceeded, query services (Auto Scaling, STS, IAM) with 400 Throttling, JSON and CBOR
# services (SSM, DynamoDB, CloudWatch) with 400 ThrottlingException, S3 with 503 SlowDown.
_THROTTLE = {
    "ec2": (503, "RequestLimitExceeded", "Request limit exceeded."),
    "query": (400, "Throttling", "Rate exceeded"),
    "json": (400, "ThrottlingException", "Rate exceeded"),
    "cbor": (400, "ThrottlingException", "Rate exceeded"),
    "rest-xml": (503, "SlowDown", "Please reduce your request rate."),
}
_SERVER_ERROR = {
    500: {"json": "InternalServerError", "cbor": "InternalServerError", "*": "InternalError"},
    503: {"*": "ServiceUnavailable"},
}
_SERVER_MESSAGE = {
    500: "An internal error has occurred.",
    503: "The service is unavailable. Please try again shortly.",
}


def error_response(req: Request, decision: Decision) -> Response:
    """The throttle or 5xx answer of ``req``'s service, in its protocol's error format."""
    protocol = protocol_of(req)
    if decision.fault is Fault.THROTTLE:
        status, code, message = _THROTTLE[protocol]
    elif decision.fault is Fault.ERROR_5XX:
        status = decision.status
        codes = _SERVER_ERROR[status]
        code, message = codes.get(protocol, codes["*"]), _SERVER_MESSAGE[status]
    else:
        raise ValueError(f"{decision.fault} has no response")
    if protocol in ("json", "cbor") and service_of(req) == "dynamodb":
        code = f"com.amazonaws.dynamodb.v20120810#{code}"  # DynamoDB qualifies its error types
    return Response(status, *_render(protocol, code, message, uuid.uuid4().hex))


def render_error(protocol: str, status: int, code: str, message: str) -> Response:
    """An error answer in ``protocol``'s format (``ec2``, ``query``, ``json``, ``cbor``,
    ``rest-xml``)."""
    return Response(status, *_render(protocol, code, message, uuid.uuid4().hex))


def _render(
    protocol: str, code: str, message: str, request_id: str
) -> tuple[dict[str, str], bytes]:
    if protocol == "ec2":
        return {"Content-Type": "text/xml;charset=UTF-8"}, (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        ).encode()
    if protocol == "query":
        return {"Content-Type": "text/xml"}, (
            f"<ErrorResponse><Error><Type>{'Sender' if 'Throttl' in code else 'Receiver'}</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
    if protocol == "json":
        return (
            {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": request_id},
            json.dumps({"__type": code, "message": message}).encode(),
        )
    if protocol == "cbor":
        return (
            {
                "Content-Type": "application/cbor",
                "smithy-protocol": "rpc-v2-cbor",
                "x-amzn-RequestId": request_id,
            },
            cbor_text_map({"__type": code, "message": message}),
        )
    return {"Content-Type": "application/xml", "x-amz-request-id": request_id}, (
        '<?xml version="1.0" '
        f'encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        f"<RequestId>{request_id}</RequestId></Error>"
    ).encode()


def cbor_text_map(items: dict[str, str]) -> bytes:
    """A CBOR (RFC 8949) map of text strings: all an RPCv2-CBOR error body needs."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        if n < 256:
            return bytes([major << 5 | 24, n])
        return bytes([major << 5 | 25]) + n.to_bytes(2, "big")

    out = bytearray(head(5, len(items)))
    for key, value in items.items():
        for text in (key, value):
            raw = text.encode()
            out += head(3, len(raw)) + raw
    return bytes(out)
