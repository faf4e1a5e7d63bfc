"""Member accounts' credentials: STS AssumeRole through the one AWS factory, cached, refreshed.

``AwsFactory.client(service, region, account=NAME)`` signs with the credentials of the role
``[accounts.NAME] role`` names. They come from ``sts:AssumeRole`` called with the factory's own
client (its endpoint, retries and call counter) as the caller, with a session name that says who
asked (``imagefleet-<caller>``, so the member account's CloudTrail shows it), the account's
``external_id`` and ``session_duration``. One set per account is shared by every client of that
account, and botocore refreshes it on the factory's clock ``REFRESH_EARLY_S`` before it expires,
whichever thread signs first (its refresh is locked), so a long rollout never signs with a lapsed
session.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials

from orchestrator.accounts import AccountSettings
from orchestrator.errors import AwsError

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory

REFRESH_EARLY_S = 300  # refresh a member session this long before STS says it ends
METHOD = "imagefleet-assume-role"


def session_name(caller_arn: str) -> str:
    """``imagefleet-<caller>``: the caller's user or session name (the ARN's last part), in the
    characters RoleSessionName allows, at most 64 in all."""
    tail = re.split(r"[/:]", caller_arn)[-1] if caller_arn else ""
    short = re.sub(r"[^\w+=,.@-]", "-", tail, flags=re.ASCII)[:40] or "unknown"
    return f"imagefleet-{short}"


class _Provider(CredentialProvider):  # type: ignore[misc]  # botocore ships no type hints
    METHOD = METHOD
    CANONICAL_NAME = METHOD

    def __init__(self, credentials: RefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self._credentials


class MemberAccount:
    """The assumed-role credentials of one member account and its boto3 sessions per region."""

    def __init__(self, factory: AwsFactory, account: AccountSettings) -> None:
        self.account = account
        self._factory = factory
        self._lock = threading.RLock()
        self._credentials: RefreshableCredentials | None = None
        self._sessions: dict[str, boto3.Session] = {}
        self.assumed_arn = ""  # arn:aws:sts::<id>:assumed-role/<role>/<session>, once assumed
        self.assumptions = 0  # AssumeRole calls that succeeded (the first and each refresh)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._factory.now(), UTC)

    def _assume(self) -> dict[str, Any]:
        """One AssumeRole call, as botocore's refresh callback wants its answer; the expiry is
        put on the factory's clock (the session's length as STS granted it)."""
        acc = self.account
        kwargs: dict[str, Any] = {
            "RoleArn": acc.role,
            "RoleSessionName": session_name(self._factory.caller_arn()),
            "DurationSeconds": acc.session_duration,
        }
        if acc.external_id:
            kwargs["ExternalId"] = acc.external_id
        sts = self._factory.client("sts", self._factory.default_region)
        try:
            answer = sts.assume_role(**kwargs)
        except AwsError as exc:
            raise AwsError(
                f"account {acc.name} ({acc.id}): cannot assume {acc.role}: {exc}",
                code=exc.code,
                operation="AssumeRole",
                hint="the role must exist in the member account and trust the caller "
                "(and its external id): 'imagefleet iam-policy --member-role' prints both "
                "policies (docs/aws.md, Member accounts)",
            ) from exc
        creds = answer["Credentials"]
        granted = float(acc.session_duration)
        expiration = creds.get("Expiration")
        if isinstance(expiration, datetime):  # what STS granted, counted from the wall clock
            left = (expiration - datetime.now(UTC)).total_seconds()
            granted = min(granted, left) if left > 0 else granted
        with self._lock:
            self.assumed_arn = str(answer.get("AssumedRoleUser", {}).get("Arn", acc.role))
            self.assumptions += 1
        expiry = datetime.fromtimestamp(self._factory.now() + granted, UTC)
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": expiry.isoformat(),
        }

    def credentials(self) -> RefreshableCredentials:
        """The account's credentials, assumed on first use; an AwsError naming the account when
        its role cannot be assumed (nothing is cached then, so the next use tries again)."""
        with self._lock:
            if self._credentials is None:
                meta = self._assume()
                self._credentials = RefreshableCredentials(
                    meta["access_key"],
                    meta["secret_key"],
                    meta["token"],
                    datetime.fromisoformat(meta["expiry_time"]),
                    self._assume,
                    METHOD,
                    time_fetcher=self._now,
                    advisory_timeout=REFRESH_EARLY_S,
                    mandatory_timeout=REFRESH_EARLY_S,
                )
            return self._credentials

    def session(self, region: str) -> boto3.Session:
        """A boto3 session of ``region`` signing with this account's credentials."""
        with self._lock:
            if region not in self._sessions:
                core = botocore.session.Session()
                core.register_component(
                    "credential_provider", CredentialResolver([_Provider(self.credentials())])
                )
                self._sessions[region] = boto3.Session(botocore_session=core, region_name=region)
            return self._sessions[region]


def account_row(acc: AccountSettings) -> dict[str, Any]:
    """An account's row of ``accounts check`` before its role is tried: not (yet) assumable."""
    return {
        "name": acc.name,
        "id": acc.id,
        "role": acc.role,
        "ou": acc.ou,
        "regions": list(acc.regions),
        "assumable": False,
        "identity": None,
        "error": None,
    }


def check_accounts(
    factory: AwsFactory, names: list[str], on_account: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """Assume each named account's role and ask STS who that is there (GetCallerIdentity): one
    row per account, ``error`` set (and ``assumable`` false) for each that cannot be assumed."""
    rows: list[dict[str, Any]] = []
    for name in names:
        acc = factory.account(name)
        if on_account:
            on_account(name)
        row = account_row(acc)
        try:
            ident = factory.client(
                "sts", factory.default_region, account=name
            ).get_caller_identity()
            row["identity"] = str(ident["Arn"])
            if str(ident["Account"]) != acc.id:
                row["error"] = (
                    f"account {acc.name} ({acc.id}): assuming {acc.role} acted in account "
                    f"{ident['Account']}, not {acc.id}"
                )
            else:
                row["assumable"] = True
        except AwsError as exc:
            row["error"] = (
                str(exc)
                if str(exc).startswith("account ")
                else (f"account {acc.name} ({acc.id}): {exc}")
            )
        rows.append(row)
    return rows


def refuse_unassumable(rows: list[dict[str, Any]]) -> None:
    """An AwsError (exit 3) naming every account of ``rows`` whose role cannot be assumed, each
    with its reason; nothing when all can."""
    failed = [r for r in rows if not r["assumable"]]
    if failed:
        raise AwsError(
            f"{len(failed)} member account(s) cannot be assumed: "
            + "; ".join(str(r["error"]) for r in failed),
            operation="AssumeRole",
            hint="fix those roles or leave the accounts out (--accounts); nothing was changed",
        )
