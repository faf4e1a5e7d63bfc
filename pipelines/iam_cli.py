"""`imagefleet iam-policy`: the least-privilege policy for the operator's role, or with
``--member-role`` the member accounts' role and trust policies (the statements are in ``iam``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from orchestrator import schema
from orchestrator.cli_support import Named, get_context, json_option
from orchestrator.config import CONFIG_NAME
from orchestrator.context import Context
from orchestrator.errors import UsageError
from pipelines import iam


@click.command("iam-policy")
@click.option(
    "--features",
    default="all",
    show_default=True,
    help="Comma-separated: bake, test, promote, canary, perf, state, accounts, all.",
)
@click.option(
    "--member-role",
    is_flag=True,
    help="Print the member accounts' role policy and trust policy instead ([accounts.NAME]).",
)
@click.option(
    "--operator-role",
    metavar="ARN",
    type=Named(schema.ROLE_ARN, "ARN"),
    help="The role imagefleet runs as, which member roles trust (default: the caller's own role).",
)
@json_option
def iam_policy(features: str, member_role: bool, operator_role: str | None) -> None:
    """Print a least-privilege IAM policy for running imagefleet against real AWS."""
    obj = get_context()
    if member_role:
        _member_role_policies(obj, operator_role)
        return
    wanted = [f.strip() for f in features.split(",") if f.strip()]
    scope = _policy_scope(obj)
    doc = iam.policy(wanted, scope=scope)
    for action in iam.uncovered(wanted, scope):
        where = (
            "configure member accounts' roles in \\[accounts.NAME] role"
            if action == "sts:AssumeRole"
            else "list the instance profiles' role ARNs in \\[aws] instance_profile_roles"
        )
        obj.out.warn(f"{action} is not granted: {where}")
    if obj.json_mode:  # the policy is a JSON document either way; --json prints it as the result
        obj.out.result(doc)
    else:
        obj.out.text(json.dumps(doc, indent=2))


def _has_config(obj: Context) -> bool:
    return not (
        obj.config_path is None
        and not os.environ.get("IMAGEFLEET_CONFIG")
        and not Path(CONFIG_NAME).is_file()
    )


def _member_role_policies(obj: Context, operator_role: str | None) -> None:
    """The member role's policy, and per account its trust policy (the external ids differ)."""
    operator = operator_role or iam.operator_role_arn(obj.aws.caller_arn())
    if not operator.startswith("arn:"):  # GetCallerIdentity failed: "unknown"
        raise UsageError(
            f"cannot tell the operator's role from the caller {operator!r}",
            hint="pass --operator-role arn:aws:iam::ID:role/NAME",
        )
    accounts = list(obj.settings.accounts.values()) if _has_config(obj) else []
    trust = {a.name: iam.member_trust_policy(operator, a.external_id) for a in accounts}
    doc = {
        "operator_role": operator,
        "role_policy": iam.member_role_policy(_policy_scope(obj)),
        "trust_policy": iam.member_trust_policy(operator),
        "trust_policies": trust,  # per configured account, with its external id
    }
    if obj.json_mode:
        obj.out.result(doc)
        return
    obj.out.text("# role policy of every member account's imagefleet role")
    obj.out.text(json.dumps(doc["role_policy"], indent=2))
    if not trust:
        obj.out.text(f"# trust policy (only {operator} may assume the role)")
        obj.out.text(json.dumps(doc["trust_policy"], indent=2))
    for name, policy in trust.items():
        obj.out.text(f"# trust policy of accounts.{name} (only {operator} may assume it)")
        obj.out.text(json.dumps(policy, indent=2))


def _policy_scope(obj: Context) -> iam.Scope:
    """The configured bucket, roles, groups and table; the defaults when there is no config file."""
    if not _has_config(obj):
        return iam.Scope()
    from canary import (
        config as canary_config,  # only here: the light commands never load the canary
    )

    settings = obj.settings
    return iam.Scope.from_settings(settings, groups=canary_config.from_settings(settings).groups)
