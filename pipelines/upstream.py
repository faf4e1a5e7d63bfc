"""Is a family due a rebake? Upstream's parent AMI moved, the recipe changed, or the newest base
grew older than ``[families.X] max_age``.

``decide`` is the whole decision, on plain data (the parent upstream names now, the family's bases,
the recipe's digest now, the clock); ``check`` reads those (the parent through ``pipelines.parent``,
which is the bake's own resolution) and calls it. ``imagefleet upstream`` shows the answer per
family, ``imagefleet run --if-changed`` bakes only when it says ``outdated``, and ``status`` and
the report show it beside each family's bases.

The newest base is the highest registered version that retirement has not deregistered: a failed
bake registers nothing, and a retired base no longer runs anywhere, so neither says what the family
was last baked from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from orchestrator.clock import human_age
from orchestrator.config import FamilySettings, Settings
from orchestrator.errors import AwsError, ImagefleetError
from orchestrator.store import BaseVersion, StateStore
from pipelines import parent as parents
from pipelines import recipe

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory


@dataclass(frozen=True)
class Upstream:
    """One family's answer: what upstream names now against what its newest base was baked from."""

    family: str
    parent: str | None  # the parent AMI upstream names now
    baked_from: str | None  # the newest base's source_ami; None without a base
    newest: int | None  # the newest base's version
    moved: bool  # upstream names another parent than the newest base was baked from
    recipe_changed: bool  # the recipe's digest differs from the newest base's
    too_old: bool  # the newest base is older than max_age
    reasons: list[str] = field(default_factory=list)  # why it is outdated, one sentence each
    age_s: float | None = None  # the newest base's age, seconds
    max_age_s: int | None = None  # [families.X] max_age
    recipe: str = ""  # the recipe's digest now
    baked_recipe: str = ""  # the newest base's ("" when it was baked before bases recorded it)
    source: str = ""  # how the family names its parent: the parameter, the filter or the AMI

    @property
    def outdated(self) -> bool:
        """A bake is due: upstream moved, the recipe changed, the base is too old, or none yet."""
        return self.newest is None or self.moved or self.recipe_changed or self.too_old

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "parent": self.parent,
            "baked_from": self.baked_from,
            "newest": self.newest,
            "ref": f"{self.family}:{self.newest}" if self.newest is not None else None,
            "moved": self.moved,
            "recipe_changed": self.recipe_changed,
            "too_old": self.too_old,
            "outdated": self.outdated,
            "reasons": list(self.reasons),
            "age_seconds": self.age_s,
            "max_age_seconds": self.max_age_s,
            "recipe": self.recipe,
            "baked_recipe": self.baked_recipe,
            "source": self.source,
        }


def newest_base(bases: Iterable[BaseVersion]) -> BaseVersion | None:
    """The highest registered version not retired (failed bakes register no base)."""
    live = [b for b in bases if not b.retired]
    return max(live, key=lambda b: b.version) if live else None


def source_of(family: FamilySettings) -> str:
    """How the family names its parent, in words for tables and reasons."""
    if family.source_parameter:
        return family.source_parameter
    if family.source_filter:
        return f"the newest image named {family.source_filter.get('name')}"
    return "source_ami"


def _created(base: BaseVersion) -> datetime | None:
    try:
        return datetime.fromisoformat(base.created_at.replace("Z", "+00:00"))
    except ValueError:
        return None


def decide(
    family: str,
    parent: str | None,
    bases: Iterable[BaseVersion],
    recipe_now: str,
    max_age: int | None,
    now: datetime,
    source: str = "",
) -> Upstream:
    """The answer from plain data: no AWS, no store."""
    base = newest_base(bases)
    if base is None:
        return Upstream(
            family,
            parent,
            None,
            None,
            False,
            False,
            False,
            [f"{family} has no base yet: its first bake is due"],
            max_age_s=max_age,
            recipe=recipe_now,
            source=source,
        )
    moved = parent is not None and base.source_ami != parent
    # a base baked before bases recorded their recipe says nothing about it: not "changed"
    recipe_changed = bool(base.recipe_digest) and base.recipe_digest != recipe_now
    created = _created(base)
    age = (now - created).total_seconds() if created is not None else None
    too_old = max_age is not None and age is not None and age > max_age
    reasons = []
    if moved:
        reasons.append(
            f"upstream moved: {source or 'the source'} names {parent} now; "
            f"{base.ref} was baked from {base.source_ami}"
        )
    if recipe_changed:
        reasons.append(
            f"the recipe changed since {base.ref} (template, variables, var files, manifest "
            "or architecture)"
        )
    if too_old and age is not None and max_age is not None:
        reasons.append(
            f"{base.ref} is {human_age(timedelta(seconds=age))} old, "
            f"past max_age {human_age(timedelta(seconds=max_age))}"
        )
    return Upstream(
        family,
        parent,
        base.source_ami,
        base.version,
        moved,
        recipe_changed,
        too_old,
        reasons,
        age_s=age,
        max_age_s=max_age,
        recipe=recipe_now,
        baked_recipe=base.recipe_digest,
        source=source,
    )


def check(
    aws: AwsFactory, settings: Settings, store: StateStore, family: str, now: datetime
) -> Upstream:
    """Read what the decision needs (the parent in the family's first region, its bases, its
    recipe) and decide. Reads only: nothing in AWS or the store changes."""
    fam = settings.family(family)
    return decide(
        fam.name,
        parents.resolve(aws, fam),
        store.bases(fam.name),
        recipe.digest(fam),
        fam.max_age,
        now,
        source_of(fam),
    )


def answers(
    aws: AwsFactory, settings: Settings, store: StateStore, families: Iterable[str], now: datetime
) -> dict[str, Upstream | str]:
    """Each family's answer, or why there is none: the report and ``status --upstream`` show it
    beside what the store holds, so a parent that cannot be read costs one line, not the page.
    Once AWS cannot be reached at all (a connection failure after retries: ``AwsError.code`` is
    empty), the remaining families are not asked: each says why, and the retry budget is paid
    once, not once a family."""
    out: dict[str, Upstream | str] = {}
    unreachable: str | None = None
    for name in families:
        if unreachable is not None:
            out[name] = unreachable
            continue
        try:
            out[name] = check(aws, settings, store, name, now)
        except ImagefleetError as exc:
            out[name] = exc.message
            if isinstance(exc, AwsError) and not exc.code:
                unreachable = exc.message
    return out


def skipping_line(answer: Upstream) -> str:
    """Why ``run --if-changed`` bakes nothing: one line an hourly scheduler's log can keep."""
    age = ""
    if answer.age_s is not None:
        age = f", {human_age(timedelta(seconds=answer.age_s))} old"
        if answer.max_age_s:
            age += f" (max_age {human_age(timedelta(seconds=answer.max_age_s))})"
    return (
        f"{answer.family} is up to date: {answer.family}:{answer.newest} was baked from "
        f"{answer.baked_from}, the parent upstream names now, with the current recipe{age}; "
        "nothing to do"
    )
