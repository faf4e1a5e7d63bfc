"""The state store: base versions, stage pointers and their history, gate evidence, the audit
trail, resumable operations, leases, and documents (whatever the areas keep, each area's kinds
declared in its own ``records`` module) — behind one interface that names no area's records.

``SqliteStore`` is the default backend (a file in the state directory, WAL, one transaction per
write, a schema version with migrations). ``DynamoStore`` (``orchestrator.store.dynamodb``)
implements the same ``StateStore`` interface on one DynamoDB table for teams running several
orchestrators; the contract tests in ``tests/orchestrator/test_store*.py`` run on both backends.

The records every backend shares have modules of their own, re-exported here: the history
(``orchestrator.store.history``), leases and fences (``orchestrator.store.lease_records``) and
token buckets (``orchestrator.store.tokens``).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.store.history import AuditEntry, Evidence, StageChange
from orchestrator.store.lease_records import Fence, Lease, LeaseIsDead, lease_blocks
from orchestrator.store.tokens import BUCKET_KIND, BUCKET_RACE_ATTEMPTS, TokenBucket, bucket_take

if TYPE_CHECKING:
    from orchestrator.config import Settings


ISO_INSTANT = "%Y-%m-%dT%H:%M:%S.%fZ"  # how the store writes instants: ISO 8601, UTC, microseconds


def utcnow() -> str:
    return datetime.now(UTC).strftime(ISO_INSTANT)


def utc_iso(ts: float) -> str:
    """A Unix time written as the store writes instants."""
    return datetime.fromtimestamp(ts, UTC).strftime(ISO_INSTANT)


@dataclass
class BaseVersion:
    """One baked base image: a family's version with its AMI per region.

    ``amis`` is the family's default architecture (what readers before multi-architecture bases
    read); ``architectures`` maps each architecture the bake made to its AMI per region, and is
    empty in a record written before them (``orchestrator.arch.base_architectures`` then asks EC2
    which single architecture the record has).

    ``source_ami`` is the parent AMI the base was baked from (its ancestry upstream);
    ``recipe_digest`` a digest of the recipe that baked it (template and variables), empty in a
    record written before it. ``disabled_at`` and ``retired_at`` are when retirement disabled the
    base's AMIs and when it deregistered them and deleted their snapshots; ``None`` while in use.
    """

    family: str
    version: int
    amis: dict[str, str]
    source_ami: str
    parent: int | None
    packer_run_id: str
    created_at: str
    manifest: str = ""
    manifest_uri: str | None = None
    changelog: dict[str, Any] = field(default_factory=dict)
    stage: str = "unstable"
    architectures: dict[str, dict[str, str]] = field(default_factory=dict)
    recipe_digest: str = ""
    disabled_at: str | None = None
    retired_at: str | None = None

    # the fields ``Store.update_base`` may change; JSON ones are stored as text
    UPDATABLE = frozenset(
        {"amis", "manifest", "manifest_uri", "changelog", "stage", "architectures"}
        | {"recipe_digest", "disabled_at", "retired_at"}
    )
    JSON_FIELDS = frozenset({"amis", "changelog", "architectures"})

    @property
    def retired(self) -> bool:
        return self.retired_at is not None

    @property
    def ref(self) -> str:
        return f"{self.family}:{self.version}"

    def region_amis(self) -> list[tuple[str, str]]:
        """Every (region, AMI) of the base, of every architecture; the default's first."""
        pairs = list(self.amis.items())
        for regions in self.architectures.values():
            pairs += [p for p in regions.items() if p not in pairs]
        return pairs

    def all_amis(self) -> set[str]:
        """Every AMI of the base, of every architecture and region (what the base owns)."""
        return set(self.amis.values()) | {
            ami for regions in self.architectures.values() for ami in regions.values()
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ref"] = self.ref
        return d


ANY: object = object()  # move_pointer(expected=ANY): no condition on the current pointer


@dataclass
class WriteMeter:
    """What a store wrote since it was opened: records written, their bytes, the largest one.

    Bytes are the record's stored text (SQLite) or its DynamoDB item size (attribute names and
    values); the bench and ``canary.simulate --json`` report them."""

    writes: int = 0
    bytes_written: int = 0
    max_record_bytes: int = 0

    def note(self, nbytes: int) -> None:
        self.writes += 1
        self.bytes_written += nbytes
        self.max_record_bytes = max(self.max_record_bytes, nbytes)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


DocWrite = tuple[str, dict[str, Any], "int | None"]  # (id, body, expected revision) of one document


class StateStore(ABC):
    """What every backend provides. Each method is one atomic change.

    A *fenced view* (``fenced``) is the same store with a ``Fence``: each backend sends every write
    through one private helper (SQLite ``_tx``, DynamoDB ``_transact``/``_write``) that adds the
    fence's condition to the write itself, so a holder that lost its lease writes nothing.
    """

    _fence: Fence | None = None
    # Member account name -> assumed-role ARN the command acts as there (``AwsFactory.
    # assumed_roles``); set by the command's context, recorded on each audit entry it writes.
    assumed_roles: Callable[[], dict[str, str]] | None = None
    _alive: Callable[[], None] | None = (
        None  # raises when the holder's heartbeat saw the lease lost
    )

    def fenced(self, fence: Fence, alive: Callable[[], None] | None = None) -> StateStore:
        """This store, every write of which is refused (``LeaseLostError``) unless ``fence`` still
        holds.

        ``alive`` is asked first (the heartbeat's verdict, no store call needed). Lease methods
        (acquire, renew, release) are never fenced: they are how leases change hands."""
        _ = self.meter  # made before the copy, so the view counts its writes in the same meter
        view = copy.copy(self)
        view._fence, view._alive = fence, alive
        return view

    @property
    def fence(self) -> Fence | None:
        return self._fence

    def check_fence(self) -> None:
        """In a fenced view: raise ``LeaseLostError`` (naming the new holder) unless every fenced
        lease is still ours with our token — the heartbeat's verdict, then a fresh read. A plain
        store: nothing to check."""
        if self._fence is None:
            return
        if self._alive is not None:
            self._alive()
        for name in self._fence.names:
            held = self.lease(name)
            if not self._fence.holds(held):
                raise self._fence.lost(name, held)

    # base versions
    @abstractmethod
    def next_version(self, family: str) -> int:
        """One past the highest registered base of ``family`` (1 for a new family)."""

    @abstractmethod
    def put_base(self, base: BaseVersion) -> None: ...
    @abstractmethod
    def get_base(self, family: str, version: int) -> BaseVersion: ...
    @abstractmethod
    def bases(self, family: str | None = None) -> list[BaseVersion]: ...
    @abstractmethod
    def find_base_by_ami(self, ami: str) -> BaseVersion: ...
    @abstractmethod
    def update_base(self, family: str, version: int, **fields: Any) -> None: ...

    # stage pointers
    @abstractmethod
    def pointer(self, family: str, stage: str) -> int | None: ...
    @abstractmethod
    def pointers(self) -> dict[tuple[str, str], tuple[int, str]]: ...
    @abstractmethod
    def move_pointer(
        self,
        family: str,
        stage: str,
        version: int | None,
        *,
        action: str,
        actor: str,
        reason: str,
        details: dict[str, Any] | None = None,
        expected: int | object | None = ANY,
    ) -> StageChange:
        """Point ``stage`` at ``version``; refused (``ConflictError``) when it already points there,
        or when ``expected`` is given and the stage points elsewhere. A ``rollback`` marks the
        history rows of the base it moves away from as rolled back."""

    @abstractmethod
    def stage_history(self, family: str, stage: str | None = None) -> list[StageChange]: ...

    # evidence and audit
    @abstractmethod
    def add_evidence(self, ev: Evidence) -> None: ...
    @abstractmethod
    def evidence(self, family: str, version: int) -> list[Evidence]: ...
    def _audit_details(self, details: dict[str, Any] | None) -> dict[str, Any]:
        """An audit entry's details, with the member-account roles the command assumed
        (``assumed_roles``: account name -> assumed-role ARN) when it used any."""
        out = dict(details or {})
        roles = self.assumed_roles() if self.assumed_roles else {}
        if roles and "assumed_roles" not in out:
            out["assumed_roles"] = roles
        return out

    @abstractmethod
    def audit(
        self,
        actor: str,
        action: str,
        target: str,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> None: ...
    @abstractmethod
    def audit_trail(self, family: str | None = None, limit: int = 200) -> list[AuditEntry]: ...

    # resumable operations (see orchestrator.engine)
    @abstractmethod
    def open_operation(self, op_id: str, kind: str, intent: dict[str, Any]) -> dict[str, Any]: ...
    @abstractmethod
    def operation(self, op_id: str) -> dict[str, Any] | None: ...
    @abstractmethod
    def operations(
        self, kind: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]: ...
    @abstractmethod
    def finish_operation(self, op_id: str, status: str) -> None: ...
    @abstractmethod
    def step(self, op_id: str, name: str) -> dict[str, Any] | None: ...
    @abstractmethod
    def record_step(self, op_id: str, name: str, status: str, result: object = None) -> None:
        """A done step stays done: recording it ``pending`` again is a ``ConflictError``."""

    # documents: rollouts, perf runs, anything an area keeps as JSON, with optimistic concurrency
    @abstractmethod
    def get_doc(self, kind: str, doc_id: str) -> tuple[dict[str, Any], int]: ...
    @abstractmethod
    def put_doc(
        self, kind: str, doc_id: str, body: dict[str, Any], *, expected_revision: int | None
    ) -> int: ...
    @abstractmethod
    def docs(self, kind: str) -> list[dict[str, Any]]: ...
    @abstractmethod
    def get_docs(self, kind: str) -> dict[str, tuple[dict[str, Any], int]]:
        """Every document of ``kind`` by id, with its revision."""

    def put_docs(self, kind: str, writes: list[DocWrite]) -> list[int]:
        """Several documents of one kind, each conditioned on its revision as ``put_doc`` is; their
        new revisions. SQLite writes them in one transaction; DynamoDB one conditional put each,
        in order (a reader may see the first before the last; a refused one stops the call)."""
        return [
            self.put_doc(kind, doc_id, body, expected_revision=rev) for doc_id, body, rev in writes
        ]

    @property
    def meter(self) -> WriteMeter:
        """The writes this store made (``WriteMeter``)."""
        meter: WriteMeter | None = self.__dict__.get("_meter")
        if meter is None:
            meter = self.__dict__["_meter"] = WriteMeter()
        return meter

    # leases (see orchestrator.store.leases)
    @abstractmethod
    def acquire_leases(self, leases: list[Lease], *, now: float, is_dead: LeaseIsDead) -> int:
        """All or none: each name is free, expired, dead by ``is_dead``, or already ``owner``'s.
        Raises ``LeaseHeldError`` naming the first holder in the way. Returns the fencing token
        the leases now carry (the ``token`` of the given leases is ignored): larger than any the
        store handed out before."""

    @abstractmethod
    def renew_leases(
        self, owner: str, names: list[str], *, now: float, expires_at: float | None
    ) -> None:
        """Heartbeat; ``LeaseLostError`` when another owner took any of them over."""

    @abstractmethod
    def release_leases(self, owner: str, names: list[str] | None = None) -> None: ...
    @abstractmethod
    def leases(self) -> list[Lease]: ...
    @abstractmethod
    def lease(self, name: str) -> Lease | None:
        """The lease on ``name`` as stored now (strongly consistent): held, expired or released."""

    # token buckets: API budgets shared by every rollout in flight (see canary.budget)
    def take_tokens(
        self,
        name: str,
        count: float,
        *,
        capacity: float,
        refill_per_s: float,
        now: float,
        reserve: bool = False,
    ) -> float:
        """Take ``count`` tokens from bucket ``name`` atomically (``bucket_take``'s rule): 0.0 when
        taken; else the seconds until they are there (taken all the same with ``reserve``).

        Any backend: the bucket is a document, written back only from the revision it was read
        at (``put_doc``'s conditional write) and read again when another writer won. SQLite
        overrides this with one transaction."""
        for _ in range(BUCKET_RACE_ATTEMPTS):
            try:
                body, revision = self.get_doc(BUCKET_KIND, name)
                current: TokenBucket | None = TokenBucket(**body)
            except NotFoundError:
                current, revision = None, None
            new, wait = bucket_take(
                current,
                name,
                count,
                capacity=capacity,
                refill_per_s=refill_per_s,
                now=now,
                reserve=reserve,
            )
            if new is None:
                return wait
            try:
                self.put_doc(BUCKET_KIND, name, new.to_dict(), expected_revision=revision)
                return wait
            except ConflictError:
                continue
        raise ConflictError(f"token bucket {name} kept changing underneath")

    def buckets(self) -> list[TokenBucket]:
        return sorted(
            (TokenBucket(**body) for body in self.docs(BUCKET_KIND)), key=lambda b: b.name
        )

    def close(self) -> None:  # noqa: B027 - optional: only backends that hold a connection
        pass


def check_move(
    family: str, stage: str, version: int | None, previous: int | None, expected: object
) -> None:
    """The conditions every backend applies to a pointer move."""
    if version is not None and previous == version:
        raise ConflictError(f"{family} {stage} already names {family}:{version}")
    if expected is not ANY and previous != expected:
        raise ConflictError(
            f"{family} {stage} changed underneath: it names {previous}, expected {expected}"
        )


def open_store(settings: Settings) -> StateStore:
    """The store ``[state] backend`` names: the SQLite file at ``state.path`` or the DynamoDB
    ``state.table``."""
    if settings.state.backend == "dynamodb":
        from orchestrator.store.dynamodb import DynamoStore

        return DynamoStore.from_settings(settings)
    from orchestrator.store.sqlite import SqliteStore

    return SqliteStore(settings.state.path)


# The SQLite backend lives in its own module; it is the default, so it is importable from here too.
# Loaded on first use, so that importing orchestrator.store.sqlite first does not meet this module
# half-initialised (orchestrator.store.sqlite builds on the records above).
_SQLITE_NAMES = ("MIGRATIONS", "SCHEMA_VERSION", "SqliteStore")
if TYPE_CHECKING:
    from orchestrator.store.sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteStore


def __getattr__(name: str) -> Any:
    if name in _SQLITE_NAMES:
        from orchestrator.store import sqlite as store_sqlite

        return getattr(store_sqlite, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ANY",
    "BUCKET_KIND",
    "BUCKET_RACE_ATTEMPTS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AuditEntry",
    "BaseVersion",
    "Evidence",
    "Fence",
    "Lease",
    "LeaseIsDead",
    "SqliteStore",
    "StageChange",
    "StateStore",
    "TokenBucket",
    "bucket_take",
    "check_move",
    "lease_blocks",
    "open_store",
    "utcnow",
]
