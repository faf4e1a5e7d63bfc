"""The DynamoDB backend's leases: taken all or none in conditional transactions (at most 100 names
each, ``TransactWriteItems``' limit), renewed and released with conditional updates, and never
fenced themselves, since fences are made of them. ``DynamoStore`` builds on this layer.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from orchestrator.errors import ConflictError, LeaseHeldError, LeaseLostError
from orchestrator.store import Lease, LeaseIsDead, StateStore, lease_blocks
from orchestrator.store import dynamodb_layout as lay
from orchestrator.store.dynamodb_table import TRANSACT_MAX_ITEMS, DynamoTable

RACE_ATTEMPTS = 50  # re-reads after losing a conditional write to another writer, before giving up


class DynamoLeases(DynamoTable, StateStore):
    """Leases on the table: the items of its ``LEASES`` partition
    (``orchestrator.store.dynamodb_layout``)."""

    # --- leases ---------------------------------------------------------------------------------
    def acquire_leases(self, leases: list[Lease], *, now: float, is_dead: LeaseIsDead) -> int:
        """All or none, in transactions of conditional puts of at most 100 names each
        (``TransactWriteItems``' limit: a rollout claims every group it touches, often more); when a
        later transaction is refused, the names the earlier ones took are released again.

        The fencing token comes first from the atomic ``lease`` counter (one ``UpdateItem``): larger
        than any handed out before, also across releases."""
        token = self._next_id("lease")
        wanted = [
            replace(lease, token=token, released=False)
            for lease in {lease.name: lease for lease in leases}.values()
        ]
        taken: list[Lease] = []
        try:
            for start in range(0, len(wanted), TRANSACT_MAX_ITEMS):
                chunk = wanted[start : start + TRANSACT_MAX_ITEMS]
                self._acquire(chunk, now=now, is_dead=is_dead)
                taken += chunk
        except BaseException:
            for lease in taken:
                self.release_leases(lease.owner, [lease.name])
            raise
        return token

    def _acquire(self, wanted: list[Lease], *, now: float, is_dead: LeaseIsDead) -> None:
        """One transaction of conditional puts; a holder seen dead is replaced by naming it
        exactly."""
        dead: dict[str, str] = {}  # name -> the owner we saw dead and may replace
        for _ in range(RACE_ATTEMPTS):
            cancelled = self._transact(
                [self._lease_put(lease, now, dead.get(lease.name)) for lease in wanted],
                fenced=False,
            )
            if cancelled is None:
                return
            for lease, why in zip(wanted, cancelled, strict=True):
                if why.get("Code") != "ConditionalCheckFailed":
                    continue
                held = (
                    lay.lease_from(lay.from_wire(why["Item"]))
                    if why.get("Item")
                    else self.lease(lease.name)
                )
                if held is not None and lease_blocks(held, lease.owner, now, is_dead):
                    raise LeaseHeldError(held)
                if held is not None:
                    dead[lease.name] = held.owner
        raise ConflictError(
            f"leases {', '.join(lease.name for lease in wanted)} kept changing underneath"
        )

    def _lease_put(self, lease: Lease, now: float, dead_owner: str | None) -> dict[str, Any]:
        cond = (
            "attribute_not_exists(pk) OR expires_at <= :now OR #owner = :owner OR #released = :yes"
        )
        values: dict[str, Any] = {":now": now, ":owner": lease.owner, ":yes": True}
        if dead_owner is not None:
            cond, values = cond + " OR #owner = :dead", {**values, ":dead": dead_owner}
        return self._put(
            lay.lease_item(lease),
            cond,
            {"#owner": "owner", "#released": "released"},
            values,
            return_old=True,
        )

    def lease(self, name: str) -> Lease | None:
        item = self._get(lay.lease_key(name))
        return lay.lease_from(item) if item else None

    def renew_leases(
        self, owner: str, names: list[str], *, now: float, expires_at: float | None
    ) -> None:
        unique = list(dict.fromkeys(names))
        for start in range(0, len(unique), TRANSACT_MAX_ITEMS):
            chunk = unique[start : start + TRANSACT_MAX_ITEMS]
            cancelled = self._transact(
                [self._renewal(owner, name, now, expires_at) for name in chunk], fenced=False
            )
            if cancelled is not None:
                lost = next(
                    (
                        n
                        for n, why in zip(chunk, cancelled, strict=True)
                        if why.get("Code") == "ConditionalCheckFailed"
                    ),
                    chunk[0],
                )
                raise LeaseLostError(lost, self.lease(lost))

    def _renewal(
        self, owner: str, name: str, now: float, expires_at: float | None
    ) -> dict[str, Any]:
        # (absent in leases from before fencing: held)
        held = "#owner = :owner AND NOT #released = :yes"
        names, values = (
            {"#owner": "owner", "#released": "released"},
            {":owner": owner, ":yes": True},
        )
        if expires_at is None:
            op = self._update(lay.lease_key(name), {"heartbeat_at": now}, held, names, values)
            op["Update"]["UpdateExpression"] += " REMOVE expires_at, #ttl"
            op["Update"]["ExpressionAttributeNames"]["#ttl"] = "ttl"
            return op
        return self._update(
            lay.lease_key(name),
            {"heartbeat_at": now, "expires_at": expires_at, "ttl": lay.lease_ttl(expires_at)},
            held,
            names,
            values,
        )

    def release_leases(self, owner: str, names: list[str] | None = None) -> None:
        if names is None:
            names = [lease.name for lease in self.leases() if lease.owner == owner]
        # Kept, marked released (a holder it was taken from learns who took it); DynamoDB's TTL
        # sweep removes it an hour on. A name someone else took over stays theirs.
        for name in names:
            release = self._update(
                lay.lease_key(name),
                {"released": True, "ttl": lay.lease_ttl(time.time())},
                "#owner = :owner",
                {"#owner": "owner"},
                {":owner": owner},
            )
            self._write("update_item", fenced=False, **release["Update"])

    def leases(self) -> list[Lease]:
        return [
            lease
            for lease in (lay.lease_from(i) for i in self._query("LEASES"))
            if not lease.released
        ]
