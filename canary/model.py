"""The rollout as typed records, and the one codec between them and the stored document.

A rollout is kept in the state store as one JSON document (kind ``canary-rollout``); the CLI's
``status --json``, the report site and the retrospective read that document. These records are
what the controller works on; ``Rollout.from_dict`` reads every document the controller has ever
written (keys added later are optional; a key no longer written, such as the old in-document
``journal``, is ignored) and ``to_dict`` writes the same keys in the same shape, so readers of the
document see no difference and rollouts already in a store load and resume.

A wave's records (batches, baselines, side groups, analysis) are ``canary.wave_state``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from canary.wave_state import (
    Analysis,
    Baselines,
    BatchState,
    SideGroups,
    Wave,
    account_field,
    group_key,
    with_optional,
)

JsonDict = dict[str, Any]

# A wave's records, importable from here as before they had a module of their own.
__all__ = [
    "Analysis",
    "ApiCalls",
    "Baselines",
    "BatchState",
    "CohortState",
    "GroupState",
    "NewBase",
    "Owner",
    "Rollout",
    "SideGroups",
    "TemplateVersion",
    "Wave",
    "group_key",
]


@dataclass
class GroupState:
    """One Auto Scaling group the rollout touches, and the template versions it moves between."""

    region: str
    name: str
    lt_id: str
    lt_version: str  # as the group named it when the rollout was planned ("3", "$Latest", ...)
    old_version: int  # the version it ran then: the rollback target
    new_ami: str
    mixed: bool
    new_version: int | None = None
    old_ami: str | None = None
    pinned: bool = False
    # Where its members (and so its canaries) take traffic, read when the rollout was planned:
    # ALB/NLB target-group ARNs and classic load-balancer names. Its baselines join them too.
    target_groups: list[str] = field(default_factory=list)
    load_balancers: list[str] = field(default_factory=list)
    account: str = ""  # "": the caller's own account

    @property
    def key(self) -> str:
        return group_key(self.account, self.region, self.name)

    def to_dict(self) -> JsonDict:
        return {
            **account_field(self.account),
            "region": self.region,
            "name": self.name,
            "lt_id": self.lt_id,
            "lt_version": self.lt_version,
            "old_version": self.old_version,
            "new_version": self.new_version,
            "old_ami": self.old_ami,
            "new_ami": self.new_ami,
            "mixed": self.mixed,
            "pinned": self.pinned,
            **({"target_groups": list(self.target_groups)} if self.target_groups else {}),
            **({"load_balancers": list(self.load_balancers)} if self.load_balancers else {}),
        }

    @classmethod
    def from_dict(cls, doc: JsonDict) -> GroupState:
        return cls(
            region=doc["region"],
            name=doc["name"],
            lt_id=doc["lt_id"],
            lt_version=str(doc["lt_version"]),
            old_version=int(doc["old_version"]),
            new_ami=doc["new_ami"],
            mixed=bool(doc["mixed"]),
            new_version=doc.get("new_version"),
            old_ami=doc.get("old_ami"),
            pinned=bool(doc.get("pinned")),
            target_groups=list(doc.get("target_groups") or []),
            load_balancers=list(doc.get("load_balancers") or []),
            account=doc.get("account", ""),
        )


@dataclass
class TemplateVersion:
    """The launch-template version made from one old version: shared by every group that ran it."""

    new_version: int
    old_ami: str | None

    def to_dict(self) -> JsonDict:
        return {"new_version": self.new_version, "old_ami": self.old_ami}

    @classmethod
    def from_dict(cls, doc: JsonDict) -> TemplateVersion:
        return cls(new_version=int(doc["new_version"]), old_ami=doc.get("old_ami"))


@dataclass
class CohortState:
    """One cohort (groups of one instance type or configuration) and its waves."""

    key: str
    size: int
    groups: list[str]  # "region/name" keys into ``Rollout.groups``
    waves: list[Wave]
    # pending → running → passed | paused | rolling_back → rolled_back | halted | lost
    status: str = "pending"
    wave: int = 0  # the wave in progress (== len(waves) once every wave passed)
    replaced: int = 0
    last_verdict: JsonDict | None = None
    rollback: JsonDict | None = None

    def replaced_so_far(self) -> int:
        """Instances of the cohort whose batch is done, over all its waves."""
        return sum(
            len(batch.instance_ids)
            for wave in self.waves
            for batch in wave.batches
            if batch.status == "done"
        )

    def to_dict(self) -> JsonDict:
        return {
            "key": self.key,
            "size": self.size,
            "status": self.status,
            "wave": self.wave,
            "groups": list(self.groups),
            "replaced": self.replaced,
            "last_verdict": self.last_verdict,
            "rollback": self.rollback,
            "waves": [wave.to_dict() for wave in self.waves],
        }

    @classmethod
    def from_dict(cls, doc: JsonDict) -> CohortState:
        return cls(
            key=doc["key"],
            size=int(doc["size"]),
            groups=list(doc["groups"]),
            waves=[Wave.from_dict(wave) for wave in doc["waves"]],
            status=doc.get("status", "pending"),
            wave=int(doc.get("wave", 0)),
            replaced=int(doc.get("replaced", 0)),
            last_verdict=doc.get("last_verdict"),
            rollback=doc.get("rollback"),
        )


@dataclass
class NewBase:
    """What the rollout moves to: a registered base (ref and version) or a bare AMI per region."""

    amis: dict[str, str]
    ref: str | None = None
    version: int | None = None

    def to_dict(self) -> JsonDict:
        return {"ref": self.ref, "amis": dict(self.amis), "version": self.version}

    @classmethod
    def from_dict(cls, doc: JsonDict) -> NewBase:
        return cls(amis=dict(doc["amis"]), ref=doc.get("ref"), version=doc.get("version"))


@dataclass
class Owner:
    """The process running the rollout right now (informational; the lease is what excludes)."""

    pid: int
    host: str
    since: str
    heartbeat: str

    def to_dict(self) -> JsonDict:
        return {
            "pid": self.pid,
            "host": self.host,
            "since": self.since,
            "heartbeat": self.heartbeat,
        }

    @classmethod
    def from_dict(cls, doc: JsonDict) -> Owner:
        return cls(
            pid=int(doc["pid"]), host=doc["host"], since=doc["since"], heartbeat=doc["heartbeat"]
        )


@dataclass
class ApiCalls:
    """AWS calls the rollout made, by operation (``ec2.RunInstances``), over all its runs."""

    by_operation: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())

    def add(self, calls: dict[str, int]) -> None:
        for operation, count in calls.items():
            if count > 0:
                self.by_operation[operation] = self.by_operation.get(operation, 0) + count

    def to_dict(self) -> JsonDict:
        return {"total": self.total, "by_operation": dict(self.by_operation)}

    @classmethod
    def from_dict(cls, doc: JsonDict) -> ApiCalls:
        return cls(by_operation={op: int(n) for op, n in (doc.get("by_operation") or {}).items()})


@dataclass
class Rollout:
    """One rollout of a new base over a family's groups, cohort by cohort."""

    id: str
    family: str
    new: NewBase
    created_at: str
    updated_at: str
    config: JsonDict  # the canary settings it runs with (``CanarySettings.to_dict``)
    summary: JsonDict  # the plan's summary (``Plan.summary``)
    groups: dict[str, GroupState]  # by "region/name"
    cohorts: list[CohortState]
    status: str = "running"  # running | paused | aborting | rolling_back, then one of FINAL
    actor: str | None = None
    templates: dict[str, TemplateVersion] = field(
        default_factory=dict
    )  # by "region/lt_id/old_version"
    owner: Owner | None = None
    api_calls: ApiCalls = field(default_factory=ApiCalls)
    reason: str | None = None
    finished_at: str | None = None

    def group_of(self, batch: BatchState) -> GroupState:
        return self.groups[batch.group_key]

    def to_dict(self) -> JsonDict:
        return with_optional(
            {
                "id": self.id,
                "family": self.family,
                "new": self.new.to_dict(),
                "status": self.status,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
                "actor": self.actor,
                "config": self.config,
                "summary": self.summary,
                "groups": {key: group.to_dict() for key, group in self.groups.items()},
                "templates": {key: template.to_dict() for key, template in self.templates.items()},
                "cohorts": [cohort.to_dict() for cohort in self.cohorts],
                "owner": self.owner.to_dict() if self.owner else None,
                "api_calls": self.api_calls.to_dict(),
                "reason": self.reason,
            },
            finished_at=self.finished_at,
        )

    @classmethod
    def from_dict(cls, doc: JsonDict) -> Rollout:
        owner = doc.get("owner")
        return cls(
            id=doc["id"],
            family=doc["family"],
            new=NewBase.from_dict(doc["new"]),
            created_at=doc["created_at"],
            updated_at=doc.get("updated_at") or doc["created_at"],
            config=dict(doc.get("config") or {}),
            summary=dict(doc.get("summary") or {}),
            groups={key: GroupState.from_dict(group) for key, group in doc["groups"].items()},
            cohorts=[CohortState.from_dict(cohort) for cohort in doc["cohorts"]],
            status=doc.get("status", "running"),
            actor=doc.get("actor"),
            templates={
                key: TemplateVersion.from_dict(t) for key, t in (doc.get("templates") or {}).items()
            },
            owner=Owner.from_dict(owner) if owner else None,
            api_calls=ApiCalls.from_dict(doc.get("api_calls") or {}),
            reason=doc.get("reason"),
            finished_at=doc.get("finished_at"),
        )
