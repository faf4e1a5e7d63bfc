"""Where a command that reads the fleet looks: the caller's own account and the organisation's
member accounts, each in its regions.

``fleet``, image tests, ``gc`` and ``perf cleanup`` read the caller's account in the ``[aws]``
regions and every configured member account (``[accounts.NAME]``) in its own ``regions`` (the
``[aws]`` regions when it lists none); ``--accounts A,B`` narrows the member accounts. Before
reading anything, every chosen member role is assumed once (``AwsFactory.assume_all``): an unknown
name is exit 2, and every account whose role cannot be assumed is named, exit 3, so a command
never reports half an organisation as if it were all of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory
    from orchestrator.config import Settings

OWN = ""  # the account name of the caller's own account in every record that names one


@dataclass(frozen=True)
class Reach:
    """One account a command reads, and the regions it reads there."""

    account: str  # an [accounts.NAME] name; OWN ("") for the caller's own account
    regions: tuple[str, ...]
    account_id: str = ""  # the member account's id ("" for the caller's own: not asked for)

    @property
    def client_account(self) -> str | None:
        """What ``AwsFactory.client(..., account=)`` takes: None for the caller's own."""
        return self.account or None

    @property
    def label(self) -> str:
        return self.account or "own account"


def plan_reach(
    settings: Settings, names: str | Iterable[str] | None = None, *, own: bool = True
) -> list[Reach]:
    """The caller's account (unless ``own`` is false) and the member accounts ``names`` picks
    (every configured one when None or empty), each with its regions; an unknown name is a
    UsageError (exit 2). Pure: no AWS call."""
    out = [Reach(OWN, tuple(settings.aws.regions))] if own else []
    out += [Reach(a.name, a.regions, a.id) for a in settings.select_accounts(names)]
    return out


def reach(
    aws: AwsFactory,
    settings: Settings,
    names: str | Iterable[str] | None = None,
    *,
    own: bool = True,
) -> list[Reach]:
    """``plan_reach``, then every member role assumed: an AwsError (exit 3) naming each account
    whose role cannot be assumed, before anything is read."""
    chosen = plan_reach(settings, names, own=own)
    members = [r.account for r in chosen if r.account]
    if members:
        aws.assume_all(members, refuse=True)
    return chosen


def pairs(reaches: Iterable[Reach]) -> Iterator[tuple[Reach, str]]:
    """Every (account, region) to read, account by account."""
    for r in reaches:
        for region in r.regions:
            yield r, region


def member_names(reaches: Iterable[Reach]) -> list[str]:
    """The member accounts among ``reaches`` (the caller's own left out)."""
    return [r.account for r in reaches if r.account]
