"""`imagefleet accounts …`: the organisation's member accounts (``[accounts.NAME]`` tables).

``accounts list`` shows what the config says; ``accounts check`` assumes every (or each
``--accounts``) member role through STS and asks each account who imagefleet is there, the check
every command that acts in member accounts makes before it changes anything. Exit 3 when any
role cannot be assumed, each such account named on a line of its own.
"""

from __future__ import annotations

from typing import Any

import click

from orchestrator.cli_support import get_context, json_option
from orchestrator.errors import AwsError
from orchestrator.output import table

__all__ = ["accounts_group"]


@click.group("accounts")
def accounts_group() -> None:
    """Member accounts of the organisation and the roles imagefleet assumes in them."""


@accounts_group.command("list")
@json_option
def accounts_list() -> None:
    """The configured member accounts: id, role, external id, session length, regions, OU."""
    obj = get_context()
    rows = [a.to_dict() for a in obj.settings.accounts.values()]
    obj.out.result(
        {"accounts": rows},
        lambda: table(
            ["account", "id", "role", "external id", "session", "regions", "ou"],
            [
                [
                    r["name"],
                    r["id"],
                    r["role"],
                    "set" if r["external_id"] else "",
                    f"{r['session_duration'] // 60}m",
                    ", ".join(r["regions"]),
                    r["ou"] or "",
                ]
                for r in rows
            ],
            title=f"{len(rows)} member account(s)",
        ),
    )


@accounts_group.command("check")
@click.option(
    "--accounts",
    "names",
    default="",
    metavar="A,B",
    help="Comma-separated account names (default: every configured account).",
)
@json_option
def accounts_check(names: str) -> None:
    """Assume each member role and show who imagefleet is in each account (exit 3 if any fails)."""
    obj = get_context()
    chosen = [a.name for a in obj.settings.select_accounts(names)]
    if not chosen:
        obj.out.result(
            {"caller": obj.aws.caller_arn(), "accounts": []},
            lambda: "no member accounts configured ([accounts.NAME] in imagefleet.toml)",
        )
        return
    caller = obj.aws.caller_arn()
    rows = obj.aws.assume_all(
        chosen,
        refuse=False,  # every account's row first, then one error line per failing account
        on_account=lambda n: obj.out.note(f"[dim]assuming the role of {n}…[/dim]"),
    )
    obj.out.result({"caller": caller, "accounts": rows}, lambda: _render(caller, rows))
    failed = [r for r in rows if not r["assumable"]]
    for r in failed:
        obj.out.err.print(f"error: {r['error']}", markup=False)
    if failed:
        raise AwsError(
            f"{len(failed)} of {len(rows)} member account(s) cannot be assumed: "
            + ", ".join(r["name"] for r in failed),
            operation="AssumeRole",
            hint="'imagefleet iam-policy --member-role' prints the role and trust policies the "
            "member accounts need (docs/aws.md, Member accounts)",
        )


def _render(caller: str, rows: list[dict[str, Any]]) -> Any:
    return table(
        ["account", "id", "role", "assumable", "identity there"],
        [
            [r["name"], r["id"], r["role"], "yes" if r["assumable"] else "NO", r["identity"] or ""]
            for r in rows
        ],
        title=f"member accounts, as {caller}",
    )
