"""What changelog keeps in other areas' records: the summary of a changelog made when a base was
baked. A base (``orchestrator.store.BaseVersion.changelog``) stores these as plain JSON, one per
comparison (``vs_parent``, ``vs_release``), because the core does not know the changelog area; every
reader parses them here and reads fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

VS_PARENT = "vs_parent"  # against the family's previous base
VS_RELEASE = "vs_release"  # against the release at bake time


def comparison(against: str) -> str:
    """The key of a summary made against ``parent`` or ``release``."""
    return f"vs_{against}"


@dataclass(frozen=True)
class ChangelogSummary:
    """A changelog against base ``against`` of the same family: package counts by change
    (``upgraded``, ``downgraded``, ``added``, ``removed``…), how many CVEs it fixes, and where each
    rendering (``md``, ``html``, ``json``) was published."""

    against: int
    counts: dict[str, int] = field(default_factory=dict)
    cves: int = 0
    uris: dict[str, str] = field(default_factory=dict)

    def count(self, change: str) -> int:
        return self.counts.get(change, 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "summary": dict(self.counts),
            "cves": self.cves,
            "uris": dict(self.uris),
        }

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ChangelogSummary:
        return cls(
            int(body["against"]),
            {k: int(v) for k, v in (body.get("summary") or {}).items()},
            int(body.get("cves", 0)),
            dict(body.get("uris") or {}),
        )


def summaries(stored: Mapping[str, Any]) -> dict[str, ChangelogSummary]:
    """A base's stored changelog field, by comparison (``VS_PARENT``, ``VS_RELEASE``)."""
    return {name: ChangelogSummary.from_json(body) for name, body in stored.items()}
