"""Prometheus as a metric source: ``GET /api/v1/query_range`` and its JSON, as plain data.

The HTTP API (https://prometheus.io/docs/prometheus/latest/querying/api/) answers
``{"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {labels},
"values": [[unix_time, "value"], ...]}, ...]}}``, or ``{"status": "error", "errorType": ...,
"error": ...}`` with HTTP 400 (a query that does not parse: ``bad_data``), 422 (one that cannot
be executed) or 503 (timed out or aborted). ``parse_response`` reads either; ``query_range`` makes
the request with the standard library only. No AWS here: the instances' private IPs a
``{instance}`` placeholder needs come from ``canary.metrics`` (the adapter).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.errors import ImagefleetError, UsageError

TIMEOUT_S = 30.0  # per request, and the query's own evaluation timeout on the server
_SHOWN = 300  # characters of an unexpected body an error repeats


class PrometheusError(ImagefleetError):
    """The Prometheus server could not be reached or failed (exit 3)."""

    def __init__(self, message: str, *, status: int = 0, error_type: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class PromQLError(UsageError):
    """The server refused a query as malformed (``bad_data``): the query template needs fixing
    (exit 2)."""

    def __init__(self, message: str, *, status: int, error_type: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status
        self.error_type = error_type


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and its (unix time, value) points."""

    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]

    def values(self) -> list[float]:
        """The finite values (``NaN`` and ``±Inf``, which Prometheus sends as strings, left out)."""
        return [v for _, v in self.points if math.isfinite(v)]


def parse_response(status: int, body: bytes | str, *, query: str = "") -> list[Series]:
    """The series of a ``query_range`` (or ``query``) answer; an error answer raises.

    ``status`` is the HTTP status. A ``matrix`` gives its series; a ``vector`` or ``scalar`` (an
    instant query's answer) gives one point per sample."""
    what = f"Prometheus query {query!r}" if query else "Prometheus"
    try:
        doc = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        raise PrometheusError(
            f"{what}: HTTP {status}, not a JSON answer: {text[:_SHOWN]!r}", status=status
        ) from None
    if not isinstance(doc, dict) or doc.get("status") not in ("success", "error"):
        raise PrometheusError(f"{what}: HTTP {status}, unexpected answer {str(doc)[:_SHOWN]}")
    if doc["status"] == "error" or status >= 400:
        error_type = str(doc.get("errorType") or "")
        message = f"{what}: {error_type or 'error'}: {doc.get('error') or f'HTTP {status}'}"
        if error_type == "bad_data":
            raise PromQLError(
                message,
                status=status,
                error_type=error_type,
                hint="fix the query template in [[canary.metrics]]",
            )
        raise PrometheusError(message, status=status, error_type=error_type)
    data = doc.get("data")
    if not isinstance(data, dict):
        raise PrometheusError(f"{what}: answer without data: {str(doc)[:_SHOWN]}")
    kind = data.get("resultType")
    result: Any = data.get("result")
    try:
        if kind == "matrix":
            return [
                Series(dict(item.get("metric") or {}), _points(item.get("values") or []))
                for item in result
            ]
        if kind == "vector":
            return [
                Series(dict(item.get("metric") or {}), _points([item["value"]])) for item in result
            ]
        if kind == "scalar":
            return [Series({}, _points([result]))]
    except (TypeError, KeyError, ValueError, IndexError):
        raise PrometheusError(f"{what}: malformed {kind} result: {str(result)[:_SHOWN]}") from None
    raise PrometheusError(f"{what}: result type {kind!r}, expected a matrix")


def _points(values: list[Any]) -> tuple[tuple[float, float], ...]:
    # ``float`` reads Prometheus's "NaN", "+Inf" and "-Inf" strings as well as numbers.
    return tuple((float(t), float(v)) for t, v in values)


def query_range(
    base_url: str,
    query: str,
    start: datetime,
    end: datetime,
    step_s: float,
    *,
    timeout_s: float = TIMEOUT_S,
) -> list[Series]:
    """``GET {base_url}/api/v1/query_range``: the query evaluated every ``step_s`` from ``start``
    to ``end`` (both included). Connection failures and error answers raise ``PrometheusError``
    (a malformed query ``PromQLError``), each naming the query."""
    params = urllib.parse.urlencode(
        {
            "query": query,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step_s:g}",
            "timeout": f"{timeout_s:g}s",
        }
    )
    url = f"{base_url.rstrip('/')}/api/v1/query_range?{params}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:  # 400, 422, 503 carry a JSON error body
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PrometheusError(
            f"Prometheus at {base_url} unreachable for query {query!r}: {reason}"
        ) from None
    return parse_response(status, body, query=query)
