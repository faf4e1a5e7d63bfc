"""Fault injection for the local endpoint: make one base worse on chosen instance types.

An explicit, labelled feature of the local agent runner (`imagefleet local inject`), used by the
demo and the tests to show that a canary or a benchmark fleet catches a regression. Injections live
in ``<state_dir>/injections.json``; the agents read them on every tick. Nothing on the product
path (executor, judge, compare) knows about them.
"""

from __future__ import annotations

import fnmatch
import json
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

FILE = "injections.json"


@dataclass(frozen=True)
class Injection:
    id: str
    ami: str
    instance_types: tuple[str, ...]  # glob patterns, e.g. ("r5.*",); empty: every type
    metric: str  # glob over metric names; "*" for all
    factor: float  # multiplies the metric value (or the benchmark's time)

    def applies(self, ami: str, instance_type: str, metric: str) -> bool:
        return (
            self.ami == ami
            and (
                not self.instance_types
                or any(fnmatch.fnmatch(instance_type, p) for p in self.instance_types)
            )
            and fnmatch.fnmatch(metric, self.metric)
        )


def load(state_dir: Path) -> list[Injection]:
    try:
        rows = json.loads((Path(state_dir) / FILE).read_text())
    except (OSError, ValueError):
        return []
    return [Injection(**{**r, "instance_types": tuple(r.get("instance_types", ()))}) for r in rows]


def _save(state_dir: Path, items: list[Injection]) -> None:
    path = Path(state_dir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([asdict(i) for i in items], indent=2))
    os.replace(tmp, path)


def add(
    state_dir: Path, ami: str, metric: str, factor: float, instance_types: tuple[str, ...] = ()
) -> Injection:
    if factor <= 0:
        raise ValueError("factor must be positive")
    inj = Injection(
        id=uuid.uuid4().hex[:8],
        ami=ami,
        instance_types=tuple(instance_types),
        metric=metric,
        factor=factor,
    )
    _save(state_dir, [*load(state_dir), inj])
    return inj


def clear(state_dir: Path, ami: str | None = None) -> int:
    items = load(state_dir)
    keep = [i for i in items if ami is not None and i.ami != ami]
    _save(state_dir, keep)
    return len(items) - len(keep)


def factor_for(injections: list[Injection], ami: str, instance_type: str, metric: str) -> float:
    """The combined factor for one (AMI, type, metric); 1.0 when nothing is injected."""
    f = 1.0
    for inj in injections:
        if inj.applies(ami, instance_type, metric):
            f *= inj.factor
    return f
