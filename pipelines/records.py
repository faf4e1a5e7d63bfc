"""The records pipelines keeps in the state store: friend teams added with `friends add`, the
versions bakes reserve, retrospective drafts and fleet snapshots. All are documents
(``StateStore.get_doc``/``put_doc``) of the kinds below; other packages read them through these
types, never by the documents' keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FRIEND_TEAM_KIND = "friend-team"  # one document per team, id: the team's name
RETRO_KIND = "retrospective"  # one document per retrospective draft (``pipelines.retro``)
FLEET_SNAPSHOT_KIND = "fleet-snapshot"  # one document per `imagefleet fleet` (``pipelines.fleet``)
RESERVATION_KIND = (
    "version-reservation"  # one document per reserved version, id: ``reservation_id``
)


@dataclass(frozen=True)
class FriendTeam:
    """A team that follows ``families`` (all when empty) from ``accounts``; ``removed`` by `friends
    remove` (the document is kept, so a team added again starts from the revision it had)."""

    team: str
    accounts: tuple[str, ...]
    families: tuple[str, ...]
    added_at: str
    added_by: str
    removed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "team": self.team,
            "accounts": list(self.accounts),
            "families": list(self.families),
            "added_at": self.added_at,
            "added_by": self.added_by,
            "removed": self.removed,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FriendTeam:
        return cls(
            body["team"],
            tuple(body["accounts"]),
            tuple(body["families"]),
            body["added_at"],
            body["added_by"],
            bool(body.get("removed", False)),
        )


@dataclass(frozen=True)
class Reservation:
    """A base version taken by a bake before anything is written; ``status`` says how it ended:
    reserved | registered | failed | cleaned."""

    family: str
    version: int
    holder: str
    at: str
    status: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def doc_id(self) -> str:
        return reservation_id(self.family, self.version)

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "version": self.version,
            "holder": self.holder,
            "at": self.at,
            "status": self.status,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Reservation:
        return cls(
            body["family"],
            int(body["version"]),
            body["holder"],
            body["at"],
            body["status"],
            dict(body.get("details") or {}),
        )


def reservation_id(family: str, version: int) -> str:
    """The document id of ``family:version``'s reservation (zero-padded: ids sort by version)."""
    return f"{family}#{version:08d}"


@dataclass(frozen=True)
class RetroRecord:
    """A retrospective draft as stored: where its Markdown is, what it is about (``family``, and the
    ``rollout`` and cohort, or the stage, it was drafted for)."""

    id: str
    title: str
    path: str
    at: str
    markdown: str
    family: str
    about: dict[str, Any] = field(default_factory=dict)

    @property
    def rollout(self) -> str | None:
        value = self.about.get("rollout")
        return str(value) if value is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.about,
            "id": self.id,
            "title": self.title,
            "path": self.path,
            "at": self.at,
            "markdown": self.markdown,
            "family": self.family,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> RetroRecord:
        fixed = ("id", "title", "path", "at", "markdown", "family")
        return cls(
            str(body["id"]),
            str(body.get("title", "")),
            str(body.get("path", "")),
            str(body.get("at", "")),
            str(body.get("markdown", "")),
            str(body.get("family", "")),
            {k: v for k, v in body.items() if k not in fixed},
        )
