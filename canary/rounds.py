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
(``replace:<cohort>:<wave>:<step>:<region>``, ``baselines:<cohort>:<wave>``,
``judge:<cohort>:<wave>``),
so a resumed run replays what was done and redoes what was not, cohort by cohort.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, cast

from canary import sides
from canary.actions import WaveToJudge
from canary.groups import GroupInfo
from canary.judge.decision import Verdict
from canary.metrics import InstanceRef
from canary.model import (
    Analysis,
    Baselines,
    BatchState,
    CohortState,
    GroupState,
    TemplateVersion,
    Wave,
    group_key,
)
from canary.pacing import Paced, interleave
from canary.places import split, template_key, where
from canary.traffic import Traffic
from orchestrator.artifacts import put_artifact
from orchestrator.store import utc_iso

if TYPE_CHECKING:  # the controller imports this module to run it
    from canary.controller import Controller

InFlight = list[tuple[CohortState, Wave]]
STEP_NAME_MAX = 200  # a journal step's name is a key in the store (DynamoDB sort keys: 1,024 bytes)


def pin(ctl: Controller, cohorts: list[CohortState]) -> None:
    """Every group of the cohorts onto a template version with the new AMI."""
    todo = [
        (cohort, ctl.rollout.groups[key])
        for cohort in cohorts
        for key in cohort.groups
        if not ctl.rollout.groups[key].pinned
    ]
    if not todo:
        return
    names: dict[str, list[str]] = {}
    for _, group in todo:
        names.setdefault(where(group.account, group.region), []).append(group.name)
    infos = describe(ctl, names)
    listings: dict[tuple[str, str], list[dict[str, object]]] = {}

    def versions(group: GroupState) -> list[dict[str, object]]:
        key = (where(group.account, group.region), group.lt_id)
        if key not in listings:
            listings[key] = ctl.actions.ex.list_versions(*key)
        return listings[key]

    ctl.save()
    for cohort, group in todo:
        if group.pinned:  # a mixed-instances group in two cohorts: pinned by the first
            continue
        result = ctl.step(
            f"pin:{cohort.key}:{group.key}",
            partial(
                ctl.actions.pin, ctl.rollout, group, infos[group.key], partial(versions, group)
            ),
            save=False,
        )
        ctl.rollout.templates.setdefault(
            template_key(group),
            TemplateVersion(new_version=int(result["new_version"]), old_ami=result["old_ami"]),
        )
        group.new_version = int(result["new_version"])
        group.old_ami = result["old_ami"]
        group.pinned = True
    ctl.save()


def describe(ctl: Controller, names: dict[str, list[str]]) -> dict[str, GroupInfo]:
    """The groups (names by place: a region of one account, ``canary.places``) as AWS reports
    them now, by group key: one request per place for up to 100 groups."""
    out: dict[str, GroupInfo] = {}
    for place, place_names in sorted(names.items()):
        found = ctl.actions.describe_groups(place, sorted(set(place_names)))
        out.update({info.key: info for info in found.values()})
    return out


# --- replacing
# ---------------------------------------------------------------------------------------
def replace(ctl: Controller, waves: InFlight) -> None:
    """The waves' batches replaced step by step, each region at its own pace; then the analysis
    window of each wave starts."""
    for _, wave in waves:
        wave.status = "replacing"
    ctl.save()
    spots = {
        (cohort.key, wave.index): baseline_spot(wave)
        for cohort, wave in waves
        if wave.baselines.status == "pending"
    }
    # One process per account and region: each paced by its own budget, side by side.
    places = sorted({batch.place for _, wave in waves for batch in wave.batches})
    interleave(ctl.clock, [region_replace(ctl, place, waves, spots) for place in places])
    # Baselines not launched beside a step (a resumed run whose steps there were done already).
    interleave(
        ctl.clock,
        [
            launch_baselines(ctl, cohort, wave, spots[(cohort.key, wave.index)], {})
            for cohort, wave in waves
            if wave.baselines.status == "pending"
        ],
    )
    launched = [wave for _, wave in waves if wave.baselines.status == "launched"]
    ctl.actions.wait_running(
        baseline_ids(launched)
    )  # one poll per region for every cohort's baselines
    # Into their group's load balancers, as the canaries are: judged under the same traffic.
    # Registering again after a kill changes nothing, so this needs no step of its own.
    ctl.actions.join_traffic(baseline_traffic(launched))
    for wave in launched:
        wave.baselines.status = "done"
    if ctl.cfg.by_target_group:  # each side in a target group of its own (canary.sides)
        sides.set_up(ctl, [(c, w, own) for c, w in waves if (own := own_target_group(ctl, w))])
    # All replacements of the round are healthy: the analysis windows start now.
    now = ctl.clock.time()
    for _, wave in waves:
        wave.status = "analysing"
        wave.analysis = Analysis(healthy_at=now)
    ctl.save()


def region_replace(
    ctl: Controller,
    place: tuple[str, str],
    waves: InFlight,
    spots: dict[tuple[str, int], BatchState],
) -> Paced:
    """One region's (of one account: ``place`` is (account, region)) part of the round, step by
    step (a process: it waits for tokens and health while the other regions work). A step starts
    from the groups as the previous step's wait left them, instead of describing them again."""
    region = place[1]
    seen: dict[str, GroupInfo] = {}
    steps = []
    for step in sorted(
        {batch.step for _, wave in waves for batch in wave.batches if batch.place == place}
    ):
        todo = [
            (
                cohort,
                wave,
                [batch for batch in wave.batches_of_step(step) if batch.place == place],
            )
            for cohort, wave in waves
        ]
        todo = [
            (cohort, wave, batches)
            for cohort, wave, batches in todo
            if any(batch.status != "done" for batch in batches)
        ]
        if todo:
            steps.append((step, todo))
    for index, (step, todo) in enumerate(steps):
        yield from replace_step(
            ctl, region, step, todo, seen, spots, last=index == len(steps) - 1, account=place[0]
        )
    return None


def replace_step(
    ctl: Controller,
    region: str,
    step: int,
    todo: list[tuple[CohortState, Wave, list[BatchState]]],
    seen: dict[str, GroupInfo],
    spots: dict[tuple[str, int], BatchState],
    *,
    last: bool = True,
    account: str = "",
) -> Paced:
    """One step of every wave in flight in one region: terminate, launch the baselines placed
    here, wait until the groups are healthy. ``seen`` (by group name) is updated.

    The end of a step that is not the region's ``last`` is saved with the start of the next: a
    run killed in between finds the step's batches still terminating, replays their done
    replace steps and computes the same canaries again from the saved members before."""
    place = where(account, region)  # as journal steps always named it
    names = sorted({batch.group for _, _, batches in todo for batch in batches})
    before = {name: seen[name] for name in names if name in seen}
    before.update(ctl.actions.describe_groups(place, [name for name in names if name not in seen]))
    for _, _, batches in todo:
        for batch in batches:
            if batch.status == "pending":
                batch.before = [member.id for member in before[batch.group].members]
                batch.status = "terminating"
    ctl.save()
    for cohort, wave, batches in todo:
        left = [batch for batch in batches if batch.status != "done"]
        if left:
            # Saved once above: the records a step depends on do not change between steps.
            yield from ctl.step_process(
                f"replace:{cohort.key}:{wave.index}:{step}:{place}",
                partial(ctl.actions.replace, place, left, before, ctl.pacer),
                save=False,
            )
    infos = {group_key(account, region, name): info for name, info in before.items()}
    for cohort, wave, _ in todo:
        beside = spots.get((cohort.key, wave.index))
        if (
            beside is not None
            and beside.place == (account, region)
            and wave.baselines.status == "pending"
        ):
            yield from launch_baselines(ctl, cohort, wave, beside, infos)
    in_step = [(wave, batch) for _, wave, batches in todo for batch in batches]
    gone = {instance_id for _, batch in in_step for instance_id in batch.instance_ids}
    after = yield from ctl.actions.waiting_replaced(place, names, gone)
    seen.update(after)
    shared = _groups_in_several_batches(batch for _, batch in in_step)
    for wave, batch in in_step:
        old = set(batch.before)
        new = {
            member.id
            for member in after[batch.group].in_service()
            if member.id not in old
            # a mixed-instances group in two cohorts: each takes the replacements of its type
            and (batch.group_key not in shared or member.instance_type == batch.instance_type)
        }
        batch.replacements = sorted(new)
        batch.before = []  # needed only until the batch is done; it is the group's whole membership
        batch.status = "done"
        wave.canaries = sorted(set(wave.canaries) | new)
    for cohort, _, _ in todo:
        cohort.replaced = cohort.replaced_so_far()
        ctl.progress(f"cohort {cohort.key}: {cohort.replaced}/{cohort.size} replaced")
    if last:
        ctl.save()
    return None


def _groups_in_several_batches(batches: Iterable[BatchState]) -> set[str]:
    return {
        key for key, count in Counter(batch.group_key for batch in batches).items() if count > 1
    }


def baseline_spot(wave: Wave) -> BatchState:
    """Where a wave's baselines go: one launch per cohort and wave, beside (the first batch of)
    the group giving the wave most of its canaries: its old template version, subnet and the
    cohort's instance type."""
    sizes = Counter[str]()
    for batch in wave.batches:
        sizes[batch.group_key] += len(batch.instance_ids)
    biggest = max(sorted(sizes), key=sizes.__getitem__)
    return next(batch for batch in wave.batches if batch.group_key == biggest)


def own_target_group(ctl: Controller, wave: Wave) -> str:
    """The target group a wave's sides are made like: the first of the group its baselines are
    launched beside ("" when it has none)."""
    group = ctl.rollout.groups[baseline_spot(wave).group_key]
    return group.target_groups[0] if group.target_groups else ""


def baseline_ids(waves: Iterable[Wave]) -> dict[str, list[str]]:
    """The waves' baselines by place (for one request per place over all of them)."""
    ids: dict[str, list[str]] = {}
    for wave in waves:
        for region, region_ids in wave.baselines.ids.items():
            ids.setdefault(region, []).extend(region_ids)
    return ids


def baseline_traffic(waves: Iterable[Wave]) -> list[tuple[str, list[str], Traffic]]:
    """The load balancers each wave's baselines joined (or join), by region."""
    out: list[tuple[str, list[str], Traffic]] = []
    for wave in waves:
        traffic = Traffic(tuple(wave.baselines.target_groups), tuple(wave.baselines.load_balancers))
        if traffic:
            out += [(region, list(ids), traffic) for region, ids in wave.baselines.ids.items()]
    return out


def launch_baselines(
    ctl: Controller,
    cohort: CohortState,
    wave: Wave,
    beside: BatchState,
    infos: dict[str, GroupInfo],
) -> Paced:
    """Fresh baselines on the old base, launched with the canaries (Kayenta's advice), after
    their launch tokens (a process); waiting until they run is the round's, for all of them."""
    want = min(ctl.cfg.baselines_per_wave, sum(len(batch.instance_ids) for batch in wave.batches))
    name = f"baselines:{cohort.key}:{wave.index}"
    if not ctl.journal.is_done(name):
        yield from ctl.pacer.take(beside.region, want, terminations=False, account=beside.account)
    again = ctl.journal.was_started(name)  # pending: a killed attempt may have launched some
    ids = ctl.step(
        name,
        partial(
            ctl.actions.launch_baselines,
            ctl.rollout,
            f"{cohort.key}/{wave.index}",
            [(beside, want)],
            infos,
            again=again,
        ),
        save=False,
    )
    group = ctl.rollout.groups[beside.group_key]
    wave.baselines = Baselines(
        status="launched",
        ids=ids,
        launched_at=ctl.clock.time(),
        target_groups=list(group.target_groups),
        load_balancers=list(group.load_balancers),
    )
    return None


# --- analysing
# ---------------------------------------------------------------------------------------
def analyse(ctl: Controller, waves: InFlight) -> None:
    """Wait out the waves' analysis windows, judge each wave, end the round's baselines."""
    cfg = ctl.cfg
    judge: list[WaveToJudge] = []
    last_end = ctl.clock.time()
    for cohort, wave in waves:
        analysis = wave.analysis
        assert analysis is not None, (
            f"wave {wave.index} of {cohort.key} is analysing without a window"
        )
        start = analysis.healthy_at + cfg.warmup_s
        end = start + cfg.analysis_s
        analysis.window_start, analysis.window_end = utc_iso(start), utc_iso(end)
        last_end = max(last_end, end)
        ctl.progress(
            f"cohort {cohort.key}: analysing {len(wave.canaries)} canaries vs "
            f"{wave.baselines.count} baselines"
        )
        if not ctl.journal.is_done(_judge_step(cohort, wave)):
            judge.append(
                WaveToJudge(
                    key=f"{cohort.key}/{wave.index}",
                    start=start,
                    end=end,
                    canaries=ctl.canary_refs(cohort, wave.canaries),
                    # outside any group: no {asg}; the type of the batch they were launched beside
                    baselines=[
                        InstanceRef(
                            split(place)[1],
                            iid,
                            "",
                            baseline_spot(wave).instance_type,
                            account=split(place)[0],
                        )
                        for place, ids in wave.baselines.ids.items()
                        for iid in ids
                    ],
                    target_groups=sides.side_groups(wave),
                )
            )
    ctl.save()
    # Wait out the windows plus CloudWatch's ingestion lag; a resumed run waits only what is left,
    # saying how long at least every minute.
    ctl.clock.wait(
        last_end + cfg.metric_delay_s - ctl.clock.time(),
        ctl.progress,
        f"analysing {', '.join(cohort.key for cohort, _ in waves)} (warm-up {cfg.warmup_s}s, "
        f"analysis {cfg.analysis_s}s, metric delay {cfg.metric_delay_s}s)",
    )
    verdicts = ctl.actions.judge(judge) if judge else {}
    for cohort, wave in waves:
        wave.verdict = ctl.step(
            _judge_step(cohort, wave),
            partial(keep_samples, ctl, cohort, wave, verdicts),
            save=False,
        )
    end_baselines(ctl, waves)
    for _, wave in waves:
        wave.status = "judged"
    ctl.save()


def keep_samples(
    ctl: Controller, cohort: CohortState, wave: Wave, verdicts: dict[str, Verdict]
) -> Verdict:
    """The wave's verdict, its raw samples written to the artifact bucket and named by their URI:
    the samples are most of a verdict's bytes and nobody reads them at a step (the journal and the
    wave's record keep the verdict without them)."""
    judged = verdicts[f"{cohort.key}/{wave.index}"]
    samples = judged.get("samples")
    if samples is None:
        return judged
    settings = ctl.ctx.settings
    key = f"canary/{ctl.id}/{cohort.key}/wave-{wave.index}/samples.json"
    uri = put_artifact(
        ctl.ctx.aws,
        settings.aws.artifact_bucket,
        key,
        json.dumps(samples),
        "application/json",
        settings.aws.regions[0],
    )
    kept = cast("Verdict", {name: value for name, value in judged.items() if name != "samples"})
    kept["samples_uri"] = uri
    return kept


def _judge_step(cohort: CohortState, wave: Wave) -> str:
    return f"judge:{cohort.key}:{wave.index}"


def end_baselines(ctl: Controller, waves: InFlight) -> None:
    """Terminate the waves' baselines once their verdicts are in: one request per region. The
    sides' own target groups (``canary.sides``) go first: the listener back as it was."""
    sides.tear_down(ctl, waves)
    left = [
        (cohort, wave)
        for cohort, wave in waves
        if wave.baselines.ids and not wave.baselines.cleaned
    ]
    if not left:
        return
    result = ctl.step(
        step_name("cleanup", [f"{cohort.key}:{wave.index}" for cohort, wave in left]),
        partial(
            ctl.actions.end_baselines,
            baseline_ids(wave for _, wave in left),
            baseline_traffic(wave for _, wave in left),
        ),
    )
    drained = float((result or {}).get("drained_s") or 0.0)  # a step done before: None
    for _, wave in left:
        wave.baselines.cleaned = True
        if wave.baselines.target_groups or wave.baselines.load_balancers:
            wave.baselines.drained_s = drained
    ctl.save()


def step_name(action: str, parts: list[str]) -> str:
    """A journal step's name for an action over several cohorts' waves: the waves it covers, or
    when they are many, the first, how many more and a digest of them all (stable on resume)."""
    name = f"{action}:{'+'.join(parts)}"
    if len(name) <= STEP_NAME_MAX:
        return name
    digest = hashlib.sha256("+".join(parts).encode()).hexdigest()[:12]
    return f"{action}:{parts[0]}+{len(parts) - 1}more:{digest}"
