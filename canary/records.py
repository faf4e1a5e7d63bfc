"""A rollout in the state store: the document kinds, the record layout, and typed views for readers.

A rollout is kept as many small records instead of one document, so that what changes at a step
is what is written (docs/state.md has the layout and its sizes):

* the **header** (kind ``KIND``, id = the rollout's id): status, settings, owner, API calls and
  one line per cohort (key, status, size, replaced) — written at every save, a few KB;
* its **parts** (kind ``parts_kind(id)``, one partition per rollout, ``canary.records_codec``):
  ``plan`` (the plan's summary), ``cohort/<key>`` (a cohort's state), ``groups/<key>`` (the
  groups it is first to list), ``wave/<key>/<w>`` (status, baselines, analysis window),
  ``verdict/<key>/<w>``, ``batch/<key>/<w>/<b>`` and, while a batch runs,
``before/<key>/<w>/<b>/<n>``
  (its group's members before it acted). A part is written only when it changed; the verdicts'
  raw samples are in the artifact bucket (``samples_uri``).

Stores written before this layout hold the whole rollout in its header document (no
``layout`` key); ``load`` reads those as they are and the controller's next save writes the
new layout (the header last, so an interrupted migration reads as the old document still).

Readers outside the canary (the report, the retrospective, ``gc``, the CLI) use ``RolloutView``
and its typed cohorts, waves and verdicts (``canary.rollout_views``), never the stored keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from canary.model import GroupState, Rollout, TemplateVersion
from canary.places import template_key
from canary.records_codec import decode_parts, encode_parts
from canary.rollout_views import (
    CohortView,
    Interval,
    LastVerdict,
    MetricVerdict,
    RolloutView,
    SideSummary,
    WaveVerdict,
    WaveView,
)
from orchestrator.errors import NotFoundError
from orchestrator.store import StateStore

KIND = "canary-rollout"  # a rollout's header; its parts are under parts_kind(id)
CONTROL_KIND = "canary-control"  # pause/abort requests to a running controller
FINAL = ("succeeded", "failed", "aborted", "rolled_back")
LAYOUT = 2  # headers without a ``layout`` are whole-rollout documents (layout 1)
JsonDict = dict[str, Any]


def parts_kind(rollout_id: str) -> str:
    """The kind of one rollout's parts (one DynamoDB partition, one SQLite kind per rollout)."""
    return f"{KIND}-part:{rollout_id}"


# --- the header
# -------------------------------------------------------------------------------------
def header_of(rollout: Rollout) -> JsonDict:
    """The header record: everything but the plan, cohorts' waves and groups."""
    doc = rollout.to_dict()
    for key in ("groups", "templates", "summary"):
        doc.pop(key, None)
    doc["layout"] = LAYOUT
    doc["cohorts"] = [
        {
            "key": c.key,
            "status": c.status,
            "size": c.size,
            "replaced": c.replaced,
            "wave": c.wave,
            "waves": len(c.waves),
        }
        for c in rollout.cohorts
    ]
    return doc


def _templates(groups: Iterable[GroupState]) -> dict[str, TemplateVersion]:
    """The template versions a rollout made, from its pinned groups (each recorded what it got)."""
    out: dict[str, TemplateVersion] = {}
    for g in groups:
        if g.new_version is not None:  # pinned then, or since rolled back
            out.setdefault(template_key(g), TemplateVersion(g.new_version, g.old_ami))
    return out


def assemble(header: JsonDict, parts: dict[str, JsonDict]) -> Rollout:
    """The rollout from its header and parts (layout 2), or from a whole document (layout 1)."""
    if "layout" not in header:
        return Rollout.from_dict(header)
    summary, groups, cohorts = decode_parts(parts, [c["key"] for c in header["cohorts"]])
    doc = {**header, "summary": summary, "groups": {}, "cohorts": []}
    rollout = Rollout.from_dict(doc)
    rollout.groups = groups
    rollout.cohorts = cohorts
    rollout.templates = _templates(groups.values())
    return rollout


@dataclass
class RolloutRecords:
    """What the controller last wrote of each of a rollout's records, and at which revision.

    ``save`` writes the parts that changed (``StateStore.put_docs``, in as few transactions as the
    backend allows) and then the header, conditioned on the revision it read. The store is passed
    in, not kept: the controller's one store handle is the only one (a fenced view can replace
    it)."""

    rollout_id: str
    header_rev: int | None = None
    revisions: dict[str, int] = field(default_factory=dict)
    written: dict[str, JsonDict] = field(default_factory=dict)

    @classmethod
    def load(cls, store: StateStore, rollout_id: str) -> tuple[Rollout, RolloutRecords]:
        header, rev = store.get_doc(KIND, rollout_id)
        records = cls(rollout_id, header_rev=rev)
        parts: dict[str, JsonDict] = {}
        # Read for a whole document too: a migration killed before its header left parts, which
        # the next save writes over from their revisions.
        for part_id, (body, part_rev) in store.get_docs(parts_kind(rollout_id)).items():
            parts[part_id] = body
            records.revisions[part_id] = part_rev
            records.written[part_id] = body
        return assemble(header, parts), records

    def save(self, store: StateStore, rollout: Rollout) -> None:
        parts = encode_parts(rollout)
        changed = [
            (part_id, body, self.revisions.get(part_id))
            for part_id, body in parts.items()
            if self.written.get(part_id) != body
        ]
        # a part no longer produced (a finished batch's members before) is emptied, once
        changed += [
            (part_id, {}, self.revisions.get(part_id))
            for part_id, body in self.written.items()
            if body and part_id not in parts
        ]
        if changed:
            for (part_id, body, _), rev in zip(
                changed, store.put_docs(parts_kind(self.rollout_id), changed), strict=True
            ):
                self.revisions[part_id] = rev
                self.written[part_id] = body
        self.header_rev = store.put_doc(
            KIND, self.rollout_id, header_of(rollout), expected_revision=self.header_rev
        )


def load(store: StateStore, rollout_id: str) -> Rollout:
    """A rollout as the controller last saved it (either layout)."""
    return RolloutRecords.load(store, rollout_id)[0]


def header(store: StateStore, rollout_id: str) -> RolloutHeader:
    """One rollout's header (its parts are not read)."""
    return RolloutHeader.from_json(store.get_doc(KIND, rollout_id)[0])


def headers(store: StateStore) -> list[RolloutHeader]:
    """Every rollout's header, oldest first (no parts are read)."""
    return sorted(
        (RolloutHeader.from_json(doc) for doc in store.docs(KIND)), key=lambda h: h.created_at
    )


def latest_id(store: StateStore) -> str:
    """The newest rollout's id."""
    found = headers(store)
    if not found:
        raise NotFoundError("no canary rollouts yet", hint="imagefleet canary start FAMILY:VERSION")
    return found[-1].id


# --- the header, typed for readers (the views of a whole rollout: canary.rollout_views)
# ------------------------------------------------------------------------
@dataclass(frozen=True)
class CohortLine:
    """A cohort as the header lists it."""

    key: str
    status: str
    size: int
    replaced: int


@dataclass(frozen=True)
class RolloutHeader:
    """What every rollout's header says: enough to list rollouts, decide on ``gc`` or a demo."""

    id: str
    family: str
    status: str
    created_at: str
    new_ref: str | None
    new_version: int | None
    reason: str | None
    cohorts: tuple[CohortLine, ...]
    running: bool  # a process runs it now (it names itself the owner while it does)

    @classmethod
    def from_json(cls, doc: JsonDict) -> RolloutHeader:
        new = doc.get("new") or {}
        return cls(
            id=doc["id"],
            family=doc["family"],
            status=doc.get("status", "running"),
            created_at=doc["created_at"],
            new_ref=new.get("ref"),
            new_version=new.get("version"),
            reason=doc.get("reason"),
            cohorts=tuple(
                CohortLine(
                    c["key"],
                    c.get("status", "pending"),
                    int(c.get("size", 0)),
                    int(c.get("replaced", 0)),
                )
                for c in doc.get("cohorts") or []
            ),
            running=bool(doc.get("owner")),
        )

    @property
    def final(self) -> bool:
        return self.status in FINAL


def views(store: StateStore) -> list[RolloutView]:
    """Every rollout, whole and typed, oldest first (the report's matrix)."""
    return [RolloutView.of(load(store, h.id)) for h in headers(store)]


__all__ = [
    "CONTROL_KIND",
    "FINAL",
    "KIND",
    "LAYOUT",
    "CohortLine",
    "CohortView",
    "Interval",
    "LastVerdict",
    "MetricVerdict",
    "RolloutHeader",
    "RolloutRecords",
    "RolloutView",
    "SideSummary",
    "WaveVerdict",
    "WaveView",
    "assemble",
    "header",
    "header_of",
    "headers",
    "latest_id",
    "load",
    "parts_kind",
    "views",
]
