"""``[accounts.NAME]``: the organisation's member accounts and the roles imagefleet assumes there.

Read with the rest of imagefleet.toml (``orchestrator.config``); ``resolve_accounts`` is the one
way a name typed on the command line or referenced from the config becomes an account, refusing
unknown names in one line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator import schema as s
from orchestrator.errors import UsageError

_REGION_LIST = "a list of AWS region names like 'us-east-1'"

# One member account of the organisation: the role imagefleet assumes there (like a StackSets
# execution role), how long its sessions last, and where its fleet runs.
MIN_SESSION_S, MAX_SESSION_S = 900, 12 * 3600  # STS AssumeRole's DurationSeconds bounds
ACCOUNT = s.Table(
    fields={
        "id": s.Str(pattern=s.ACCOUNT),
        "role": s.Str(pattern=s.ROLE_ARN),
        "external_id": s.Str(None, s.EXTERNAL_ID),
        "session_duration": s.Duration("1h", lo=MIN_SESSION_S),
        # None: the [aws] regions
        "regions": s.List(None, item=s.Str(pattern=s.REGION), what=_REGION_LIST, min_items=1),
        "ou": s.Str(None, s.OU),
    }
)


@dataclass(frozen=True)
class AccountSettings:
    """``[accounts.NAME]``: a member account and the role imagefleet assumes in it."""

    name: str
    id: str
    role: str  # arn:aws:iam::<id>:role/<name>
    external_id: str | None = None
    session_duration: int = 3600  # seconds, 900 to 43200
    regions: tuple[str, ...] = ()  # where its fleet runs; [aws] regions when not set
    ou: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "role": self.role,
            "external_id": self.external_id,
            "session_duration": self.session_duration,
            "regions": list(self.regions),
            "ou": self.ou,
        }


def resolve_accounts(
    accounts: dict[str, AccountSettings],
    names: str | Iterable[str] | None,
    *,
    where: s.Where | None = None,
    key: str = "--accounts",
) -> list[AccountSettings]:
    """``names`` resolved against the configured ``[accounts.NAME]`` tables; refuses unknown ones
    in one line: a ``file:line: key`` ConfigError when ``where`` is given (a name referenced from
    the config), a UsageError naming ``key`` otherwise (a name typed on the command line)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    wanted = list(dict.fromkeys(names or ()))
    if not wanted:
        return list(accounts.values())
    unknown = [n for n in wanted if n not in accounts]
    if unknown:
        known = ", ".join(sorted(accounts)) or "none"
        if where is not None:
            raise where.error(key, f"names of [accounts.NAME] tables ({known})", unknown)
        shown = ", ".join(s.shown(n) for n in unknown[:5])
        raise UsageError(
            f"{key}: unknown account {shown} (configured: {known})",
            hint="member accounts are the [accounts.NAME] tables of imagefleet.toml",
        )
    return [accounts[n] for n in wanted]


def read_account(
    name: str, acc: dict[str, Any], raw: dict[str, Any], regions: tuple[str, ...], w: s.Where
) -> AccountSettings:
    """One ``[accounts.NAME]`` table, read by ``ACCOUNT``, with the checks that span keys."""
    dotted = f"accounts.{name}"
    role_account = acc["role"].split(":")[4]
    if role_account != acc["id"]:
        raise w.error(
            f"{dotted}.role",
            f"a role in the account itself (arn:aws:iam::{acc['id']}:role/NAME)",
            acc["role"],
        )
    if acc["session_duration"] > MAX_SESSION_S:
        raise w.error(
            f"{dotted}.session_duration",
            "a duration from 15m to 12h (STS AssumeRole's bounds)",
            raw.get("session_duration"),
        )
    acc_regions = acc["regions"] or regions
    stray = [r for r in acc_regions if r not in regions]
    if stray:
        raise w.error(
            f"{dotted}.regions", f"regions listed in aws.regions ({', '.join(regions)})", stray
        )
    return AccountSettings(
        name=name,
        id=acc["id"],
        role=acc["role"],
        external_id=acc["external_id"],
        session_duration=int(acc["session_duration"]),
        regions=tuple(acc_regions),
        ou=acc["ou"],
    )
