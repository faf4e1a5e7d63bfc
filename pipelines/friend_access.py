"""Opting a friend team in or out, and what that does to launch permissions on candidates.

A team that joins gets launch permission on every current candidate of the families it follows
(later promotions grant it through ``promote.stage_accounts``); a team that leaves loses it where
no other grant of the candidate stage still covers the account. Kept apart from ``friends`` (who
the teams are), which ``promote`` reads and this module builds on.
"""

from __future__ import annotations

from typing import Any

from orchestrator.aws import AwsFactory
from orchestrator.config import Settings
from orchestrator.errors import UsageError
from orchestrator.store import StateStore
from pipelines import friends
from pipelines.promote import share, stage_accounts, unshare


def opt_in(aws: AwsFactory, settings: Settings, store: StateStore, actor: str, team: str,
           accounts: list[str], families: list[str]) -> list[dict[str, Any]]:
    """Record TEAM as following ``families`` (all when empty); returns the candidate AMIs now shared."""
    for family in families:
        settings.family(family)  # an unknown family is bad input before anything is written
    store.put_friend(team, accounts, families, actor)
    store.audit(actor, "friends-add", team, "", {"accounts": tuple(accounts), "families": tuple(families)})
    shared: list[dict[str, Any]] = []
    for family in families or list(settings.families):
        version = store.pointer(family, "candidate")
        if version is None:
            continue
        for region, ami in store.get_base(family, version).amis.items():
            share(aws, region, ami, accounts, [])
            shared.append({"family": family, "version": version, "region": region, "ami": ami})
    return shared


def opt_out(aws: AwsFactory, settings: Settings, store: StateStore, actor: str,
            team: str) -> list[dict[str, Any]]:
    """Remove TEAM (one added with `friends add`); returns the launch permissions revoked."""
    old = friends.team(settings, store, team)
    if old["origin"] == "config":
        raise UsageError(f"team {team} is defined in the config file", hint=f"remove [friends.{team}] there")
    store.remove_friend(team)
    store.audit(actor, "friends-remove", team, "", {"accounts": old["accounts"]})
    revoked: list[dict[str, Any]] = []
    for family in settings.families:
        version = store.pointer(family, "candidate")
        if version is None or not friends.follows(old, family):
            continue
        keep = set(stage_accounts(settings, store, family, "candidate"))
        gone = [a for a in old["accounts"] if a not in keep]
        for region, ami in store.get_base(family, version).amis.items():
            unshare(aws, region, ami, gone)
            if gone:
                revoked.append({"family": family, "region": region, "ami": ami, "accounts": gone})
    return revoked
