"""`imagefleet iam-policy` covers every API call imagefleet makes (counted by the client factory)."""

from __future__ import annotations

import io
import json

import pytest

from orchestrator.cli import raw_main
from orchestrator.context import Context
from orchestrator.output import Output
from pipelines import iam

SERVICE_PREFIX = {"service-quotas": "servicequotas"}
# S3 calls whose IAM action differs from the operation name
S3_ACTIONS = {"HeadBucket": "s3:ListBucket", "ListObjectsV2": "s3:ListBucket", "HeadObject": "s3:GetObject"}


def action_for(call: str) -> str:
    service, op = call.split(".", 1)
    if service == "s3":
        return S3_ACTIONS.get(op, f"s3:{op}")
    return f"{SERVICE_PREFIX.get(service, service)}:{op}"


def allowed(policy: dict) -> set[str]:
    return {a for st in policy["Statement"] for a in st["Action"]}


@pytest.mark.integration
@pytest.mark.packer
def test_policy_covers_every_call_of_the_lifecycle(workspace) -> None:
    ws, fam = workspace, workspace.family
    obj = Context(config_path=ws.config, output=Output(stdout=io.StringIO(), stderr=io.StringIO()))
    for args in (["bake", fam], ["test", f"{fam}:1"], ["promote", f"{fam}:1", "--to", "candidate"],
                 ["resolve", fam, "--team", "payments"], ["friends", "add", "qa", "--account", "555555555555"],
                 ["friends", "remove", "qa"], ["gc"]):
        assert raw_main(["--config", str(ws.config), *args], obj=obj) == 0
    calls = set(obj.aws.counter.snapshot())
    assert {"ec2.RunInstances", "ssm.PutParameter", "s3.PutObject", "sts.GetCallerIdentity"} <= calls
    missing = {c for c in calls if action_for(c) not in allowed(iam.policy(["all"], bucket="b"))}
    assert not missing, f"iam-policy lacks {sorted(missing)}"
    per_feature = allowed(iam.policy(["bake", "test", "promote", "gc"], bucket="b"))
    assert not {c for c in calls if action_for(c) not in per_feature}


def test_policy_scopes_artifacts_and_parameters(tmp_path) -> None:
    out = io.StringIO()
    assert raw_main(["iam-policy", "--features", "promote"], obj=Context(output=Output(stdout=out))) == 0
    policy = json.loads(out.getvalue())
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["ImagefleetStageParameters"]["Resource"] == "arn:aws:ssm:*:*:parameter/imagefleet/*"
    assert by_sid["ImagefleetArtifacts"]["Resource"].endswith(":::imagefleet-artifacts/*")
    assert "autoscaling:UpdateAutoScalingGroup" not in allowed(policy)  # canary not asked for
    err = io.StringIO()
    assert raw_main(["iam-policy", "--features", "everything"], obj=Context(output=Output(stdout=io.StringIO(), stderr=err))) == 2
    assert "unknown feature" in err.getvalue()
