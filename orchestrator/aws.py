"""The one place boto3 clients come from: endpoint, region, credentials, retries, call counts.

Local mode only sets an endpoint URL (``[aws].endpoint_url`` or the standard
``AWS_ENDPOINT_URL``); nothing else in imagefleet knows it is local.

Retries live here and only here: botocore's own retry loop is turned off (one attempt) and
every call goes through tenacity with exponential backoff and full jitter, on throttling,
5xx and connection errors only, bounded in attempts and in total time. Which errors those are,
and how a credentials problem is told, is ``orchestrator.aws_errors``.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import boto3
import botocore.exceptions as bex
import botocore.session
from botocore.config import Config
from botocore.paginate import Paginator
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random_exponential,
)

from orchestrator.accounts import AccountSettings, resolve_accounts
from orchestrator.assume import MemberAccount, check_accounts, refuse_unassumable
from orchestrator.aws_errors import (
    CONNECTION_ERRORS,
    EXPIRED_CODES,
    NOT_FOUND_CODES,
    REJECTED_CODES,
    THROTTLING_CODES,
    credential_error,
    endpoint_is_custom,
    error_code,
    is_retryable,
)
from orchestrator.config import AWS as _AWS_SCHEMA
from orchestrator.config import Settings
from orchestrator.errors import AwsError, NotFoundError

_AWS_DEFAULTS = _AWS_SCHEMA.defaults()  # the [aws] defaults, from the one config schema

# The factory's names, and the error reading (orchestrator.aws_errors) importable from here as
# before it had a module of its own.
__all__ = [
    "CONNECTION_ERRORS",
    "EXPIRED_CODES",
    "LOCAL_CREDENTIALS",
    "NOT_FOUND_CODES",
    "REJECTED_CODES",
    "THROTTLING_CODES",
    "AwsFactory",
    "CallCounter",
    "Client",
    "Clients",
    "RetryingClient",
    "batches",
    "client_token",
    "credential_error",
    "endpoint_is_custom",
    "error_code",
    "is_retryable",
]


# How long ``until_visible`` waits for something just created to show in EC2's describes. EC2
# documents eventual consistency without a bound; in practice it is seconds.
VISIBILITY_SECONDS = 30.0


T = TypeVar("T")

# boto3 and botocore ship no type hints (and no stubs are installed), so a client, raw or
# wrapped in RetryingClient, is typed by this one name rather than a bare Any at each use.
Client = Any


def batches(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size``, in order: the most one AWS call takes (25 items a
    BatchWriteItem, 1000 ids a DescribeInstances filter, ...). imagefleet's one chunking loop."""
    if size < 1:
        raise ValueError("a batch holds at least one item")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def client_token(*parts: object) -> str:
    """A deterministic idempotency token (``ClientToken``, at most 64 characters) for the step
    named by ``parts`` (operation id, region, ...): a retried or resumed call sends the same
    token, so AWS returns the first call's result instead of creating twice."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


@functools.cache
def _paginator_config(service: str, operation: str) -> dict[str, Any]:
    """botocore's pagination rule (input/output token, result keys) for one operation."""
    return dict(
        botocore.session.get_session().get_paginator_model(service).get_paginator(operation)
    )


LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class CallCounter:
    """Counts API calls per ``service.Operation`` as they go over the wire (retries included)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def __call__(self, model: Any = None, **_: object) -> None:
        if model is None:
            return
        name = f"{model.service_model.service_name}.{model.name}"
        with self._lock:
            self.calls[name] += 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.calls)


class RetryingClient:
    """A boto3 client whose operations retry under the factory's policy.

    Attribute access is forwarded to the client; API operations are wrapped so each call
    retries on its own, and paginators are botocore's, built on the wrapped operation, so
    every page request retries on its own too (a throttled third page does not restart the walk).
    """

    def __init__(self, client: Client, retrying: Callable[[], Retrying]) -> None:
        self._client = client
        self._retrying = retrying

    @property
    def raw(self) -> Client:
        return self._client

    def get_paginator(self, operation: str) -> Paginator:
        """botocore's paginator for ``operation`` (a method name), each page call retried."""
        if not self._client.can_paginate(operation):
            raise ValueError(f"{operation} cannot be paginated")
        api_name = self._client.meta.method_to_api_mapping[operation]
        model = self._client.meta.service_model
        config = _paginator_config(model.service_name, api_name)
        return Paginator(getattr(self, operation), config, model.operation_model(api_name))

    def paginate(self, operation: str, **kwargs: object) -> Iterator[dict[str, Any]]:
        """Every page of ``operation(**kwargs)``; the one way imagefleet walks NextToken."""
        yield from self.get_paginator(operation).paginate(**kwargs)

    def _credential_error(self, exc: BaseException) -> AwsError | None:
        return credential_error(exc, self._client.meta.region_name, self._client.meta.endpoint_url)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name not in self._client.meta.method_to_api_mapping:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                for attempt in self._retrying():
                    with attempt:
                        return attr(*args, **kwargs)
            except bex.ClientError as exc:
                code = error_code(exc)
                msg = exc.response.get("Error", {}).get("Message", str(exc))
                op = self._client.meta.method_to_api_mapping[name]
                if code in NOT_FOUND_CODES:
                    raise NotFoundError(f"{op}: {code}: {msg}") from exc
                raise self._credential_error(exc) or AwsError(
                    f"{op} failed: {code}: {msg}", code=code, operation=op
                ) from exc
            except CONNECTION_ERRORS as exc:
                op = self._client.meta.method_to_api_mapping[name]
                raise self._credential_error(exc) or AwsError(
                    f"cannot reach AWS: {exc}",
                    operation=op,
                    hint="is the endpoint up? 'imagefleet local status'",
                ) from exc
            except bex.BotoCoreError as exc:
                mapped = self._credential_error(exc)
                if mapped is None:
                    raise
                raise mapped from exc
            raise AssertionError("unreachable")  # pragma: no cover

        call.__name__ = name
        return call


class Clients(Protocol):
    """What code that only makes requests needs of a factory: ``AwsFactory``, or a wrapper of it.

    ``account`` names a member account (``[accounts.NAME]``): the client acts there, through the
    role imagefleet assumes in it; None is the caller's own account."""

    def client(self, service: str, region: str, account: str | None = None) -> Any: ...


class AwsFactory:
    """Makes clients for any service and region with one endpoint, credentials and retry policy."""

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
        default_region: str = _AWS_DEFAULTS["regions"][0],
        max_attempts: int = _AWS_DEFAULTS["max_attempts"],
        max_retry_seconds: float = _AWS_DEFAULTS["max_retry_seconds"],
        backoff_multiplier: float = 0.2,
        backoff_max: float = 20.0,
        credentials: dict[str, str] | None = None,
        on_retry: Callable[[RetryCallState], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
        accounts: Mapping[str, AccountSettings] | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.profile = profile
        self.default_region = default_region
        self.max_attempts = max_attempts
        self.max_retry_seconds = max_retry_seconds
        self.backoff_multiplier = backoff_multiplier
        self.backoff_max = backoff_max
        self.credentials = credentials or {}
        self.on_retry = on_retry
        self.sleep = sleep  # the command's clock: backoff passes in the same time as its waits
        self.now = now  # the same clock's time: when member accounts' sessions are refreshed
        self.accounts: dict[str, AccountSettings] = dict(accounts or {})  # [accounts.NAME]
        self._members: dict[str, MemberAccount] = {}
        self._caller: str | None = None
        self.visibility_seconds = VISIBILITY_SECONDS
        self.counter = CallCounter()
        self.retries = 0
        self._lock = threading.Lock()
        self._sessions: dict[str, boto3.Session] = {}
        self._clients: dict[tuple[str, str, str | None], RetryingClient] = {}
        self._hooks: list[tuple[str, Callable[..., Any]]] = []
        self._config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},  # tenacity retries, not botocore
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=32,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> AwsFactory:
        aws = settings.aws
        endpoint = aws.endpoint_url
        if endpoint == "local":
            # The embedded endpoint started by `imagefleet local up`; its port lives in the state
            # dir.
            from orchestrator.local.endpoint import LocalEndpoint

            endpoint = LocalEndpoint(settings.state_dir).require_url()
            kwargs.setdefault("credentials", dict(LOCAL_CREDENTIALS))
        return cls(
            endpoint_url=endpoint,
            profile=aws.profile,
            default_region=aws.regions[0],
            max_attempts=aws.max_attempts,
            max_retry_seconds=aws.max_retry_seconds,
            accounts=settings.accounts,
            **kwargs,
        )

    def _retrying(self) -> Retrying:
        def before_sleep(state: RetryCallState) -> None:
            with self._lock:
                self.retries += 1
            if self.on_retry:
                self.on_retry(state)

        return Retrying(
            retry=retry_if_exception(is_retryable),
            wait=wait_random_exponential(multiplier=self.backoff_multiplier, max=self.backoff_max),
            stop=stop_after_attempt(self.max_attempts) | stop_after_delay(self.max_retry_seconds),
            before_sleep=before_sleep,
            sleep=self.sleep,
            reraise=True,
        )

    def until_visible(self, call: Callable[[], T]) -> T:
        """``call()`` again while it answers NotFound, for something imagefleet knows exists.

        EC2 is eventually consistent: an AMI, instance or launch-template version just created may
        be unknown to describes for a while (``InvalidAMIID.NotFound``…). Waits 1, 2, 4, 8, then
        10 s between tries on the command's clock, until ``visibility_seconds`` (30) of waiting
        passed (counted in the waits themselves, so a virtual clock bounds it too); then the
        NotFound stands: what is still unknown after that is gone, not late.
        """
        retrying = Retrying(
            retry=retry_if_exception_type(NotFoundError),
            wait=wait_exponential(multiplier=1, min=1, max=10),
            stop=lambda state: state.idle_for >= self.visibility_seconds,
            before_sleep=self.on_retry,
            sleep=self.sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return call()
        raise AssertionError("unreachable")  # pragma: no cover

    def _session(self, region: str) -> boto3.Session:
        if region not in self._sessions:
            try:
                self._sessions[region] = boto3.Session(
                    profile_name=self.profile, region_name=region, **self.credentials
                )
            except bex.ProfileNotFound as exc:
                raise credential_error(exc, region, self.endpoint_url) or AwsError(
                    str(exc)
                ) from exc
        return self._sessions[region]

    def client(self, service: str, region: str | None = None, account: str | None = None) -> Client:
        """The retrying client of ``service`` in ``region``; in member account ``account``
        (an ``[accounts.NAME]`` name) when given, signed with the role assumed there, else
        with the caller's own credentials."""
        region = region or self.default_region
        key = (service, region, account)
        with self._lock:
            if key in self._clients:
                return self._clients[key]
            session = self._session(region) if account is None else None
        if session is None:  # outside the lock: the first use assumes the role (an STS call)
            session = self._member(account).session(region)
        with self._lock:
            if key not in self._clients:
                kwargs: dict[str, Any] = {"config": self._config}
                if self.endpoint_url:
                    kwargs["endpoint_url"] = self.endpoint_url
                raw = session.client(service, **kwargs)
                raw.meta.events.register("before-call.*.*", self.counter)
                for event, handler in self._hooks:
                    raw.meta.events.register(event, handler)
                self._clients[key] = RetryingClient(raw, self._retrying)
            return self._clients[key]

    # --- member accounts ---------------------------------------------------------------------
    def account(self, name: str) -> AccountSettings:
        """The configured member account ``name``; a UsageError (exit 2) for an unknown one."""
        return resolve_accounts(self.accounts, [name], key="account")[0]

    def _member(self, name: str | None) -> MemberAccount:
        acc = self.account(str(name))
        with self._lock:
            if acc.name not in self._members:
                self._members[acc.name] = MemberAccount(self, acc)
            return self._members[acc.name]

    def assumed_roles(self) -> dict[str, str]:
        """Member account name -> the assumed-role ARN this factory's clients act as there, for
        every account whose role it has assumed so far (what the audit trail records)."""
        with self._lock:
            members = list(self._members.values())
        return {m.account.name: m.assumed_arn for m in members if m.assumed_arn}

    def assume_all(
        self,
        names: Iterable[str] | None = None,
        *,
        refuse: bool = True,
        on_account: Callable[[str], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Assume every named member role (all configured when ``names`` is None or empty; an
        unknown name is a UsageError before any call) and ask each account who imagefleet is
        there: one row per account (``assumable``, ``identity``, ``error``). With ``refuse``,
        an AwsError (exit 3) naming each account that cannot be assumed, with its reason: what
        a command that acts in member accounts calls before it changes anything."""
        rows = check_accounts(
            self, [a.name for a in resolve_accounts(self.accounts, names)], on_account
        )
        if refuse:
            refuse_unassumable(rows)
        return rows

    def register(self, event: str, handler: Callable[..., Any]) -> None:
        """Register a botocore event handler on every client, made already or later (e.g.
        ``before-send.*.*`` sees every HTTP request, retries included)."""
        with self._lock:
            self._hooks.append((event, handler))
            for client in self._clients.values():
                client.raw.meta.events.register(event, handler)

    def resolved_credentials(self) -> dict[str, str]:
        """The credentials these clients sign with (explicit, profile or the SDK chain), for tools
        such as Packer that must act as the same identity; empty when none are found."""
        creds = self._session(self.default_region).get_credentials()
        if creds is None:
            return {}
        frozen = creds.get_frozen_credentials()
        out = {"aws_access_key_id": frozen.access_key, "aws_secret_access_key": frozen.secret_key}
        if frozen.token:
            out["aws_session_token"] = frozen.token
        return out

    def caller_arn(self) -> str:
        """Who is acting, for the audit trail (STS GetCallerIdentity, asked once)."""
        if self._caller is None:
            try:
                self._caller = str(self.client("sts").get_caller_identity()["Arn"])
            except AwsError:
                return "unknown"
        return self._caller
