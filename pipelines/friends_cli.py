"""``imagefleet friends``: friend teams opt into candidates (add, remove, list).

Each command parses, calls ``pipelines.friend_access`` or ``pipelines.friends``, and renders.
"""

from __future__ import annotations

import click

from orchestrator import schema
from orchestrator.cli_support import Named, get_context, json_option, lease_waiter
from orchestrator.output import table
from pipelines import friend_access
from pipelines import friends as friends_mod

FAMILY = Named(schema.FAMILY, "FAMILY")
TEAM = Named(schema.TEAM, "TEAM")


@click.group()
def friends() -> None:
    """Friend teams: pre-alpha users who opt into candidates."""


@friends.command("add")
@click.argument("team", type=TEAM)
@click.option(
    "--account",
    "accounts",
    multiple=True,
    required=True,
    type=Named(schema.ACCOUNT, "ACCOUNT"),
    help="AWS account id (repeatable).",
)
@click.option(
    "--family", "families", multiple=True, type=FAMILY, help="Families to follow (default: all)."
)
@click.option(
    "--wait", is_flag=True, help="Wait for a promotion holding a family's candidate stage lease."
)
@json_option
def friends_add(
    team: str, accounts: tuple[str, ...], families: tuple[str, ...], wait: bool
) -> None:
    """Opt TEAM into candidates; its accounts get launch permission on current candidates."""
    obj = get_context()
    shared = friend_access.opt_in(
        obj.aws,
        obj.settings,
        obj.store,
        obj.actor,
        team,
        list(accounts),
        list(families),
        clock=obj.clock,
        wait=wait,
        on_wait=lease_waiter(obj),
    )
    obj.out.result(
        {"team": team, "accounts": list(accounts), "families": list(families), "shared": shared},
        lambda: (
            f"{team} follows {', '.join(families) or 'every family'}; "
            f"shared {len(shared)} candidate AMI(s) with {', '.join(accounts)}"
        ),
    )


@friends.command("remove")
@click.argument("team", type=TEAM)
@click.option(
    "--wait", is_flag=True, help="Wait for a promotion holding a family's candidate stage lease."
)
@json_option
def friends_remove(team: str, wait: bool) -> None:
    """Opt TEAM out; its accounts lose launch permission on candidates (unless still granted
    otherwise)."""
    obj = get_context()
    revoked = friend_access.opt_out(
        obj.aws,
        obj.settings,
        obj.store,
        obj.actor,
        team,
        clock=obj.clock,
        wait=wait,
        on_wait=lease_waiter(obj),
    )
    obj.out.result(
        {"team": team, "removed": True, "revoked": revoked},
        lambda: f"{team} removed; revoked launch permission on {len(revoked)} AMI(s)",
    )


@friends.command("list")
@json_option
def friends_list() -> None:
    """List friend teams, their accounts and families."""
    obj = get_context()
    teams = friends_mod.teams(obj.settings, obj.store)
    obj.out.result(
        teams,
        lambda: table(
            ["team", "accounts", "families", "from"],
            [
                (n, ", ".join(t["accounts"]), ", ".join(t["families"]) or "all", t["origin"])
                for n, t in teams.items()
            ],
        ),
    )
