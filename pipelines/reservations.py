"""Version reservations: a bake takes its base's version before Packer runs, so two bakes of one
family never build the same version, also when they race from several machines.

A reservation is a ``RESERVATION_KIND`` document per version, created with a conditional write
(``put_doc(..., expected_revision=None)`` is refused when the document exists): of two bakes that
pick the same version exactly one creates it, and the other moves on to the next. In a fenced view
of the store (a bake holds ``bake:<family>``) every one of these writes is fenced too.
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.store import StateStore, utcnow
from pipelines.records import RESERVATION_KIND, Reservation, reservation_id

RACE_ATTEMPTS = 50  # versions tried after another bake took the one we picked


def reservations(
    store: StateStore, family: str | None = None, status: str | None = None
) -> list[Reservation]:
    """Every reservation (of ``family``, with ``status``), by family and version."""
    out = [Reservation.from_json(body) for body in store.docs(RESERVATION_KIND)]
    return sorted(
        (
            r
            for r in out
            if (family is None or r.family == family) and (status is None or r.status == status)
        ),
        key=lambda r: (r.family, r.version),
    )


def next_version(store: StateStore, family: str) -> int:
    """The first version of ``family`` above every base and every reservation."""
    taken = max((r.version for r in reservations(store, family)), default=0)
    return max(store.next_version(family), taken + 1)


def reserve_version(
    store: StateStore, family: str, holder: str, details: dict[str, Any] | None = None
) -> int:
    """Take the next version of ``family`` for ``holder``: unique even when bakes race."""
    version = next_version(store, family)
    for _ in range(RACE_ATTEMPTS):
        res = Reservation(family, version, holder, utcnow(), "reserved", dict(details or {}))
        try:
            store.put_doc(RESERVATION_KIND, res.doc_id, res.to_json(), expected_revision=None)
            return version
        except ConflictError:
            version = max(version + 1, next_version(store, family))
    raise ConflictError(
        f"could not reserve a version of {family}: {RACE_ATTEMPTS} racing bakes won first"
    )


def finish_reservation(
    store: StateStore, family: str, version: int, status: str, details: dict[str, Any] | None = None
) -> None:
    """Record how the bake of ``family:version`` ended, adding ``details`` to the reservation's."""
    for _ in range(RACE_ATTEMPTS):
        try:
            body, revision = store.get_doc(RESERVATION_KIND, reservation_id(family, version))
        except NotFoundError:
            raise NotFoundError(f"no reservation of {family}:{version}") from None
        res = Reservation.from_json(body)
        done = Reservation(
            family, version, res.holder, res.at, status, {**res.details, **(details or {})}
        )
        try:
            store.put_doc(RESERVATION_KIND, done.doc_id, done.to_json(), expected_revision=revision)
            return
        except ConflictError:
            continue
    raise ConflictError(f"reservation {family}:{version} kept changing underneath")
