"""A rollout's parts (layout 2, see ``canary.records``): the typed model split into small records and back.

Parts are cut so that one step of the rollout rewrites little: the batches of a step in one region
are one part (written when their step starts and ends), a wave's status and window another, a
cohort's state a third. The plan's summary and each cohort's batch order are written once, a wave's
verdict when it is judged, a cohort's groups when they are pinned. A wave's canaries are not stored: they are its batches' replacements, joined again on load.
"""

from __future__ import annotations

from typing import Any

from canary.model import Analysis, Baselines, BatchState, CohortState, GroupState, Rollout, Wave

JsonDict = dict[str, Any]


def _batch_part(cohort: str, wave: int, batch: BatchState) -> str:
    return f"batches/{cohort}/{wave}/{batch.step}/{batch.region}"


def encode_parts(rollout: Rollout) -> dict[str, JsonDict]:
    """Every part of the rollout by part id (a record's id within ``records.parts_kind``)."""
    parts: dict[str, JsonDict] = {"plan": {"summary": rollout.summary}}
    owner: dict[str, str] = {}
    for cohort in rollout.cohorts:
        for key in cohort.groups:
            owner.setdefault(key, cohort.key)
    for cohort in rollout.cohorts:
        order: list[list[list[Any]]] = []  # per wave, its batches in order as (part id, how many) runs
        parts[f"order/{cohort.key}"] = {"waves": order}  # fixed by the plan: written once
        parts[f"cohort/{cohort.key}"] = {
            "key": cohort.key, "size": cohort.size, "status": cohort.status, "wave": cohort.wave,
            "replaced": cohort.replaced, "last_verdict": cohort.last_verdict, "rollback": cohort.rollback,
            "groups": list(cohort.groups), "waves": len(cohort.waves)}
        # the groups a cohort is first to list: written when they are pinned (or rolled back)
        parts[f"groups/{cohort.key}"] = {
            "groups": [rollout.groups[key].to_dict() for key in cohort.groups if owner[key] == cohort.key]}
        for wave in cohort.waves:
            runs: list[list[Any]] = []
            order.append(runs)
            for batch in wave.batches:
                part_id = _batch_part(cohort.key, wave.index, batch)
                body = parts.setdefault(part_id, {"batches": []})
                body["batches"].append(batch.to_dict())
                if runs and runs[-1][0] == part_id:
                    runs[-1][1] += 1
                else:
                    runs.append([part_id, 1])
            parts[f"wave/{cohort.key}/{wave.index}"] = {
                "index": wave.index, "target": wave.target, "steps": wave.steps, "status": wave.status,
                "baselines": wave.baselines.to_dict(),
                "analysis": wave.analysis.to_dict() if wave.analysis else None,
                "override": wave.override}
            if wave.verdict is not None:  # written once, when the wave is judged
                parts[f"verdict/{cohort.key}/{wave.index}"] = {"verdict": wave.verdict}
    return parts


def _wave(cohort: str, doc: JsonDict, runs: list[list[Any]], parts: dict[str, JsonDict]) -> Wave:
    taken: dict[str, int] = {}
    batches = []
    for part_id, count in runs:
        start = taken.get(part_id, 0)
        batches += [BatchState.from_dict(b) for b in parts[part_id]["batches"][start:start + count]]
        taken[part_id] = start + count
    canaries = sorted({iid for batch in batches for iid in batch.replacements})
    analysis = doc.get("analysis")
    return Wave(index=int(doc["index"]), target=int(doc["target"]), steps=int(doc["steps"]), batches=batches,
                status=doc.get("status", "pending"), canaries=canaries,
                baselines=Baselines.from_dict(doc.get("baselines") or {}),
                analysis=Analysis.from_dict(analysis) if analysis else None,
                verdict=parts.get(f"verdict/{cohort}/{doc['index']}", {}).get("verdict"), override=doc.get("override"))


def decode_parts(parts: dict[str, JsonDict],
                 cohort_keys: list[str]) -> tuple[JsonDict, dict[str, GroupState], list[CohortState]]:
    """The plan's summary, the groups and the cohorts (in the header's order) from the parts."""
    groups: dict[str, GroupState] = {}
    cohorts = []
    for key in cohort_keys:
        doc = parts[f"cohort/{key}"]
        for g in parts[f"groups/{key}"]["groups"]:
            state = GroupState.from_dict(g)
            groups[state.key] = state
        order = parts[f"order/{key}"]["waves"]
        waves = [_wave(key, parts[f"wave/{key}/{i}"], order[i], parts) for i in range(int(doc["waves"]))]
        cohorts.append(CohortState(key=key, size=int(doc["size"]), groups=list(doc["groups"]), waves=waves,
                                   status=doc.get("status", "pending"), wave=int(doc.get("wave", 0)),
                                   replaced=int(doc.get("replaced", 0)), last_verdict=doc.get("last_verdict"),
                                   rollback=doc.get("rollback")))
    return dict(parts.get("plan", {}).get("summary") or {}), groups, cohorts
