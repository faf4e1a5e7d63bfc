"""FAULT INJECTION (local endpoint only): an HTTP proxy that throttles, fails and drops AWS calls.

``python -m orchestrator.local.faultproxy --upstream http://127.0.0.1:PORT --faults throttle=0.1,5xx=0.05
--seed 7`` listens on 127.0.0.1 and forwards every request to the embedded endpoint, except the
ones its seeded ``FaultPlan`` picks: those get the service's real throttling or 5xx answer, or a
TCP reset. ``imagefleet local up --faults SPEC`` starts one in front of moto's server, so every
imagefleet client, Packer and the local agents go through it. It is a separate process on purpose:
the clients are the product's own, unpatched. See docs/faults.md.

A ``reset`` closes the connection after the request was read and *before* it is forwarded, so
AWS (moto) never sees it: the retry is the first attempt that counts. ``reset-after`` forwards
first and then closes, which tests idempotency tokens (moto ignores some of them; see the docs).
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

from orchestrator.clock import Clock
from orchestrator.errors import ToolError, UsageError
from orchestrator.local.faults import (
    Decision,
    Fault,
    FaultPlan,
    Request,
    error_response,
    is_packer,
    parse_spec,
)

HOST = "127.0.0.1"
CONTROL_PREFIX = "/__faultproxy__/"
EXEMPT_PREFIXES = (CONTROL_PREFIX, "/moto-api/")  # the endpoint's control plane is never faulted
MAX_BODY = 64 * 1024 * 1024
MAX_IN_FLIGHT = 64
UPSTREAM_TIMEOUT_S = 120.0
IDLE_TIMEOUT_S = 300.0
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "transfer-encoding", "upgrade", "content-length", "host"})


def check_upstream(url: str) -> tuple[str, int]:
    """The upstream must be a plain-HTTP loopback endpoint: this proxy is for the local endpoint only."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1") or not parts.port:
        raise UsageError(f"--upstream must be http://127.0.0.1:PORT (the local endpoint), got {url!r}")
    return parts.hostname, parts.port


class FaultProxyServer(ThreadingHTTPServer):
    """A threaded loopback server that forwards to ``upstream`` under a ``FaultPlan``."""

    daemon_threads = True

    def __init__(self, upstream: str, plan: FaultPlan, port: int = 0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.upstream = check_upstream(upstream)
        self.plan = plan
        self.sleep = sleep
        self.in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        super().__init__((HOST, port), _Handler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def stats(self) -> dict[str, Any]:
        return {"faults": str(self.plan.spec), "seed": self.plan.seed, "decisions": self.plan.snapshot()}


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
            self._send(200, {"Content-Type": "application/json"}, json.dumps(self.server.stats()).encode())
            return
        spec = self.server.plan.spec
        if self.path.startswith(EXEMPT_PREFIXES) or (not spec.packer and is_packer(self.headers.get("User-Agent", ""))):
            self._forward(body)
            return
        decision = self.server.plan.decide()
        if spec.latency_s:
            self.server.sleep(spec.latency_s)
        self._act(decision, body)

    def _act(self, decision: Decision, body: bytes) -> None:
        if decision.fault in (Fault.THROTTLE, Fault.ERROR_5XX):
            req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            resp = error_response(req, decision)
            self._send(resp.status, resp.headers, resp.body)
        elif decision.fault is Fault.RESET:
            self._reset()
        elif decision.fault is Fault.RESET_AFTER:
            self._fetch(body)
            self._reset()
        else:
            self._forward(body)

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
        self._send(413, {"Content-Type": "text/plain"}, b"request body too large for the fault proxy\n")
        return None

    def _fetch(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        host, port = self.server.upstream
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
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

    def _forward(self, body: bytes) -> None:
        status, headers, data = self._fetch(body)
        keep = {k: v for k, v in headers if k.lower() not in HOP_BY_HOP | {"server", "date"}}
        if self.command == "HEAD":
            length = next((v for k, v in headers if k.lower() == "content-length"), "0")
            self._send(status, keep, b"", length=length)
        else:
            self._send(status, keep, data)

    def _send(self, status: int, headers: dict[str, str], body: bytes, length: str | None = None) -> None:
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


# --- the process ------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the proxy until SIGTERM/SIGINT; prints ``listening URL`` once it accepts connections."""
    parser = _Parser(prog="python -m orchestrator.local.faultproxy", description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, help="the local endpoint, http://127.0.0.1:PORT")
    parser.add_argument("--faults", required=True, help="e.g. throttle=0.1,5xx=0.05,reset=0.02,latency=200ms")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault decisions (default 0)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    try:
        server = FaultProxyServer(args.upstream, FaultPlan(parse_spec(args.faults), args.seed), port=args.port)
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
    """What a running proxy has decided so far (``decisions`` counts per fault)."""
    with urllib.request.urlopen(f"{url}{CONTROL_PREFIX}stats", timeout=timeout) as resp:
        return dict(json.loads(resp.read()))


def start(upstream: str, faults: str, seed: int, port: int, log: Path, timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """Start the proxy as a detached process on ``port`` and wait until it answers."""
    check_upstream(upstream)
    parse_spec(faults)  # bad input fails here, before any process exists
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.local.faultproxy", "--upstream", upstream, "--faults", faults,
             "--seed", str(seed), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    url = f"http://{HOST}:{port}"

    def answering() -> bool:
        try:
            stats(url, timeout=0.5)
            return True
        except (OSError, urllib.error.URLError, ValueError):
            pass
        if proc.poll() is not None:
            raise ToolError(f"the fault proxy exited at start (code {proc.returncode}): "
                            f"{log.read_text(errors='replace')[-400:].strip()}")
        return False

    if not Clock().poll_until(answering, bool, timeout=timeout, every=0.1)[1]:
        proc.kill()
        raise ToolError(f"the fault proxy did not answer on {url} within {timeout:.0f}s")
    return proc


if __name__ == "__main__":
    raise SystemExit(main())
