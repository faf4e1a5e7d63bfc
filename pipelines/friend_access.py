"""Opting a friend team in or out, and what that does to launch permissions on candidates.

A team that joins gets launch permission on every current candidate of the families it follows
(later promotions grant it through ``publish.stage_accounts``); a team that leaves loses it where
no other grant of the candidate stage still covers the account. Kept apart from ``friends`` (who
the teams are), which ``publish`` reads and this module builds on.

A change holds the candidate stage lease (``stage:<family>:candidate``) of every family it
touches, as a promotion to candidate does, so the two never interleave: the promotion reads the
friend list under that lease, and the friend change applies to the candidate it finds under it —
and to the base of a candidate promotion that was interrupted (its rerun will not share again
where it already shared).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from orchestrator.aws import AwsFactory
from orchestrator.config import Settings
from orchestrator.errors import UsageError
from orchestrator.store import StateStore, leases
from pipelines import friends
from pipelines.promote import stage_lease
from pipelines.publish import share, stage_accounts, unshare


def candidates(store: StateStore, family: str) -> list[int]:
    """The family's current candidate and the base of an unfinished promotion to candidate."""
    versions = [v for v in [store.pointer(family, "candidate")] if v is not None]
    for op in store.operations(kind="promote", status="running"):
        intent = op["intent"]
        if (
            intent.get("family") == family
            and intent.get("stage") == "candidate"
            and intent["version"] not in versions
        ):
            versions.append(int(intent["version"]))
    return versions


@contextlib.contextmanager
def _holding_candidates(
    store: StateStore,
    settings: Settings,
    families: list[str],
    actor: str,
    command: str,
    clock: leases.LeaseClock,
    wait: bool,
    on_wait: leases.OnWait | None,
) -> Iterator[StateStore]:
    """Hold the candidate stage lease of every family in ``families`` (the promotions' lease), as
    one acquisition; the block gets the store fenced on it, so every write there is too."""
    with leases.hold(
        store,
        [stage_lease(f, "candidate") for f in families],
        clock=clock,
        actor=actor,
        command=command,
        ttl_s=settings.state.lease_ttl,
        wait=wait,
        on_wait=on_wait,
    ) as held:
        yield held.store


def opt_in(
    aws: AwsFactory,
    settings: Settings,
    store: StateStore,
    actor: str,
    team: str,
    accounts: list[str],
    families: list[str],
    *,
    clock: leases.LeaseClock,
    wait: bool = False,
    on_wait: leases.OnWait | None = None,
) -> list[dict[str, Any]]:
    """Record TEAM as following ``families`` (all when empty); returns the candidate AMIs now
    shared."""
    for family in families:
        settings.family(family)  # an unknown family is bad input before anything is written
    touched = families or sorted(settings.families)
    with _holding_candidates(
        store, settings, touched, actor, f"friends add {team}", clock, wait, on_wait
    ) as store:
        friends.put_team(store, team, accounts, families, actor)
        store.audit(
            actor,
            "friends-add",
            team,
            "",
            {"accounts": tuple(accounts), "families": tuple(families)},
        )
        shared: list[dict[str, Any]] = []
        for family in touched:
            for version in candidates(store, family):
                for region, ami in store.get_base(family, version).region_amis():
                    share(aws, region, ami, accounts, [])
                    shared.append(
                        {"family": family, "version": version, "region": region, "ami": ami}
                    )
    return shared


def opt_out(
    aws: AwsFactory,
    settings: Settings,
    store: StateStore,
    actor: str,
    team: str,
    *,
    clock: leases.LeaseClock,
    wait: bool = False,
    on_wait: leases.OnWait | None = None,
) -> list[dict[str, Any]]:
    """Remove TEAM (one added with `friends add`); returns the launch permissions revoked."""
    old = friends.team(settings, store, team)
    if old["origin"] == "config":
        raise UsageError(
            f"team {team} is defined in the config file", hint=f"remove [friends.{team}] there"
        )
    touched = [f for f in sorted(settings.families) if friends.follows(old, f)]
    with _holding_candidates(
        store, settings, touched, actor, f"friends remove {team}", clock, wait, on_wait
    ) as store:
        old = friends.team(settings, store, team)  # read again under the leases
        friends.remove_team(store, team)
        store.audit(actor, "friends-remove", team, "", {"accounts": old["accounts"]})
        revoked: list[dict[str, Any]] = []
        for family in touched:
            keep = set(stage_accounts(settings, store, family, "candidate"))
            gone = [a for a in old["accounts"] if a not in keep]
            for version in candidates(store, family):
                for region, ami in store.get_base(family, version).region_amis():
                    unshare(aws, region, ami, gone)
                    if gone:
                        revoked.append(
                            {
                                "family": family,
                                "version": version,
                                "region": region,
                                "ami": ami,
                                "accounts": gone,
                            }
                        )
    return revoked
