"""A lease and the fence on it, as every backend stores and checks them: ``Lease`` (who holds a
name, with which fencing token), ``Fence`` (what a holder's writes are conditioned on) and the
one rule for when a held lease blocks another owner (``lease_blocks``). Taking and holding leases
is ``orchestrator.store.leases``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from orchestrator.errors import LeaseLostError


@dataclass
class Lease:
    """Exclusive hold of a name (a family's stage, a family's bake, an Auto Scaling group…).

    ``owner`` identifies the holder (one command's run, or a rollout that claims its groups until
    it ends); ``expires_at`` is clock time, renewed by heartbeats; ``None`` means held until
    released (a rollout's claim on its groups outlives the process that started it).
    ``token`` is the fencing token the store handed out when the lease was taken: every
    acquisition gets a larger one than any before it, so it grows each time the lease changes hands.
    A released lease is kept, ``released``, so a holder it was taken from can still be told who
    took it; ``leases()`` lists only those held.
    """

    name: str
    owner: str
    actor: str
    host: str
    pid: int
    command: str
    acquired_at: float
    heartbeat_at: float
    expires_at: float | None
    token: int = 0
    released: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fence:
    """What a holder's writes are conditioned on: each of ``names`` still held by ``owner`` with
    ``token``.

    ``StateStore.fenced(fence)`` gives a view of the store whose every write checks this in the
    same transaction (SQLite) or the same ``TransactWriteItems`` (DynamoDB) as the write itself.
    """

    names: tuple[str, ...]
    owner: str
    token: int

    def holds(self, lease: Lease | None) -> bool:
        return (
            lease is not None
            and not lease.released
            and (lease.owner, lease.token) == (self.owner, self.token)
        )

    def lost(self, name: str, now: Lease | None) -> LeaseLostError:
        """The error for a write refused on ``name``, naming who holds it now (or held it last)."""
        return LeaseLostError(name, None if now is None or now.owner == self.owner else now)


LeaseIsDead = Callable[[Lease], bool]


def lease_blocks(existing: Lease, owner: str, now: float, is_dead: LeaseIsDead) -> bool:
    """Does ``existing`` keep ``owner`` from taking the name? (one rule for every backend)"""
    if existing.released or existing.owner == owner:
        return False
    if existing.expires_at is not None and existing.expires_at <= now:
        return False
    return not is_dead(existing)
