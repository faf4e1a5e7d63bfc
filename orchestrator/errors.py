"""One error hierarchy for imagefleet; each error knows its CLI exit code.

Exit codes (see ``ExitStatus``): 0 ok, 1 a gate/judge/test said no, 2 bad input or
configuration, 3 an AWS or tool failure, 130 interrupted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.store.lease_records import Lease


class ExitStatus(IntEnum):
    OK = 0
    REFUSED = 1
    BAD_INPUT = 2
    FAILURE = 3
    INTERRUPTED = 130


class ImagefleetError(Exception):
    """Root of every error imagefleet raises on purpose."""

    exit_code: ExitStatus = ExitStatus.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


# --- bad input (exit 2) ---------------------------------------------------------------------------
class UsageError(ImagefleetError, ValueError):
    """The caller asked for something that cannot be: a bad argument or combination."""

    exit_code = ExitStatus.BAD_INPUT


class ConfigError(UsageError):
    """The configuration file is missing, malformed or invalid; names the key."""


class NotFoundError(UsageError, LookupError):
    """An AMI, base version, family, rollout or run that does not exist."""


class IllegalTransitionError(UsageError):
    """A stage move the stage table does not allow."""


class ManifestError(UsageError):
    """A package manifest that cannot be read; names file and line."""


class ChangelogFileError(UsageError):
    """A changelog file that cannot be read (a truncated or corrupt .gz); names the file."""


class InputFormatError(UsageError):
    """A samples or metrics file that cannot be read."""


# --- refused (exit 1) -----------------------------------------------------------------------------
class RefusedError(ImagefleetError):
    """A gate, the judge or a test said no. Not a failure of the tool."""

    exit_code = ExitStatus.REFUSED


class GateError(RefusedError):
    """Promotion refused because gates are unmet."""

    def __init__(self, message: str, unmet: list[str] | None = None) -> None:
        super().__init__(message)
        self.unmet = unmet or []


class PermissionDeniedError(RefusedError, PermissionError):
    """The caller is not allowed (e.g. not a release promoter)."""


class LeaseHeldError(RefusedError):
    """Someone else holds the lease this command needs: names the holder, since when, and how to see
    it."""

    def __init__(self, lease: Lease) -> None:
        since = datetime.fromtimestamp(lease.acquired_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        super().__init__(
            f"{lease.name} is held by {lease.actor} (pid {lease.pid} on {lease.host}, "
            f"'{lease.command}') since {since}",
            hint="'imagefleet leases' shows every lease; add --wait to wait for it",
        )
        self.lease = lease


# --- failures (exit 3) ----------------------------------------------------------------------------
class AwsError(ImagefleetError):
    """An AWS call failed after retries; ``code`` is AWS's error code ("" for a connection
    failure) and ``operation`` the API operation, so callers match codes, not messages."""

    def __init__(
        self, message: str, *, code: str = "", operation: str = "", hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.operation = operation


class ToolError(ImagefleetError):
    """An external tool (Packer, apt, moto's server) failed."""


class PackerError(ToolError):
    """Packer exited non-zero; the message carries Packer's own error text."""


class StateError(ImagefleetError):
    """The state store is unusable (locked, newer schema, corrupt)."""


class ConflictError(StateError):
    """An optimistic-concurrency write lost, or a lease is held by someone else."""


class LeaseLostError(StateError):
    """A lease this process held was taken over (it stalled past its TTL and someone else took it).

    Exit 1: the holder stopped on purpose before its next side effect; the new holder carries on.
    """

    exit_code = ExitStatus.REFUSED

    def __init__(self, name: str, holder: Lease | None = None) -> None:
        if holder is None:
            who = "nobody holds it now"
        else:
            who = f"{holder.actor} (pid {holder.pid} on {holder.host}, '{holder.command}')"
            who += ", which has released it since" if holder.released else ""
        super().__init__(
            f"lost the lease {name} to {who}; this process stopped and wrote nothing more"
            if holder is not None
            else f"lost the lease {name}: {who}; this process stopped and wrote nothing more",
            hint="the new holder carries on; 'imagefleet leases' shows it, rerun later to see "
            "where it stands",
        )
        self.name = name
        self.holder = holder
