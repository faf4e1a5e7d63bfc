"""The ``[perf]`` table of imagefleet.toml: one typed schema, defaults in ``DEFAULTS`` only.

The core loads ``[perf]`` as free-form data (``settings.raw["perf"]``); this module validates it
into ``PerfSettings`` and names the key (``file:line: perf.key: expected ..., got ...``) on error.
Every key is documented in docs/perf.md ("Fleet").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.config import _Where, parse_duration
from orchestrator.errors import ConfigError
from perf.agent.benchmarks import BUILTIN, EXTERNAL

MIN_INSTANCES_PER_ARM = 9  # below this the Mann–Whitney test has too little power (docs/perf.md)
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_AZ = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_GLOB = re.compile(r"^[^\x00-\x1f]{1,256}$")

DEFAULTS: dict[str, Any] = {
    "instance_types": ["m5.large", "c5.large"],
    "instances_per_arm": 10,
    "benchmarks": sorted(BUILTIN),
    "repetitions": 3,
    "duration": 0.15,  # seconds per benchmark per repetition
    "external": False,  # fio / sysbench / stress-ng when the image has them
    "aggregate": "sample",  # or "instance": compare per-instance medians
    "correction": "holm",
    "agent_package": "imagefleet",  # what the user data pip-installs on each instance
    "instance_profile": None,  # IAM instance profile name (S3 PutObject on the results prefix)
    "results_prefix": "perf",  # s3://<aws.artifact_bucket>/<results_prefix>/<run id>/...
    "vcpu_limit": None,  # overrides the Service Quotas value (and stands in where it is missing)
    "thresholds": {"default": 2.0},  # percent of tolerated slowdown per metric
    "placement": {"region": None, "availability_zones": []},  # None/[]: first region, its AZs
    "timeouts": {"launch": "10m", "results": "30m", "poll": "2s"},
    "higher_is_better": [],  # metric globs where more is better (beat what is inferred)
    "lower_is_better": [],  # metric globs where less is better
    "instance_type_label": None,  # a samples column / PKB label holding the instance type
    "allow_inconclusive": False,  # the perf gate accepts inconclusive / insufficient data
}
_LABEL = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class PerfSettings:
    instance_types: tuple[str, ...]
    instances_per_arm: int
    benchmarks: tuple[str, ...]
    repetitions: int
    duration: float
    external: bool
    aggregate: str
    correction: str
    agent_package: str
    instance_profile: str | None
    results_prefix: str
    vcpu_limit: int | None
    default_threshold: float  # fraction (0.02 = 2 %)
    thresholds: dict[str, float]  # metric -> fraction
    region: str | None
    availability_zones: tuple[str, ...]
    launch_timeout: int  # seconds until every instance must be running
    results_timeout: int  # seconds until every instance must have written its samples
    poll_interval: int
    higher_is_better: tuple[str, ...] = ()
    lower_is_better: tuple[str, ...] = ()
    instance_type_label: str | None = None
    allow_inconclusive: bool = False

    def passes(self, verdict: str) -> bool:
        """Whether a comparison with this overall verdict meets the perf gate."""
        if verdict in ("no_change", "improvement"):
            return True
        return self.allow_inconclusive and verdict in ("inconclusive", "insufficient_data")


def load_if_configured(ctx: Any) -> PerfSettings:
    """``[perf]`` of the config when there is one (``--config``, $IMAGEFLEET_CONFIG,
    ./imagefleet.toml), else the defaults: commands like ``perf compare`` need no config."""
    from orchestrator.config import find_config

    explicit = getattr(ctx, "config_path", None)
    try:
        find_config(explicit)
    except ConfigError:
        if explicit:
            raise
        return parse({})
    return load(ctx.settings)


def load(settings: Any) -> PerfSettings:
    """Validate ``settings.raw["perf"]`` (absent: every default)."""
    path: Path | None = getattr(settings, "path", None)
    text = ""
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError:
            text = ""
    return parse(dict(getattr(settings, "raw", {}) or {}).get("perf") or {}, path=path, text=text)


def parse(data: dict[str, Any], *, path: Path | None = None, text: str = "") -> PerfSettings:
    w = _Where(path, text)

    def known(obj: dict[str, Any], dotted: str, keys: set[str]) -> None:
        for k in obj:
            if k not in keys:
                raise w.error(f"{dotted}.{k}", f"one of the keys {', '.join(sorted(keys))}", k,
                              show_got=False)

    def sub(key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise w.error(f"perf.{key}", "a table", value)
        return value

    if not isinstance(data, dict):
        raise ConfigError("perf: expected a table")
    known(data, "perf", set(DEFAULTS))

    def strings(obj: dict[str, Any], key: str, dotted: str, default: list[str],
                pattern: re.Pattern[str] | None, what: str, choices: set[str] | None = None
                ) -> tuple[str, ...]:
        v = obj.get(key, default)
        if (not isinstance(v, list) or not all(isinstance(s, str) for s in v)
                or (pattern and not all(pattern.match(s) for s in v))
                or (choices and not all(s in choices for s in v))):
            raise w.error(dotted, what, v)
        if len(set(v)) != len(v):
            raise w.error(dotted, f"{what} without duplicates", v)
        return tuple(v)

    def integer(key: str, minimum: int) -> int:
        v = data.get(key, DEFAULTS[key])
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise w.error(f"perf.{key}", f"an integer >= {minimum}", v)
        return v

    def one_of(key: str, choices: tuple[str, ...]) -> str:
        v = data.get(key, DEFAULTS[key])
        if v not in choices:
            raise w.error(f"perf.{key}", f"one of {', '.join(choices)}", v)
        return str(v)

    types = strings(data, "instance_types", "perf.instance_types", DEFAULTS["instance_types"],
                    _INSTANCE_TYPE, "a non-empty list of instance types like 'm5.large'")
    if not types:
        raise w.error("perf.instance_types", "a non-empty list of instance types", [])
    per_arm = integer("instances_per_arm", MIN_INSTANCES_PER_ARM)
    benchmarks = strings(data, "benchmarks", "perf.benchmarks", DEFAULTS["benchmarks"], None,
                         f"a non-empty list of benchmarks from {', '.join(sorted([*BUILTIN, *EXTERNAL]))}",
                         choices={*BUILTIN, *EXTERNAL})
    if not benchmarks:
        raise w.error("perf.benchmarks", "a non-empty list of benchmarks", [])
    repetitions = integer("repetitions", 1)
    duration = data.get("duration", DEFAULTS["duration"])
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not 0.01 <= duration <= 600:
        raise w.error("perf.duration", "seconds per benchmark between 0.01 and 600", duration)
    external = data.get("external", DEFAULTS["external"])
    if not isinstance(external, bool):
        raise w.error("perf.external", "true or false", external)
    package = data.get("agent_package", DEFAULTS["agent_package"])
    if not isinstance(package, str) or not package.strip() or "'" in package:
        raise w.error("perf.agent_package", "a pip requirement (no single quotes)", package)
    profile = data.get("instance_profile", DEFAULTS["instance_profile"])
    if profile is not None and (not isinstance(profile, str) or not profile):
        raise w.error("perf.instance_profile", "an IAM instance profile name", profile)
    prefix = data.get("results_prefix", DEFAULTS["results_prefix"])
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9!_.*'()/-]+", prefix.strip("/") or "?"):
        raise w.error("perf.results_prefix", "an S3 key prefix like 'perf'", prefix)
    vcpu_limit = data.get("vcpu_limit", DEFAULTS["vcpu_limit"])
    if vcpu_limit is not None and (isinstance(vcpu_limit, bool) or not isinstance(vcpu_limit, int)
                                   or vcpu_limit < 1):
        raise w.error("perf.vcpu_limit", "a positive number of vCPUs", vcpu_limit)

    th = sub("thresholds")
    thresholds: dict[str, float] = {}
    default_pct = DEFAULTS["thresholds"]["default"]
    for metric, pct in th.items():
        if isinstance(pct, bool) or not isinstance(pct, int | float) or not (0 <= pct < 100) or not math.isfinite(pct):
            raise w.error(f"perf.thresholds.{metric}", "a percentage 0 <= PCT < 100", pct)
        if metric == "default":
            default_pct = float(pct)
        else:
            thresholds[metric] = float(pct) / 100.0

    pl = sub("placement")
    known(pl, "perf.placement", set(DEFAULTS["placement"]))
    region = pl.get("region", DEFAULTS["placement"]["region"])
    if region is not None and (not isinstance(region, str) or not _REGION.match(region)):
        raise w.error("perf.placement.region", "a region like 'us-east-1'", region)
    azs = strings(pl, "availability_zones", "perf.placement.availability_zones",
                  DEFAULTS["placement"]["availability_zones"], _AZ,
                  "a list of availability zones like 'us-east-1a'")
    if region and any(not az.startswith(region) for az in azs):
        raise w.error("perf.placement.availability_zones", f"zones of {region}", list(azs))

    to = sub("timeouts")
    known(to, "perf.timeouts", set(DEFAULTS["timeouts"]))
    secs = {}
    for key, default in DEFAULTS["timeouts"].items():
        value = to.get(key, default)
        if not isinstance(value, str):
            raise w.error(f"perf.timeouts.{key}", "a duration like '30s' or '10m'", value)
        try:
            secs[key] = parse_duration(value, f"perf.timeouts.{key}")
        except ConfigError:
            raise w.error(f"perf.timeouts.{key}", "a duration like '30s' or '10m'", value) from None
        if secs[key] < 1:
            raise w.error(f"perf.timeouts.{key}", "at least 1s", value)

    globs = {key: strings(data, key, f"perf.{key}", DEFAULTS[key], _GLOB,
                          "a list of metric names or globs like 'sysbench*'")
             for key in ("higher_is_better", "lower_is_better")}
    both = sorted(set(globs["higher_is_better"]) & set(globs["lower_is_better"]))
    if both:
        raise w.error("perf.lower_is_better", "globs not also in perf.higher_is_better", both)
    label = data.get("instance_type_label", DEFAULTS["instance_type_label"])
    if label is not None and (not isinstance(label, str) or not _LABEL.match(label)):
        raise w.error("perf.instance_type_label", "a label name like 'machine_type'", label)
    allow = data.get("allow_inconclusive", DEFAULTS["allow_inconclusive"])
    if not isinstance(allow, bool):
        raise w.error("perf.allow_inconclusive", "true or false", allow)

    return PerfSettings(
        higher_is_better=globs["higher_is_better"],
        lower_is_better=globs["lower_is_better"],
        instance_type_label=label,
        allow_inconclusive=allow,
        instance_types=types,
        instances_per_arm=per_arm,
        benchmarks=benchmarks,
        repetitions=repetitions,
        duration=float(duration),
        external=external,
        aggregate=one_of("aggregate", ("sample", "instance")),
        correction=one_of("correction", ("holm", "bh")),
        agent_package=package.strip(),
        instance_profile=profile,
        results_prefix=prefix.strip("/"),
        vcpu_limit=vcpu_limit,
        default_threshold=default_pct / 100.0,
        thresholds=thresholds,
        region=region,
        availability_zones=azs,
        launch_timeout=secs["launch"],
        results_timeout=secs["results"],
        poll_interval=secs["poll"],
    )
