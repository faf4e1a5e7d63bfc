"""Bake a base image with the family's own Packer template and register it, leaving nothing behind.

Order of a bake: read and check the template (regions, Packer version, credentials, ``packer
validate``) → take the lease ``bake:<family>`` → reserve the next version → ``packer build`` in
place → register. The reservation records Packer's process when it starts and each AMI as soon
as Packer reports it. A bake that fails after Packer made AMIs deregisters them and their
snapshots; what it cannot remove stays recorded for ``imagefleet gc``, which also finds the AMIs
by their ``imagefleet:bake-id`` tag. A bake killed outright is closed by the next holder of the
bake lease (``gc.reclaim_dead_bakes``): its Packer stopped if it still runs, its AMIs removed.
Reading and checking the template, before anything changes, is ``bake_prepare``'s.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.arch import Architectures
from orchestrator.config import FamilySettings, Settings
from orchestrator.engine import KillPoint, kill_point
from orchestrator.errors import (
    LeaseLostError,
    ManifestError,
    NotFoundError,
    PackerError,
)
from orchestrator.inputs import read_bounded
from orchestrator.local.processes import ProcessRecord
from orchestrator.store import BaseVersion, StateStore, leases
from orchestrator.tags import BAKE_TAG, FAMILY_TAG, PARENT_TAG, STAGE_TAG, VERSION_TAG
from pipelines import registry, reservations
from pipelines.bake_prepare import Prepared, new_bake_id, prepare
from pipelines.gc import removal as gc
from pipelines.packer import machine_readable as mr
from pipelines.packer import run as packer_run

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory

__all__ = [
    "BAKE_TAG",
    "FAMILY_TAG",
    "PARENT_TAG",
    "STAGE_TAG",
    "VERSION_TAG",
    "BakeResult",
    "bake",
    "bake_lease",
]


@dataclass
class BakeResult:
    bake_id: str
    family: str
    amis: dict[str, str]
    source_ami: str
    manifest: str
    seconds: float
    log: Path
    version: int = 0
    warnings: list[str] = field(default_factory=list)
    builds: dict[str, dict[str, str]] = field(default_factory=dict)  # build -> region -> AMI
    architectures: dict[str, dict[str, str]] = field(default_factory=dict)  # arch -> region -> AMI
    recipe_digest: str = ""  # pipelines.recipe: what decided the build, apart from the parent


def bake_lease(family: str) -> str:
    return leases.lease_name("bake", family)


def bake(
    settings: Settings,
    aws: AwsFactory,
    store: StateStore,
    family_name: str,
    *,
    actor: str,
    clock: leases.LeaseClock,
    extra_vars: dict[str, str] | None = None,
    work_dir: Path,
    wait: bool = False,
    on_wait: leases.OnWait | None = None,
    on_progress: Callable[[str], None] = lambda _m: None,
    operation: str | None = None,
) -> tuple[BaseVersion, BakeResult, list[str]]:
    """Bake and register the family's next version, holding ``bake:<family>`` throughout.

    ``operation`` (a run job's id) is written into the reservation, so the job can recognise the
    base its own bake registered after a kill between registering and journaling it.
    """
    bake_id = new_bake_id(family_name)
    prepared = prepare(
        settings, aws, family_name, extra_vars=extra_vars or {}, work_dir=work_dir, bake_id=bake_id
    )
    try:
        return _bake_and_register(
            prepared,
            settings,
            aws,
            store,
            actor=actor,
            clock=clock,
            wait=wait,
            on_wait=on_wait,
            on_progress=on_progress,
            operation=operation,
        )
    finally:
        prepared.forget_secrets()


def _bake_and_register(
    prepared: Prepared,
    settings: Settings,
    aws: AwsFactory,
    store: StateStore,
    *,
    actor: str,
    clock: leases.LeaseClock,
    wait: bool,
    on_wait: leases.OnWait | None,
    on_progress: Callable[[str], None],
    operation: str | None,
) -> tuple[BaseVersion, BakeResult, list[str]]:
    """Under the bake lease: reserve the version, build, register; on failure remove what was
    built."""
    bake_id = prepared.inputs.bake_id
    with leases.hold(
        store,
        [bake_lease(prepared.family.name)],
        clock=clock,
        actor=actor,
        command=f"bake {prepared.family.name}",
        ttl_s=settings.state.lease_ttl,
        wait=wait,
        on_wait=on_wait,
    ) as held:
        store = held.store  # every write below is fenced on the bake lease
        for closed in gc.reclaim_dead_bakes(
            store, aws, prepared.family.name, prepared.family.regions
        ):
            on_progress(
                f"closed the killed bake of version {closed['version']} ({closed['bake_id']}): "
                + ("its Packer stopped, " if closed["packer_stopped"] else "")
                + f"{len(closed['removed'])} AMI(s) removed"
            )
        version = reservations.reserve_version(
            store,
            prepared.family.name,
            bake_id,
            {
                "bake_id": bake_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "actor": actor,
                **({"operation": operation} if operation else {}),
            },
        )
        seen: dict[str, str] = {}
        try:
            result = _build(prepared, store, version, seen, on_progress)
            by_architecture(aws, prepared.family, result)
            kill_point("bake:built")
            held.check()  # a bake that lost its lease while Packer ran registers nothing
            on_progress("registering the new base")
            base, warnings = registry.register(store, aws, settings, result, actor=actor)
        except (KillPoint, LeaseLostError):
            # a simulated kill -9, or a lost lease: nothing more is done (gc finds what was made)
            raise
        except BaseException as exc:
            if not _registered(store, prepared.family.name, version):
                _abandon(store, aws, prepared, version, seen, exc)
            raise
        reservations.finish_reservation(
            store, prepared.family.name, version, "registered", {"amis": base.amis}
        )
    return base, result, warnings


def _build(
    prepared: Prepared,
    store: StateStore,
    version: int,
    seen: dict[str, str],
    on_progress: Callable[[str], None],
) -> BakeResult:
    """Run Packer; every AMI it reports goes into the reservation at once."""
    family, inputs = prepared.family, prepared.inputs

    def on_line(line: mr.Line) -> None:
        ami = mr.created_ami(line)
        found = {inputs.regions[0]: ami} if ami else mr.amis_by_region([line])
        if any(a not in seen.values() for a in found.values()):
            for region, new in found.items():
                gc.remember(seen, region, new)  # every build's AMI, several per region
            reservations.finish_reservation(
                store, family.name, version, "reserved", {"amis": dict(seen)}
            )
        message = mr.progress(line)
        if message:
            on_progress(message)

    started = time.monotonic()
    log = prepared.bake_dir / "packer.log"

    def on_start(packer: ProcessRecord) -> None:
        # the journal of the build: Packer's process (its pid is its process group) and markers
        reservations.finish_reservation(
            store,
            family.name,
            version,
            "reserved",
            {
                "packer": {**packer.to_dict(), "pgid": packer.pid, "host": socket.gethostname()},
                "ami_name": inputs.ami_name,
                "log": str(log),
            },
        )
        kill_point("bake:packer-started")

    lines = packer_run.build(
        prepared.template_arg,
        prepared.var_files,
        cwd=prepared.cwd,
        env=prepared.env,
        log_path=log,
        timeout=family.build_timeout,
        on_line=on_line,
        on_start=on_start,
    )
    builds = mr.amis_by_build(lines) or _manifest_builds(Path(inputs.packer_manifest_path))
    for found in builds.values():
        for region, ami in found.items():
            gc.remember(seen, region, ami)
    if not builds:
        raise PackerError("packer build succeeded but reported no AMI artifact", hint=f"log: {log}")
    for name, found in builds.items():
        missing = [r for r in family.regions if r not in found]
        if missing:
            raise PackerError(
                f"packer produced no AMI in {', '.join(missing)}"
                + (f" (build {name})" if len(builds) > 1 else ""),
                hint=f"log: {log}",
            )
    amis = next(iter(builds.values()))  # until by_architecture picks the default's
    warnings = list(prepared.warnings)
    manifest_file = Path(inputs.manifest_path)
    manifest = ""
    if manifest_file.is_file():
        try:  # within the manifest limit: a runaway build's output cannot exhaust the host
            manifest = read_bounded(manifest_file, "manifest", error=ManifestError).decode(
                errors="replace"
            )
        except ManifestError as exc:
            warnings.append(f"{exc.message}: the base is registered without its manifest")
    if not manifest.strip():
        warnings.append(
            "the build wrote no package manifest (the image test 'manifest present' will fail)"
        )
    return BakeResult(
        inputs.bake_id,
        family.name,
        amis,
        inputs.source_ami,
        manifest,
        time.monotonic() - started,
        log,
        version,
        warnings,
        builds,
        recipe_digest=prepared.recipe_digest,
    )


def _manifest_builds(path: Path) -> dict[str, dict[str, str]]:
    try:
        return mr.builds_from_manifest(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def by_architecture(aws: AwsFactory, family: FamilySettings, result: BakeResult) -> None:
    """The builds' AMIs by architecture; ``amis`` becomes the family's default architecture's."""
    result.architectures, default = Architectures(aws).of_builds(
        result.builds, family.regions[0], family.architecture, f"families.{family.name}"
    )
    result.amis = dict(result.architectures[default])


def _registered(store: StateStore, family: str, version: int) -> bool:
    """Did the base row get written (or can we not tell)? Then its AMIs are left to gc's
    judgement."""
    try:
        store.get_base(family, version)
    except NotFoundError:
        return False
    except Exception:  # the store is unreachable: never remove what may be owned
        return True
    return True


def _abandon(
    store: StateStore,
    aws: AwsFactory,
    prepared: Prepared,
    version: int,
    seen: dict[str, str],
    exc: BaseException,
) -> None:
    """Best effort: deregister what this bake made, and record in the reservation how it ended."""
    family, regions = prepared.family.name, prepared.family.regions
    error = f"{type(exc).__name__}: {exc}"
    try:
        found = gc.images_of_bake(aws, regions, prepared.inputs.bake_id)
        amis = {**seen, **found}
        removed, failed = gc.remove_images(aws, amis)
    except Exception as cleanup:  # recorded; gc removes them later
        amis, removed, failed = (
            dict(seen),
            {},
            {r: f"{type(cleanup).__name__}: {cleanup}" for r in seen},
        )
    status = (
        "cleaned" if amis and not failed else "failed"
    )  # cleaned: it made AMIs and removed them all
    # should the store itself fail, the tag still leads gc to the AMIs
    with contextlib.suppress(Exception):
        reservations.finish_reservation(
            store,
            family,
            version,
            status,
            {"amis": amis, "removed": removed, "not_removed": failed, "error": error},
        )
