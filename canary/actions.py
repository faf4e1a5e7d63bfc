"""What a rollout does to AWS, one journaled step each, on top of ``canary.executor``.

Every action here is one step of the rollout's journal (``orchestrator.engine.Operation``): it
reads the rollout's records, acts, and returns a JSON result; it never changes the records (the
state machine applies the result, on the first run and again when a resumed run replays a done
step). Each action is safe to run again after a kill half-way through, because it first looks at
what AWS already has:

* pinning finds the template version by its description (or its client token) before creating one;
* replacing a batch terminates only the batch's instances still in service in their group (never a
  replacement: batches name the *original* instances, fixed when the plan was made);
* baselines are found by their rollout and wave tags before more are launched;
* rolling back pins only groups not already back, and replaces only instances on the new base.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from canary import metrics as metric_source
from canary.config import CanarySettings
from canary.executor import Executor, GroupInfo
from canary.model import BatchState, GroupState, Rollout, Wave
from canary.verdict import NODATA_QUERIES, Verdict, verdict
from orchestrator.aws import AwsFactory, client_token
from orchestrator.clock import Clock
from orchestrator.tags import FAMILY_TAG, ROLE_TAG, ROLLOUT_TAG, WAVE_TAG

LIVE = ("InService", "Pending", "Pending:Wait", "Pending:Proceed")  # members that still count
Progress = Callable[[str], None]


class RolloutActions:
    """The AWS side of one rollout: pin, replace, baselines, judge, roll back."""

    def __init__(self, aws: AwsFactory, clock: Clock, cfg: CanarySettings, progress: Progress) -> None:
        self.aws = aws
        self.clock = clock
        self.cfg = cfg
        self.ex = Executor(aws, clock)
        self.progress = progress

    def describe_groups(self, region: str, names: list[str]) -> dict[str, GroupInfo]:
        """The groups as AWS reports them now (read before each action that changes them)."""
        return self.ex.describe_groups(region, names)

    # --- pinning -------------------------------------------------------------------------------------
    def pin(self, rollout: Rollout, group: GroupState, info: GroupInfo) -> dict[str, Any]:
        """Point the group at a new template version on the new AMI (made once per old version)."""
        old = group.old_version
        tkey = template_key(group)
        made = rollout.templates.get(tkey)
        old_ami: str | None
        if made is None:
            marker = f"imagefleet canary {rollout.id} from v{old}"
            new_version, old_ami = self.ex.create_version(group.region, group.lt_id, old, group.new_ami, marker,
                                                          client_token(rollout.id, tkey))
        else:
            new_version, old_ami = made.new_version, made.old_ami
        if str(info.lt_version) != str(new_version):
            self.ex.pin(info, new_version)
        return {"group": group.key, "old_version": old, "new_version": new_version, "old_ami": old_ami}

    # --- replacing ------------------------------------------------------------------------------------
    def replace(self, region: str, batches: list[BatchState], groups: dict[str, GroupInfo]) -> dict[str, Any]:
        """Terminate the batches' instances in their groups (the groups launch replacements)."""
        terminated = 0
        elapsed = 0.0
        for batch in sorted(batches, key=lambda batch: batch.offset_s):
            # Jittered spacing between a region's batches (offsets from the plan).
            self.clock.sleep(batch.offset_s - elapsed)
            elapsed = max(elapsed, batch.offset_s)
            live = {member.id for member in groups[batch.group].members if member.lifecycle in LIVE}
            for instance_id in batch.instance_ids:
                # Reconcile: an instance no longer in service in its group was already
                # terminated (perhaps by a run that was killed): never touch it again.
                if instance_id in live and self.ex.terminate_in_group(region, instance_id):
                    terminated += 1
        return {"terminated": terminated}

    def wait_replaced(self, region: str, names: list[str], exclude: set[str]) -> dict[str, GroupInfo]:
        """Wait until the groups are back to capacity without the excluded instances."""
        return self.ex.wait_groups(region, names, exclude, timeout_s=self.cfg.instance_timeout_s,
                                   poll_s=self.cfg.poll_s, progress=self.progress)

    # --- baselines ------------------------------------------------------------------------------------
    def launch_baselines(self, rollout: Rollout, wave_tag: str,
                         per_group: list[tuple[BatchState, int]]) -> dict[str, list[str]]:
        """Fresh baselines on the old base (Kayenta's advice), ``count`` beside each batch's group."""
        ids: dict[str, list[str]] = {}
        for batch, count in per_group:
            group = rollout.group_of(batch)
            tags = {FAMILY_TAG: rollout.family, ROLLOUT_TAG: rollout.id, ROLE_TAG: "baseline",
                    WAVE_TAG: f"{wave_tag}/{batch.group}"}
            found = self.ex.find_tagged(batch.region, tags)
            if len(found) < count:
                info = self.ex.describe_groups(batch.region, [batch.group])[batch.group]
                found += self.ex.launch_baselines(info, group.old_version, batch.instance_type, count - len(found),
                                                  tags, client_token(rollout.id, wave_tag, batch.group, len(found)))
            ids.setdefault(batch.region, []).extend(found)
        for region, region_ids in ids.items():
            self.ex.wait_running(region, region_ids, timeout_s=self.cfg.instance_timeout_s, poll_s=self.cfg.poll_s)
        return ids

    def end_baselines(self, ids: dict[str, list[str]]) -> None:
        for region, region_ids in ids.items():
            self.ex.terminate_instances(region, region_ids)

    # --- judging --------------------------------------------------------------------------------------
    def judge(self, cohort: str, wave: Wave, canaries: list[tuple[str, str]], start: float, end: float) -> Verdict:
        """Fetch the window's metrics for canaries and baselines and judge them.

        Datapoints can arrive later than ``metric_delay``: query again (twice at most, a
        ``metric_delay`` apart) before calling the wave "no data" and pausing for a person.
        """
        baselines = [(region, iid) for region, ids in wave.baselines.ids.items() for iid in ids]
        t0 = datetime.fromtimestamp(start, UTC)
        t1 = datetime.fromtimestamp(end, UTC) + timedelta(seconds=1)
        cfg = self.cfg
        for attempt in range(1, NODATA_QUERIES + 1):
            # Canaries and baselines share GetMetricData requests (up to 500 queries each).
            samples = metric_source.fetch_sides(self.aws, {"canary": canaries, "baseline": baselines},
                                                cfg.metrics, t0, t1, cfg.period_s)
            result = verdict(cfg, samples["baseline"], samples["canary"])
            if result["decision"] != "nodata" or attempt == NODATA_QUERIES:
                result["queries"] = attempt
                return result
            self.progress(f"cohort {cohort}: no data yet, querying again in {cfg.metric_delay_s:.0f}s")
            self.clock.sleep(cfg.metric_delay_s)
        raise AssertionError("unreachable")

    # --- rolling back ---------------------------------------------------------------------------------
    def roll_back(self, region: str, groups: list[GroupState]) -> dict[str, Any]:
        """Groups back on their old template version; their instances on the new base terminated."""
        infos = self.ex.describe_groups(region, [group.name for group in groups])
        for group in groups:
            if str(infos[group.name].lt_version) != str(group.old_version):
                self.ex.pin(infos[group.name], group.old_version)
        members = [member.id for info in infos.values() for member in info.members if member.lifecycle == "InService"]
        images = self.ex.instance_images(region, members)
        new_amis = {group.new_ami for group in groups}
        on_new = [iid for iid in members if images.get(iid, {}).get("ami") in new_amis]
        terminated = sum(1 for iid in on_new if self.ex.terminate_in_group(region, iid))
        return {"terminated": terminated, "instances": on_new}


def template_key(group: GroupState) -> str:
    """Template versions are made once per launch template and old version, shared by its groups."""
    return f"{group.region}/{group.lt_id}/{group.old_version}"
