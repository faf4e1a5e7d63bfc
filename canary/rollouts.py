"""Rollouts in the state store: their documents, the claims on their groups, requests to a runner.

A rollout is a header and its parts (``canary.records``); the controller running it is their only
writer (optimistic concurrency turns a second writer into a ``ConflictError``). ``pause`` and
``abort``
from other processes go through a ``canary-control`` document the controller reads between
actions. While a rollout is not final it claims its groups (leases owned by the rollout, not by
a process), and the process running it holds the rollout's own lease.
"""

from __future__ import annotations

from typing import Any

from canary import records
from canary.model import Rollout
from canary.records import CONTROL_KIND, FINAL, KIND
from orchestrator.clock import Clock
from orchestrator.errors import NotFoundError
from orchestrator.store import Lease, StateStore, leases, utcnow

__all__ = [
    "CONTROL_KIND",
    "FINAL",
    "KIND",
    "claim_owner",
    "clear_request",
    "group_leases",
    "latest",
    "pending_request",
    "request",
    "rollout_lease",
    "running_holder",
]


def rollout_lease(rollout_id: str) -> str:
    """The lease of the process running a rollout."""
    return leases.lease_name("rollout", rollout_id)


def claim_owner(rollout_id: str) -> str:
    """The owner of a rollout's claims on its groups: the rollout itself, not a process."""
    return f"rollout:{rollout_id}"


def group_leases(rollout: Rollout) -> list[str]:
    return sorted(
        leases.lease_name("group", group.region, group.name) for group in rollout.groups.values()
    )


def running_holder(store: StateStore, clock: Clock, rollout_id: str) -> Lease | None:
    """The live process running this rollout right now, if any (its lease), else None."""
    return leases.current_holder(store, rollout_lease(rollout_id), clock.time())


def request(store: StateStore, rollout_id: str, what: str) -> None:
    """Ask a running controller to pause or abort (it acts between two actions)."""
    store.get_doc(KIND, rollout_id)
    try:
        _, rev = store.get_doc(CONTROL_KIND, rollout_id)
    except NotFoundError:
        rev = None
    store.put_doc(
        CONTROL_KIND, rollout_id, {"request": what, "at": utcnow()}, expected_revision=rev
    )


def pending_request(store: StateStore, rollout_id: str) -> str | None:
    """The request waiting for the rollout's controller: ``pause``, ``abort`` or None."""
    try:
        body, _ = store.get_doc(CONTROL_KIND, rollout_id)
    except NotFoundError:
        return None
    what = body.get("request")
    return str(what) if what else None


def clear_request(store: StateStore, rollout_id: str) -> None:
    try:
        _, rev = store.get_doc(CONTROL_KIND, rollout_id)
    except NotFoundError:
        return
    store.put_doc(
        CONTROL_KIND, rollout_id, {"request": None, "at": utcnow()}, expected_revision=rev
    )


def latest(store: StateStore) -> dict[str, Any]:
    """The newest rollout, whole, as ``Rollout.to_dict`` writes it."""
    return records.load(store, records.latest_id(store)).to_dict()
