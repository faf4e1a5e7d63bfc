"""What changelog keeps in other areas' records: the summary of a changelog made when a base was
baked. A base (``orchestrator.store.BaseVersion.changelog``) stores these as plain JSON, one per
comparison (``vs_parent``, ``vs_release``), because the core does not know the changelog area; every
reader parses them here and reads fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.store import BaseVersion, StageChange

VS_PARENT = "vs_parent"  # against the family's previous base
VS_RELEASE = "vs_release"  # against the release at bake time


def comparison(against: str) -> str:
    """The key of a summary made against ``parent`` or ``release``."""
    return f"vs_{against}"


@dataclass(frozen=True)
class CveFix:
    """A CVE a changelog recorded as fixed: in which binary package, and the first version known to
    carry the fix (the changelog entry that names the CVE; the base's new version of the binary
    when that entry's version does not fall within the binary's upgrade)."""

    cve: str
    package: str
    version: str

    def to_json(self) -> dict[str, str]:
        return {"cve": self.cve, "package": self.package, "version": self.version}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> CveFix:
        return cls(str(body["cve"]), str(body["package"]), str(body["version"]))


@dataclass(frozen=True)
class ChangelogSummary:
    """A changelog against base ``against`` of the same family: package counts by change
    (``upgraded``, ``downgraded``, ``added``, ``removed``…), how many CVEs it fixes, and where each
    rendering (``md``, ``html``, ``json``) was published. ``fixes`` names each CVE fixed with its
    package and version (empty in a summary stored before they were kept): what
    ``imagefleet exposure`` and the scorecard read without fetching the published changelog."""

    against: int
    counts: dict[str, int] = field(default_factory=dict)
    cves: int = 0
    uris: dict[str, str] = field(default_factory=dict)
    fixes: tuple[CveFix, ...] = ()

    def count(self, change: str) -> int:
        return self.counts.get(change, 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "summary": dict(self.counts),
            "cves": self.cves,
            "uris": dict(self.uris),
            "fixes": [f.to_json() for f in self.fixes],
        }

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ChangelogSummary:
        return cls(
            int(body["against"]),
            {k: int(v) for k, v in (body.get("summary") or {}).items()},
            int(body.get("cves", 0)),
            dict(body.get("uris") or {}),
            tuple(CveFix.from_json(f) for f in body.get("fixes") or ()),
        )


def summaries(stored: Mapping[str, Any]) -> dict[str, ChangelogSummary]:
    """A base's stored changelog field, by comparison (``VS_PARENT``, ``VS_RELEASE``)."""
    return {name: ChangelogSummary.from_json(body) for name, body in stored.items()}


def missing_reason(
    base: BaseVersion, against: str, releases: Sequence[StageChange]
) -> tuple[str, str]:
    """Why ``base`` has no stored changelog against its ``parent`` or ``release``, and what to run
    instead: (the error's tail, a hint). ``releases`` is the family's release stage history, oldest
    first; the release "at bake time" is the last change made before the base was registered."""
    compare = "run 'imagefleet changelog diff OLD NEW' for any two bases"
    if against == "parent":
        if base.parent is None:
            return f"{base.ref} is the first base of {base.family}", compare
        old: int | None = base.parent
    else:
        before = [c for c in releases if c.at <= base.created_at]
        old = before[-1].version if before else None
        if old is None:
            now = releases[-1].version if releases else None
            if now is None:
                return f"{base.family} has no release base yet", compare
            return (
                f"{base.family} had no release base when {base.ref} was baked "
                f"({base.family}:{now} came later)",
                f"run 'imagefleet changelog diff {base.family}:{now} {base.ref}'",
            )
    return (
        f"{base.family}:{old} was compared at bake time, but a manifest was missing or the diff "
        "failed (the bake warned which)",
        f"run 'imagefleet changelog diff {base.family}:{old} {base.ref}'",
    )
