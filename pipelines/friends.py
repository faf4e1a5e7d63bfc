"""Friend teams: pre-alpha users who opt into candidates and resolve their AMI from it.

Teams come from the config (``[friends.TEAM]``) and from `imagefleet friends add` (the store);
both count. A team's accounts get launch permission on the family's candidate, now and at every
later promotion to candidate.
"""

from __future__ import annotations

from typing import Any

from orchestrator.config import Settings
from orchestrator.errors import NotFoundError
from orchestrator.store import StateStore


def teams(settings: Settings, store: StateStore) -> dict[str, dict[str, Any]]:
    """Every friend team: name -> {accounts, families ([] = all), origin}."""
    out: dict[str, dict[str, Any]] = {
        name: {"accounts": list(f.accounts), "families": list(f.families), "origin": "config"}
        for name, f in settings.friends.items()
    }
    for name, f in store.friends().items():
        mine = out.setdefault(name, {"accounts": [], "families": [], "origin": "cli"})
        if mine["origin"] == "config":
            mine["origin"] = "config+cli"
        mine["accounts"] = sorted(set(mine["accounts"]) | set(f["accounts"]))
        mine["families"] = sorted(set(mine["families"]) | set(f["families"]))
        mine["added_by"], mine["added_at"] = f.get("added_by"), f.get("added_at")
    return out


def follows(team: dict[str, Any], family: str) -> bool:
    return not team["families"] or family in team["families"]


def friend_accounts(settings: Settings, store: StateStore, family: str) -> list[str]:
    accounts: set[str] = set()
    for team in teams(settings, store).values():
        if follows(team, family):
            accounts |= set(team["accounts"])
    return sorted(accounts)


def team(settings: Settings, store: StateStore, name: str) -> dict[str, Any]:
    known = teams(settings, store)
    if name not in known:
        raise NotFoundError(f"no friend team {name!r}", hint=f"known teams: {', '.join(sorted(known)) or 'none'}; "
                            "add one with 'imagefleet friends add TEAM --account ID'")
    return known[name]
