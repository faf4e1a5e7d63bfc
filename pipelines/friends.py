"""Friend teams: pre-alpha users who opt into candidates and resolve their AMI from it.

Teams come from the config (``[friends.TEAM]``) and from `imagefleet friends add` (the store);
both count. A team's accounts get launch permission on the family's candidate, now and at every
later promotion to candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.config import Settings
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.store import StateStore, utcnow
from pipelines.records import FRIEND_TEAM_KIND, FriendTeam

WRITE_ATTEMPTS = 20  # re-reads of a team's document after another writer changed it


def stored(store: StateStore) -> dict[str, FriendTeam]:
    """The teams added with `friends add` and not removed since, by name."""
    found = (FriendTeam.from_json(body) for body in store.docs(FRIEND_TEAM_KIND))
    return {t.team: t for t in sorted(found, key=lambda t: t.team) if not t.removed}


def put_team(
    store: StateStore, team: str, accounts: list[str], families: list[str], actor: str
) -> None:
    """Add ``team`` or replace its accounts and families (who added it, and when, stay)."""
    _change(
        store,
        team,
        lambda old: FriendTeam(
            team,
            tuple(sorted(set(accounts))),
            tuple(sorted(set(families))),
            old.added_at if old else utcnow(),
            old.added_by if old else actor,
        ),
    )


def remove_team(store: StateStore, team: str) -> None:
    """Mark ``team`` removed; ``NotFoundError`` when no such team was added."""

    def removed(old: FriendTeam | None) -> FriendTeam:
        if old is None:
            raise NotFoundError(f"no friend team {team!r}")
        return FriendTeam(
            old.team, old.accounts, old.families, old.added_at, old.added_by, removed=True
        )

    _change(store, team, removed)


def _change(
    store: StateStore, team: str, change: Callable[[FriendTeam | None], FriendTeam]
) -> None:
    """Write ``change(current)`` over the team's document from the revision it was read at."""
    for _ in range(WRITE_ATTEMPTS):
        try:
            body, revision = store.get_doc(FRIEND_TEAM_KIND, team)
            current: FriendTeam | None = FriendTeam.from_json(body)
        except NotFoundError:
            current, revision = None, None
        if current is not None and current.removed:
            current = None
        try:
            store.put_doc(
                FRIEND_TEAM_KIND, team, change(current).to_json(), expected_revision=revision
            )
            return
        except ConflictError:
            continue
    raise ConflictError(f"friend team {team} kept changing underneath")


def teams(settings: Settings, store: StateStore) -> dict[str, dict[str, Any]]:
    """Every friend team: name -> {accounts, families ([] = all), origin}."""
    out: dict[str, dict[str, Any]] = {
        name: {"accounts": list(f.accounts), "families": list(f.families), "origin": "config"}
        for name, f in settings.friends.items()
    }
    for name, f in stored(store).items():
        mine = out.setdefault(name, {"accounts": [], "families": [], "origin": "cli"})
        if mine["origin"] == "config":
            mine["origin"] = "config+cli"
        mine["accounts"] = sorted(set(mine["accounts"]) | set(f.accounts))
        mine["families"] = sorted(set(mine["families"]) | set(f.families))
        mine["added_by"], mine["added_at"] = f.added_by, f.added_at
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
        raise NotFoundError(
            f"no friend team {name!r}",
            hint=f"known teams: {', '.join(sorted(known)) or 'none'}; "
            "add one with 'imagefleet friends add TEAM --account ID'",
        )
    return known[name]
