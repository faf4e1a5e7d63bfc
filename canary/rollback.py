"""Rolling back and aborting a rollout, through the controller's public API.

A cohort rolls back by pinning its groups to the launch-template versions they ran before the
rollout and replacing every instance on the new base; its baselines are ended first. ``abort``
rolls back the cohort in progress and keeps finished ones; ``rollback_all`` rolls back every cohort
that touched the new base. Each is resumable: the rollout's status says a rollback was under way
(``aborting``, ``rolling_back``), and a resumed run finishes it.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from canary.model import CohortState, GroupState
from canary.places import where
from orchestrator.store import utcnow

if TYPE_CHECKING:  # the controller imports this module to run it
    from canary.controller import Controller


def rollback_cohort(ctl: Controller, cohort: CohortState, lost: set[str] | None = None) -> None:
    """Groups back to their old template version; instances on the new base replaced.

    A group that no longer exists (``lost``, or found missing now) cannot be rolled back: it is
    reported by name, the cohort's other groups are rolled back, and the cohort ends ``lost``."""
    for wave in cohort.waves:
        sides_left = wave.sides is not None and wave.sides.status != "removed"
        if (wave.baselines.ids and not wave.baselines.cleaned) or sides_left:
            ctl.cleanup_baselines(cohort, wave)
    cohort.status = "rolling_back"
    ctl.save()
    # Every account and region the cohort reached: each rolled back with its own clients.
    by_place: dict[str, list[GroupState]] = {}
    for group_key in cohort.groups:
        group = ctl.rollout.groups[group_key]
        if group.pinned:
            by_place.setdefault(where(group.account, group.region), []).append(group)
    replaced = 0
    gone = set(lost or ()) & set(cohort.groups)
    for place, groups in sorted(by_place.items()):
        groups = [group for group in groups if group.key not in gone]
        if not groups:
            continue
        result = ctl.step(
            f"rollback:{cohort.key}:{place}", partial(ctl.actions.roll_back, place, groups)
        )
        replaced += int(result["terminated"])
        gone |= {f"{place}/{name}" for name in result.get("missing", ())}
        present = [group for group in groups if group.key not in gone]
        if present:
            ctl.actions.wait_replaced(
                place, [group.name for group in present], set(result["instances"])
            )
        for group in groups:
            group.pinned = False
    if gone:
        lose(ctl, cohort, sorted(gone), replaced)
        return
    cohort.status = "rolled_back"
    cohort.rollback = {"at": utcnow(), "replaced": replaced}
    ctl.save()
    ctl.audit("canary.rollback_cohort", cohort=cohort.key, replaced=replaced)


def lose(ctl: Controller, cohort: CohortState, groups: list[str], replaced: int = 0) -> None:
    """The cohort ends ``lost``: some of its groups no longer exist, named in the message and
    audit."""
    cohort.status = "lost"
    cohort.rollback = {"at": utcnow(), "replaced": replaced, "lost_groups": groups}
    ctl.save()
    ctl.progress(f"cohort {cohort.key}: lost, its group(s) no longer exist: {', '.join(groups)}")
    ctl.audit("canary.cohort_lost", cohort=cohort.key, groups=groups, replaced=replaced)


def abort(ctl: Controller, reason: str = "aborted") -> None:
    """Stop now: the cohort in progress goes back to the old base; finished cohorts stay."""
    _roll_back_cohorts(ctl, ("running", "paused", "rolling_back"), "aborting", "aborted", reason)


def rollback_all(ctl: Controller, reason: str = "rolled back") -> None:
    """Every cohort that touched the new base goes back to the old one."""
    _roll_back_cohorts(
        ctl,
        ("running", "paused", "passed", "rolling_back", "failed"),
        "rolling_back",
        "rolled_back",
        reason,
    )


def _roll_back_cohorts(
    ctl: Controller, which: tuple[str, ...], interim: str, final: str, reason: str
) -> None:
    """Roll back the cohorts in the ``which`` states, halt the pending ones; status interim →
    final."""
    rollout = ctl.rollout
    rollout.status = interim
    rollout.reason = reason
    ctl.save()
    for cohort in rollout.cohorts:
        if cohort.status in which:
            rollback_cohort(ctl, cohort)
        elif cohort.status == "pending":
            cohort.status = "halted"
    rollout.status = final
    rollout.reason = reason
    ctl.save()
