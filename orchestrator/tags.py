"""The tags imagefleet puts on AWS resources, by name: one place to read what each one means.

AMIs carry family, version, stage, parent and bake id (what consumers and `gc` read); instances
and groups carry the family and, for the ones imagefleet launched itself, a role and the run they
belong to. IAM conditions (``pipelines/iam.py``) key on ``imagefleet:family``.
"""

from __future__ import annotations

FAMILY_TAG = "imagefleet:family"  # AMIs, launch templates, Auto Scaling groups, instances
VERSION_TAG = "imagefleet:version"  # AMIs: the base version
STAGE_TAG = "imagefleet:stage"  # AMIs: the highest stage naming the base now (else the last held)
PARENT_TAG = "imagefleet:parent"  # AMIs: the version this base was built from
BAKE_TAG = "imagefleet:bake-id"  # AMIs and snapshots: the bake that made them
ROLE_TAG = "imagefleet:role"  # instances imagefleet launched: perf / baseline / test
ROLLOUT_TAG = "imagefleet:rollout"  # canary baseline instances: their rollout
WAVE_TAG = "imagefleet:wave"  # canary baseline instances: their wave
GROUP_TAG = "imagefleet:group"  # canary baselines: the group whose load balancers they join
LISTENER_TAG = "imagefleet:listener"  # a wave's side target groups: the listener weighing them in
TEST_RUN_TAG = "imagefleet:test-run"  # image-test instances: their run
PERF_RUN_TAG = "imagefleet:perf-run"  # benchmark instances: their run
ARM_TAG = "imagefleet:arm"  # benchmark instances: new or old base
AMI_TAG = "imagefleet:ami"  # benchmark instances: the AMI they were asked to run
PERF_RESULTS_TAG = "imagefleet:perf-results"  # benchmark instances: where their results go
PERF_EXPIRES_TAG = "imagefleet:perf-expires"  # benchmark instances: when `gc` may reap them


def stage_flag(stage: str) -> str:
    """AMIs: ``imagefleet:stage:<stage>`` is ``true`` while ``stage`` names the base, ``false``
    after.

    A base can be current in several stages at once (the release that is also still the
    candidate); ``STAGE_TAG`` holds only the highest, these say each one exactly.
    """
    return f"{STAGE_TAG}:{stage}"
