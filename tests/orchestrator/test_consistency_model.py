"""The fault proxy's consistency model on plain requests and answers: no network, a clock the test
sets."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from orchestrator.local.consistency import Call, Consistency, call_of

NS = "http://ec2.amazonaws.com/doc/2016-11-15"


class Now:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def now() -> Now:
    return Now()


@pytest.fixture
def model(now: Now) -> Consistency:
    return Consistency(5.0, now)


def ec2(action: str, **params: str) -> Call:
    call = call_of("ec2", "us-east-1", "", urlencode({"Action": action, **params}).encode())
    assert call is not None
    return call


def images_answer(*items: tuple[str, dict[str, str]]) -> bytes:
    body = "".join(
        f"<item><imageId>{ami}</imageId><tagSet>"
        + "".join(f"<item><key>{k}</key><value>{v}</value></item>" for k, v in tags.items())
        + "</tagSet></item>"
        for ami, tags in items
    )
    return (
        '<?xml version="1.0"?><DescribeImagesResponse '
        f'xmlns="{NS}"><imagesSet>{body}</imagesSet></DescribeImagesResponse>'
    ).encode()


def listed(answer: bytes) -> list[str]:
    import xml.etree.ElementTree as ET

    return [e.text or "" for e in ET.fromstring(answer).iter(f"{{{NS}}}imageId")]


def created(model: Consistency, ami: str) -> None:
    model.record(
        ec2("CreateImage", InstanceId="i-1", Name="x"),
        (
            f'<CreateImageResponse xmlns="{NS}"><imageId>{ami}</imageId></CreateImageResponse>'
        ).encode(),
        None,
    )


def test_a_new_image_is_refused_by_id_and_pruned_from_listings_for_the_window(
    model: Consistency, now: Now
) -> None:
    created(model, "ami-new")
    refusal = model.refuse(
        ec2("DescribeImages", **{"ImageId.1": "ami-old", "ImageId.2": "ami-new"})
    )
    assert (
        refusal is not None
        and refusal.code == "InvalidAMIID.NotFound"
        and "ami-new" in refusal.message
    )
    answer = images_answer(("ami-old", {}), ("ami-new", {}))
    assert listed(model.rewrite(ec2("DescribeImages"), answer)) == ["ami-old"]
    now.t += 4.99
    assert model.hidden("us-east-1", "ami-new")
    assert not model.hidden("us-west-2", "ami-new")  # regions are apart
    now.t += 0.01
    assert model.refuse(ec2("DescribeImages", **{"ImageId.1": "ami-new"})) is None
    assert (
        model.rewrite(ec2("DescribeImages"), answer) == answer
    )  # untouched bytes once nothing is stale
    assert model.snapshot() == {
        "created": 1,
        "changed": 0,
        "not_found": 1,
        "left_out": 1,
        "old_value": 0,
    }


def test_changed_tags_read_old_and_a_tag_filter_is_judged_on_the_old_tags(
    model: Consistency, now: Now
) -> None:
    call = ec2(
        "CreateTags", **{"ResourceId.1": "ami-1", "Tag.1.Key": "stage", "Tag.1.Value": "release"}
    )
    prior = model.prior(call)
    assert prior is not None and b"Action=DescribeTags" in prior.body and b"ami-1" in prior.body
    old = (
        "<DescribeTagsResponse "
        f'xmlns="{NS}"><tagSet><item><key>stage</key><resourceId>ami-1</resourceId>'
        f"<value>candidate</value></item></tagSet></DescribeTagsResponse>"
    ).encode()
    model.record(call, b"<CreateTagsResponse/>", (200, old))
    answer = images_answer(("ami-1", {"stage": "release"}))
    by_release = ec2(
        "DescribeImages", **{"Filter.1.Name": "tag:stage", "Filter.1.Value.1": "release"}
    )
    assert listed(model.rewrite(by_release, answer)) == []
    rewritten = model.rewrite(ec2("DescribeImages"), answer)
    assert b"<value>candidate</value>" in rewritten and b"release" not in rewritten
    # a second change inside the window: reads may still show the value from before the first
    model.record(call, b"<CreateTagsResponse/>", (200, old.replace(b"candidate", b"release")))
    now.t += 4.0
    assert b"<value>candidate</value>" in model.rewrite(ec2("DescribeImages"), answer)
    now.t += 5.0
    assert model.rewrite(ec2("DescribeImages"), answer) == answer


def test_instances_and_template_versions(model: Consistency) -> None:
    model.record(
        ec2("RunInstances"),
        (
            f'<RunInstancesResponse xmlns="{NS}"><instancesSet><item><instanceId>i-a</instanceId>'
            f"</item><item><instanceId>i-b</instanceId></item></instancesSet></RunInstancesResponse>"
        ).encode(),
        None,
    )
    refusal = model.refuse(ec2("DescribeInstances", **{"InstanceId.1": "i-b"}))
    assert refusal is not None and refusal.code == "InvalidInstanceID.NotFound"
    answer = (
        "<DescribeInstancesResponse "
        f'xmlns="{NS}"><reservationSet><item><instancesSet><item><instanceId>i-a</instanceId>'
        f"</item></instancesSet></item><item><instancesSet><item><instanceId>i-old</instanceId></item></instancesSet>"
        f"</item></reservationSet></DescribeInstancesResponse>"
    ).encode()
    rewritten = model.rewrite(ec2("DescribeInstances"), answer)
    assert (
        b"i-a" not in rewritten
        and b"i-old" in rewritten
        and rewritten.count(b"<instancesSet>") == 1
    )
    model.record(
        ec2("CreateLaunchTemplateVersion", LaunchTemplateId="lt-1"),
        (
            "<CreateLaunchTemplateVersionResponse "
            f'xmlns="{NS}"><launchTemplateVersion><launchTemplateId>lt-1'
            f"</launchTemplateId><versionNumber>3</versionNumber></launchTemplateVersion>"
            f"</CreateLaunchTemplateVersionResponse>"
        ).encode(),
        None,
    )
    refusal = model.refuse(
        ec2(
            "DescribeLaunchTemplateVersions",
            LaunchTemplateId="lt-1",
            **{"LaunchTemplateVersion.1": "3"},
        )
    )
    assert refusal is not None and refusal.code == "InvalidLaunchTemplateId.VersionNotFound"
    assert (
        model.refuse(
            ec2(
                "DescribeLaunchTemplateVersions",
                LaunchTemplateId="lt-1",
                **{"LaunchTemplateVersion.1": "2"},
            )
        )
        is None
    )


def test_parameters_new_then_overwritten(model: Consistency, now: Now) -> None:
    put = call_of(
        "ssm",
        "us-east-1",
        "AmazonSSM.PutParameter",
        json.dumps({"Name": "/p", "Value": "b"}).encode(),
    )
    get = call_of("ssm", "us-east-1", "AmazonSSM.GetParameter", b'{"Name": "/p"}')
    assert put is not None and get is not None
    prior = model.prior(put)
    assert prior is not None and prior.target == "AmazonSSM.GetParameter"
    model.record(put, b'{"Version": 1}', (400, b'{"__type": "ParameterNotFound"}'))
    refusal = model.refuse(get)
    assert refusal is not None and refusal.code == "ParameterNotFound"
    now.t += 5.0
    model.record(
        put,
        b'{"Version": 2}',
        (200, json.dumps({"Parameter": {"Name": "/p", "Value": "a"}}).encode()),
    )
    refusal = model.refuse(get)
    assert (
        refusal is not None
        and refusal.code == ""
        and json.loads(refusal.body)["Parameter"]["Value"] == "a"
    )
    many = call_of("ssm", "us-east-1", "AmazonSSM.GetParameters", b'{"Names": ["/p"]}')
    assert many is not None
    answer = json.dumps(
        {"Parameters": [{"Name": "/p", "Value": "b"}], "InvalidParameters": []}
    ).encode()
    assert json.loads(model.rewrite(many, answer))["Parameters"] == [{"Name": "/p", "Value": "a"}]


def test_other_services_and_actions_are_left_alone(model: Consistency) -> None:
    assert call_of("dynamodb", "us-east-1", "DynamoDB_20120810.GetItem", b"{}") is None
    assert call_of("ssm", "us-east-1", "", b"{}") is None
    created(model, "ami-new")
    call = ec2("DescribeSnapshots")
    assert model.refuse(call) is None and model.rewrite(call, b"<x/>") == b"<x/>"


def test_tagging_sharing_or_launching_from_what_ec2_does_not_know_yet_is_refused(
    model: Consistency, now: Now
) -> None:
    created(model, "ami-new")
    for call in (
        ec2("CreateTags", **{"ResourceId.1": "ami-new", "Tag.1.Key": "k", "Tag.1.Value": "v"}),
        ec2("ModifyImageAttribute", ImageId="ami-new", Attribute="launchPermission"),
        ec2("RunInstances", ImageId="ami-new", MinCount="1", MaxCount="1"),
    ):
        refusal = model.refuse(call)
        assert refusal is not None and refusal.code == "InvalidAMIID.NotFound", call.action
    assert model.refuse(ec2("CreateTags", **{"ResourceId.1": "snap-1", "Tag.1.Key": "k"})) is None
    now.t += 5.0
    assert model.refuse(ec2("CreateTags", **{"ResourceId.1": "ami-new", "Tag.1.Key": "k"})) is None
