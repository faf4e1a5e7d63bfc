"""The fault proxy's eventual consistency on the wire: boto3 clients, moto behind, a clock the test
moves.

With ``consistency=5s,clock=manual`` the proxy's window moves only when the test advances it, so
every assertion about "not yet" and "by now" is exact however loaded the machine.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from orchestrator.aws import LOCAL_CREDENTIALS, AwsFactory
from orchestrator.clock import VirtualClock
from orchestrator.errors import NotFoundError
from orchestrator.local import faultproxy

pytestmark = pytest.mark.integration


def factory(url: str, clock: VirtualClock | None = None) -> AwsFactory:
    return AwsFactory(
        endpoint_url=url,
        credentials=dict(LOCAL_CREDENTIALS),
        max_attempts=3,
        backoff_multiplier=0.001,
        backoff_max=0.01,
        sleep=(clock or VirtualClock()).sleep,
    )


def stock(ec2: Any) -> str:
    return str(
        min(
            i["ImageId"]
            for i in ec2.describe_images(Filters=[{"Name": "architecture", "Values": ["x86_64"]}])[
                "Images"
            ]
        )
    )


def images(ec2: Any, **kwargs: Any) -> list[str]:
    return [i["ImageId"] for i in ec2.describe_images(**kwargs)["Images"]]


def test_a_new_ami_is_not_found_by_id_and_left_out_of_listings_until_the_window_passes(
    consistency_proxy, aws
) -> None:
    ec2 = factory(consistency_proxy).client("ec2")
    iid = aws.client("ec2").run_instances(ImageId=stock(aws.client("ec2")), MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=iid, Name=f"c-{uuid.uuid4().hex[:8]}")["ImageId"]
    with pytest.raises(NotFoundError, match=r"InvalidAMIID\.NotFound"):
        ec2.describe_images(ImageIds=[ami])
    assert images(ec2, Filters=[{"Name": "image-id", "Values": [ami]}]) == []
    assert images(aws.client("ec2"), ImageIds=[ami]) == [ami]  # moto itself has it
    faultproxy.advance(consistency_proxy, 4.9)
    assert images(ec2, Filters=[{"Name": "image-id", "Values": [ami]}]) == []
    faultproxy.advance(consistency_proxy, 0.2)
    assert images(ec2, ImageIds=[ami]) == [ami]
    counts = faultproxy.stats(consistency_proxy)["consistency"]
    assert counts["created"] == 1 and counts["not_found"] == 1 and counts["left_out"] == 2


def test_new_instances_and_template_versions_are_not_found_yet(consistency_proxy, aws) -> None:
    ec2 = factory(consistency_proxy).client("ec2")
    ami = stock(ec2)
    iid = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    with pytest.raises(NotFoundError, match=r"InvalidInstanceID\.NotFound"):
        ec2.describe_instances(InstanceIds=[iid])
    listed = [
        i["InstanceId"]
        for p in ec2.paginate(
            "describe_instances", Filters=[{"Name": "instance-id", "Values": [iid]}]
        )
        for r in p["Reservations"]
        for i in r["Instances"]
    ]
    assert listed == []
    lt = ec2.create_launch_template(
        LaunchTemplateName=f"c-{uuid.uuid4().hex[:8]}", LaunchTemplateData={"ImageId": ami}
    )["LaunchTemplate"]["LaunchTemplateId"]
    v = ec2.create_launch_template_version(
        LaunchTemplateId=lt, SourceVersion="1", LaunchTemplateData={"ImageId": ami}
    )["LaunchTemplateVersion"]["VersionNumber"]
    from orchestrator.errors import AwsError

    with pytest.raises(AwsError, match=r"InvalidLaunchTemplateId\.VersionNotFound"):
        ec2.describe_launch_template_versions(LaunchTemplateId=lt, Versions=[str(v)])
    every = ec2.describe_launch_template_versions(LaunchTemplateId=lt)["LaunchTemplateVersions"]
    assert [x["VersionNumber"] for x in every] == [1]
    faultproxy.advance(consistency_proxy, 5.0)
    assert (
        ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["InstanceId"]
        == iid
    )
    every = ec2.describe_launch_template_versions(LaunchTemplateId=lt)["LaunchTemplateVersions"]
    assert sorted(x["VersionNumber"] for x in every) == [1, v]


def test_changed_tags_and_launch_permissions_read_their_old_value(consistency_proxy, aws) -> None:
    ec2, direct = factory(consistency_proxy).client("ec2"), aws.client("ec2")
    iid = direct.run_instances(ImageId=stock(direct), MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    ami = direct.create_image(InstanceId=iid, Name=f"c-{uuid.uuid4().hex[:8]}")["ImageId"]
    direct.create_tags(Resources=[ami], Tags=[{"Key": "stage", "Value": "unstable"}])
    ec2.create_tags(Resources=[ami], Tags=[{"Key": "stage", "Value": "candidate"}])
    ec2.modify_image_attribute(
        ImageId=ami,
        Attribute="launchPermission",
        LaunchPermission={"Add": [{"UserId": "111122223333"}]},
    )

    def tags() -> dict[str, str]:
        return {
            t["Key"]: t["Value"]
            for t in ec2.describe_images(ImageIds=[ami])["Images"][0].get("Tags", [])
        }

    assert tags() == {"stage": "unstable"}
    assert (
        images(
            ec2,
            Filters=[
                {"Name": "tag:stage", "Values": ["candidate"]},
                {"Name": "image-id", "Values": [ami]},
            ],
        )
        == []
    )
    assert (
        ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")["LaunchPermissions"]
        == []
    )
    faultproxy.advance(consistency_proxy, 5.0)
    assert tags() == {"stage": "candidate"}
    perms = ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")[
        "LaunchPermissions"
    ]
    assert perms == [{"UserId": "111122223333"}]


def test_a_new_parameter_is_not_found_and_an_overwritten_one_reads_its_old_value(
    consistency_proxy,
) -> None:
    ssm = factory(consistency_proxy).client("ssm")
    name = f"/consistency/{uuid.uuid4().hex[:8]}"
    ssm.put_parameter(Name=name, Value="one", Type="String")
    with pytest.raises(NotFoundError, match="ParameterNotFound"):
        ssm.get_parameter(Name=name)
    assert ssm.get_parameters(Names=[name])["InvalidParameters"] == [name]
    faultproxy.advance(consistency_proxy, 5.0)
    ssm.put_parameter(Name=name, Value="two", Type="String", Overwrite=True)
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "one"
    assert [p["Value"] for p in ssm.get_parameters(Names=[name])["Parameters"]] == ["one"]
    faultproxy.advance(consistency_proxy, 5.0)
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "two"


def test_the_window_follows_a_virtual_clock_that_sleeps(consistency_proxy, aws) -> None:
    clock = VirtualClock()
    cancel = faultproxy.follow(consistency_proxy, clock)
    ec2 = factory(consistency_proxy, clock).client("ec2")
    iid = ec2.run_instances(ImageId=stock(ec2), MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    clock.sleep(3)
    with pytest.raises(NotFoundError):
        ec2.describe_instances(InstanceIds=[iid])
    clock.sleep(2)
    assert ec2.describe_instances(InstanceIds=[iid])["Reservations"]
    cancel()
    assert faultproxy.stats(consistency_proxy)["clock"] == 5.0
