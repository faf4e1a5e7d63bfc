"""Where a rollout acts: a region of one account, named as journal steps and group keys name it.

A *place* is ``region`` in the caller's own account (as every record before member accounts has
it) or ``account/region`` in a member account (an ``[accounts.NAME]`` name). Region names hold
no ``/``, so the two never mix. Every adapter of the canary (``canary.executor``,
``canary.traffic``, ``canary.metrics``...) takes a place where it took a region, and gets its
client through ``client``: the request goes to the account the group lives in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from canary.model import CohortState, GroupState


def where(account: str, region: str) -> str:
    """The place of ``region`` in ``account`` ("": the caller's own)."""
    return f"{account}/{region}" if account else region


def split(place: str) -> tuple[str, str]:
    """(account, region) of a place ("" for the caller's own account)."""
    account, _, region = place.rpartition("/")
    return account, region


def client(aws: Any, service: str, place: str) -> Any:
    """The client of ``service`` at ``place``: in its member account when it names one."""
    account, region = split(place)
    return aws.client(service, region, account=account) if account else aws.client(service, region)


def template_key(group: GroupState) -> str:
    """Template versions are made once per launch template and old version, shared by its groups
    (``region/lt/version``; ``account/region/lt/version`` in a member account)."""
    return f"{where(group.account, group.region)}/{group.lt_id}/{group.old_version}"


def touched(cohort: CohortState, groups: Mapping[str, GroupState]) -> tuple[tuple[str, str], ...]:
    """(account, region) of every group of ``cohort`` the rollout pinned to the new base (still,
    or before a rollback): where the cohort changed something, sorted."""
    return tuple(
        sorted(
            {
                (g.account, g.region)
                for key in cohort.groups
                if (g := groups.get(key)) is not None and g.new_version is not None
            }
        )
    )
