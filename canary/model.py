"""The rollout as typed records, and the one codec between them and the stored document.

A rollout is kept in the state store as one JSON document (kind ``canary-rollout``); the CLI's
``status --json``, the report site and the retrospective read that document. These records are
what the controller works on; ``Rollout.from_dict`` reads every document the controller has ever
written (keys added later are optional; a key no longer written, such as the old in-document
``journal``, is ignored) and ``to_dict`` writes the same keys in the same shape, so readers of the
document see no difference and rollouts already in a store load and resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from canary.judge.decision import Verdict

JsonDict = dict[str, Any]


def _some(out: JsonDict, **optional: object) -> JsonDict:
    """``out`` with the optional keys that are set: a document never stored them as null."""
    out.update({key: value for key, value in optional.items() if value is not None})
    return out


def group_key(account: str, region: str, name: str) -> str:
    """A group's key in ``Rollout.groups``: ``region/name`` in the caller's own account (as every
    record before accounts has it), ``account/region/name`` in a named one."""
    return f"{account}/{region}/{name}" if account else f"{region}/{name}"


def _account(account: str) -> JsonDict:
    """The ``account`` key, written only for a named account: a record of a rollout in the
    caller's account keeps the shape it always had, and an old record reads as the caller's."""
    return {"account": account} if account else {}


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
            **_account(self.account),
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
class BatchState:
    """A batch of the plan (instances of one group replaced together) and how far it got."""

    region: str
    group: str
    step: int
    offset_s: float
    instance_ids: list[str]
    status: str = "pending"  # pending → terminating → done
    before: list[str] = field(default_factory=list)  # the group's members just before it acted
    instance_type: str = ""
    replacements: list[str] = field(
        default_factory=list
    )  # the new members it brought (in its region)
    account: str = ""  # the group's account ("": the caller's own)

    @property
    def group_key(self) -> str:
        return group_key(self.account, self.region, self.group)

    @property
    def place(self) -> tuple[str, str]:
        """(account, region): the API budget the batch draws from."""
        return (self.account, self.region)

    def to_dict(self) -> JsonDict:
        return {
            **_account(self.account),
            "region": self.region,
            "group": self.group,
            "step": self.step,
            "offset_s": self.offset_s,
            "instance_ids": list(self.instance_ids),
            "status": self.status,
            "before": list(self.before),
            "instance_type": self.instance_type,
            **({"replacements": list(self.replacements)} if self.replacements else {}),
        }

    @classmethod
    def from_dict(cls, doc: JsonDict) -> BatchState:
        return cls(
            region=doc["region"],
            group=doc["group"],
            step=int(doc["step"]),
            offset_s=float(doc["offset_s"]),
            instance_ids=list(doc["instance_ids"]),
            status=doc.get("status", "pending"),
            before=list(doc.get("before") or []),
            instance_type=doc.get("instance_type", ""),
            replacements=list(doc.get("replacements") or []),
            account=doc.get("account", ""),
        )


@dataclass
class Baselines:
    """Fresh instances on the old base, launched beside a wave's canaries and ended after its
    verdict."""

    status: str = "pending"  # pending → launched → done (running, and in traffic if any)
    ids: dict[str, list[str]] = field(default_factory=dict)  # region → instance ids
    launched_at: float | None = None
    cleaned: bool = False
    # The load balancers they joined (their group's, beside which they were launched), recorded
    # before registering so that a resumed run or ``gc`` takes them out again before terminating.
    target_groups: list[str] = field(default_factory=list)
    load_balancers: list[str] = field(default_factory=list)
    drained_s: float | None = None  # the connection drain waited out before they were ended

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.ids.values())

    def to_dict(self) -> JsonDict:
        return _some(
            {"status": self.status, "ids": {region: list(ids) for region, ids in self.ids.items()}},
            launched_at=self.launched_at,
            cleaned=self.cleaned or None,
            target_groups=list(self.target_groups) or None,
            load_balancers=list(self.load_balancers) or None,
            drained_s=self.drained_s,
        )

    @classmethod
    def from_dict(cls, doc: JsonDict) -> Baselines:
        return cls(
            status=doc.get("status", "pending"),
            ids={r: list(i) for r, i in (doc.get("ids") or {}).items()},
            launched_at=doc.get("launched_at"),
            cleaned=bool(doc.get("cleaned")),
            target_groups=list(doc.get("target_groups") or []),
            load_balancers=list(doc.get("load_balancers") or []),
            drained_s=doc.get("drained_s"),
        )


@dataclass
class SideGroups:
    """A wave's canaries and baselines in target groups of their own, for a
    ``cloudwatch-target-group`` metric, behind the listener of the group's own target group
    (``canary.sides``). Recorded when made, before the listener is weighted, so that a resumed run
    restores the listener and deletes them."""

    region: str
    own: str  # the group's target group (ARN) the sides are made like
    load_balancer: str  # ARN
    listener: str  # ARN
    canary: str  # the canaries' target group (ARN)
    baseline: str  # the baselines' target group (ARN)
    actions: list[JsonDict] = field(default_factory=list)  # the listener's, from before
    status: str = "made"  # made → weighted → restored → removed

    def to_dict(self) -> JsonDict:
        return {
            "region": self.region,
            "own": self.own,
            "load_balancer": self.load_balancer,
            "listener": self.listener,
            "canary": self.canary,
            "baseline": self.baseline,
            "actions": list(self.actions),
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, doc: JsonDict) -> SideGroups:
        return cls(
            region=doc["region"],
            own=doc["own"],
            load_balancer=doc["load_balancer"],
            listener=doc["listener"],
            canary=doc["canary"],
            baseline=doc["baseline"],
            actions=list(doc.get("actions") or []),
            status=doc.get("status", "made"),
        )


@dataclass
class Analysis:
    """A wave's analysis window: it opens ``warmup`` after every replacement was healthy."""

    healthy_at: float
    window_start: str | None = None
    window_end: str | None = None

    def to_dict(self) -> JsonDict:
        return _some(
            {"healthy_at": self.healthy_at},
            window_start=self.window_start,
            window_end=self.window_end,
        )

    @classmethod
    def from_dict(cls, doc: JsonDict) -> Analysis:
        return cls(
            healthy_at=float(doc["healthy_at"]),
            window_start=doc.get("window_start"),
            window_end=doc.get("window_end"),
        )


@dataclass
class Wave:
    """One wave of a cohort: its batches, canaries, baselines, analysis window and verdict."""

    index: int
    target: int  # instances of the cohort replaced once this wave is done (cumulative)
    steps: int
    batches: list[BatchState]
    status: str = "pending"  # pending → replacing → analysing → judged → passed | paused | failed
    canaries: list[str] = field(default_factory=list)
    baselines: Baselines = field(default_factory=Baselines)
    analysis: Analysis | None = None
    verdict: Verdict | None = None
    override: JsonDict | None = None  # who accepted a paused wave's verdict, and when
    sides: SideGroups | None = None  # its sides' own target groups (cloudwatch-target-group)

    def batches_of_step(self, step: int) -> list[BatchState]:
        return [batch for batch in self.batches if batch.step == step]

    def to_dict(self) -> JsonDict:
        return _some(
            {
                "index": self.index,
                "target": self.target,
                "status": self.status,
                "steps": self.steps,
                "batches": [batch.to_dict() for batch in self.batches],
                "canaries": list(self.canaries),
                "baselines": self.baselines.to_dict(),
                "analysis": self.analysis.to_dict() if self.analysis else None,
                "verdict": self.verdict,
            },
            override=self.override,
            sides=self.sides.to_dict() if self.sides else None,
        )

    @classmethod
    def from_dict(cls, doc: JsonDict) -> Wave:
        analysis = doc.get("analysis")
        sides = doc.get("sides")
        return cls(
            index=int(doc["index"]),
            target=int(doc["target"]),
            steps=int(doc["steps"]),
            batches=[BatchState.from_dict(batch) for batch in doc["batches"]],
            status=doc.get("status", "pending"),
            canaries=list(doc.get("canaries") or []),
            baselines=Baselines.from_dict(doc.get("baselines") or {}),
            analysis=Analysis.from_dict(analysis) if analysis else None,
            verdict=cast("Verdict | None", doc.get("verdict")),
            override=doc.get("override"),
            sides=SideGroups.from_dict(sides) if sides else None,
        )


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
        return _some(
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
