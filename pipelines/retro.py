"""Blameless retrospective drafts, written when a base is rolled back.

Two occasions: a canary rolls a cohort back (the judge saw harm), and an operator rolls a stage
back. The draft is Markdown with what the records show — the timeline (bake, promotions, waves,
detection, rollback), the impact (cohorts, instances, the metrics that failed with their
statistics), what the data shows as contributing (the packages that changed between the bases,
the instance types affected) — and empty sections for what only people can answer. It is saved
under ``<state dir>/retrospectives/`` and recorded as a ``retrospective`` document, so the report
links it. Drafting never blocks a rollback: a failure to draft is a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canary import hooks
from canary.records import RolloutView, WaveView
from orchestrator.store import BaseVersion, StateStore, utcnow
from pipelines.records import RETRO_KIND, RetroRecord

if TYPE_CHECKING:
    from changelog.packages import Manifest

DOC_KIND = RETRO_KIND
QUESTIONS = (
    "## What we know now that we did not know then\n\n_…_\n",
    "## How did it get past the earlier gates?\n\n_Image tests, perf run, soak: why did none of "
    "them catch it?_\n",
    "## What made detection and rollback faster or slower?\n\n_…_\n",
    "## Follow-ups\n\n| action | owner | due |\n|---|---|---|\n| | | |\n",
)


@dataclass
class Retro:
    id: str
    path: Path
    title: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": str(self.path), "title": self.title}


def package_changes(old: BaseVersion | None, new: BaseVersion | None, limit: int = 40) -> list[str]:
    """Markdown bullets of what changed between two bases' manifests (dpkg or rpm order)."""
    if old is None or new is None or not (old.manifest.strip() and new.manifest.strip()):
        return ["- _no package manifests recorded for both bases_"]
    from changelog.diff import diff
    from changelog.manifest import parse_manifest_text
    from orchestrator.errors import ManifestError

    def read(base: BaseVersion) -> Manifest:
        # The bake read it in the family's package_format; an RPM name/version list that could
        # also be Debian's is refused without one, so it is read as rpm then.
        try:
            return parse_manifest_text(base.manifest, f"{base.ref} manifest")
        except ManifestError:
            return parse_manifest_text(base.manifest, f"{base.ref} manifest", "rpm")

    d = diff(read(old), read(new))
    lines = [f"- {c.name}: {c.old.version} → {c.new.version}" for c in d.upgraded]
    lines += [f"- {c.name}: {c.old.version} → {c.new.version} (downgraded)" for c in d.downgraded]
    lines += [f"- {p.name} {p.version} (added)" for p in d.added]
    lines += [f"- {p.name} {p.version} (removed)" for p in d.removed]
    if len(lines) > limit:
        lines = [*lines[:limit], f"- … and {len(lines) - limit} more (see the changelog)"]
    return lines or ["- _the package lists are identical_"]


def _base(store: StateStore, family: str, version: int | None) -> BaseVersion | None:
    if version is None:
        return None
    try:
        return store.get_base(family, version)
    except LookupError:
        return None


def _timeline(
    store: StateStore, family: str, refs: set[str], extra: list[tuple[str, str]]
) -> list[str]:
    rows = [
        (
            e.at,
            f"{e.action} {e.target}"
            + (f" — {e.reason}" if e.reason else "")
            + f" ({e.actor.rsplit('/', 1)[-1]})",
        )
        for e in store.audit_trail(family, limit=500)
        if e.target in refs or e.target == family
    ]
    rows += extra
    return [f"| {at[:19].replace('T', ' ')} | {what} |" for at, what in sorted(rows)]


def _save(
    store: StateStore, state_dir: Path, retro_id: str, title: str, text: str, about: dict[str, Any]
) -> Retro:
    path = state_dir / "retrospectives" / f"{retro_id}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    try:
        _, rev = store.get_doc(DOC_KIND, retro_id)
    except LookupError:
        rev = None
    about = dict(about)
    family = str(about.pop("family", ""))
    record = RetroRecord(retro_id, title, str(path), utcnow(), text, family, about)
    store.put_doc(DOC_KIND, retro_id, record.to_json(), expected_revision=rev)
    return Retro(retro_id, path, title)


def drafts(store: StateStore) -> list[RetroRecord]:
    """Every retrospective draft, oldest first."""
    return sorted(
        (RetroRecord.from_json(d) for d in store.docs(DOC_KIND)), key=lambda r: (r.at, r.id)
    )


def canary_rollback(
    store: StateStore, state_dir: Path, rollout: RolloutView, cohort_key: str
) -> Retro:
    """The draft for a cohort the canary rolled back."""
    family = rollout.family
    cohort = rollout.cohort(cohort_key)
    new = _base(store, family, rollout.new_version)
    old = next((b for b in store.bases(family) if set(b.amis.values()) & rollout.old_amis), None)
    judged = [w for w in cohort.waves if w.verdict is not None]
    failed = [w for w in judged if w.verdict is not None and w.verdict.decision != "pass"]
    detect = failed[-1].verdict if failed else None
    title = f"{rollout.new_ref or rollout.id}: canary rolled back cohort {cohort.key}"
    extra = [(w.verdict.at, _judged(cohort.key, w)) for w in judged if w.verdict is not None]
    extra.append(
        (
            cohort.rolled_back_at or utcnow(),
            f"cohort {cohort.key} rolled back to the previous launch templates",
        )
    )
    metrics = [m for m in (detect.metrics if detect else ()) if m.deciding]
    replaced = (
        f"- Cohort **{cohort.key}**: {cohort.replaced} of {cohort.size} instances had "
        "been replaced when the judge stopped it; all were put back on the previous base."
    )
    others = ", ".join(f"{c.key} {c.status}" for c in rollout.cohorts if c.key != cohort.key)
    impact = [replaced, f"- Other cohorts: {others or 'none'}"]
    if cohort.places:  # the accounts and regions it reached, each rolled back
        impact.insert(1, f"- Rolled back in: {cohort.where()} (account/region; bare: own account)")
    rows = [
        f"| {m.name} | {m.classification} | {_n(m.experiment.mean)} | {_n(m.control.mean)} | "
        f"{_n(m.estimate)} "
        f"[{_n(m.ci.lower)}, {_n(m.ci.upper)}] | {m.effect_size_measure} {_n(m.effect_size)} |"
        for m in metrics
    ]
    types = sorted({t for w in cohort.waves for t in w.instance_types})
    text = "\n".join(
        [
            f"# Retrospective (draft): {title}",
            "",
            "_Blameless: this draft states what the records show. Edit it; add what people know._",
            "",
            "## Summary",
            "",
            f"Rollout `{rollout.id}` of {rollout.new_ref or 'an unregistered AMI'} "
            f"(from {old.ref if old else 'the running base'}) was rolled back in cohort "
            f"{cohort.key}: "
            + ("; ".join(detect.reasons) if detect else "the judge said no")
            + ".",
            "",
            "## Timeline (UTC)",
            "",
            "| when | what |",
            "|---|---|",
            *_timeline(
                store,
                family,
                {r for r in (new.ref if new else None, old.ref if old else None) if r},
                extra,
            ),
            "",
            "## Impact",
            "",
            *impact,
            "",
            "### The metrics behind the decision",
            "",
            "| metric | class | canary mean | baseline mean | estimate [CI] | effect size |",
            "|---|---|---|---|---|---|",
            *(rows or ["| _none recorded_ | | | | | |"]),
            "",
            "## What the data shows as contributing",
            "",
            f"- Instance types affected: {', '.join(types) or cohort.key}",
            f"- Packages changed from {old.ref if old else 'the previous base'} to "
            f"{new.ref if new else 'the new base'}:",
            *package_changes(old, new),
            "",
            *(
                [
                    "## The raw samples",
                    "",
                    *(
                        f"- wave {w.index + 1}: {w.verdict.samples_uri}"
                        for w in judged
                        if w.verdict is not None and w.verdict.samples_uri
                    ),
                    "",
                ]
                if any(w.verdict is not None and w.verdict.samples_uri for w in judged)
                else []
            ),
            *QUESTIONS,
        ]
    )
    retro_id = f"{rollout.id}-{cohort.key}".replace("/", "-")
    return _save(
        store,
        state_dir,
        retro_id,
        title,
        text,
        {"family": family, "kind": "canary", "rollout": rollout.id, "cohort": cohort.key},
    )


def draft_for_rolled_back_cohort(event: hooks.CohortRolledBack) -> str:
    """The canary's ``cohort_rolled_back`` listener: a draft, or why there is none (never
    raises)."""
    try:
        draft = canary_rollback(event.store, event.state_dir, event.rollout, event.cohort_key)
    except Exception as exc:  # a draft is a convenience, the rollback is what matters
        return f"no retrospective draft ({type(exc).__name__}: {exc})"
    return f"retrospective draft {draft.path}"


def listen() -> None:
    """Draft a retrospective for every cohort the canary rolls back."""
    hooks.on_cohort_rolled_back(draft_for_rolled_back_cohort)


def stage_rollback(
    store: StateStore,
    state_dir: Path,
    family: str,
    stage: str,
    from_version: int,
    to_version: int,
    reason: str,
    actor: str,
) -> Retro:
    """The draft for an operator's rollback of a stage."""
    bad, good = _base(store, family, from_version), _base(store, family, to_version)
    title = f"{family}:{from_version}: {stage} rolled back to {family}:{to_version}"
    evidence = [
        f"- {e.gate}: {'passed' if e.passed else 'FAILED'} at {e.at[:19]}"
        + (
            f" ({e.details.get('summary')})"
            if isinstance(e.details, dict) and e.details.get("summary")
            else ""
        )
        for e in store.evidence(family, from_version)
    ]
    text = "\n".join(
        [
            f"# Retrospective (draft): {title}",
            "",
            "_Blameless: this draft states what the records show. Edit it; add what people know._",
            "",
            "## Summary",
            "",
            f"{actor.rsplit('/', 1)[-1]} rolled {family} {stage} back from "
            f"{family}:{from_version} to "
            f"{family}:{to_version}" + (f": {reason}" if reason else "") + ".",
            "",
            "## Timeline (UTC)",
            "",
            "| when | what |",
            "|---|---|",
            *_timeline(store, family, {f"{family}:{from_version}", f"{family}:{to_version}"}, []),
            "",
            "## Impact",
            "",
            f"- Consumers of `/imagefleet/{family}/{stage}` launched {family}:{from_version} "
            "until the rollback.",
            "",
            "## The evidence the base was promoted on",
            "",
            *(evidence or ["- _none recorded_"]),
            "",
            "## What the data shows as contributing",
            "",
            f"- Packages changed from {family}:{to_version} to {family}:{from_version}:",
            *package_changes(good, bad),
            "",
            *QUESTIONS,
        ]
    )
    return _save(
        store,
        state_dir,
        f"{family}-{stage}-{from_version}-{utcnow()[:19].replace(':', '')}",
        title,
        text,
        {"family": family, "kind": "stage", "stage": stage, "from": from_version, "to": to_version},
    )


def _judged(cohort: str, wave: WaveView) -> str:
    v = wave.verdict
    assert v is not None
    return f"wave {wave.index + 1} of {cohort} judged **{v.decision}** (score {v.score})"


def _n(x: object) -> str:
    if x is None:
        return "–"
    return f"{x:.4g}" if isinstance(x, float) else str(x)
