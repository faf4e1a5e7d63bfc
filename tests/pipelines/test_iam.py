"""`imagefleet iam-policy`: covers every AWS call imagefleet makes, and nothing destructive beyond
its own.

Two views of "every call": the operations the client factory counts while the lifecycle runs against
the local endpoint, and the operations the source code names (found by reading it with ``ast``
against botocore's service models, so a call added anywhere is caught without a test running it).
Whether a statement allows a call is decided by a small evaluator of the IAM grammar the policy uses
(Allow statements; ``Null``, ``StringEquals``, ``StringLike`` conditions; ``*`` wildcards).
"""

from __future__ import annotations

import ast
import io
import json
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name
from source_support import place_client

from imagefleet.cli import raw_main
from orchestrator import config
from orchestrator.context import Context
from orchestrator.errors import ConfigError
from orchestrator.output import Output
from pipelines import iam

ROOT = Path(__file__).resolve().parents[2]
SERVICE_PREFIX = {
    "service-quotas": "servicequotas",
    "elb": "elasticloadbalancing",
    "elbv2": "elasticloadbalancing",
}
# operations whose IAM action differs from the operation name
ACTION_OF = {
    "s3.HeadBucket": ("s3:ListBucket",),
    "s3.ListObjectsV2": ("s3:ListBucket",),
    "s3.HeadObject": ("s3:GetObject",),
    "dynamodb.TransactWriteItems": (
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    ),
    "dynamodb.TransactGetItems": ("dynamodb:GetItem",),
}
# code whose AWS calls never run under imagefleet's role against real AWS
NOT_UNDER_THE_ROLE = {
    "orchestrator/local/endpoint.py": "seeds the embedded endpoint",
    "orchestrator/local/agents.py": "the local agent runner",
    "tools/demo.py": "the local demo",
    "bench/record.py": "benchmarks on the embedded endpoint",
    "canary/local_health.py": "the local agent runner publishes what instances would",
    "bench/canary.py": "benchmarks on the embedded endpoint",
    "perf/local_runner.py": "the local agent runner",
    "orchestrator/local/ssm_agent.py": "the local agent runner plays the instances' SSM agent",
    "bench/perf.py": "benchmarks on the embedded endpoint",
    "perf/agent": "runs on the benchmark instance, under its instance profile",
    "orchestrator/local/fleet.py": "`imagefleet local fleet`: a demo fleet on the embedded "
    "endpoint",
    "orchestrator/local/publisher.py": "the embedded endpoint's stand-in for an OS vendor "
    "publishing its public parameters",
    "imagefleet/cli.py:list_commands": "click's API (the lazy command group), "
    "not SSM's ListCommands",
    "imagefleet/cli.py:format_commands": "click's API (the lazy command group), "
    "not SSM's ListCommands",
}
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/imagefleet-perf"
SCOPE = iam.Scope(
    bucket="imagefleet-artifacts",
    roles=(ROLE,),
    table="imagefleet-state",
    member_roles=("arn:aws:iam::222222222222:role/imagefleet-member",),
)


def actions_of(call: str) -> tuple[str, ...]:
    """IAM actions an operation (``service.Operation``) needs."""
    if call in ACTION_OF:
        return ACTION_OF[call]
    service, op = call.split(".", 1)
    return (f"{SERVICE_PREFIX.get(service, service)}:{op}",)


def granted(policy: dict[str, Any]) -> set[str]:
    return {a for st in policy["Statement"] for a in st["Action"]}


# --- a small evaluator of the policy grammar imagefleet emits
# ---------------------------------------
def _holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, want in tests.items():
            values = want if isinstance(want, list) else [want]
            if operator == "Null":
                if (key not in context) != (values == ["true"]):
                    return False
            elif operator == "StringEquals":
                if context.get(key) not in values:
                    return False
            elif operator == "StringLike":
                if key not in context or not any(fnmatchcase(context[key], v) for v in values):
                    return False
            else:
                raise AssertionError(f"the test's evaluator does not know the operator {operator}")
    return True


def allows(
    policy: dict[str, Any], action: str, resource: str, context: dict[str, str] | None = None
) -> bool:
    """Does any Allow statement grant ``action`` on ``resource`` in ``context``?"""
    for st in policy["Statement"]:
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if (
            st["Effect"] == "Allow"
            and action in st["Action"]
            and any(fnmatchcase(resource, r) for r in resources)
            and _holds(st.get("Condition", {}), context or {})
        ):
            return True
    return False


def tagged(family: str = "demo") -> dict[str, str]:
    """The request context of a resource carrying ``imagefleet:family`` (as EC2 and Auto Scaling set
    it)."""
    return {
        f"{k}/imagefleet:family": family
        for k in ("aws:ResourceTag", "ec2:ResourceTag", "autoscaling:ResourceTag")
    }


def arn(kind: str, rid: str) -> str:
    return (
        f"arn:aws:ec2:us-east-1::{kind}/{rid}"
        if kind in ("image", "snapshot")
        else f"arn:aws:ec2:us-east-1:{ACCOUNT}:{kind}/{rid}"
    )


def group_arn(name: str) -> str:
    return (
        f"arn:aws:autoscaling:us-east-1:{ACCOUNT}:autoScalingGroup:"
        f"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0:autoScalingGroupName/{name}"
    )


def tg_arn(name: str) -> str:
    return f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:targetgroup/{name}/73e2d6bc24d8a067"


def clb_arn(name: str) -> str:
    return f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:loadbalancer/{name}"


# Something of someone else's that each destructive action could hit, and imagefleet's own of the
# kind.
UNRELATED_AND_OWN: dict[str, tuple[str, tuple[str, dict[str, str]]]] = {
    "ec2:TerminateInstances": (arn("instance", "i-0aa"), (arn("instance", "i-0bb"), tagged())),
    "ec2:StopInstances": (arn("instance", "i-0aa"), (arn("instance", "i-0bb"), tagged())),
    "ec2:CreateImage": (arn("instance", "i-0aa"), (arn("instance", "i-0bb"), tagged())),
    "ec2:GetPasswordData": (arn("instance", "i-0aa"), (arn("instance", "i-0bb"), tagged())),
    "ec2:DeregisterImage": (arn("image", "ami-0aa"), (arn("image", "ami-0bb"), tagged())),
    "ec2:DisableImage": (arn("image", "ami-0aa"), (arn("image", "ami-0bb"), tagged())),
    "ec2:ModifyImageAttribute": (arn("image", "ami-0aa"), (arn("image", "ami-0bb"), tagged())),
    "ec2:CreateTags": (arn("image", "ami-0aa"), (arn("image", "ami-0bb"), tagged())),
    "ec2:DeleteSnapshot": (arn("snapshot", "snap-0aa"), (arn("snapshot", "snap-0bb"), tagged())),
    "ec2:DeleteKeyPair": (arn("key-pair", "ops-admin"), (arn("key-pair", "packer_5f3c1a2b"), {})),
    "ec2:DeleteSecurityGroup": (arn("security-group", "sg-0aa"), ("", {})),
    "ec2:AuthorizeSecurityGroupIngress": (arn("security-group", "sg-0aa"), ("", {})),
    "ec2:CreateLaunchTemplateVersion": (
        arn("launch-template", "lt-0aa"),
        (arn("launch-template", "lt-0bb"), tagged()),
    ),
    "ec2:ModifyLaunchTemplate": (arn("launch-template", "lt-0aa"), ("", {})),
    "ec2:DeleteLaunchTemplateVersions": (arn("launch-template", "lt-0aa"), ("", {})),
    "autoscaling:UpdateAutoScalingGroup": (
        group_arn("payments-prod"),
        (group_arn("web"), tagged()),
    ),
    "autoscaling:TerminateInstanceInAutoScalingGroup": (
        group_arn("payments-prod"),
        (group_arn("web"), tagged()),
    ),
    "autoscaling:SetDesiredCapacity": (group_arn("payments-prod"), (group_arn("web"), tagged())),
    "autoscaling:SetInstanceHealth": (group_arn("payments-prod"), (group_arn("web"), tagged())),
    "elasticloadbalancing:RegisterTargets": (tg_arn("payments"), (tg_arn("web"), tagged())),
    "elasticloadbalancing:DeregisterTargets": (tg_arn("payments"), (tg_arn("web"), tagged())),
    "elasticloadbalancing:RegisterInstancesWithLoadBalancer": (
        clb_arn("payments"),
        (clb_arn("web"), tagged()),
    ),
    "elasticloadbalancing:DeregisterInstancesFromLoadBalancer": (
        clb_arn("payments"),
        (clb_arn("web"), tagged()),
    ),
    "elasticloadbalancing:DeleteTargetGroup": (tg_arn("payments"), (tg_arn("if-c-1"), tagged())),
    "elasticloadbalancing:ModifyTargetGroupAttributes": (
        tg_arn("payments"),
        (tg_arn("if-c-1"), tagged()),
    ),
    "elasticloadbalancing:ModifyListener": (
        f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:listener/app/payments/50dc/f1e2",
        (f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:listener/app/web/50dc/f1e2", tagged()),
    ),
    "iam:PassRole": (f"arn:aws:iam::{ACCOUNT}:role/admin", (ROLE, {})),
    "ssm:PutParameter": (
        f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/prod/db-password",
        (f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/imagefleet/demo/release", {}),
    ),
    "ssm:DeleteParameter": (
        f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/prod/db-password",
        (f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/imagefleet/demo/candidate", {}),
    ),
    "s3:PutObject": (
        "arn:aws:s3:::payroll/2026.csv",
        ("arn:aws:s3:::imagefleet-artifacts/manifests/x", {}),
    ),
    **{
        a: (
            f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/orders",
            (f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/imagefleet-state", {}),
        )
        for a in (
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:UpdateTimeToLive",
        )
    },
}


def _context(action: str, extra: dict[str, str]) -> dict[str, str]:
    return (
        {"iam:PassedToService": "ec2.amazonaws.com", **extra} if action == "iam:PassRole" else extra
    )


def test_no_destructive_action_reaches_what_imagefleet_does_not_own() -> None:
    assert set(UNRELATED_AND_OWN) == iam.DESTRUCTIVE  # every destructive action has a case here
    for scope in (SCOPE, iam.Scope(roles=(ROLE,), groups=("web",))):
        policy = iam.policy(["all"], scope=scope)
        for st in policy["Statement"]:
            if set(st["Action"]) & iam.DESTRUCTIVE:
                resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                assert "Condition" in st or "*" not in resources, (
                    f"{st['Sid']} grants destructive actions on *"
                )
        for action, (theirs, (ours, context)) in UNRELATED_AND_OWN.items():
            assert not allows(policy, action, theirs, _context(action, {})), (
                f"{action} reaches {theirs}"
            )
            if action in granted(policy) and ours:
                assert allows(policy, action, ours, _context(action, context)), (
                    f"{action} misses {ours}"
                )


def test_instances_are_launched_and_tagged_only_as_imagefleet_s() -> None:
    policy = iam.policy(["all"], scope=SCOPE)
    instance = arn("instance", "*")
    assert not allows(policy, "ec2:RunInstances", instance)  # untagged launch
    assert allows(
        policy, "ec2:RunInstances", instance, {"aws:RequestTag/imagefleet:family": "demo"}
    )
    assert allows(
        policy, "ec2:RunInstances", arn("image", "ami-0aa")
    )  # launching from any image is fine
    assert allows(policy, "ec2:CreateTags", instance, {"ec2:CreateAction": "RunInstances"})
    assert not allows(
        policy, "ec2:CreateTags", arn("instance", "i-0aa")
    )  # tagging someone's instance
    # an AMI gets its first tags only from the call that creates it
    assert allows(
        policy, "ec2:CreateTags", arn("image", "ami-0cc"), {"ec2:CreateAction": "CopyImage"}
    )
    assert not allows(
        policy,
        "ec2:CreateTags",
        arn("image", "ami-0cc"),
        {"aws:RequestTag/imagefleet:family": "demo"},
    )


# what each action that deletes or shares an image or snapshot is called on
IMAGE_DESTRUCTIVE = {
    "ec2:DeregisterImage": "image",
    "ec2:DisableImage": "image",
    "ec2:ModifyImageAttribute": "image",
    "ec2:DeleteSnapshot": "snapshot",
    "ec2:CreateTags": "image",
}


@pytest.mark.parametrize("action", sorted(IMAGE_DESTRUCTIVE))
def test_tagging_a_foreign_image_cannot_open_it_to_deletion_or_sharing(action: str) -> None:
    """Step 1, tag someone else's AMI or snapshot imagefleet:family after the fact; step 2, act on
    it."""
    policy = iam.policy(["all"], scope=SCOPE)
    kind = IMAGE_DESTRUCTIVE[action]
    theirs = arn(kind, "ami-0ff" if kind == "image" else "snap-0ff")
    for request in (
        {"aws:RequestTag/imagefleet:family": "demo"},
        {"aws:RequestTag/imagefleet:family": "demo", "aws:RequestTag/imagefleet:bake-id": "x"},
        {"ec2:CreateAction": "ModifyImageAttribute"},
    ):
        assert not allows(policy, "ec2:CreateTags", theirs, request), (
            f"step 1 allowed with {request}"
        )
    assert not allows(policy, action, theirs), f"{action} on an untagged {kind}"
    # imagefleet's own: tagged at creation by each call that makes one, then acted on with its tags
    for create in iam.CREATE_ACTIONS:
        assert allows(policy, "ec2:CreateTags", theirs, {"ec2:CreateAction": create}), create
    assert allows(policy, action, theirs, tagged())


def test_imagefleet_s_own_tagging_calls_are_allowed() -> None:
    """What the product calls: CopyImage with TagSpecifications, then tags on its tagged images."""
    policy = iam.policy(["promote", "bake", "gc"], scope=SCOPE)
    copy = arn("image", "ami-0c0")
    assert allows(policy, "ec2:CopyImage", copy)
    assert allows(
        policy, "ec2:CreateTags", copy, {"ec2:CreateAction": "CopyImage"}
    )  # TagSpecifications
    assert allows(
        policy, "ec2:CreateTags", copy, tagged()
    )  # the stage tags of a promotion, registry tags
    for create in ("RegisterImage", "CreateImage", "CreateSnapshot"):
        assert allows(
            policy, "ec2:CreateTags", arn("snapshot", "snap-0c0"), {"ec2:CreateAction": create}
        )
    assert allows(policy, "ec2:ModifyImageAttribute", copy, tagged())  # sharing a stage's base
    assert allows(policy, "ec2:DeregisterImage", copy, tagged())  # gc of an orphan it made


def test_pass_role_only_for_the_configured_roles_to_ec2() -> None:
    policy = iam.policy(["perf"], scope=SCOPE)
    (st,) = [s for s in policy["Statement"] if "iam:PassRole" in s["Action"]]
    assert st["Resource"] == [ROLE]
    assert st["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    assert not allows(policy, "iam:PassRole", ROLE, {"iam:PassedToService": "lambda.amazonaws.com"})
    assert "iam:PassRole" not in granted(
        iam.policy(["perf"], scope=iam.Scope())
    )  # no roles: none passed
    assert iam.uncovered(["perf"], iam.Scope()) == ["iam:PassRole"]


def test_group_writes_follow_the_configured_groups_or_the_family_tag() -> None:
    named = iam.policy(["canary"], scope=iam.Scope(groups=("web", "api")))
    assert allows(named, "autoscaling:UpdateAutoScalingGroup", group_arn("api"))
    assert not allows(named, "autoscaling:UpdateAutoScalingGroup", group_arn("api-v2"), tagged())
    by_tag = iam.policy(["canary"], scope=iam.Scope())
    assert not allows(by_tag, "autoscaling:SetDesiredCapacity", group_arn("api"))
    assert allows(by_tag, "autoscaling:SetDesiredCapacity", group_arn("api"), tagged())


def test_bake_reads_the_public_parameters_vendors_publish_and_no_other() -> None:
    policy = iam.policy(["bake"], scope=SCOPE)
    canonical = (
        "arn:aws:ssm:us-east-1::parameter/aws/service/canonical/ubuntu/server/24.04/stable/"
        "current/amd64/hvm/ebs-gp3/ami-id"
    )
    assert allows(policy, "ssm:GetParameter", canonical)
    assert not allows(policy, "ssm:GetParameter", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/db")
    assert not allows(policy, "ssm:PutParameter", canonical)


def test_state_table_only_its_own() -> None:
    policy = iam.policy(["state"], scope=iam.Scope(table="ops-imagefleet"))
    (st,) = [s for s in policy["Statement"] if s["Sid"] == "ImagefleetStateTable"]
    assert st["Resource"] == ["arn:aws:dynamodb:*:*:table/ops-imagefleet"]
    assert {"dynamodb:GetItem", "dynamodb:CreateTable", "dynamodb:UpdateTimeToLive"} <= set(
        st["Action"]
    )
    assert "dynamodb:PutItem" not in granted(iam.policy(["promote"]))  # sqlite: no table
    assert "dynamodb:PutItem" in granted(iam.policy(["promote"], scope=iam.Scope(dynamodb=True)))


# --- every call is covered
# --------------------------------------------------------------------------
def _operations(services: set[str]) -> dict[str, set[str]]:
    """snake_case operation name -> the ``service.Operation`` calls it may be (from botocore's
    models)."""
    session = botocore.session.get_session()
    out: dict[str, set[str]] = {}
    for service in services:
        for op in session.get_service_model(service).operation_names:
            out.setdefault(xform_name(op), set()).add(f"{service}.{op}")
    return out


def _skipped(rel: str, function: str | None) -> bool:
    return any(
        rel == k or rel.startswith(k + "/") or f"{rel}:{function}" == k for k in NOT_UNDER_THE_ROLE
    )


def calls_in_source() -> dict[str, set[str]]:
    """``service.Operation`` -> where imagefleet's code calls it (method calls, operation names in
    strings)."""
    trees = {
        p.relative_to(ROOT).as_posix(): ast.parse(p.read_text())
        for pkg in ("orchestrator", "pipelines", "canary", "perf", "changelog")
        for p in (ROOT / pkg).rglob("*.py")
    }
    services = (
        {"dynamodb"}
        | {
            n.args[0].value
            for t in trees.values()
            for n in ast.walk(t)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr in ("client", "resource")
            and n.args
            and isinstance(n.args[0], ast.Constant)
            and isinstance(n.args[0].value, str)
        }
        | {  # clients of a place (canary.places.client(aws, "elbv2", place))
            n.args[1].value
            for t in trees.values()
            for n in ast.walk(t)
            if place_client(n)
            and isinstance(n.args[1], ast.Constant)
            and isinstance(n.args[1].value, str)
        }
    )
    operations = _operations(services)
    found: dict[str, set[str]] = {}
    for rel, tree in trees.items():
        if _skipped(rel, None):
            continue
        local_only = [
            (f.lineno, f.end_lineno or f.lineno)
            for f in ast.walk(tree)
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and _skipped(rel, f.name)
        ]
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if any(lo <= node.lineno <= hi for lo, hi in local_only):
                continue
            # a method call, or an operation named in a string argument (get_paginator("..."),
            # wrappers)
            names = [node.func.attr] + [
                a.value
                for a in [*node.args, *(k.value for k in node.keywords)]
                if isinstance(a, ast.Constant) and isinstance(a.value, str) and "_" in a.value
            ]
            for name in names:
                for call in operations.get(name, ()):
                    found.setdefault(call, set()).add(f"{rel}:{node.lineno}")
    return found


def test_policy_covers_every_call_in_the_source() -> None:
    found = calls_in_source()
    assert {"ec2.RunInstances", "autoscaling.UpdateAutoScalingGroup", "ssm.PutParameter"} <= set(
        found
    )
    assert "cloudwatch.PutMetricData" not in found  # only the local agent runner publishes metrics
    allowed = granted(iam.policy(["all"], scope=SCOPE))
    missing = {c: sorted(w) for c, w in found.items() if not set(actions_of(c)) <= allowed}
    assert not missing, f"iam-policy lacks {missing}"


@pytest.mark.integration
@pytest.mark.packer
def test_policy_covers_every_call_of_the_lifecycle(workspace) -> None:
    ws, fam = workspace, workspace.family
    obj = Context(config_path=ws.config, output=Output(stdout=io.StringIO(), stderr=io.StringIO()))
    for args in (
        ["bake", fam],
        ["test", f"{fam}:1"],
        ["promote", f"{fam}:1", "--to", "candidate"],
        ["resolve", fam, "--team", "payments"],
        ["friends", "add", "qa", "--account", "555555555555"],
        ["friends", "remove", "qa"],
        ["gc"],
    ):
        assert raw_main(["--config", str(ws.config), *args], obj=obj) == 0
    calls = set(obj.aws.counter.snapshot())
    assert {
        "ec2.RunInstances",
        "ssm.PutParameter",
        "s3.PutObject",
        "sts.GetCallerIdentity",
    } <= calls
    assert calls - {"s3.CreateBucket"} <= set(calls_in_source())  # the static view sees what ran
    missing = {
        c for c in calls if not set(actions_of(c)) <= granted(iam.policy(["all"], scope=SCOPE))
    }
    assert not missing, f"iam-policy lacks {sorted(missing)}"
    per_feature = granted(iam.policy(["bake", "test", "promote", "gc"], scope=SCOPE))
    assert not {c for c in calls if not set(actions_of(c)) <= per_feature}


# --- the command and its configuration
# ----------------------------------------------------------------
def test_policy_scopes_artifacts_and_parameters(tmp_path) -> None:
    out = io.StringIO()
    assert (
        raw_main(["iam-policy", "--features", "promote"], obj=Context(output=Output(stdout=out)))
        == 0
    )
    policy = json.loads(out.getvalue())
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["ImagefleetStageParameters"]["Resource"] == [
        "arn:aws:ssm:*:*:parameter/imagefleet/*"
    ]
    assert by_sid["ImagefleetArtifacts"]["Resource"] == ["arn:aws:s3:::imagefleet-artifacts/*"]
    assert "autoscaling:UpdateAutoScalingGroup" not in granted(policy)  # canary not asked for
    err = io.StringIO()
    assert (
        raw_main(
            ["iam-policy", "--features", "everything"],
            obj=Context(output=Output(stdout=io.StringIO(), stderr=err)),
        )
        == 2
    )
    assert "unknown feature" in err.getvalue()


def test_policy_reads_roles_groups_and_table_from_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "imagefleet.toml"
    cfg.write_text(
        f'[state]\ntable = "ops-state"\n[aws]\ninstance_profile_roles = ["{ROLE}"]\n'
        'artifact_bucket = "ops-artifacts"\n[canary]\ngroups = ["web"]\n'
    )
    out, err = io.StringIO(), io.StringIO()
    assert (
        raw_main(
            ["--config", str(cfg), "iam-policy"], obj=Context(output=Output(stdout=out, stderr=err))
        )
        == 0
    )
    policy = json.loads(out.getvalue())
    assert allows(policy, "iam:PassRole", ROLE, {"iam:PassedToService": "ec2.amazonaws.com"})
    assert allows(policy, "autoscaling:UpdateAutoScalingGroup", group_arn("web"))
    assert allows(
        policy, "dynamodb:PutItem", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/ops-state"
    )
    assert allows(policy, "s3:PutObject", "arn:aws:s3:::ops-artifacts/k") and err.getvalue() == ""
    cfg.write_text('[aws]\nregions = ["us-east-1"]\n')
    err = io.StringIO()
    assert (
        raw_main(
            ["--config", str(cfg), "iam-policy", "--features", "perf"],
            obj=Context(output=Output(stdout=io.StringIO(), stderr=err)),
        )
        == 0
    )
    assert (
        "iam:PassRole is not granted" in err.getvalue()
        and "[aws] instance_profile_roles" in err.getvalue()
    )


def test_instance_profile_roles_must_be_role_arns() -> None:
    settings = config.parse({"aws": {"instance_profile_roles": [ROLE]}})
    assert settings.aws.instance_profile_roles == (ROLE,)
    with pytest.raises(
        ConfigError, match=r"aws\.instance_profile_roles: expected a list of IAM role ARNs"
    ):
        config.parse({"aws": {"instance_profile_roles": ["imagefleet-perf"]}})
