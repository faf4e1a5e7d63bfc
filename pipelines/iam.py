"""The least-privilege IAM policy imagefleet needs against real AWS, assembled per feature.

A feature's actions are in ``iam_features`` and the statements that grant them in ``iam_rules``;
here they become the operator's policy (``imagefleet iam-policy``) and the member accounts' role and
trust policies. `tests/pipelines/test_iam.py` checks that every API operation the integration tests
count is covered, and that no action in ``DESTRUCTIVE`` is granted on every resource without a
condition.
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import UsageError
from pipelines.iam_features import CREATE_ACTIONS as CREATE_ACTIONS
from pipelines.iam_features import DESTRUCTIVE as DESTRUCTIVE
from pipelines.iam_features import FEATURES
from pipelines.iam_rules import Scope as Scope
from pipelines.iam_rules import rules

_READ_PREFIXES = ("Describe", "Get", "List")
_SCOPED_READS = {"ec2:GetPasswordData", "ssm:GetParameter", "s3:GetObject", "s3:ListBucket"}


def is_read_only(action: str) -> bool:
    """Describe/Get/List calls that reveal nothing beyond inventory and metrics (kept on
    ``"*"``)."""
    return (
        action.split(":", 1)[1].startswith(_READ_PREFIXES)
        and action not in _SCOPED_READS
        and not action.startswith("dynamodb:")
    )


def chosen_features(features: list[str], scope: Scope) -> list[str]:
    unknown = [f for f in features if f != "all" and f not in FEATURES]
    if unknown:
        raise UsageError(
            f"unknown feature {unknown[0]!r}", hint=f"choose from: {', '.join(FEATURES)}, all"
        )
    every = [f for f in FEATURES if f != "accounts"]  # accounts: when member roles are configured
    chosen = every if "all" in features else ["core", *features]
    if scope.dynamodb and "state" not in chosen:
        chosen.append("state")
    if scope.member_roles and "accounts" not in chosen:
        chosen.append("accounts")
    return chosen


def policy(features: list[str], *, scope: Scope | None = None) -> dict[str, Any]:
    """The policy document for ``features`` (``all`` for every one), limited to ``scope``."""
    scope = scope or Scope()
    wanted = {a for f in chosen_features(features, scope) for a in FEATURES[f]}
    reads = sorted(a for a in wanted if is_read_only(a))
    statements = [{"Sid": "ImagefleetRead", "Effect": "Allow", "Action": reads, "Resource": "*"}]
    statements += [s for s in (r.statement(wanted) for r in rules(scope)) if s]
    return {"Version": "2012-10-17", "Statement": statements}


def uncovered(features: list[str], scope: Scope) -> list[str]:
    """Actions a feature needs that no statement grants (``iam:PassRole`` without configured
    roles)."""
    doc = policy(features, scope=scope)
    granted = {a for s in doc["Statement"] for a in s["Action"]}
    return sorted({a for f in chosen_features(features, scope) for a in FEATURES[f]} - granted)


# --- the organisation: member roles and the operator's AssumeRole -----------------------------
# What imagefleet does inside a member account: its fleet's canary rollouts, image tests, gc and
# retirement of a base's copies there (bake, promotion, perf, the state table and notifications
# stay in the operator's account).
MEMBER_FEATURES = ("canary", "test", "gc", "retire")


def member_role_policy(scope: Scope | None = None) -> dict[str, Any]:
    """The policy of the role imagefleet assumes in each member account: the member features'
    actions, under the same conditions as the operator's (tagged resources, configured groups)."""
    scope = scope or Scope()
    wanted = {"sts:GetCallerIdentity"} | {a for f in MEMBER_FEATURES for a in FEATURES[f]}
    reads = sorted(a for a in wanted if is_read_only(a))
    statements = [{"Sid": "ImagefleetRead", "Effect": "Allow", "Action": reads, "Resource": "*"}]
    statements += [s for s in (r.statement(wanted) for r in rules(scope)) if s]
    return {"Version": "2012-10-17", "Statement": statements}


def member_trust_policy(operator_role: str, external_id: str | None = None) -> dict[str, Any]:
    """The member role's trust policy: only ``operator_role`` may assume it, with the
    account's external id when one is configured."""
    statement: dict[str, Any] = {
        "Sid": "ImagefleetOperator",
        "Effect": "Allow",
        "Principal": {"AWS": operator_role},
        "Action": "sts:AssumeRole",
    }
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def operator_role_arn(caller_arn: str) -> str:
    """The IAM role ARN behind a caller identity: ``arn:aws:sts::ID:assumed-role/NAME/SESSION``
    becomes ``arn:aws:iam::ID:role/NAME`` (what a trust policy names); a user ARN stays."""
    parts = caller_arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        name = parts[5].split("/")[1]
        return f"arn:{parts[1]}:iam::{parts[4]}:role/{name}"
    return caller_arn
