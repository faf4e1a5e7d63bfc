"""What a rollout does to AWS, one journaled step each, on top of ``canary.executor``.

Every action here is one step of the rollout's journal (``orchestrator.engine.Operation``): it
reads the rollout's records, acts, and returns a JSON result; it never changes the records (the
state machine applies the result, on the first run and again when a resumed run replays a done
step). Each action is safe to run again after a kill half-way through, because it first looks at
what AWS already has:

* pinning finds the template version by its description (or its client token) before creating one;
* replacing a batch terminates only the batch's instances still in service in their group (never a
  replacement: batches name the *original* instances, fixed when the plan was made), each chunk
  after taking its launch tokens from the region's shared budget;
* baselines are found by their rollout and wave tags before more are launched;
* rolling back pins only groups not already back, and replaces only instances on the new base.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from canary import metrics as metric_source
from canary.config import CanarySettings
from canary.executor import Executor, GroupInfo
from canary.judge.decision import NODATA_QUERIES, Verdict, verdict
from canary.metrics import InstanceRef
from canary.model import BatchState, GroupState, Rollout
from canary.pacing import LaunchPacer, interleave
from canary.places import split, template_key, where
from canary.target_group_metrics import SideGroup
from canary.traffic import LoadBalancing, Traffic
from orchestrator.aws import Clients, client_token
from orchestrator.clock import Clock
from orchestrator.errors import NotFoundError
from orchestrator.tags import FAMILY_TAG, GROUP_TAG, ROLE_TAG, ROLLOUT_TAG, WAVE_TAG

LIVE = ("InService", "Pending", "Pending:Wait", "Pending:Proceed")  # members that still count
Progress = Callable[[str], None]


class RolloutActions:
    """The AWS side of one rollout: pin, replace, baselines, judge, roll back."""

    def __init__(self, aws: Clients, clock: Clock, cfg: CanarySettings, progress: Progress) -> None:
        self.aws = aws
        self.clock = clock
        self.cfg = cfg
        self.ex = Executor(aws, clock)
        self.lb = LoadBalancing(aws, clock)
        self.progress = progress

    def describe_groups(self, region: str, names: list[str]) -> dict[str, GroupInfo]:
        """The groups as AWS reports them now (read before each action that changes them);
        ``GroupsMissing`` when one no longer exists (deleted, or the endpoint restarted)."""
        found = self.ex.describe_groups(region, names)
        missing = sorted(set(names) - set(found))
        if missing:
            raise GroupsMissing(region, missing)
        return found

    # --- pinning
    # -------------------------------------------------------------------------------------
    def pin(
        self,
        rollout: Rollout,
        group: GroupState,
        info: GroupInfo,
        versions: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> dict[str, Any]:
        """Point the group at a new template version on the new AMI (made once per old version).

        ``versions`` gives the template's version listing when one is shared by several groups."""
        old = group.old_version
        tkey = template_key(group)
        made = rollout.templates.get(tkey)
        old_ami: str | None
        if made is None:
            marker = f"imagefleet canary {rollout.id} from v{old}"
            new_version, old_ami = self.ex.create_version(
                where(group.account, group.region),
                group.lt_id,
                old,
                group.new_ami,
                marker,
                client_token(rollout.id, tkey),
                versions() if versions else None,
            )
        else:
            new_version, old_ami = made.new_version, made.old_ami
        if str(info.lt_version) != str(new_version):
            self.ex.pin(info, new_version)
        return {
            "group": group.key,
            "old_version": old,
            "new_version": new_version,
            "old_ami": old_ami,
        }

    # --- replacing
    # ------------------------------------------------------------------------------------
    def replace(
        self,
        region: str,
        batches: list[BatchState],
        groups: dict[str, GroupInfo],
        pacer: LaunchPacer,
    ) -> Generator[float, None, dict[str, Any]]:
        """Terminate the batches' instances in their groups (the groups launch replacements).

        A process (``canary.pacing``): it waits out the batches' jittered offsets from the plan and,
        before each chunk of terminations, the launch tokens of the region's shared budget (of the
        batches' account: ``region`` is a place, ``canary.places``)."""
        account, bucket_region = split(region)
        terminated = 0
        elapsed = 0.0
        for batch in sorted(batches, key=lambda batch: batch.offset_s):
            if batch.offset_s > elapsed:
                yield batch.offset_s - elapsed
            elapsed = max(elapsed, batch.offset_s)
            live = {member.id for member in groups[batch.group].members if member.lifecycle in LIVE}
            # Reconcile: an instance no longer in service in its group was already terminated
            # (perhaps by a run that was killed): never touch it, nor pay a token for it, again.
            todo = [instance_id for instance_id in batch.instance_ids if instance_id in live]
            for lo in range(0, len(todo), pacer.chunk):
                chunk = todo[lo : lo + pacer.chunk]
                yield from pacer.take(bucket_region, len(chunk), account=account)
                terminated += sum(
                    1 for instance_id in chunk if self.ex.terminate_in_group(region, instance_id)
                )
        return {"terminated": terminated}

    def wait_replaced(
        self, region: str, names: list[str], exclude: set[str]
    ) -> dict[str, GroupInfo]:
        """Wait until the groups are back to capacity without the excluded instances."""
        return self.ex.wait_groups(
            region,
            names,
            exclude,
            timeout_s=self.cfg.instance_timeout_s,
            poll_s=self.cfg.poll_s,
            progress=self.progress,
        )

    def waiting_replaced(
        self, region: str, names: list[str], exclude: set[str]
    ) -> Generator[float, None, dict[str, GroupInfo]]:
        """``wait_replaced`` as a process (``canary.pacing``), so other regions work while it
        waits."""
        return self.ex.waiting_groups(
            region,
            names,
            exclude,
            timeout_s=self.cfg.instance_timeout_s,
            poll_s=self.cfg.poll_s,
            progress=self.progress,
        )

    # --- baselines
    # ------------------------------------------------------------------------------------
    def launch_baselines(
        self,
        rollout: Rollout,
        wave_tag: str,
        per_group: list[tuple[BatchState, int]],
        infos: dict[str, GroupInfo],
        *,
        again: bool,
    ) -> dict[str, list[str]]:
        """Fresh baselines on the old base (Kayenta's advice), ``count`` beside each batch's group.

        ``infos`` are groups already described (by group key); any other is described here, one
        request per place (a region of one account). Only a step run ``again`` (after a kill) looks
        for baselines an earlier attempt launched: one ``DescribeInstances`` per place for the
        whole wave. Waiting until they run is the caller's (one wait for every cohort's baselines).
        Returns the ids by place (``canary.places``)."""
        regions = sorted({where(batch.account, batch.region) for batch, _ in per_group})
        known = dict(infos)
        for region in regions:
            names = [
                batch.group
                for batch, _ in per_group
                if where(batch.account, batch.region) == region and batch.group_key not in known
            ]
            if names:
                known.update(
                    {info.key: info for info in self.ex.describe_groups(region, names).values()}
                )
        found: dict[str, list[str]] = {}
        if again:
            tags = {FAMILY_TAG: rollout.family, ROLLOUT_TAG: rollout.id, ROLE_TAG: "baseline"}
            for region in regions:
                for value, tagged in self.ex.find_tagged_by(
                    region, tags, WAVE_TAG, f"{wave_tag}/*"
                ).items():
                    found[f"{region}/{value.removeprefix(wave_tag + '/')}"] = tagged
        ids: dict[str, list[str]] = {}
        for batch, count in per_group:
            group = rollout.group_of(batch)
            tags = {
                FAMILY_TAG: rollout.family,
                ROLLOUT_TAG: rollout.id,
                ROLE_TAG: "baseline",
                WAVE_TAG: f"{wave_tag}/{batch.group}",
                GROUP_TAG: batch.group,
            }
            have = list(found.get(batch.group_key, []))
            if len(have) < count:
                have += self.ex.launch_baselines(
                    known[batch.group_key],
                    group.old_version,
                    batch.instance_type,
                    count - len(have),
                    tags,
                    client_token(rollout.id, wave_tag, batch.group, len(have)),
                )
            ids.setdefault(where(batch.account, batch.region), []).extend(have)
        return ids

    def wait_running(self, ids: dict[str, list[str]]) -> None:
        """Wait until the instances (by region) run: one poll per region for every cohort's
        baselines."""
        for region, region_ids in sorted(ids.items()):
            if region_ids:
                self.ex.wait_running(
                    region,
                    region_ids,
                    timeout_s=self.cfg.instance_timeout_s,
                    poll_s=self.cfg.poll_s,
                )

    def join_traffic(self, sides: list[tuple[str, list[str], Traffic]]) -> None:
        """Register baselines ((region, ids, traffic) each) in their group's load balancers, then
        wait until all are healthy there: the waits of every side run side by side."""
        sides = [(region, ids, traffic) for region, ids, traffic in sides if ids and traffic]
        for region, ids, traffic in sides:
            self.lb.register(region, ids, traffic)
        interleave(
            self.clock,
            [
                self.lb.waiting_healthy(
                    region,
                    ids,
                    traffic,
                    timeout_s=self.cfg.instance_timeout_s,
                    poll_s=self.cfg.poll_s,
                    progress=self.progress,
                )
                for region, ids, traffic in sides
            ],
        )

    def end_baselines(
        self,
        ids: dict[str, list[str]],
        traffic: list[tuple[str, list[str], Traffic]] | None = None,
    ) -> dict[str, Any]:
        """Take the baselines out of their load balancers (``traffic``: (region, ids, traffic)),
        wait out the longest connection drain, then terminate them: one request per region."""
        drain = self.lb.leave(traffic or [], self.progress)
        for region, region_ids in ids.items():
            self.ex.terminate_instances(region, region_ids)
        return {"drained_s": drain.waited_s, "deregistered": drain.deregistered}

    # --- judging
    # --------------------------------------------------------------------------------------
    def judge(self, waves: list[WaveToJudge]) -> dict[str, Verdict]:
        """Fetch every wave's window of metrics for its canaries and baselines and judge each.

        Waves with the same window share ``GetMetricData`` requests (up to 500 queries each).
        Datapoints can arrive later than ``metric_delay``: the waves still without data are
        queried again (twice at most, a ``metric_delay`` apart) before one is called "no data"
        and paused for a person. Returns the verdicts by wave key.
        """
        cfg = self.cfg
        verdicts: dict[str, Verdict] = {}
        todo = list(waves)
        for attempt in range(1, NODATA_QUERIES + 1):
            again: list[WaveToJudge] = []
            for (start, end), same in sorted(_by_window(todo).items()):
                t0 = datetime.fromtimestamp(start, UTC)
                t1 = datetime.fromtimestamp(end, UTC) + timedelta(seconds=1)
                sides = {
                    f"{side}:{w.key}": ids
                    for w in same
                    for side, ids in (("canary", w.canaries), ("baseline", w.baselines))
                }
                groups = {
                    f"{side}:{w.key}": group
                    for w in same
                    for side, group in w.target_groups.items()
                }
                samples = metric_source.fetch_sides(
                    self.aws,
                    sides,
                    cfg.metrics,
                    t0,
                    t1,
                    cfg.period_s,
                    prometheus_url=cfg.prometheus_url,
                    target_groups=groups,
                )
                for w in same:
                    result = verdict(cfg, samples[f"baseline:{w.key}"], samples[f"canary:{w.key}"])
                    result["queries"] = attempt
                    verdicts[w.key] = result
                    if result["decision"] == "nodata":
                        again.append(w)
            if not again or attempt == NODATA_QUERIES:
                break
            self.clock.wait(
                cfg.metric_delay_s,
                self.progress,
                f"{', '.join(w.key for w in again)}: no data yet, querying again",
            )
            todo = again
        return verdicts

    # --- rolling back
    # ---------------------------------------------------------------------------------
    def roll_back(self, region: str, groups: list[GroupState]) -> dict[str, Any]:
        """Groups back on their old template version; their instances on the new base terminated.
        A group that no longer exists is reported in ``missing`` (there is nothing to roll back).
        ``region`` is the groups' place: a region of the account they live in."""
        infos = self.ex.describe_groups(region, [group.name for group in groups])
        missing = sorted(group.name for group in groups if group.name not in infos)
        groups = [group for group in groups if group.name in infos]
        for group in groups:
            if str(infos[group.name].lt_version) != str(group.old_version):
                self.ex.pin(infos[group.name], group.old_version)
        members = [
            member.id
            for info in infos.values()
            for member in info.members
            if member.lifecycle == "InService"
        ]
        images = self.ex.instance_images(region, members)
        new_amis = {group.new_ami for group in groups}
        on_new = [iid for iid in members if images.get(iid, {}).get("ami") in new_amis]
        terminated = sum(1 for iid in on_new if self.ex.terminate_in_group(region, iid))
        return {"terminated": terminated, "instances": on_new, "missing": missing}


class GroupsMissing(NotFoundError):
    """Groups of a rollout that AWS no longer knows: their cohorts end ``lost``."""

    def __init__(self, region: str, names: list[str]) -> None:
        # region: a place (``canary.places``), so the keys are the groups' keys
        super().__init__(f"Auto Scaling group(s) gone in {region}: {', '.join(names)}")
        self.region = region
        self.keys = [f"{region}/{name}" for name in names]


@dataclass(frozen=True)
class WaveToJudge:
    """What judging one wave needs: its key (``cohort/wave``), window and instances by side."""

    key: str
    start: float
    end: float
    canaries: list[InstanceRef]
    baselines: list[InstanceRef]
    # side ("canary", "baseline") → its own target group, for cloudwatch-target-group metrics
    target_groups: dict[str, SideGroup] = field(default_factory=dict)


def _by_window(waves: list[WaveToJudge]) -> dict[tuple[float, float], list[WaveToJudge]]:
    out: dict[tuple[float, float], list[WaveToJudge]] = {}
    for wave in waves:
        out.setdefault((wave.start, wave.end), []).append(wave)
    return out
