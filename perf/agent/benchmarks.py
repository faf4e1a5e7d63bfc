"""The on-instance benchmarks, output parsers, and the labelled fault-injection hook.

Each benchmark is a small function ``(duration) -> list[dict]`` returning sample-like dicts
(``metric``, ``value``, ``unit``, ``higher_is_better``, ``benchmark``, ``metadata``); the agent
stamps instance, AMI, arm and timestamp on them. Parsers for fio and sysbench output are pure and
tested against sample output files in ``tests/perf/data/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SampleDict = dict[str, Any]
MB = 1_000_000
_BUFFER_SEED = 20240229


def make_sample(
    metric: str, value: float, unit: str, higher_is_better: bool, benchmark: str, **metadata: object
) -> SampleDict:
    return {
        "metric": metric,
        "value": float(value),
        "unit": unit,
        "higher_is_better": higher_is_better,
        "benchmark": benchmark,
        "metadata": metadata,
    }


def fixed_buffer(size: int = 1 << 20) -> bytes:
    """A deterministic buffer, half pseudo-random bytes and half repetitive text, so zlib has
    real work to do and every instance compresses exactly the same input."""
    rnd = random.Random(_BUFFER_SEED).randbytes(size // 2)
    text = (b"imagefleet base image benchmark line 0123456789\n" * (size // 96 + 1))[
        : size - len(rnd)
    ]
    return rnd + text


def _timed_loop(fn: Callable[[], int], duration: float) -> tuple[int, float, int]:
    """Call ``fn`` (returns bytes processed) until ``duration`` passed; at least once."""
    total = loops = 0
    start = time.perf_counter()
    while True:
        total += fn()
        loops += 1
        elapsed = time.perf_counter() - start
        if elapsed >= duration:
            return total, elapsed, loops


# --- built-in benchmarks --------------------------------------------------------------------------
def cpu_zlib(duration: float = 0.2) -> list[SampleDict]:
    buf = fixed_buffer(256 << 10)
    nbytes, secs, loops = _timed_loop(lambda: len(buf) if zlib.compress(buf, 6) else 0, duration)
    return [
        make_sample(
            "cpu_zlib_throughput",
            nbytes / secs / MB,
            "MB/s",
            True,
            "cpu",
            level=6,
            buffer_bytes=len(buf),
            loops=loops,
        )
    ]


def cpu_sha256(duration: float = 0.2) -> list[SampleDict]:
    buf = fixed_buffer(1 << 20)
    nbytes, secs, loops = _timed_loop(
        lambda: len(buf) if hashlib.sha256(buf).digest() else 0, duration
    )
    return [
        make_sample(
            "cpu_sha256_throughput",
            nbytes / secs / MB,
            "MB/s",
            True,
            "cpu",
            buffer_bytes=len(buf),
            loops=loops,
        )
    ]


def memory_copy(duration: float = 0.2, size_mb: int = 64) -> list[SampleDict]:
    src = np.ones(size_mb * MB // 8, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the pages in first; the first touch is 10x slower than a copy

    def once() -> int:
        np.copyto(dst, src)
        return 2 * src.nbytes  # a copy reads and writes every byte

    nbytes, secs, loops = _timed_loop(once, duration)
    return [
        make_sample(
            "memory_copy_bandwidth",
            nbytes / secs / 1e9,
            "GB/s",
            True,
            "memory",
            array_mb=size_mb,
            loops=loops,
            counts="read+write",
        )
    ]


def disk_fsync(
    duration: float = 0.2, block: int = 4096, directory: str | None = None
) -> list[SampleDict]:
    """Median latency of write(4 KiB) + fsync in a temp file: what a journaling service feels."""
    data = fixed_buffer(block)
    lat: list[float] = []
    with tempfile.TemporaryDirectory(prefix="imagefleet-bench-", dir=directory) as d:
        fd = os.open(os.path.join(d, "fsync.dat"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            deadline = time.perf_counter() + duration
            while not lat or time.perf_counter() < deadline:
                t0 = time.perf_counter()
                os.write(fd, data)
                os.fsync(fd)
                lat.append(time.perf_counter() - t0)
        finally:
            os.close(fd)
    return [
        make_sample(
            "disk_fsync_latency",
            float(np.median(lat)) * 1e3,
            "ms",
            False,
            "disk",
            block_bytes=block,
            writes=len(lat),
            p99_ms=float(np.percentile(lat, 99)) * 1e3,
        )
    ]


def net_loopback(duration: float = 0.2, chunk: int = 256 << 10) -> list[SampleDict]:
    """TCP throughput over 127.0.0.1 between two sockets of this process: kernel network stack
    and memory, no NIC. A reader thread drains what the writer sends."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = [0]

    def drain() -> None:
        conn, _ = server.accept()
        with conn:
            while True:
                data = conn.recv(1 << 20)
                if not data:
                    return
                received[0] += len(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    payload = fixed_buffer(chunk)
    try:
        with socket.create_connection(("127.0.0.1", port)) as client:
            start = time.perf_counter()
            while time.perf_counter() - start < duration:
                client.sendall(payload)
        reader.join(timeout=10)
        secs = time.perf_counter() - start
    finally:
        server.close()
    return [
        make_sample(
            "net_loopback_throughput",
            received[0] / secs / MB,
            "MB/s",
            True,
            "network",
            chunk_bytes=chunk,
            bytes=received[0],
        )
    ]


def boot_to_ready(
    duration: float = 0.0, env: Mapping[str, str] | None = None, uptime_path: str = "/proc/uptime"
) -> list[SampleDict]:
    """Seconds from boot to the agent being ready: ``IMAGEFLEET_BOOT_SECONDS`` when the launcher
    measured it (e.g. from instance metadata), else the kernel's uptime when the agent starts."""
    env = os.environ if env is None else env
    given = env.get("IMAGEFLEET_BOOT_SECONDS")
    if given:
        return [make_sample("boot_to_ready", float(given), "s", False, "boot", source="env")]
    with open(uptime_path, encoding="ascii") as fh:
        uptime = float(fh.read().split()[0])
    return [make_sample("boot_to_ready", uptime, "s", False, "boot", source=uptime_path)]


# --- external tools (optional) --------------------------------------------------------------------
class Skipped(Exception):
    """A benchmark that cannot run here; the message is the recorded reason."""


def _run_tool(argv: list[str], timeout: float) -> str:
    if shutil.which(argv[0]) is None:
        raise Skipped(f"{argv[0]} is not installed")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise Skipped(f"{argv[0]} exited {proc.returncode}: {proc.stderr.strip()[:200]}")
    return proc.stdout


def fio(duration: float = 1.0) -> list[SampleDict]:
    with tempfile.TemporaryDirectory(prefix="imagefleet-fio-") as d:
        out = _run_tool(
            [
                "fio",
                "--name=randread",
                f"--directory={d}",
                "--rw=randread",
                "--bs=4k",
                "--size=32m",
                "--ioengine=psync",
                "--direct=0",
                "--time_based",
                f"--runtime={max(1, round(duration))}",
                "--output-format=json",
            ],
            timeout=60 + duration,
        )
    return parse_fio_json(out)


def sysbench_cpu(duration: float = 1.0) -> list[SampleDict]:
    out = _run_tool(
        ["sysbench", "cpu", f"--time={max(1, round(duration))}", "--threads=1", "run"],
        timeout=60 + duration,
    )
    return parse_sysbench_cpu(out)


def stress_ng_cpu(duration: float = 1.0) -> list[SampleDict]:
    out = _run_tool(
        [
            "stress-ng",
            "--cpu",
            "1",
            "--cpu-method",
            "matrixprod",
            "--metrics-brief",
            "--timeout",
            f"{max(1, round(duration))}s",
        ],
        timeout=60 + duration,
    )
    return parse_stress_ng(out)


# --- parsers (pure) -------------------------------------------------------------------------------
def parse_fio_json(text: str) -> list[SampleDict]:
    """fio ``--output-format=json``: per job and direction, bandwidth (KiB/s → MB/s), IOPS and
    mean / p99 completion latency (ns → ms). Directions with no I/O are left out."""
    try:
        doc = json.loads(text[text.index("{") :])  # fio may print notes before the JSON
    except ValueError as exc:
        raise ValueError(f"fio output is not JSON: {exc}") from None
    out: list[SampleDict] = []
    for job in doc.get("jobs", []):
        name = job.get("jobname", "job")
        for rw in ("read", "write"):
            d = job.get(rw) or {}
            if not d.get("io_bytes"):
                continue
            meta = {"job": name, "direction": rw, "fio_version": doc.get("fio version", "")}
            out.append(
                make_sample(
                    f"fio_{name}_{rw}_bandwidth", d["bw"] * 1024 / MB, "MB/s", True, "fio", **meta
                )
            )
            out.append(make_sample(f"fio_{name}_{rw}_iops", d["iops"], "IOPS", True, "fio", **meta))
            clat = d.get("clat_ns") or {}
            if "mean" in clat:
                out.append(
                    make_sample(
                        f"fio_{name}_{rw}_latency_mean",
                        clat["mean"] / 1e6,
                        "ms",
                        False,
                        "fio",
                        **meta,
                    )
                )
            p99 = (clat.get("percentile") or {}).get("99.000000")
            if p99 is not None:
                out.append(
                    make_sample(
                        f"fio_{name}_{rw}_latency_p99", p99 / 1e6, "ms", False, "fio", **meta
                    )
                )
    if not out:
        raise ValueError("fio output has no job with I/O")
    return out


_SYSBENCH_EPS = re.compile(r"events per second:\s*([\d.]+)")
_SYSBENCH_LAT = re.compile(r"^\s*(avg|95th percentile):\s*([\d.]+)", re.MULTILINE)
_SYSBENCH_VER = re.compile(r"sysbench\s+([\d.]+)")


def parse_sysbench_cpu(text: str) -> list[SampleDict]:
    """``sysbench cpu run`` text: events per second, average and p95 latency (ms)."""
    eps = _SYSBENCH_EPS.search(text)
    if not eps:
        raise ValueError("sysbench output has no 'events per second' line")
    ver = _SYSBENCH_VER.search(text)
    meta = {"sysbench_version": ver.group(1) if ver else ""}
    out = [
        make_sample(
            "sysbench_cpu_events_per_second",
            float(eps.group(1)),
            "events/s",
            True,
            "sysbench",
            **meta,
        )
    ]
    lat = dict(_SYSBENCH_LAT.findall(text))
    if "avg" in lat:
        out.append(
            make_sample(
                "sysbench_cpu_latency_avg", float(lat["avg"]), "ms", False, "sysbench", **meta
            )
        )
    if "95th percentile" in lat:
        out.append(
            make_sample(
                "sysbench_cpu_latency_p95",
                float(lat["95th percentile"]),
                "ms",
                False,
                "sysbench",
                **meta,
            )
        )
    return out


_STRESS_ROW = re.compile(
    r"stress-ng: (?:info|metrc):\s+\[\d+\]\s+(\w+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)"
    r"\s+([\d.]+)\s+([\d.]+)"
)


def parse_stress_ng(text: str) -> list[SampleDict]:
    """``stress-ng --metrics-brief``: bogo ops/s (real time) per stressor."""
    out = [
        make_sample(
            f"stress_ng_{m.group(1)}_bogo_ops_per_second",
            float(m.group(6)),
            "bogo ops/s",
            True,
            "stress-ng",
            stressor=m.group(1),
        )
        for m in _STRESS_ROW.finditer(text)
    ]
    if not out:
        raise ValueError("stress-ng output has no metrics rows")
    return out


# --- registry and the fault-injection hook --------------------------------------------------------
BUILTIN: dict[str, Callable[..., list[SampleDict]]] = {
    "cpu_zlib": cpu_zlib,
    "cpu_sha256": cpu_sha256,
    "memory_copy": memory_copy,
    "disk_fsync": disk_fsync,
    "net_loopback": net_loopback,
}
EXTERNAL: dict[str, Callable[..., list[SampleDict]]] = {
    "fio": fio,
    "sysbench": sysbench_cpu,
    "stress-ng": stress_ng_cpu,
}


@dataclass
class BenchRun:
    samples: list[SampleDict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def run_benchmarks(
    *,
    repetitions: int = 3,
    duration: float = 0.15,
    names: list[str] | None = None,
    external: bool = True,
    env: Mapping[str, str] | None = None,
) -> BenchRun:
    """Run each benchmark ``repetitions`` times (boot time once). Each sample's metadata gets
    its ``repetition``. External tools run once each when installed, else are skipped with a
    reason."""
    chosen = names or list(BUILTIN)
    unknown = [n for n in chosen if n not in BUILTIN and n not in EXTERNAL]
    if unknown:
        raise ValueError(f"unknown benchmark(s): {', '.join(unknown)}")
    run = BenchRun()
    for rep in range(repetitions):
        for name in chosen:
            if name in BUILTIN:
                for s in BUILTIN[name](duration):
                    s["metadata"]["repetition"] = rep
                    run.samples.append(s)
    run.samples.extend(boot_to_ready(env=env))
    if external:
        for name, fn in EXTERNAL.items():
            if names and name not in names:
                continue
            try:
                run.samples.extend(fn(max(1.0, duration)))
            except Skipped as exc:
                run.skipped[name] = str(exc)
            except (subprocess.TimeoutExpired, ValueError) as exc:
                run.skipped[name] = f"{name} failed: {exc}"
    return run


def apply_slowdown(samples: list[SampleDict], factor: float) -> list[SampleDict]:
    """Fault injection for demos and tests (the local agent runner's ``--slowdown``): time-like
    values are multiplied and throughput-like values divided by ``factor``; every touched sample
    is labelled ``metadata.fault_injected = factor``. Never used on the product path."""
    if not factor > 0:
        raise ValueError(f"slowdown factor must be positive, not {factor}")
    out = []
    for s in samples:
        value = s["value"] / factor if s["higher_is_better"] else s["value"] * factor
        out.append(
            s
            | {
                "value": value,
                "metadata": dict(s.get("metadata") or {}) | {"fault_injected": factor},
            }
        )
    return out
