"""The stage table and gate evaluation (pure: data in, decision out).

Stages run ``unstable → candidate → release``; a base enters a stage only from the stage right
before it. Gates are configured per target stage; each gate is met by recorded evidence:
``image_tests``, ``perf`` and ``canary`` by the latest evidence of that kind having passed, ``soak``
by the time the base has spent in the stage before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.clock import human_duration
from orchestrator.config import STAGES
from orchestrator.errors import IllegalTransitionError
from orchestrator.store import BaseVersion, Evidence
from pipelines.config import GateSettings

# target stage -> the stage a base must be in to move there
TRANSITIONS: dict[str, str] = {STAGES[i + 1]: STAGES[i] for i in range(len(STAGES) - 1)}


def current_stages(pointers: dict[str, int | None], version: int) -> list[str]:
    """The stages whose pointer names ``version``, lowest first (``pointers``: stage → version)."""
    return [s for s in STAGES if pointers.get(s) == version]


def highest(stages: list[str] | set[str]) -> str | None:
    """The highest of ``stages`` in ``unstable → candidate → release`` order (None when empty)."""
    ranked = [s for s in STAGES if s in stages]
    return ranked[-1] if ranked else None


def allowed_targets(current: str) -> list[str]:
    return [target for target, source in TRANSITIONS.items() if source == current]


def check_transition(current: str, target: str) -> None:
    """Raise IllegalTransitionError unless ``current → target`` is in the table."""
    if target not in STAGES:
        raise IllegalTransitionError(
            f"unknown stage {target!r}", hint=f"stages are {' → '.join(STAGES)}"
        )
    if TRANSITIONS.get(target) != current:
        allowed = allowed_targets(current)
        raise IllegalTransitionError(
            f"cannot promote from {current} to {target}",
            hint=f"from {current} you can promote to: "
            f"{', '.join(allowed) or 'nothing (last stage)'}",
        )


def check_in_service(base: BaseVersion, doing: str) -> None:
    """Raise IllegalTransitionError when retirement (``imagefleet retire``) has disabled or
    retired ``base``: its AMIs launch nothing any more, so no stage may point at it."""
    if base.retired_at is not None:
        raise IllegalTransitionError(
            f"{base.ref} is retired (its AMIs were deregistered {base.retired_at[:10]}): "
            f"cannot {doing}",
            hint=f"bake a new base of {base.family} ('imagefleet run {base.family}')",
        )
    if base.disabled_at is not None:
        raise IllegalTransitionError(
            f"{base.ref} is being retired (its AMIs were disabled {base.disabled_at[:10]}): "
            f"cannot {doing}",
            hint=f"a base on its way out does not come back: bake a new base of {base.family} "
            f"('imagefleet run {base.family}')",
        )


@dataclass(frozen=True)
class GateResult:
    gate: str
    met: bool
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"gate": self.gate, "met": self.met, "detail": self.detail}


def evaluate(
    gates: GateSettings,
    evidence: list[Evidence],
    *,
    in_previous_stage_since: datetime | None,
    now: datetime,
) -> list[GateResult]:
    """One result per required gate, in the configured order."""
    results = []
    for gate in gates.require:
        if gate == "soak":
            if in_previous_stage_since is None:
                results.append(GateResult(gate, False, "never entered the previous stage"))
                continue
            soaked = now - in_previous_stage_since
            need = timedelta(seconds=gates.soak_seconds)
            met = soaked >= need
            results.append(
                GateResult(gate, met, f"soaked {human_duration(soaked)} of {human_duration(need)}")
            )
            continue
        latest = [e for e in evidence if e.gate == gate]
        if not latest:
            results.append(GateResult(gate, False, "no evidence yet"))
            continue
        ev = max(latest, key=lambda e: e.at)
        summary = ev.details.get("summary") if isinstance(ev.details, dict) else None
        detail = f"{'passed' if ev.passed else 'failed'} at {ev.at}" + (
            f" ({summary})" if summary else ""
        )
        results.append(GateResult(gate, ev.passed, detail))
    return results


def unmet(results: list[GateResult]) -> list[GateResult]:
    return [r for r in results if not r.met]
