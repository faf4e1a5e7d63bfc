"""The instance types image tests boot a base on: the family's ``cohort_instance_types``, and every
type its tagged Auto Scaling groups run in any account and region read (the caller's own and the
member accounts, ``orchestrator.reach``), since the canary rolls each of those as a cohort.

``pipelines.fleet.discovery.discover_types`` asks Auto Scaling (groups filtered by the
``imagefleet:family`` tag, their instances' types); ``cohort_types`` (pure) merges them with
the configured ones. The tests still run in the caller's own account, where the unstable base
lives: a member account launches the same AMI id once a promotion shares it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from orchestrator.reach import reach
from pipelines.fleet.discovery import discover_types

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory
    from orchestrator.config import FamilySettings, Settings


def cohort_types(
    configured: Sequence[str], found: Mapping[str, Sequence[str]]
) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    """(the types to test: the configured ones in order, then those only the fleet runs, sorted;
    the latter with the accounts running them)."""
    extra = {t: list(accounts) for t, accounts in sorted(found.items()) if t not in configured}
    return (*configured, *extra), extra


def types_for(
    aws: AwsFactory,
    settings: Settings,
    family: FamilySettings,
    accounts: str | Iterable[str] | None = None,
) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    """``cohort_types`` over the caller's account and the member accounts ``accounts`` picks
    (every configured one by default; an unknown name exit 2, a role that cannot be assumed
    exit 3 by name, before any instance is launched)."""
    reaches = reach(aws, settings, accounts)
    return cohort_types(family.cohort_instance_types, discover_types(aws, reaches, family.name))
