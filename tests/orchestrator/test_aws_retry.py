"""Retries against a real HTTP endpoint: a throttling proxy in front of the local moto server.

The proxy answers the first N requests the way EC2 does when it throttles (HTTP 503 and the
``RequestLimitExceeded`` error document) and forwards the rest to moto, so the factory's
retry policy is exercised over the wire, with no patching of boto3.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.aws import LOCAL_CREDENTIALS, AwsFactory
from orchestrator.errors import AwsError, NotFoundError

THROTTLED = (
    b'<?xml version="1.0" '
    b'encoding="UTF-8"?><Response><Errors><Error><Code>RequestLimitExceeded</Code>'
    b"<Message>Request limit "
    b"exceeded.</Message></Error></Errors><RequestID>r-1</RequestID></Response>"
)


class Proxy:
    def __init__(self, upstream: str, throttle: int) -> None:
        self.upstream = upstream
        self.throttle = throttle
        self.seen = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    proxy.seen += 1
                    throttle = proxy.seen <= proxy.throttle
                if throttle:
                    self.send_response(503)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(THROTTLED)))
                    self.end_headers()
                    self.wfile.write(THROTTLED)
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length")
                }
                req = urllib.request.Request(
                    proxy.upstream + self.path, data=body, headers=headers, method="POST"
                )
                try:
                    resp = urllib.request.urlopen(req, timeout=30)
                    status, data, rheaders = resp.status, resp.read(), resp.headers
                except urllib.error.HTTPError as exc:
                    status, data, rheaders = exc.code, exc.read(), exc.headers
                self.send_response(status)
                for k, v in rheaders.items():
                    if k.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "server",
                        "date",
                    ):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def proxy(aws_endpoint: str) -> Iterator[Proxy]:
    p = Proxy(aws_endpoint, throttle=0)
    yield p
    p.server.shutdown()


def factory(url: str, attempts: int = 5) -> AwsFactory:
    return AwsFactory(
        endpoint_url=url,
        credentials=dict(LOCAL_CREDENTIALS),
        max_attempts=attempts,
        backoff_multiplier=0.01,
        backoff_max=0.05,
    )


@pytest.mark.integration
def test_throttling_is_retried_with_backoff_until_it_succeeds(proxy: Proxy) -> None:
    proxy.throttle = 3
    aws = factory(proxy.url)
    regions = aws.client("ec2").describe_regions()["Regions"]
    assert any(r["RegionName"] == "us-east-1" for r in regions)
    assert aws.retries == 3
    assert proxy.seen == 4
    assert aws.counter.snapshot() == {"ec2.DescribeRegions": 4}  # every attempt is an API call


@pytest.mark.integration
def test_retries_are_bounded(proxy: Proxy) -> None:
    proxy.throttle = 100
    aws = factory(proxy.url, attempts=3)
    with pytest.raises(AwsError) as err:
        aws.client("ec2").describe_regions()
    assert "RequestLimitExceeded" in str(err.value)
    assert proxy.seen == 3 and aws.retries == 2


@pytest.mark.integration
def test_client_errors_are_not_retried(proxy: Proxy) -> None:
    aws = factory(proxy.url)
    with pytest.raises(NotFoundError):
        aws.client("ec2").describe_images(ImageIds=["ami-0000000000deadbee"])
    assert aws.retries == 0 and proxy.seen == 1


@pytest.mark.integration
def test_connection_errors_are_retried_then_reported() -> None:
    aws = factory("http://127.0.0.1:9", attempts=2)  # nothing listens on the discard port
    with pytest.raises(AwsError):
        aws.client("ec2").describe_regions()
    assert aws.retries == 1
