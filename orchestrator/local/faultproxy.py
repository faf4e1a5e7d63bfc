"""FAULT INJECTION (local endpoint only): an HTTP proxy that throttles, fails and drops AWS calls.

``python -m orchestrator.local.faultproxy --upstream http://127.0.0.1:PORT --faults
throttle=0.1,5xx=0.05
--seed 7`` listens on 127.0.0.1 and forwards every request to the embedded endpoint, except the
ones its seeded ``FaultPlan`` picks: those get the service's real throttling or 5xx answer, or a
TCP reset. ``imagefleet local up --faults SPEC`` starts one in front of moto's server, so every
imagefleet client, Packer and the local agents go through it. It is a separate process on purpose:
the clients are the product's own, unpatched. See docs/faults.md.

A ``reset`` closes the connection after the request was read and *before* it is forwarded, so
AWS (moto) never sees it: the retry is the first attempt that counts. ``reset-after`` forwards
first and then closes, which tests idempotency tokens (moto ignores some of them; see the docs).

``consistency=5s`` adds AWS's eventual consistency (``orchestrator.local.consistency``), counted
on the proxy's clock: the wall clock, or with ``clock=manual`` only what ``POST
/__faultproxy__/advance`` adds (``follow`` ties it to a test's ``VirtualClock``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from orchestrator.clock import Clock, VirtualClock
from orchestrator.errors import ToolError, UsageError
from orchestrator.local.consistency import Call, Consistency, call_of
from orchestrator.local.faults import (
    Decision,
    Fault,
    FaultPlan,
    Request,
    error_response,
    is_packer,
    parse_spec,
    region_of,
    render_error,
    service_of,
)

HOST = "127.0.0.1"
CONTROL_PREFIX = "/__faultproxy__/"
# the endpoint's control plane is never faulted (``/_imagefleet/``: the local SSM agent's replies)
EXEMPT_PREFIXES = (CONTROL_PREFIX, "/moto-api/", "/_imagefleet/")
MAX_BODY = 64 * 1024 * 1024
MAX_IN_FLIGHT = 64
UPSTREAM_TIMEOUT_S = 120.0
IDLE_TIMEOUT_S = 300.0
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)


def check_upstream(url: str) -> tuple[str, int]:
    """The upstream must be a plain-HTTP loopback endpoint: this proxy is for the local endpoint
    only."""
    parts = urlsplit(url)
    if (
        parts.scheme != "http"
        or parts.hostname not in ("127.0.0.1", "localhost", "::1")
        or not parts.port
    ):
        raise UsageError(
            f"--upstream must be http://127.0.0.1:PORT (the local endpoint), got {url!r}"
        )
    return parts.hostname, parts.port


class FaultProxyServer(ThreadingHTTPServer):
    """A threaded loopback server that forwards to ``upstream`` under a ``FaultPlan``."""

    daemon_threads = True

    def __init__(
        self,
        upstream: str,
        plan: FaultPlan,
        port: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.upstream = check_upstream(upstream)
        self.plan = plan
        self.sleep = sleep
        self.in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        wall = Clock.from_env()
        self._read_clock: Callable[[], float] = (
            (lambda: 0.0) if plan.spec.clock == "manual" else wall.monotonic
        )
        self._advanced = 0.0
        self.consistency = (
            Consistency(plan.spec.consistency_s, self.now) if plan.spec.consistency_s else None
        )
        super().__init__((HOST, port), _Handler)

    def now(self) -> float:
        """Seconds on the proxy's clock: the consistency window is counted on it."""
        return self._read_clock() + self._advanced

    def advance(self, seconds: float) -> None:
        self._advanced += max(0.0, seconds)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def stats(self) -> dict[str, Any]:
        out = {
            "faults": str(self.plan.spec),
            "seed": self.plan.seed,
            "decisions": self.plan.snapshot(),
            "clock": round(self.now(), 3),
        }
        if self.consistency is not None:
            out["consistency"] = self.consistency.snapshot()
        return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    server: FaultProxyServer
    timeout = IDLE_TIMEOUT_S

    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    def _handle(self) -> None:
        body = self._read_body()
        if body is None:
            return
        if self.path.startswith(CONTROL_PREFIX):
            if self.path == f"{CONTROL_PREFIX}advance" and self.command == "POST":
                self.server.advance(float(json.loads(body or b"{}").get("seconds", 0)))
            self._send(
                200, {"Content-Type": "application/json"}, json.dumps(self.server.stats()).encode()
            )
            return
        if self.path.startswith(EXEMPT_PREFIXES):
            self._forward(body)
            return
        spec = self.server.plan.spec
        req = Request(
            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
        )
        call = self._call(req)
        # Packer's calls pass untouched unless packer=on; what they create is still recorded, so
        # imagefleet's own reads of a fresh AMI meet the consistency window.
        if not spec.packer and is_packer(self.headers.get("User-Agent", "")):
            self._forward(body, call, reads=False)
            return
        decision = self.server.plan.decide()
        if spec.latency_s:
            self.server.sleep(spec.latency_s)
        self._act(decision, req, call)

    def _call(self, req: Request) -> Call | None:
        if self.server.consistency is None:
            return None
        return call_of(
            service_of(req), region_of(req), req.headers.get("x-amz-target", ""), req.body
        )

    def _act(self, decision: Decision, req: Request, call: Call | None) -> None:
        if decision.fault in (Fault.THROTTLE, Fault.ERROR_5XX):
            resp = error_response(req, decision)
            self._send(resp.status, resp.headers, resp.body)
        elif decision.fault is Fault.RESET:
            self._reset()
        elif decision.fault is Fault.RESET_AFTER:
            self._exchange(req.body, call, reads=True)
            self._reset()
        else:
            self._forward(req.body, call)

    def _read_body(self) -> bytes | None:
        """The request body (Content-Length or chunked), or None after answering 413."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(chunks)
                if len(chunks) + size > MAX_BODY:
                    break
                chunks += self.rfile.read(size)
                self.rfile.readline()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length <= MAX_BODY:
                return self.rfile.read(length)
        self.close_connection = True
        self._send(
            413, {"Content-Type": "text/plain"}, b"request body too large for the fault proxy\n"
        )
        return None

    def _fetch(
        self, body: bytes, target: str | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send ``body`` upstream with this request's headers (``target``: a prior read's own
        X-Amz-Target; its signature is not checked by the local endpoint)."""
        host, port = self.server.upstream
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if target is not None:
            headers = {
                k: v for k, v in headers.items() if k.lower() not in ("x-amz-target", "content-md5")
            }
            if target:
                headers["X-Amz-Target"] = target
        headers["Host"] = f"{host}:{port}"
        headers["Content-Length"] = str(len(body))
        with self.server.in_flight:
            conn = http.client.HTTPConnection(host, port, timeout=UPSTREAM_TIMEOUT_S)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, resp.getheaders(), data
            except OSError as exc:
                msg = f"fault proxy: upstream {host}:{port} unreachable: {exc}\n".encode()
                return 502, [("Content-Type", "text/plain")], msg
            finally:
                conn.close()

    def _exchange(
        self, body: bytes, call: Call | None, *, reads: bool
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Forward, under the consistency model when there is one: it may answer in AWS's stead
        (a NotFound, an old value), and it learns what the request created or changed."""
        model = self.server.consistency
        if model is None or call is None:
            return self._fetch(body)
        if reads and (refusal := model.refuse(call)) is not None:
            if refusal.code:
                protocol = "ec2" if call.service == "ec2" else "json"
                resp = render_error(protocol, refusal.status, refusal.code, refusal.message)
                return resp.status, list(resp.headers.items()), resp.body
            kind = (
                "text/xml;charset=UTF-8" if call.service == "ec2" else "application/x-amz-json-1.1"
            )
            return refusal.status, [("Content-Type", kind)], refusal.body
        prior = model.prior(call)
        before = None
        if prior is not None:
            status, _, data = self._fetch(prior.body, target=prior.target)
            before = (status, data)
        status, headers, data = self._fetch(body)
        if 200 <= status < 300:
            model.record(call, data, before)
            if reads:
                data = model.rewrite(call, data)
        return status, headers, data

    def _forward(self, body: bytes, call: Call | None = None, *, reads: bool = True) -> None:
        status, headers, data = self._exchange(body, call, reads=reads)
        keep = {k: v for k, v in headers if k.lower() not in HOP_BY_HOP | {"server", "date"}}
        if self.command == "HEAD":
            length = next((v for k, v in headers if k.lower() == "content-length"), "0")
            self._send(status, keep, b"", length=length)
        else:
            self._send(status, keep, data)

    def _send(
        self, status: int, headers: dict[str, str], body: bytes, length: str | None = None
    ) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", length if length is not None else str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _reset(self) -> None:
        """Drop the connection with a TCP RST and no answer, as a failing load balancer does."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()


# --- the process
# ------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the proxy until SIGTERM/SIGINT; prints ``listening URL`` once it accepts connections."""
    parser = _Parser(
        prog="python -m orchestrator.local.faultproxy", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--upstream", required=True, help="the local endpoint, http://127.0.0.1:PORT"
    )
    parser.add_argument(
        "--faults", required=True, help="e.g. throttle=0.1,5xx=0.05,reset=0.02,latency=200ms"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the fault decisions (default 0)"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)"
    )
    args = parser.parse_args(argv)
    try:
        server = FaultProxyServer(
            args.upstream, FaultPlan(parse_spec(args.faults), args.seed), port=args.port
        )
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {HOST}:{args.port}: {exc}", file=sys.stderr)
        return 3

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening {server.url} faults={server.plan.spec} seed={args.seed}", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


def stats(url: str, timeout: float = 2.0) -> dict[str, Any]:
    """What a running proxy has decided so far (``decisions`` counts per fault, ``consistency``
    counts of stale answers)."""
    with urllib.request.urlopen(f"{url}{CONTROL_PREFIX}stats", timeout=timeout) as resp:
        return dict(json.loads(resp.read()))


def advance(url: str, seconds: float, timeout: float = 5.0) -> dict[str, Any]:
    """Move a running proxy's clock ``seconds`` on (the consistency window counts on it)."""
    req = urllib.request.Request(
        f"{url}{CONTROL_PREFIX}advance",
        data=json.dumps({"seconds": seconds}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return dict(json.loads(resp.read()))


def follow(url: str, clock: VirtualClock) -> Callable[[], None]:
    """Keep a ``clock=manual`` proxy's clock with ``clock``: every sleep of it moves the proxy as
    far, so a command waiting on virtual time sees the window pass. Returns a cancel."""
    last = [clock.monotonic()]

    def push() -> None:
        step = clock.monotonic() - last[0]
        if step > 0:
            advance(url, step)
            last[0] += step

    return clock.every(86_400.0, push, now=False, around_sleeps=True)


def start(
    upstream: str, faults: str, seed: int, port: int, log: Path, timeout: float = 30.0
) -> subprocess.Popen[bytes]:
    """Start the proxy as a detached process on ``port`` and wait until it answers."""
    check_upstream(upstream)
    parse_spec(faults)  # bad input fails here, before any process exists
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator.local.faultproxy",
                "--upstream",
                upstream,
                "--faults",
                faults,
                "--seed",
                str(seed),
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://{HOST}:{port}"

    def answering() -> bool:
        try:
            stats(url, timeout=0.5)
            return True
        except (OSError, urllib.error.URLError, ValueError):
            pass
        if proc.poll() is not None:
            raise ToolError(
                f"the fault proxy exited at start (code {proc.returncode}): "
                f"{log.read_text(errors='replace')[-400:].strip()}"
            )
        return False

    if not Clock().poll_until(answering, bool, timeout=timeout, every=0.1)[1]:
        proc.kill()
        raise ToolError(f"the fault proxy did not answer on {url} within {timeout:.0f}s")
    return proc


if __name__ == "__main__":
    raise SystemExit(main())
