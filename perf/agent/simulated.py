"""Simulated instances for the local endpoint: benchmark results drawn from a seeded model.

On the embedded endpoint a "benchmark instance" is a process on the operator's (or CI's) machine,
and timing that machine measures how busy it is, not the base image. So the local agent runner
asks the agent for ``--simulate KEY`` results instead: each benchmark's metrics come from a
nominal value for the instance type, times a per-machine factor and a per-repetition factor,
both log-normal (mean 1). The runner derives ``KEY`` from the run, the instance type, zone and
pair position, not from the arm or the AMI, so the two instances of a (baseline, candidate) pair
are the same simulated machine (``INSTANCE_CV``). Each repetition's noise is drawn for its own
arm (seeded by ``KEY``, arm, benchmark and repetition), with the benchmark's own spread
(``NOMINAL``'s coefficient of variation): an A/A run compares two samples of one distribution —
medians a little apart, p-values spread over (0, 1), the same results when a run is repeated with
the same key — and an injected slowdown (``--slowdown``) is the only systematic difference between
the arms. Every sample is labelled ``metadata.simulated``; nothing on a real instance takes this
path.
"""

from __future__ import annotations

import hashlib
import math
import random

from perf.agent.benchmarks import BUILTIN, SampleDict, make_sample

# benchmark -> (metric, nominal value on a 2-vCPU instance, unit, higher is better, kind,
#               run-to-run coefficient of variation on one instance)
NOMINAL: dict[str, tuple[str, float, str, bool, str, float]] = {
    "cpu_zlib": ("cpu_zlib_throughput", 48.0, "MB/s", True, "cpu", 0.01),
    "cpu_sha256": ("cpu_sha256_throughput", 420.0, "MB/s", True, "cpu", 0.008),
    "memory_copy": ("memory_copy_bandwidth", 9.5, "GB/s", True, "memory", 0.012),
    "disk_fsync": ("disk_fsync_latency", 1.8, "ms", False, "disk", 0.015),
    "net_loopback": ("net_loopback_throughput", 2400.0, "MB/s", True, "network", 0.012),
}
BOOT_SECONDS = 21.0
BOOT_CV = 0.01  # boot to ready: what one boot adds to the machine's own spread
INSTANCE_CV = 0.01  # machine-to-machine spread of one type (same zone, same generation)


def _rng(key: str, *parts: object) -> random.Random:
    seed = hashlib.sha256("|".join([key, *map(str, parts)]).encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


def _lognormal(rng: random.Random, cv: float) -> float:
    sigma = math.sqrt(math.log1p(cv * cv))
    return math.exp(rng.gauss(-sigma * sigma / 2, sigma))  # mean 1


def type_factor(instance_type: str) -> float:
    """Bigger sizes are a little faster per thread (turbo headroom), deterministically."""
    size = instance_type.rpartition(".")[2]
    steps = {"nano": 0, "micro": 0, "small": 1, "medium": 1, "large": 2, "xlarge": 3}
    return 1.0 + 0.03 * steps.get(size, 4)


def simulate(
    key: str,
    instance_type: str,
    *,
    repetitions: int,
    names: list[str] | None = None,
    arm: str = "",
) -> list[SampleDict]:
    """The samples the ``arm`` instance on simulated machine ``key`` of ``instance_type`` would
    report: the machine is the pair's, the repetitions' noise is the arm's own."""
    chosen = names or list(BUILTIN)
    unknown = [n for n in chosen if n not in BUILTIN]
    if unknown:
        raise ValueError(f"no simulation for benchmark(s): {', '.join(unknown)}")
    speed = type_factor(instance_type)
    samples: list[SampleDict] = []
    for name in chosen:
        metric, nominal, unit, higher, kind, cv = NOMINAL[name]
        machine = _lognormal(_rng(key, name, "instance"), INSTANCE_CV)
        for rep in range(repetitions):
            noise = machine * _lognormal(_rng(key, arm, name, rep), cv)
            value = nominal * speed * noise if higher else nominal / speed * noise
            s = make_sample(metric, value, unit, higher, kind, simulated=True)
            s["metadata"]["repetition"] = rep
            samples.append(s)
    machine = _lognormal(_rng(key, "boot", "instance"), INSTANCE_CV)
    boot = BOOT_SECONDS * machine * _lognormal(_rng(key, arm, "boot"), BOOT_CV)
    samples.append(
        make_sample("boot_to_ready", boot, "s", False, "boot", source="simulated", simulated=True)
    )
    return samples
