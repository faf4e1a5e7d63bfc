"""A perf run in the state store: its document kind and the typed record other packages read.

A run is one ``perf-run`` document, saved as the run goes (running → done | failed |
interrupted). It keeps what the comparison decided (the overall verdict and one cell per instance
type and metric) and small counts; what grows with the fleet stays in the artifact bucket: each
instance's results under ``results`` (``s3://<bucket>/<results_prefix>/<run id>/``, written by
the agents) and the fleet's per-instance list at ``instances_uri`` (written by the run).

Readers outside perf (the report, ``gc``) use ``PerfRunRecord``, never the document's keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.store import StateStore

KIND = "perf-run"
JsonDict = dict[str, Any]


@dataclass(frozen=True)
class PerfCell:
    """One cell of the comparison: an instance type and metric, candidate against baseline."""

    instance_type: str
    metric: str
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_adjusted: float | None
    verdict: str

    @classmethod
    def from_json(cls, c: JsonDict) -> PerfCell:
        return cls(
            instance_type=c.get("instance_type", ""),
            metric=c.get("metric", ""),
            ratio=c.get("ratio"),
            ci_low=c.get("ci_low"),
            ci_high=c.get("ci_high"),
            p_value=c.get("p_value"),
            p_adjusted=c.get("p_adjusted"),
            verdict=c.get("verdict", ""),
        )

    def to_json(self) -> JsonDict:
        return {
            "instance_type": self.instance_type,
            "metric": self.metric,
            "ratio": self.ratio,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class PerfRunRecord:
    """A perf run as its record says: the bases compared, how it ended, the comparison's cells."""

    id: str
    family: str
    status: str
    candidate_ref: str
    baseline_ref: str
    started_at: str
    verdict: str | None = None
    passed: bool | None = None
    cells: tuple[PerfCell, ...] = ()
    plots: tuple[str, ...] = ()
    instances: int = 0  # benchmark instances launched
    instances_uri: str | None = None  # their per-instance list in the artifact bucket
    results: str | None = None  # s3://… prefix of the agents' per-instance results
    # arms whose samples came from simulated instances (the local endpoint's benchmark model)
    simulated: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        return self.status == "running"

    @classmethod
    def from_json(cls, doc: JsonDict) -> PerfRunRecord:
        listed = doc.get("instances")  # runs recorded before instances_uri kept the list inline
        count = doc.get("instance_count", len(listed) if isinstance(listed, list) else 0)
        return cls(
            id=doc["id"],
            family=doc.get("family", ""),
            status=doc.get("status", ""),
            candidate_ref=(doc.get("candidate") or {}).get("ref", ""),
            baseline_ref=(doc.get("baseline") or {}).get("ref", ""),
            started_at=doc.get("started_at", ""),
            verdict=doc.get("verdict"),
            passed=doc.get("passed"),
            cells=tuple(
                PerfCell.from_json(c) for c in (doc.get("comparison") or {}).get("comparisons", [])
            ),
            plots=tuple(doc.get("plots") or ()),
            instances=int(count),
            instances_uri=doc.get("instances_uri"),
            results=doc.get("results"),
            simulated=tuple((doc.get("comparison") or {}).get("simulated") or ()),
        )

    def to_json(self) -> JsonDict:
        """The fields this record reads, in the document's shape."""
        return {
            "id": self.id,
            "family": self.family,
            "status": self.status,
            "candidate": {"ref": self.candidate_ref},
            "baseline": {"ref": self.baseline_ref},
            "started_at": self.started_at,
            "verdict": self.verdict,
            "passed": self.passed,
            "comparison": {
                "comparisons": [c.to_json() for c in self.cells],
                "simulated": list(self.simulated),
            },
            "plots": list(self.plots),
            "instance_count": self.instances,
            "instances_uri": self.instances_uri,
            "results": self.results,
        }


def runs(store: StateStore, family: str | None = None) -> list[PerfRunRecord]:
    """Every perf run (of ``family``), oldest first."""
    found = [PerfRunRecord.from_json(doc) for doc in store.docs(KIND)]
    return sorted(
        (r for r in found if family is None or r.family == family), key=lambda r: r.started_at
    )
