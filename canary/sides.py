"""A wave's sides in target groups of their own, for ``cloudwatch-target-group`` metrics.

A load balancer publishes its metrics per target group, never per instance; to judge canaries
against baselines on them, each wave of a cohort whose group sits behind an ALB/NLB target group
does, as steps of the rollout's journal:

1. ``sides-make:<cohort>:<wave>``: two target groups like the group's own (the first of its
   ``TargetGroupARNs``; same protocol, port, VPC, health check and deregistration delay), tagged
   with the family and rollout; the step's result (recorded in the wave as ``sides``) names them,
   the listener that forwards to the group's target group, and that listener's default actions;
2. the wave's canaries (those in the target group's region) and baselines registered in their
   side's group, then a wait until healthy (registering again changes nothing: no step);
3. ``sides-weigh:<cohort>:<wave>``: the listener forwards across the group's target group and the
   two sides' with weights by their healthy targets (a weighted ``forward`` action);
4. the wave is judged with its ``cloudwatch-target-group`` metrics read per side's target group;
5. ``sides-restore:<cohort>:<wave>``: the listener's actions from before put back;
6. ``sides-remove:<cohort>:<wave>``: the targets deregistered, their connections drained (on the
   rollout's clock), the two target groups deleted.

Every step is idempotent, so a killed run that is resumed repeats the ones that were not done:
the target groups are found by name, the listener is put back from the actions recorded before it
was changed, deregistering and deleting what is gone already changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from canary.model import CohortState, SideGroups, Wave
from canary.places import client
from canary.target_group_metrics import (
    SideGroup,
    restore_listener,
    side_name,
    side_target_group,
    weigh_listener,
)
from canary.traffic import Traffic
from orchestrator.aws import batches
from orchestrator.errors import AwsError, UsageError
from orchestrator.tags import FAMILY_TAG, LISTENER_TAG, ROLE_TAG, ROLLOUT_TAG, WAVE_TAG

if TYPE_CHECKING:
    from canary.controller import Controller

MAX_WEIGHT = 999  # ELBv2's documented limit on a target group's weight in a forward action
SIDES = ("canary", "baseline")


class NoListener(AwsError):
    """The group's target group is behind no listener that forwards to it: nothing to weigh."""


def groups_without_target_group(
    groups: Mapping[str, Sequence[str]], by_target_group: bool
) -> list[str]:
    """The groups (key → target-group ARNs) whose metrics cannot be measured when a
    ``cloudwatch-target-group`` metric is configured: those behind no ALB/NLB target group."""
    return sorted(key for key, tgs in groups.items() if by_target_group and not tgs)


def refuse_unmeasurable(groups: Mapping[str, Sequence[str]], by_target_group: bool) -> None:
    """``canary start`` (and its dry run) refuses a rollout a metric cannot be measured for."""
    bare = groups_without_target_group(groups, by_target_group)
    if bare:
        shown = ", ".join(bare[:5]) + (f" and {len(bare) - 5} more" if len(bare) > 5 else "")
        raise UsageError(
            f"a cloudwatch-target-group metric is configured but group(s) {shown} sit behind no "
            "ALB/NLB target group: the metric cannot be measured for their canaries",
            hint="attach a target group to the group, leave it out of [canary].groups, or use "
            "another metric source",
        )


def own_side_groups(aws: Any, groups: Mapping[str, Sequence[str]]) -> dict[str, SideGroup]:
    """Each group's own target group (the first of its ``TargetGroupARNs``, which the sides are
    made like) behind the load balancer of the listener forwarding to it, by group key.
    ``canary start`` (and its dry run) refuses a group whose target group no listener forwards
    to: nothing would send the sides traffic."""
    out: dict[str, SideGroup] = {}
    for key, tgs in sorted(groups.items()):
        if not tgs:
            continue
        region = tgs[0].split(":")[3]
        elbv2 = client(aws, "elbv2", region)
        like = elbv2.describe_target_groups(TargetGroupArns=[tgs[0]])["TargetGroups"][0]
        try:
            _, _, lb = _listener_of(elbv2, tgs[0], like.get("LoadBalancerArns") or [])
        except NoListener as exc:
            raise UsageError(f"group {key}: {exc.message}", hint=exc.hint) from exc
        out[key] = SideGroup(region, tgs[0], lb)
    return out


# --- the actions (one journaled step each) -------------------------------------------------------
def make(aws: Any, rollout_id: str, family: str, wave_key: str, region: str, own: str) -> Any:
    """Make (or find, after a kill) the wave's two side target groups like ``own``, and read the
    listener forwarding to ``own`` and its actions: the wave's ``SideGroups`` as a document."""
    elbv2 = client(aws, "elbv2", region)
    like = elbv2.describe_target_groups(TargetGroupArns=[own])["TargetGroups"][0]
    listener, actions, load_balancer = _listener_of(elbv2, own, like.get("LoadBalancerArns") or [])
    attrs = elbv2.describe_target_group_attributes(TargetGroupArn=own)["Attributes"]
    delay = next(
        (a["Value"] for a in attrs if a.get("Key") == "deregistration_delay.timeout_seconds"), None
    )
    tags = {
        FAMILY_TAG: family,
        ROLLOUT_TAG: rollout_id,
        WAVE_TAG: wave_key,
        ROLE_TAG: "side",
        LISTENER_TAG: listener,  # what ``gc`` takes it out of, should the rollout die
    }
    made: dict[str, str] = {}
    for side in SIDES:
        arn = side_target_group(aws, region, own, side_name(rollout_id, wave_key, side), tags)
        if delay is not None:
            elbv2.modify_target_group_attributes(
                TargetGroupArn=arn,
                Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": delay}],
            )
        made[side] = arn
    return SideGroups(
        region=region,
        own=own,
        load_balancer=load_balancer,
        listener=listener,
        canary=made["canary"],
        baseline=made["baseline"],
        actions=actions,
    ).to_dict()


def _listener_of(elbv2: Any, own: str, load_balancers: list[str]) -> tuple[str, Any, str]:
    for lb in load_balancers:
        for listener in elbv2.describe_listeners(LoadBalancerArn=lb)["Listeners"]:
            actions = listener.get("DefaultActions") or []
            if any(own in _forwards_to(action) for action in actions):
                return str(listener["ListenerArn"]), list(actions), str(lb)
    raise NoListener(
        f"target group {own} is behind no listener that forwards to it: a "
        "cloudwatch-target-group metric cannot be measured",
        hint="forward a listener's default action to the group's target group",
    )


def _forwards_to(action: Mapping[str, Any]) -> set[str]:
    if action.get("Type") != "forward":
        return set()
    arns = {str(action["TargetGroupArn"])} if action.get("TargetGroupArn") else set()
    config = action.get("ForwardConfig") or {}
    return arns | {str(t["TargetGroupArn"]) for t in config.get("TargetGroups") or []}


def weigh(aws: Any, sides: SideGroups, counts: Mapping[str, int]) -> dict[str, int]:
    """The listener forwards across the group's target group and the sides', each weighted by
    its healthy targets (so every target takes about the same share): the weights set."""
    health = client(aws, "elbv2", sides.region).describe_target_health(TargetGroupArn=sides.own)
    own = sum(
        1
        for d in health.get("TargetHealthDescriptions", [])
        if d.get("TargetHealth", {}).get("State") == "healthy"
    )
    weights = {
        sides.own: min(MAX_WEIGHT, max(1, own)),
        sides.canary: min(MAX_WEIGHT, max(1, counts.get("canary", 0))),
        sides.baseline: min(MAX_WEIGHT, max(1, counts.get("baseline", 0))),
    }
    weigh_listener(aws, sides.region, sides.listener, weights)
    return weights


def restore(aws: Any, sides: SideGroups) -> dict[str, Any]:
    restore_listener(aws, sides.region, sides.listener, sides.actions)
    return {"listener": sides.listener}


def remove(ctl: Controller, sides: SideGroups, members: Mapping[str, list[str]]) -> dict[str, Any]:
    """Deregister both sides' targets, wait out the drain on the rollout's clock, delete the
    target groups (one already gone is fine)."""
    drain = ctl.actions.lb.leave(
        [
            (sides.region, members.get(side, []), Traffic((arn,)))
            for side, arn in (("canary", sides.canary), ("baseline", sides.baseline))
        ],
        ctl.progress,
    )
    elbv2 = client(ctl.actions.aws, "elbv2", sides.region)
    for arn in (sides.canary, sides.baseline):
        try:
            elbv2.delete_target_group(TargetGroupArn=arn)
        except AwsError as exc:
            if exc.code != "TargetGroupNotFound":
                raise
    return {"drained_s": drain.waited_s, "deleted": [sides.canary, sides.baseline]}


# --- in a round ----------------------------------------------------------------------------------
def members(ctl: Controller, cohort: CohortState, wave: Wave, region: str) -> dict[str, list[str]]:
    """Each side's instances in the side groups' region."""
    refs = ctl.canary_refs(cohort, wave.canaries)
    canaries = {ref.instance_id for ref in refs if ref.region == region}
    return {"canary": sorted(canaries), "baseline": list(wave.baselines.ids.get(region, []))}


def set_up(ctl: Controller, waves: list[tuple[CohortState, Wave, str]]) -> None:
    """Steps 1–3 for the waves ((cohort, wave, the group's target group) each) whose sides are
    not weighted in yet."""
    todo = [(c, w, own) for c, w, own in waves if w.sides is None or w.sides.status == "made"]
    for cohort, wave, own in todo:
        region = own.split(":")[3]
        doc = ctl.step(
            f"sides-make:{cohort.key}:{wave.index}",
            partial(
                make,
                ctl.actions.aws,
                ctl.rollout.id,
                ctl.rollout.family,
                f"{cohort.key}/{wave.index}",
                region,
                own,
            ),
        )
        if wave.sides is None:
            wave.sides = SideGroups.from_dict(doc)
    ctl.save()
    joining = []
    for cohort, wave, _ in todo:
        assert wave.sides is not None
        here = members(ctl, cohort, wave, wave.sides.region)
        joining += [
            (wave.sides.region, here["canary"], Traffic((wave.sides.canary,))),
            (wave.sides.region, here["baseline"], Traffic((wave.sides.baseline,))),
        ]
    ctl.actions.join_traffic(joining)
    for cohort, wave, _ in todo:
        sides = wave.sides
        assert sides is not None
        here = members(ctl, cohort, wave, sides.region)
        ctl.step(
            f"sides-weigh:{cohort.key}:{wave.index}",
            partial(weigh, ctl.actions.aws, sides, {k: len(v) for k, v in here.items()}),
            save=False,
        )
        sides.status = "weighted"
        ctl.progress(
            f"cohort {cohort.key}: canaries and baselines in target groups of their own behind "
            f"{sides.load_balancer.split('/', 1)[-1]}"
        )
    ctl.save()


def tear_down(ctl: Controller, waves: list[tuple[CohortState, Wave]]) -> None:
    """Steps 5–6 for the waves whose side target groups are still there."""
    left = [(c, w) for c, w in waves if w.sides is not None and w.sides.status != "removed"]
    if not left:
        return
    for cohort, wave in left:
        sides = wave.sides
        assert sides is not None
        if sides.status != "restored":
            ctl.step(
                f"sides-restore:{cohort.key}:{wave.index}", partial(restore, ctl.actions.aws, sides)
            )
            sides.status = "restored"
        here = members(ctl, cohort, wave, sides.region)
        ctl.step(f"sides-remove:{cohort.key}:{wave.index}", partial(remove, ctl, sides, here))
        sides.status = "removed"
    ctl.save()


def side_groups(wave: Wave) -> dict[str, SideGroup]:
    """The wave's sides as the fetch takes them (side → ``SideGroup``), once weighted in."""
    sides = wave.sides
    if sides is None or sides.status != "weighted":
        return {}
    return {
        "canary": SideGroup(sides.region, sides.canary, sides.load_balancer),
        "baseline": SideGroup(sides.region, sides.baseline, sides.load_balancer),
    }


# --- gc: side target groups a dead rollout left -------------------------------------------------
TAGS_PER_REQUEST = 20  # DescribeTags' documented limit on resource ARNs


def side_target_groups(aws: Any, region: str) -> list[tuple[str, dict[str, str]]]:
    """The side target groups imagefleet made in ``region`` (named ``if-…``, tagged
    ``imagefleet:role=side``), with their tags."""
    elbv2 = client(aws, "elbv2", region)
    arns = [
        str(g["TargetGroupArn"])
        for page in elbv2.paginate("describe_target_groups")
        for g in page.get("TargetGroups", [])
        if str(g.get("TargetGroupName", "")).startswith("if-")
    ]
    out: list[tuple[str, dict[str, str]]] = []
    for chunk in batches(arns, TAGS_PER_REQUEST):
        for d in elbv2.describe_tags(ResourceArns=list(chunk)).get("TagDescriptions", []):
            tags = {str(t["Key"]): str(t.get("Value", "")) for t in d.get("Tags", [])}
            if tags.get(ROLE_TAG) == "side":
                out.append((str(d["ResourceArn"]), tags))
    return out


def without(action: Mapping[str, Any], arn: str) -> dict[str, Any]:
    """A listener action no longer forwarding to ``arn`` (pure): a weighted forward keeps its other
    target groups, and with one left becomes a plain forward to it."""
    out = dict(action)
    config = action.get("ForwardConfig")
    if action.get("Type") != "forward" or not config:
        return out
    kept = [dict(t) for t in config.get("TargetGroups") or [] if t.get("TargetGroupArn") != arn]
    if len(kept) == 1:
        out.pop("ForwardConfig", None)
        out["TargetGroupArn"] = kept[0]["TargetGroupArn"]
    else:
        out["ForwardConfig"] = {**config, "TargetGroups": kept}
    return out


def release_side_group(aws: Any, region: str, arn: str, listener: str) -> None:
    """A dead rollout's side target group out of ``listener`` (its ``imagefleet:listener`` tag),
    then deleted (``gc``: the rollout's record no longer says what the listener was; the
    listener's other target groups keep their weights). One already gone is fine."""
    elbv2 = client(aws, "elbv2", region)
    if listener:
        try:
            found = elbv2.describe_listeners(ListenerArns=[listener])["Listeners"]
        except AwsError as exc:
            if exc.code != "ListenerNotFound":
                raise
            found = []
        for one in found:
            actions = one.get("DefaultActions") or []
            if any(arn in _forwards_to(a) for a in actions):
                elbv2.modify_listener(
                    ListenerArn=one["ListenerArn"],
                    DefaultActions=[without(a, arn) for a in actions],
                )
    try:
        elbv2.delete_target_group(TargetGroupArn=arn)
    except AwsError as exc:
        if exc.code != "TargetGroupNotFound":
            raise
