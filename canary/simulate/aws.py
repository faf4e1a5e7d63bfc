"""A simulated AWS for the rollout simulator: the Auto Scaling, EC2 and CloudWatch calls
``canary.executor`` and ``canary.metrics`` make, on virtual time, with EC2's throttling.

Throttling follows "Request throttling for the Amazon EC2 API"
(docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html), per region: a *resource*
bucket of 1,000 ``RunInstances`` instances refilled at 2/s (the Auto Scaling group's replacement
launches and the baselines draw from it), and *request* buckets of 100 tokens refilled at 20/s for
describe calls and 200 refilled at 5/s for mutating calls. An empty bucket answers
``RequestLimitExceeded``; a group whose replacement launch is refused counts the error and tries
again 10 s later, as Auto Scaling does. Auto Scaling's and CloudWatch's request limits are
modelled as buckets too (``canary.budget.REQUEST_BUCKETS`` says which sizes are assumed).

EC2's buckets are per account *and* region: a world of several accounts (``SimWorld(...,
accounts=...)``) has a ``SimRegion`` — groups, instances and buckets — per (account, region),
keyed ``region`` in the caller's own account ("") and ``account/region`` in a named one, and
``SimAws.client(service, region, account=...)`` reaches it, as ``AwsFactory.client`` does with
the member role's credentials. CloudWatch's ``GetMetricData`` finds every account's instances of
its region: a monitoring account under CloudWatch cross-account observability.

The simulation is lazy: a replacement's launch is an event applied in time order whenever any
call in its region is made, and an instance is ``InService`` once its boot time has passed.

The world's state is ``canary.simulate.world``; the clients answering each service are
``canary.simulate.clients`` and ``canary.simulate.ec2``; this module hands them out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from canary.simulate.clients import SimAutoScaling, SimCloudWatch, SimS3, SimSts
from canary.simulate.ec2 import SimEc2
from canary.simulate.world import (
    ACCOUNT,
    ASG_RETRY_S,
    BOOT_S,
    BUCKETS,
    SERVICE_OF_BUCKET,
    SimCounter,
    SimGroup,
    SimInstance,
    SimRegion,
    SimWorld,
    Throttles,
    place_name,
)

T = TypeVar("T")

# The world's names, importable from here as before the world had a module of its own.
__all__ = [
    "ACCOUNT",
    "ASG_RETRY_S",
    "BOOT_S",
    "BUCKETS",
    "SERVICE_OF_BUCKET",
    "SimAws",
    "SimCounter",
    "SimGroup",
    "SimInstance",
    "SimRegion",
    "SimWorld",
    "Throttles",
    "place_name",
]

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from orchestrator.accounts import AccountSettings
    from orchestrator.aws import Client


class SimAws:
    """The adapter interface of ``orchestrator.aws.AwsFactory`` that the canary uses:
    ``client(service, region, account=...)``, ``counter``, ``register``, ``caller_arn``, and for
    member accounts (``accounts``: the workspace's ``[accounts.NAME]``) ``assume_all`` and
    ``assumed_roles`` (``canary.simulate.members``)."""

    def __init__(
        self, world: SimWorld, accounts: Mapping[str, AccountSettings] | None = None
    ) -> None:
        self.world = world
        self.accounts = dict(accounts or {})
        self.assumed: dict[str, str] = {}  # member account name -> the assumed role's ARN
        self.counter = SimCounter(world)
        self.default_region = next(iter(world.regions.values())).name
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str | None = None, account: str = "") -> Client:
        """A client in ``region`` of ``account`` ("": the caller's own)."""
        key = (service, place_name(account, region or self.default_region))
        if key not in self._clients:
            cls = {
                "autoscaling": SimAutoScaling,
                "ec2": SimEc2,
                "cloudwatch": SimCloudWatch,
                "sts": SimSts,
                "s3": SimS3,
            }[service]
            self._clients[key] = cls(self.world.regions[key[1]])
        return self._clients[key]

    @staticmethod
    def until_visible(call: Callable[[], T]) -> T:
        """The simulated EC2 is consistent: what was made is seen at once."""
        return call()

    def register(self, event: str, handler: Any) -> None:
        """Accepted and ignored: the simulation sends no HTTP requests for botocore hooks to see."""

    def caller_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:user/simulated"

    def assume_all(
        self, names: Iterable[str] | None = None, *, refuse: bool = True, **_: object
    ) -> list[dict[str, Any]]:
        """``AwsFactory.assume_all`` on the simulated AWS: each named ``[accounts.NAME]``'s
        identity, asked in the account; an account the world lacks, or answering another id,
        cannot be assumed (with ``refuse``, an AwsError naming it: exit 3)."""
        from orchestrator.accounts import resolve_accounts
        from orchestrator.assume import account_row, refuse_unassumable

        rows: list[dict[str, Any]] = []
        for acc in resolve_accounts(dict(self.accounts), list(names or ())):
            row = account_row(acc)
            if acc.name not in self.world.accounts:
                row["error"] = (
                    f"account {acc.name} ({acc.id}): AccessDenied: not authorized to perform "
                    f"sts:AssumeRole on {acc.role}"
                )
            else:
                ident = self.client("sts", None, account=acc.name).get_caller_identity()
                row["identity"] = str(ident["Arn"])
                if ident["Account"] != acc.id:
                    row["error"] = (
                        f"account {acc.name} ({acc.id}): assuming {acc.role} acted in account "
                        f"{ident['Account']}, not {acc.id}"
                    )
                else:
                    row["assumable"] = True
                    self.assumed[acc.name] = row["identity"]
            rows.append(row)
        if refuse:
            refuse_unassumable(rows)
        return rows

    def assumed_roles(self) -> dict[str, str]:
        return dict(self.assumed)
