"""Typed views of a rollout for readers outside the canary (the report, the retrospective, ``gc``,
the CLI): cohorts, waves and their verdicts by field, never by the stored keys. Each is made from
the controller's ``Rollout`` (``RolloutView.of``); ``canary.records`` loads the rollout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from canary.model import CohortState, GroupState, Rollout, Wave
from canary.places import touched, where
from canary.traffic import Traffic

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Interval:
    lower: float | None
    upper: float | None


@dataclass(frozen=True)
class SideSummary:
    """One side (control or experiment) of a metric: how many datapoints, their mean and median."""

    n: int | None
    mean: float | None
    median: float | None

    @classmethod
    def from_json(cls, doc: JsonDict | None) -> SideSummary:
        doc = doc or {}
        return cls(doc.get("n"), doc.get("mean"), doc.get("median"))


@dataclass(frozen=True)
class MetricVerdict:
    """One metric as the judge classified it (``canary.judge.classifier.MetricResult``, as
    stored)."""

    name: str
    classification: str
    critical: bool
    reason: str
    estimate: float | None
    ci: Interval
    effect_size: float | None
    effect_size_measure: str
    control: SideSummary
    experiment: SideSummary

    @classmethod
    def from_json(cls, m: JsonDict) -> MetricVerdict:
        return cls(
            name=m.get("name", ""),
            classification=m.get("classification", ""),
            critical=bool(m.get("critical", False)),
            reason=m.get("reason", ""),
            estimate=m.get("estimate"),
            ci=Interval(m.get("ci_lower"), m.get("ci_upper")),
            effect_size=m.get("effect_size"),
            effect_size_measure=m.get("effect_size_measure", ""),
            control=SideSummary.from_json(m.get("control")),
            experiment=SideSummary.from_json(m.get("experiment")),
        )

    @property
    def deciding(self) -> bool:
        """A metric that moved the score (neither a pass nor missing data)."""
        return self.classification not in ("Pass", "Nodata")


@dataclass(frozen=True)
class WaveVerdict:
    """A wave's verdict: the decision, its score, the metrics behind it, where its samples are."""

    decision: str
    score: float
    reasons: tuple[str, ...]
    metrics: tuple[MetricVerdict, ...]
    at: str
    queries: int | None = None
    samples_uri: str | None = None  # s3://<artifact bucket>/canary/... (None: inline, layout 1)

    @classmethod
    def from_json(cls, v: Any) -> WaveVerdict:
        judge = v.get("judge") or {}
        return cls(
            decision=v.get("decision", ""),
            score=float(v.get("score", 0.0)),
            reasons=tuple(judge.get("reasons") or ()),
            metrics=tuple(MetricVerdict.from_json(m) for m in judge.get("metrics") or ()),
            at=v.get("at", ""),
            queries=v.get("queries"),
            samples_uri=v.get("samples_uri"),
        )


@dataclass(frozen=True)
class WaveView:
    index: int
    target: int
    status: str
    verdict: WaveVerdict | None
    instance_types: tuple[str, ...]
    # Where each side took traffic (``targetgroup/<name>``, ``elb/<name>``): the canaries in their
    # groups' load balancers, the baselines in those they joined; empty when none.
    canary_traffic: tuple[str, ...] = ()
    baseline_traffic: tuple[str, ...] = ()
    # The interval its verdict judged (ISO instants on the controller's clock), once analysing.
    window_start: str | None = None
    window_end: str | None = None

    @classmethod
    def of(cls, wave: Wave, groups: Mapping[str, GroupState] | None = None) -> WaveView:
        # A wave not started has no canaries yet, so no side in traffic.
        mine = [
            groups[key]
            for key in sorted({b.group_key for b in wave.batches})
            if groups and key in groups and wave.status != "pending"
        ]
        canary = Traffic(
            tuple(sorted({arn for g in mine for arn in g.target_groups})),
            tuple(sorted({name for g in mine for name in g.load_balancers})),
        )
        baseline = Traffic(
            tuple(wave.baselines.target_groups), tuple(wave.baselines.load_balancers)
        )
        return cls(
            index=wave.index,
            target=wave.target,
            status=wave.status,
            verdict=WaveVerdict.from_json(wave.verdict) if wave.verdict else None,
            instance_types=tuple(sorted({b.instance_type for b in wave.batches} - {""})),
            canary_traffic=tuple(canary.names()),
            baseline_traffic=tuple(baseline.names()),
            window_start=wave.analysis.window_start if wave.analysis else None,
            window_end=wave.analysis.window_end if wave.analysis else None,
        )

    def traffic_json(self) -> JsonDict:
        return {
            "wave": self.index,
            "canaries": list(self.canary_traffic),
            "baselines": list(self.baseline_traffic),
        }


@dataclass(frozen=True)
class LastVerdict:
    wave: int
    decision: str
    score: float

    def to_json(self) -> JsonDict:
        return {"wave": self.wave, "decision": self.decision, "score": self.score}


@dataclass(frozen=True)
class CohortView:
    key: str
    size: int
    status: str
    wave: int
    replaced: int
    waves: tuple[WaveView, ...]
    rolled_back_at: str | None
    last_verdict: LastVerdict | None  # what the controller acted on last
    rolled_back: int | None = None  # instances taken off the new base by its rollback
    # (account, region) where it changed something (a group pinned to the new base): where a
    # rollback acts too. "" is the caller's own account.
    places: tuple[tuple[str, str], ...] = ()

    def progress(self) -> str:
        """How far the cohort got, as ``canary status`` shows it: instances replaced by the new
        base, and after a rollback how many of them went back to the old one."""
        done = f"{self.replaced}/{self.size}"
        if self.status == "rolling_back":
            return f"{done}, rolling back"
        if self.rolled_back is not None:
            return f"{done}, {self.rolled_back} rolled back to the old base"
        return done

    @classmethod
    def of(cls, cohort: CohortState, groups: Mapping[str, GroupState] | None = None) -> CohortView:
        lv = cohort.last_verdict
        return cls(
            key=cohort.key,
            size=cohort.size,
            status=cohort.status,
            wave=cohort.wave,
            replaced=cohort.replaced,
            waves=tuple(WaveView.of(w, groups) for w in cohort.waves),
            rolled_back_at=(cohort.rollback or {}).get("at"),
            last_verdict=LastVerdict(int(lv["wave"]), lv["decision"], lv["score"]) if lv else None,
            rolled_back=(
                int(cohort.rollback.get("replaced", 0)) if cohort.rollback is not None else None
            ),
            places=touched(cohort, groups or {}),
        )

    def where(self) -> str:
        """The places it touched as ``canary status`` shows them: ``region`` in the caller's
        account, ``account/region`` in a member account."""
        return ", ".join(where(account, region) for account, region in self.places)


@dataclass(frozen=True)
class RolloutView:
    """A whole rollout, typed, for readers: ``status``, the report, the retrospective."""

    id: str
    family: str
    status: str
    reason: str | None
    created_at: str
    updated_at: str
    new_ref: str | None
    new_version: int | None
    new_amis: dict[str, str]
    old_amis: frozenset[str]
    api_calls: int
    api_calls_by_operation: dict[str, int]
    cohorts: tuple[CohortView, ...]
    # Each metric's unit as its settings gave it ("ms"; "" or absent when none was given).
    units: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, r: Rollout) -> RolloutView:
        return cls(
            id=r.id,
            family=r.family,
            status=r.status,
            reason=r.reason,
            created_at=r.created_at,
            updated_at=r.updated_at,
            new_ref=r.new.ref,
            new_version=r.new.version,
            new_amis=dict(r.new.amis),
            old_amis=frozenset(g.old_ami for g in r.groups.values() if g.old_ami),
            api_calls=r.api_calls.total,
            api_calls_by_operation=dict(r.api_calls.by_operation),
            cohorts=tuple(CohortView.of(c, r.groups) for c in r.cohorts),
            units={
                str(m.get("name", "")): str(m.get("unit") or "")
                for m in r.config.get("metrics") or ()
                if isinstance(m, dict)
            },
        )

    def cohort(self, key: str) -> CohortView:
        return next(c for c in self.cohorts if c.key == key)

    def to_json(self) -> JsonDict:
        """The rollout as ``canary status --json`` prints it."""
        return {
            "id": self.id,
            "family": self.family,
            "new": {"ref": self.new_ref, "version": self.new_version, "amis": self.new_amis},
            "status": self.status,
            "reason": self.reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "api_calls": {"total": self.api_calls, "by_operation": self.api_calls_by_operation},
            "cohorts": [
                {
                    "key": c.key,
                    "status": c.status,
                    "wave": c.wave,
                    "waves": len(c.waves),
                    "replaced": c.replaced,
                    "rolled_back": c.rolled_back,
                    "instances": c.size,
                    "touched": [{"account": a or None, "region": r} for a, r in c.places],
                    "last_verdict": c.last_verdict.to_json() if c.last_verdict else None,
                    "verdicts": [
                        {
                            "wave": w.index,
                            "decision": w.verdict.decision,
                            "score": w.verdict.score,
                            "reasons": list(w.verdict.reasons),
                            "samples": w.verdict.samples_uri,
                        }
                        for w in c.waves
                        if w.verdict
                    ],
                    # Per wave started, the load balancers each side took traffic in.
                    "traffic": [
                        w.traffic_json() for w in c.waves if w.canary_traffic or w.baseline_traffic
                    ],
                }
                for c in self.cohorts
            ],
        }
