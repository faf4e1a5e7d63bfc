"""One round of a rollout: every cohort in flight does its current wave, side by side.

The controller (``canary.controller``) decides which cohorts are in flight and what each verdict
means; a round does the work, through the controller's public API, with the AWS calls of all
those cohorts shared:

* **pin**: the cohorts' groups not yet on the new base are described together (one
  ``DescribeAutoScalingGroups`` per region for up to 100 groups) and a launch template's version
  listing serves every group that uses it;
* **replace**: step by step, every wave's batches of the step at once: one describe per region,
  the terminations paced by the region's launch budget with the regions interleaved
  (``canary.pacing``), one wait per region until all its groups are healthy again;
* **baselines**: launched per cohort and wave (one ``RunInstances`` each: one instance type), one
  wait per region until they all run;
* **analyse**: one window for the round, one ``GetMetricData`` per 500 queries for all cohorts,
  a verdict per cohort; the baselines of the round ended with one call per region.

Every action is still a step of the rollout's journal under the cohort's own name
(``replace:<cohort>:<wave>:<step>:<region>``, ``baselines:<cohort>:<wave>``, ``judge:<cohort>:<wave>``),
so a resumed run replays what was done and redoes what was not, cohort by cohort.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from canary.actions import WaveToJudge, template_key
from canary.executor import GroupInfo
from canary.model import (
    Analysis,
    Baselines,
    BatchState,
    CohortState,
    GroupState,
    TemplateVersion,
    Wave,
)
from canary.pacing import Paced, interleave

if TYPE_CHECKING:  # the controller imports this module to run it
    from canary.controller import Controller

InFlight = list[tuple[CohortState, Wave]]
STEP_NAME_MAX = 200  # a journal step's name is a key in the store (DynamoDB sort keys: 1,024 bytes)


def pin(ctl: Controller, cohorts: list[CohortState]) -> None:
    """Every group of the cohorts onto a template version with the new AMI."""
    todo = [(cohort, ctl.rollout.groups[key]) for cohort in cohorts for key in cohort.groups
            if not ctl.rollout.groups[key].pinned]
    if not todo:
        return
    names: dict[str, list[str]] = {}
    for _, group in todo:
        names.setdefault(group.region, []).append(group.name)
    infos = describe(ctl, names)
    listings: dict[tuple[str, str], list[dict[str, object]]] = {}

    def versions(group: GroupState) -> list[dict[str, object]]:
        key = (group.region, group.lt_id)
        if key not in listings:
            listings[key] = ctl.actions.ex.list_versions(group.region, group.lt_id)
        return listings[key]

    ctl.save()
    for cohort, group in todo:
        if group.pinned:  # a mixed-instances group in two cohorts: pinned by the first
            continue
        result = ctl.step(f"pin:{cohort.key}:{group.key}",
                          partial(ctl.actions.pin, ctl.rollout, group, infos[group.key], partial(versions, group)),
                          save=False)
        ctl.rollout.templates.setdefault(template_key(group), TemplateVersion(
            new_version=int(result["new_version"]), old_ami=result["old_ami"]))
        group.new_version = int(result["new_version"])
        group.old_ami = result["old_ami"]
        group.pinned = True
    ctl.save()


def describe(ctl: Controller, names: dict[str, list[str]]) -> dict[str, GroupInfo]:
    """The groups (names by region) as AWS reports them now, by group key: one request per
    region for up to 100 groups."""
    out: dict[str, GroupInfo] = {}
    for region, region_names in sorted(names.items()):
        out.update({f"{region}/{name}": info
                    for name, info in ctl.actions.describe_groups(region, sorted(set(region_names))).items()})
    return out


# --- replacing ---------------------------------------------------------------------------------------
def replace(ctl: Controller, waves: InFlight) -> None:
    """The waves' batches replaced step by step; then the analysis window of each starts."""
    for _, wave in waves:
        wave.status = "replacing"
    ctl.save()
    # The groups as the last wait saw them (all healthy), by group key: the next step starts
    # from that view instead of describing them again.
    seen: dict[str, GroupInfo] = {}
    for step in sorted({batch.step for _, wave in waves for batch in wave.batches}):
        todo = [(cohort, wave, wave.batches_of_step(step)) for cohort, wave in waves]
        todo = [(cohort, wave, batches) for cohort, wave, batches in todo
                if any(batch.status != "done" for batch in batches)]
        if todo:
            replace_step(ctl, step, todo, seen)
    # All replacements of the round are healthy: the analysis windows start now.
    now = ctl.clock.time()
    for _, wave in waves:
        wave.status = "analysing"
        wave.analysis = Analysis(healthy_at=now)
    ctl.save()


def replace_step(ctl: Controller, step: int, todo: list[tuple[CohortState, Wave, list[BatchState]]],
                 seen: dict[str, GroupInfo]) -> None:
    """One step of every wave in flight: terminate, launch baselines, wait until healthy.

    ``seen`` holds the groups as the previous step's wait left them; it is updated here."""
    names: dict[str, list[str]] = {}
    unseen: dict[str, list[str]] = {}
    for _, _, batches in todo:
        for batch in batches:
            names.setdefault(batch.region, []).append(batch.group)
            if batch.group_key not in seen:
                unseen.setdefault(batch.region, []).append(batch.group)
    before = {**{key: seen[key] for _, _, batches in todo for batch in batches
                 if (key := batch.group_key) in seen}, **describe(ctl, unseen)}
    for _, _, batches in todo:
        for batch in batches:
            if batch.status == "pending":
                batch.before = [member.id for member in before[batch.group_key].members]
                batch.status = "terminating"
    ctl.save()

    def region_work(region: str) -> Paced:
        groups = {key.split("/", 1)[1]: info for key, info in before.items() if info.region == region}
        for cohort, wave, batches in todo:
            left = [batch for batch in batches if batch.region == region and batch.status != "done"]
            if left:
                # Saved once above: the records a step depends on do not change between steps.
                yield from ctl.step_process(f"replace:{cohort.key}:{wave.index}:{step}:{region}",
                                            partial(ctl.actions.replace, region, left, groups, ctl.pacer),
                                            save=False)
        return None

    interleave(ctl.clock, [region_work(region) for region in sorted(names)])
    baselines(ctl, [(cohort, wave) for cohort, wave, _ in todo if wave.baselines.status != "done"], before)
    for region in sorted(names):
        in_region = [(wave, batch) for _, wave, batches in todo for batch in batches if batch.region == region]
        gone = {instance_id for _, batch in in_region for instance_id in batch.instance_ids}
        after = ctl.actions.wait_replaced(region, sorted(set(names[region])), gone)
        seen.update({f"{region}/{name}": info for name, info in after.items()})
        shared = _groups_in_several_batches(batch for _, batch in in_region)
        for wave, batch in in_region:
            old = set(batch.before)
            new = {member.id for member in after[batch.group].in_service() if member.id not in old
                   # a mixed-instances group in two cohorts: each takes the replacements of its type
                   and (batch.group_key not in shared or member.instance_type == batch.instance_type)}
            batch.replacements = sorted(new)
            batch.before = []  # needed only until the batch is done; it is the group's whole membership
            batch.status = "done"
            wave.canaries = sorted(set(wave.canaries) | new)
    for cohort, _, _ in todo:
        cohort.replaced = cohort.replaced_so_far()
        ctl.progress(f"cohort {cohort.key}: {cohort.replaced}/{cohort.size} replaced")
    ctl.save()


def _groups_in_several_batches(batches: Iterable[BatchState]) -> set[str]:
    seen: set[str] = set()
    several: set[str] = set()
    for batch in batches:
        (several if batch.group_key in seen else seen).add(batch.group_key)
    return several


def baselines(ctl: Controller, waves: InFlight, infos: dict[str, GroupInfo]) -> None:
    """Fresh baselines on the old base, launched with the canaries (Kayenta's advice): one
    ``RunInstances`` per cohort and wave; then one wait per region until all of them run."""
    if not waves:
        return
    launched: dict[str, list[str]] = {}
    for cohort, wave in waves:
        want = min(ctl.cfg.baselines_per_wave, sum(len(batch.instance_ids) for batch in wave.batches))
        # One launch per cohort and wave, beside the group giving the wave most of its canaries
        # (its old template version, subnet and the cohort's instance type).
        sizes: dict[str, int] = {}
        for batch in wave.batches:
            sizes[batch.group_key] = sizes.get(batch.group_key, 0) + len(batch.instance_ids)
        biggest = max(sorted(sizes), key=sizes.__getitem__)
        beside = next(batch for batch in wave.batches if batch.group_key == biggest)
        per_group = {biggest: (beside, want)}
        name = f"baselines:{cohort.key}:{wave.index}"
        if not ctl.journal.is_done(name):
            for region in sorted({batch.region for batch, _ in per_group.values()}):
                ctl.pacer_take(region, sum(n for batch, n in per_group.values() if batch.region == region))
        again = ctl.journal.was_started(name)  # pending: a killed attempt may have launched some
        ids = ctl.step(name, partial(ctl.actions.launch_baselines, ctl.rollout, f"{cohort.key}/{wave.index}",
                                     list(per_group.values()), infos, again=again), save=False)
        wave.baselines = Baselines(status="launched", ids=ids, launched_at=ctl.clock.time())
        for region, region_ids in ids.items():
            launched.setdefault(region, []).extend(region_ids)
    ctl.save()
    ctl.actions.wait_running(launched)
    for _, wave in waves:
        wave.baselines.status = "done"
    ctl.save()


# --- analysing ---------------------------------------------------------------------------------------
def analyse(ctl: Controller, waves: InFlight) -> None:
    """Wait out the waves' analysis windows, judge each wave, end the round's baselines."""
    cfg = ctl.cfg
    judge: list[WaveToJudge] = []
    last_end = ctl.clock.time()
    for cohort, wave in waves:
        analysis = wave.analysis
        assert analysis is not None, f"wave {wave.index} of {cohort.key} is analysing without a window"
        start = analysis.healthy_at + cfg.warmup_s
        end = start + cfg.analysis_s
        analysis.window_start, analysis.window_end = _iso(start), _iso(end)
        last_end = max(last_end, end)
        ctl.progress(f"cohort {cohort.key}: analysing {len(wave.canaries)} canaries vs "
                     f"{wave.baselines.count} baselines")
        if not ctl.journal.is_done(_judge_step(cohort, wave)):
            judge.append(WaveToJudge(
                key=f"{cohort.key}/{wave.index}", start=start, end=end,
                canaries=ctl.regions_of(cohort, wave.canaries),
                baselines=[(region, iid) for region, ids in wave.baselines.ids.items() for iid in ids]))
    ctl.save()
    # Wait out the windows plus CloudWatch's ingestion lag; a resumed run waits only what is left.
    ctl.clock.sleep(last_end + cfg.metric_delay_s - ctl.clock.time())
    verdicts = ctl.actions.judge(judge) if judge else {}
    for cohort, wave in waves:
        wave.verdict = ctl.step(_judge_step(cohort, wave), partial(verdicts.__getitem__, f"{cohort.key}/{wave.index}"),
                                save=False)
    end_baselines(ctl, waves)
    for _, wave in waves:
        wave.status = "judged"
    ctl.save()


def _judge_step(cohort: CohortState, wave: Wave) -> str:
    return f"judge:{cohort.key}:{wave.index}"


def end_baselines(ctl: Controller, waves: InFlight) -> None:
    """Terminate the waves' baselines once their verdicts are in: one request per region."""
    left = [(cohort, wave) for cohort, wave in waves if wave.baselines.ids and not wave.baselines.cleaned]
    if not left:
        return
    ids: dict[str, list[str]] = {}
    for _, wave in left:
        for region, region_ids in wave.baselines.ids.items():
            ids.setdefault(region, []).extend(region_ids)
    ctl.step(step_name("cleanup", [f"{cohort.key}:{wave.index}" for cohort, wave in left]),
             partial(ctl.actions.end_baselines, ids))
    for _, wave in left:
        wave.baselines.cleaned = True
    ctl.save()


def step_name(action: str, parts: list[str]) -> str:
    """A journal step's name for an action over several cohorts' waves: the waves it covers, or
    when they are many, the first, how many more and a digest of them all (stable on resume)."""
    name = f"{action}:{'+'.join(parts)}"
    if len(name) <= STEP_NAME_MAX:
        return name
    digest = hashlib.sha256("+".join(parts).encode()).hexdigest()[:12]
    return f"{action}:{parts[0]}+{len(parts) - 1}more:{digest}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
