"""Baselines in the traffic, on plain data: names, CloudWatch dimensions, and where each side of a
wave took traffic. The integration test (baselines registered, and after a kill deregistered,
drained and terminated on resume) is ``test_canary_resume``'s ``cleanup-before`` point."""

from __future__ import annotations

from canary.model import Baselines, BatchState, GroupState, SideGroups, Wave
from canary.records import WaveView
from canary.report_rows import cell
from canary.sides import _forwards_to, groups_without_target_group, side_groups
from canary.traffic import Traffic, arn_suffix, target_group_name

TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/73e2d6bc24d8a067"
LB_ARN = (
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/front/50dc6c495c0c9188"
)


def test_names_and_cloudwatch_dimensions_of_arns() -> None:
    assert target_group_name(TG_ARN) == "web"
    assert arn_suffix(TG_ARN) == "targetgroup/web/73e2d6bc24d8a067"
    assert arn_suffix(LB_ARN) == "app/front/50dc6c495c0c9188"
    assert Traffic((TG_ARN,), ("classic",)).names() == ["targetgroup/web", "elb/classic"]
    assert not Traffic()


def test_a_wave_says_where_each_side_took_traffic() -> None:
    group = GroupState("us-east-1", "g", "lt-1", "1", 1, "ami-new", False, target_groups=[TG_ARN])
    bare = GroupState("us-east-1", "h", "lt-1", "1", 1, "ami-new", False)
    wave = Wave(
        index=0,
        target=2,
        steps=1,
        batches=[
            BatchState("us-east-1", "g", 0, 0.0, ["i-1"]),
            BatchState("us-east-1", "h", 0, 0.0, ["i-2"]),
        ],
        status="judged",
        baselines=Baselines(status="done", ids={"us-east-1": ["i-9"]}, target_groups=[TG_ARN]),
    )
    groups = {group.key: group, bare.key: bare}
    view = WaveView.of(wave, groups)
    assert view.canary_traffic == view.baseline_traffic == ("targetgroup/web",)
    assert cell(view).traffic == ("canaries: targetgroup/web", "baselines: targetgroup/web")
    wave.status = "pending"  # not started: no canaries in traffic yet
    assert WaveView.of(wave, groups).canary_traffic == ()
    alone = WaveView.of(
        Wave(index=0, target=1, steps=1, batches=wave.batches[1:], status="judged"), groups
    )
    assert alone.traffic_json() == {"wave": 0, "canaries": [], "baselines": []}


def test_which_groups_a_target_group_metric_cannot_measure_and_what_a_listener_forwards_to() -> (
    None
):
    groups = {"us-east-1/web": [TG_ARN], "us-east-1/batch": []}
    assert groups_without_target_group(groups, by_target_group=True) == ["us-east-1/batch"]
    assert groups_without_target_group(groups, by_target_group=False) == []
    weighted = {
        "Type": "forward",
        "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": TG_ARN, "Weight": 9}]},
    }
    assert _forwards_to(weighted) == {TG_ARN}
    assert _forwards_to({"Type": "forward", "TargetGroupArn": TG_ARN}) == {TG_ARN}
    assert _forwards_to({"Type": "redirect", "RedirectConfig": {}}) == set()
    wave = Wave(index=0, target=1, steps=1, batches=[])
    assert side_groups(wave) == {}  # no side target groups: the fetch gets none
    wave.sides = SideGroups("us-east-1", TG_ARN, LB_ARN, "l", "c", "b", status="weighted")
    assert side_groups(wave)["baseline"].target_group == "b"
    assert Wave.from_dict(wave.to_dict()).sides == wave.sides
