"""A rollout's parts (layout 2, see ``canary.records``): the typed model split into small records
and back.

Parts are cut so that one step of the rollout rewrites little: each batch is a part (written when
it is planned, when it starts and when it is done), the group's members it saw before acting are
parts of their own while it runs (emptied when it is done), a wave's status and window another, a
cohort's state a third. The plan's summary is written once, a wave's verdict when it is judged, a
cohort's groups when they are pinned. A wave's canaries are not stored: they are its batches'
replacements, joined again on load.
"""

from __future__ import annotations

from typing import Any

from canary.model import Analysis, Baselines, BatchState, CohortState, GroupState, Rollout, Wave

JsonDict = dict[str, Any]


BEFORE_CHUNK = 2_000  # member ids per ``before`` part: about 40 KB, however big the group


def encode_parts(rollout: Rollout) -> dict[str, JsonDict]:
    """Every part of the rollout by part id (a record's id within ``records.parts_kind``)."""
    parts: dict[str, JsonDict] = {"plan": {"summary": rollout.summary}}
    owner: dict[str, str] = {}
    for cohort in rollout.cohorts:
        for key in cohort.groups:
            owner.setdefault(key, cohort.key)
    for cohort in rollout.cohorts:
        parts[f"cohort/{cohort.key}"] = {
            "key": cohort.key,
            "size": cohort.size,
            "status": cohort.status,
            "wave": cohort.wave,
            "replaced": cohort.replaced,
            "last_verdict": cohort.last_verdict,
            "rollback": cohort.rollback,
            "groups": list(cohort.groups),
            "waves": len(cohort.waves),
        }
        # the groups a cohort is first to list: written when they are pinned (or rolled back)
        parts[f"groups/{cohort.key}"] = {
            "groups": [
                rollout.groups[key].to_dict() for key in cohort.groups if owner[key] == cohort.key
            ]
        }
        for wave in cohort.waves:
            prefix = f"{cohort.key}/{wave.index}"
            for i, batch in enumerate(wave.batches):
                body = batch.to_dict()
                # A batch's group's members just before it acted: kept only while the batch runs,
                # in parts of their own (a group of thousands would not fit beside the batch).
                before: list[str] = body.pop("before")
                chunks = [before[k : k + BEFORE_CHUNK] for k in range(0, len(before), BEFORE_CHUNK)]
                body["before_parts"] = len(chunks)
                parts[f"batch/{prefix}/{i}"] = body
                for c, ids in enumerate(chunks):
                    parts[f"before/{prefix}/{i}/{c}"] = {"ids": ",".join(ids)}
            parts[f"wave/{prefix}"] = {
                "index": wave.index,
                "target": wave.target,
                "steps": wave.steps,
                "status": wave.status,
                "batches": len(wave.batches),
                "baselines": wave.baselines.to_dict(),
                "analysis": wave.analysis.to_dict() if wave.analysis else None,
                "override": wave.override,
            }
            if wave.verdict is not None:  # written once, when the wave is judged
                parts[f"verdict/{prefix}"] = {"verdict": wave.verdict}
    return parts


def _batch(prefix: str, i: int, parts: dict[str, JsonDict]) -> BatchState:
    body = parts[f"batch/{prefix}/{i}"]
    before = [
        iid
        for c in range(int(body.get("before_parts", 0)))
        for iid in parts[f"before/{prefix}/{i}/{c}"]["ids"].split(",")
        if iid
    ]
    return BatchState.from_dict({**body, "before": before})


def _wave(cohort: str, doc: JsonDict, parts: dict[str, JsonDict]) -> Wave:
    prefix = f"{cohort}/{doc['index']}"
    batches = [_batch(prefix, i, parts) for i in range(int(doc["batches"]))]
    canaries = sorted({iid for batch in batches for iid in batch.replacements})
    analysis = doc.get("analysis")
    return Wave(
        index=int(doc["index"]),
        target=int(doc["target"]),
        steps=int(doc["steps"]),
        batches=batches,
        status=doc.get("status", "pending"),
        canaries=canaries,
        baselines=Baselines.from_dict(doc.get("baselines") or {}),
        analysis=Analysis.from_dict(analysis) if analysis else None,
        verdict=parts.get(f"verdict/{prefix}", {}).get("verdict"),
        override=doc.get("override"),
    )


def decode_parts(
    parts: dict[str, JsonDict], cohort_keys: list[str]
) -> tuple[JsonDict, dict[str, GroupState], list[CohortState]]:
    """The plan's summary, the groups and the cohorts (in the header's order) from the parts."""
    groups: dict[str, GroupState] = {}
    cohorts = []
    for key in cohort_keys:
        doc = parts[f"cohort/{key}"]
        for g in parts[f"groups/{key}"]["groups"]:
            state = GroupState.from_dict(g)
            groups[state.key] = state
        waves = [_wave(key, parts[f"wave/{key}/{i}"], parts) for i in range(int(doc["waves"]))]
        cohorts.append(
            CohortState(
                key=key,
                size=int(doc["size"]),
                groups=list(doc["groups"]),
                waves=waves,
                status=doc.get("status", "pending"),
                wave=int(doc.get("wave", 0)),
                replaced=int(doc.get("replaced", 0)),
                last_verdict=doc.get("last_verdict"),
                rollback=doc.get("rollback"),
            )
        )
    return dict(parts.get("plan", {}).get("summary") or {}), groups, cohorts
