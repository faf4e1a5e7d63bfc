"""A wave's typed state within the rollout's document: its batches, baselines, side groups and
analysis (``canary.model`` holds the cohorts and the rollout around them), with the codec
helpers every record of the document shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from canary.judge.decision import Verdict

JsonDict = dict[str, Any]


def with_optional(out: JsonDict, **optional: object) -> JsonDict:
    """``out`` with the optional keys that are set: a document never stored them as null."""
    out.update({key: value for key, value in optional.items() if value is not None})
    return out


def group_key(account: str, region: str, name: str) -> str:
    """A group's key in ``Rollout.groups``: ``region/name`` in the caller's own account (as every
    record before accounts has it), ``account/region/name`` in a named one."""
    return f"{account}/{region}/{name}" if account else f"{region}/{name}"


def account_field(account: str) -> JsonDict:
    """The ``account`` key, written only for a named account: a record of a rollout in the
    caller's account keeps the shape it always had, and an old record reads as the caller's."""
    return {"account": account} if account else {}


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
            **account_field(self.account),
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
        return with_optional(
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
        return with_optional(
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
        return with_optional(
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
