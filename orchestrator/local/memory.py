"""What the store remembers of the embedded endpoint, and what a restart of it lost.

moto's server keeps AWS data in memory: after `local down` and `local up` every AMI is gone while
the
store still names them. `local up` records the running endpoint's identity (its pid and start time)
in
the store and, when the endpoint changed since the last record, names the bases whose AMIs no longer
exist; `local up --forget-lost` marks them lost (a document per base and an audit entry) so commands
that meet one say why instead of failing on `InvalidAMIID.NotFound`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.errors import NotFoundError
from orchestrator.store import BaseVersion, StateStore, utcnow

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory

IDENTITY_KIND = "local-endpoint"
IDENTITY_ID = "current"
LOST_KIND = "lost-base"


@dataclass(frozen=True)
class Restart:
    """The endpoint the store knew before (None: first `local up` of this store) and the one now."""

    previous: dict[str, Any] | None
    current: dict[str, Any]

    @property
    def restarted(self) -> bool:
        return (
            self.previous is not None and self.previous.get("identity") != self.current["identity"]
        )


def remember(store: StateStore, pid: int, started_at: float, url: str) -> Restart:
    """Record the running endpoint's identity; say whether it differs from the one recorded
    before."""
    current = {
        "identity": f"{pid}@{started_at:.3f}",
        "pid": pid,
        "started_at": started_at,
        "url": url,
        "recorded_at": utcnow(),
    }
    try:
        previous, revision = store.get_doc(IDENTITY_KIND, IDENTITY_ID)
    except NotFoundError:
        previous, revision = None, None
    if previous is None or previous.get("identity") != current["identity"]:
        store.put_doc(IDENTITY_KIND, IDENTITY_ID, current, expected_revision=revision)
    return Restart(previous, current)


def forgotten(store: StateStore) -> set[str]:
    """References (FAMILY:VERSION) of the bases marked lost."""
    return {d["ref"] for d in store.docs(LOST_KIND)}


def find_lost(store: StateStore, aws: AwsFactory) -> list[BaseVersion]:
    """Bases not yet marked lost with an AMI the endpoint does not have (one describe per
    region)."""
    known = forgotten(store)
    bases = [b for b in store.bases() if b.ref not in known]
    by_region: dict[str, set[str]] = {}
    for b in bases:
        for region, ami in b.amis.items():
            by_region.setdefault(region, set()).add(ami)
    present: set[str] = set()
    for region, amis in by_region.items():
        pages = (
            aws.client("ec2", region)
            .get_paginator("describe_images")
            .paginate(Filters=[{"Name": "image-id", "Values": sorted(amis)}])
        )
        present |= {img["ImageId"] for page in pages for img in page.get("Images", [])}
    return [b for b in bases if any(ami not in present for ami in b.amis.values())]


def forget(store: StateStore, lost: list[BaseVersion], actor: str) -> None:
    """Mark each base lost (a document per base) and say so in the audit trail."""
    for b in lost:
        store.put_doc(
            LOST_KIND,
            b.ref,
            {
                "ref": b.ref,
                "family": b.family,
                "version": b.version,
                "amis": b.amis,
                "at": utcnow(),
            },
            expected_revision=None,
        )
        store.audit(
            actor,
            "local.forget-lost",
            b.ref,
            "its AMIs went with the embedded endpoint",
            details={"amis": b.amis},
        )


def after_up(
    store: StateStore,
    aws: AwsFactory,
    *,
    pid: int,
    started_at: float,
    url: str,
    forget_lost: bool,
    actor: str,
) -> tuple[Restart, list[BaseVersion]]:
    """What `local up` does with the store: remember the endpoint; after a restart (or when asked to
    forget) find the lost bases, and mark them when asked to."""
    restart = remember(store, pid, started_at, url)
    lost = find_lost(store, aws) if restart.restarted or forget_lost else []
    if forget_lost:
        forget(store, lost, actor)
    return restart, lost


def lost_hint(store: StateStore, ref: str) -> str:
    """The hint for a command that met a missing AMI of ``ref`` on the embedded endpoint."""
    marked = ref in forgotten(store)
    return (
        f"{ref}'s AMIs went with an earlier embedded endpoint "
        f"({'marked lost' if marked else 'local down/up forgets AMIs'}): "
        f"bake a new base ('imagefleet bake {ref.split(':')[0]}')"
        + ("" if marked else ", and 'imagefleet local up --forget-lost' marks the lost ones")
    )
