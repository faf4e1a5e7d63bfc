"""The ``[perf]`` table of imagefleet.toml: one typed schema, defaults in ``SCHEMA`` only.

The core loads ``[perf]`` as free-form data (``settings.raw["perf"]``); this module validates it
through ``orchestrator.schema`` into ``PerfSettings`` and names the key (``file:line: perf.key:
expected ..., got ...``) on error. Every key is documented in docs/perf.md ("Fleet").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import schema as s
from orchestrator.errors import ConfigError, ImagefleetError
from orchestrator.inputs import read_bounded
from perf.agent.benchmarks import BUILTIN, EXTERNAL

if TYPE_CHECKING:
    from orchestrator.config import Settings
    from orchestrator.context import Context

MIN_INSTANCES_PER_ARM = 9  # below this the Mann–Whitney test has too little power (docs/perf.md)
_BENCHMARKS = tuple(sorted([*BUILTIN, *EXTERNAL]))
_GLOB = s.Pattern(r"[^\x00-\x1f]{1,256}", "a metric name or glob like 'sysbench*'")
_GLOBS = "a list of metric names or globs like 'sysbench*'"
AGENT_SOURCES = ("bucket", "pypi", "preinstalled")
DEFAULT_AGENT_PACKAGE = "imagefleet-agent"
_PERCENT = s.Num(lo=0, hi=100, hi_open=True, what="a percentage 0 <= PCT < 100")

SCHEMA = s.Table(
    fields={
        "instance_types": s.List(
            ("m5.large", "c5.large"),
            item=s.Str(pattern=s.INSTANCE_TYPE),
            min_items=1,
            unique=True,
            what="a non-empty list of instance types like 'm5.large'",
        ),
        "instances_per_arm": s.Num(10, lo=MIN_INSTANCES_PER_ARM, integer=True),
        "benchmarks": s.List(
            tuple(sorted(BUILTIN)),
            item=s.Choice(options=_BENCHMARKS),
            min_items=1,
            unique=True,
            what=f"a non-empty list of benchmarks from {', '.join(_BENCHMARKS)}",
        ),
        "repetitions": s.Num(3, lo=1, hi=10_000, integer=True),
        "duration": s.Num(0.15, lo=0.01, hi=600, what="seconds per benchmark between 0.01 and 600"),
        "external": s.Bool(False),  # fio / sysbench / stress-ng when the image has them
        "aggregate": s.Choice(
            "sample", options=("sample", "instance")
        ),  # instance: per-instance medians
        # bh: Benjamini–Hochberg (false discovery rate); holm: family-wise (perf/verdicts.py)
        "correction": s.Choice("bh", options=("holm", "bh")),
        # the cell test: auto picks Welch on logs where Mann–Whitney cannot reach significance
        "cell_test": s.Choice("auto", options=("auto", "mann-whitney", "welch-log")),
        # PKB benchmark glob -> metadata keys that tell its experiments apart (perf/identity.py);
        # an entry replaces the default of the same glob, [] turns it off
        "identity_keys": s.Map(
            {},
            key=s.Pattern(r"[^\x00-\x1f]{1,128}", "a benchmark name or glob like 'netperf*'"),
            value=s.List(
                (),
                item=s.Str(pattern=s.Pattern(r"[A-Za-z0-9_.:-]{1,128}", "a metadata key")),
                unique=True,
                what="a list of metadata keys like ['ip_type']",
            ),
        ),
        # where benchmark instances get the agent (docs/perf.md, "Installing the agent"):
        # bucket: its wheel and its dependencies' wheels from the artifact bucket, no index
        # pypi: its wheel from the bucket, its dependencies from the index the instance reaches
        # preinstalled: the image has imagefleet-agent on PATH; nothing is installed
        "agent_source": s.Choice("bucket", options=AGENT_SOURCES),
        # s3://<aws.artifact_bucket>/<agent_prefix>/wheels/<wheel file>
        "agent_prefix": s.Str(
            "agent",
            s.Pattern(
                r"/*[A-Za-z0-9!_.*'()-][A-Za-z0-9!_.*'()/-]{0,255}", "an S3 key prefix like 'agent'"
            ),
        ),
        # the instances' Python and platforms, for which `pip download` fetches dependency wheels
        "agent_python": s.Str("3.12", s.Pattern(r"3\.[0-9]{1,2}", "a Python version like '3.12'")),
        "agent_platforms": s.List(
            ("manylinux_2_28_x86_64",),
            item=s.Str(pattern=s.Pattern(r"[a-z0-9_]{1,64}", "a wheel platform tag")),
            min_items=1,
            unique=True,
            what="a non-empty list of wheel platform tags like 'manylinux_2_28_x86_64'",
        ),
        # agent_source = "pypi" only: a requirement other than the default is installed from the
        # index instead of the bucket's wheel (quoted in the user data, hence no single quotes)
        "agent_package": s.Str(
            DEFAULT_AGENT_PACKAGE,
            s.Pattern(
                r" *[^' \x00-\x1f\x7f][^'\x00-\x1f\x7f]{0,499}",
                "a pip requirement (no single quotes)",
            ),
        ),
        # IAM instance profile name (S3 PutObject on the results prefix)
        "instance_profile": s.Str(
            None, s.Pattern(r"[\w+=,.@-]{1,128}", "an IAM instance profile name")
        ),
        # s3://<aws.artifact_bucket>/<results_prefix>/<run id>/...
        "results_prefix": s.Str(
            "perf",
            s.Pattern(
                r"/*[A-Za-z0-9!_.*'()-][A-Za-z0-9!_.*'()/-]{0,255}", "an S3 key prefix like 'perf'"
            ),
        ),
        # overrides the Service Quotas value (and stands in where it is missing)
        "vcpu_limit": s.Num(
            None, lo=1, hi=10_000_000, integer=True, what="a positive number of vCPUs"
        ),
        "thresholds": s.Map(
            {"default": 2.0}, key=s.LABEL, value=_PERCENT
        ),  # % of tolerated slowdown per metric
        "placement": s.Table(
            fields={  # None/[]: the first region, its AZs
                "region": s.Str(None, s.REGION),
                "availability_zones": s.List(
                    (),
                    item=s.Str(pattern=s.AVAILABILITY_ZONE),
                    unique=True,
                    what="a list of availability zones like 'us-east-1a'",
                ),
            }
        ),
        "timeouts": s.Table(
            fields={
                "launch": s.Duration("10m", lo=1),
                "results": s.Duration("30m", lo=1),
                "poll": s.Duration("2s", lo=1),
            }
        ),
        # metric globs where more (or less) is better: they beat what the unit and name say
        "higher_is_better": s.List((), item=s.Str(pattern=_GLOB), unique=True, what=_GLOBS),
        "lower_is_better": s.List((), item=s.Str(pattern=_GLOB), unique=True, what=_GLOBS),
        # a samples column / PKB label holding the instance type
        "instance_type_label": s.Str(
            None, s.Pattern(r"[A-Za-z0-9_.:-]{1,128}", "a label name like 'machine_type'")
        ),
        "allow_inconclusive": s.Bool(
            False
        ),  # the perf gate accepts inconclusive / insufficient data
    }
)
DEFAULTS: dict[str, Any] = SCHEMA.defaults()


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
    agent_source: str = "bucket"
    agent_prefix: str = "agent"
    agent_python: str = "3.12"
    agent_platforms: tuple[str, ...] = ("manylinux_2_28_x86_64",)
    cell_test: str = "auto"
    identity_keys: dict[str, tuple[str, ...]] | None = None  # None: the defaults only

    def passes(self, verdict: str) -> bool:
        """Whether a comparison with this overall verdict meets the perf gate."""
        if verdict in ("no_change", "improvement"):
            return True
        return self.allow_inconclusive and verdict in ("inconclusive", "insufficient_data")


def load_if_configured(ctx: Context) -> PerfSettings:
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


def load(settings: Settings) -> PerfSettings:
    """Validate ``settings.raw["perf"]`` (absent: every default)."""
    path: Path | None = getattr(settings, "path", None)
    text = getattr(settings, "text", "")
    if path is not None and not text:
        try:  # for line numbers only; the config was read within its limit already
            text = read_bounded(path, "config", lines=False).decode("utf-8")
        except (ImagefleetError, UnicodeDecodeError):
            text = ""
    return parse(dict(getattr(settings, "raw", {}) or {}).get("perf") or {}, path=path, text=text)


def parse(data: dict[str, Any], *, path: Path | None = None, text: str = "") -> PerfSettings:
    w = s.Where(path, text)
    d = SCHEMA.read(data, "perf", w)
    thresholds = {**SCHEMA.defaults()["thresholds"], **d["thresholds"]}
    region, azs = d["placement"]["region"], d["placement"]["availability_zones"]
    if region and any(not az.startswith(region) for az in azs):
        raise w.error("perf.placement.availability_zones", f"zones of {region}", list(azs))
    both = sorted(set(d["higher_is_better"]) & set(d["lower_is_better"]))
    if both:
        raise w.error("perf.lower_is_better", "globs not also in perf.higher_is_better", both)
    if d["agent_prefix"].strip("/") == "":
        raise w.error("perf.agent_prefix", "an S3 key prefix like 'agent'", d["agent_prefix"])
    if d["results_prefix"].strip("/") == "":
        raise w.error("perf.results_prefix", "an S3 key prefix like 'perf'", d["results_prefix"])
    return PerfSettings(
        instance_types=d["instance_types"],
        instances_per_arm=d["instances_per_arm"],
        benchmarks=d["benchmarks"],
        repetitions=d["repetitions"],
        duration=float(d["duration"]),
        external=d["external"],
        aggregate=d["aggregate"],
        correction=d["correction"],
        agent_package=d["agent_package"].strip(),
        instance_profile=d["instance_profile"],
        results_prefix=d["results_prefix"].strip("/"),
        vcpu_limit=d["vcpu_limit"],
        default_threshold=float(thresholds.pop("default")) / 100.0,
        thresholds={metric: float(pct) / 100.0 for metric, pct in thresholds.items()},
        region=region,
        availability_zones=azs,
        launch_timeout=d["timeouts"]["launch"],
        results_timeout=d["timeouts"]["results"],
        poll_interval=d["timeouts"]["poll"],
        higher_is_better=tuple(d["higher_is_better"]),
        lower_is_better=tuple(d["lower_is_better"]),
        instance_type_label=d["instance_type_label"],
        allow_inconclusive=d["allow_inconclusive"],
        agent_source=d["agent_source"],
        agent_prefix=d["agent_prefix"].strip("/"),
        agent_python=d["agent_python"],
        agent_platforms=tuple(d["agent_platforms"]),
        cell_test=d["cell_test"],
        identity_keys={k: tuple(v) for k, v in d["identity_keys"].items()} or None,
    )
