"""The sample record and its JSON-lines form, in the standard library only.

This is the part of ``perf.samples`` the on-instance agent needs: the agent ships as the slim
``imagefleet-agent`` distribution (``agent/pyproject.toml``), which has no pandas, so the record
and its writer live here and ``perf.samples`` re-exports them for everything else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from orchestrator.errors import UsageError

ARMS = ("baseline", "candidate")


@dataclass(frozen=True)
class Sample:
    """One measurement of one metric on one instance of one arm."""

    metric: str
    value: float
    unit: str
    higher_is_better: bool
    instance_type: str
    instance_id: str
    ami: str
    arm: str
    benchmark: str
    timestamp: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.arm not in ARMS:
            raise UsageError(f"arm must be one of {ARMS}, not {self.arm!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sample:
        meta = data.get("metadata") or {}
        if isinstance(meta, str):
            meta = json.loads(meta) if meta else {}
        return cls(
            metric=str(data["metric"]),
            value=float(data["value"]),
            unit=str(data.get("unit", "")),
            higher_is_better=bool(data["higher_is_better"]),
            instance_type=str(data["instance_type"]),
            instance_id=str(data.get("instance_id", "")),
            ami=str(data.get("ami", "")),
            arm=str(data["arm"]),
            benchmark=str(data.get("benchmark", "")),
            timestamp=float(data.get("timestamp", 0.0)),
            metadata=dict(meta),
        )


def write_records(samples: Iterable[Sample], dest: IO[str]) -> int:
    """Write samples as JSON lines (``Sample.to_dict()``, metadata as an object); returns the
    number written. ``perf.samples.read_samples`` reads them back."""
    n = 0
    for s in samples:
        dest.write(json.dumps(s.to_dict(), separators=(",", ":"), default=str) + "\n")
        n += 1
    return n


__all__ = ["ARMS", "Sample", "write_records"]
