"""Perf runs whose process died: told apart from live ones by their lease, then closed.

A run document says ``running`` from before its fleet launches until its verdict; the process
running it holds the candidate's lease ``perf:<family>:<version>`` all that while. A ``running``
document whose lease has no live holder (the holder's pid is dead on this host, or its lease
expired) belongs to a process that was killed: its instances are terminated and the document is
closed ``abandoned`` — by the next run of the same candidate before it launches, by ``perf
cleanup`` and by ``gc``. No run stays ``running`` without a live holder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ConflictError
from orchestrator.store import StateStore, leases, utcnow
from perf.records import KIND

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory

DOC_KIND = KIND  # the run's document (``perf.records``)
ABANDONED = "abandoned"


def perf_lease(family: str, version: object) -> str:
    """The lease a run of ``family:version`` holds (one benchmark fleet per candidate at a time)."""
    return leases.lease_name("perf", family, version)


def holder_gone(store: StateStore, doc: dict[str, Any], now: float) -> bool:
    """Is ``doc`` a ``running`` run whose process is known dead (no live holder of its lease)?"""
    if doc.get("status") != "running":
        return False
    cand = doc.get("candidate") or {}
    family, version = doc.get("family"), cand.get("version")
    if not family or version is None:
        return True  # a running record that names no candidate: nothing can hold it
    holder = leases.current_holder(store, perf_lease(str(family), version), now)
    # a live holder that is another run of the same candidate does not keep this one alive
    return holder is None or bool(doc.get("lease_owner") and holder.owner != doc["lease_owner"])


def dead_runs(
    store: StateStore,
    now: float,
    *,
    family: str | None = None,
    version: int | None = None,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """The ``running`` run documents (of one candidate or run, if given) whose holder is dead."""
    out = []
    for doc in store.docs(DOC_KIND):
        cand = doc.get("candidate") or {}
        if run_id is not None and doc.get("id") != run_id:
            continue
        if family is not None and doc.get("family") != family:
            continue
        if version is not None and cand.get("version") != version:
            continue
        if holder_gone(store, doc, now):
            out.append(doc)
    return out


def close(
    store: StateStore, run_id: str, *, actor: str, why: str, terminated: Sequence[str]
) -> bool:
    """Mark a dead run ``abandoned`` (only if it still says ``running``), audited. False if it moved
    on."""
    doc, revision = store.get_doc(DOC_KIND, run_id)
    if doc.get("status") != "running":
        return False
    doc.update(
        status=ABANDONED,
        finished_at=utcnow(),
        error=why,
        terminated=sorted({*doc.get("terminated", []), *terminated}),
    )
    try:
        store.put_doc(DOC_KIND, run_id, doc, expected_revision=revision)
    except ConflictError:
        return False
    store.audit(
        actor,
        "perf-run-abandoned",
        f"{doc.get('family')}:{(doc.get('candidate') or {}).get('version')}",
        reason=why,
        details={"run_id": run_id, "terminated": list(terminated)},
    )
    return True


def close_dead(
    store: StateStore,
    aws: AwsFactory,
    regions: Sequence[str],
    now: float,
    *,
    actor: str,
    why: str,
    family: str | None = None,
    version: int | None = None,
    run_id: str | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, list[str]]:
    """Terminate the instances of every dead run (of one candidate or run, if given) and close it.
    Returns, per run closed, the instances terminated."""
    from perf.fleet import find_instances, terminate

    closed: dict[str, list[str]] = {}
    for doc in dead_runs(store, now, family=family, version=version, run_id=run_id):
        run_id = str(doc["id"])
        region = doc.get("region")
        found = find_instances(aws, [region] if region else list(regions), run_id=run_id)
        done = terminate(aws, found.values())
        progress(f"{run_id}: its process died; terminated {len(done)} instance(s), run closed")
        if close(store, run_id, actor=actor, why=why, terminated=done):
            closed[run_id] = done
    return closed
