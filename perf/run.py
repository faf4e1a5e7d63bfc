"""``perf run``: one benchmark run of a candidate base against a baseline, start to verdict.

Preflight (bases, AMIs, instance types, vCPU quota) → record the run (``perf-run`` document,
status ``running``, with its deadline) → launch the interleaved fleet and wait until it runs →
wait for every instance's samples in S3 → terminate (always, see ``orchestrator.lifecycle``) →
collect → compare → plots → record verdict, comparison and plot paths in the run document →
gate evidence ``perf`` for the candidate base.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.arch import Architectures
from orchestrator.artifacts import put_artifact
from orchestrator.aws import endpoint_is_custom
from orchestrator.clock import PROGRESS_EVERY, human_duration
from orchestrator.context import Context
from orchestrator.engine import kill_point
from orchestrator.errors import AwsError, LeaseLostError, NotFoundError, UsageError
from orchestrator.lifecycle import Progress, provisioned
from orchestrator.local import memory as endpoint_memory
from orchestrator.store import BaseVersion, Evidence, StateStore, leases, utcnow
from perf import config as perf_config
from perf.agent_wheel import prepare as prepare_agent
from perf.collect import Collected, Expected, by_arm, collect, present_keys
from perf.compare import compare
from perf.fleet import Fleet, QuotaExceededError, check_quota, default_zones
from perf.placement import plan_slots
from perf.plots import distribution_plots, forest_plot
from perf.records import KIND
from perf.runs import DOC_KIND, close_dead, perf_lease
from perf.samples import write_jsonl

__all__ = ["DOC_KIND", "PerfRun", "RunRequest", "resolve_bases"]


@dataclass
class RunRequest:
    candidate: str
    baseline: str | None = None
    instance_types: Sequence[str] | None = None


def _ami(base: BaseVersion, region: str) -> str:
    try:
        return base.amis[region]
    except KeyError:
        raise NotFoundError(
            f"base {base.ref} has no AMI in {region}",
            hint="distribute it there, or set perf.placement.region",
        ) from None


def _type_amis(
    ctx: Context, region: str, types: Sequence[str], bases: dict[str, BaseVersion]
) -> dict[tuple[str, str], str]:
    """(arm, instance type) -> the arm's AMI of the type's architecture (``orchestrator.arch``);
    a base without that architecture is refused before anything is launched."""
    found = Architectures(ctx.aws)
    out = {}
    for arm, b in bases.items():
        archs = found.of_base(b)
        for itype in types:
            try:
                out[(arm, itype)] = found.ami_for(archs, region, itype)
            except UsageError as exc:
                raise UsageError(f"{arm} {b.ref}: {exc.message}", hint=exc.hint) from None
    return out


def resolve_bases(ctx: Context, req: RunRequest) -> tuple[BaseVersion, BaseVersion]:
    """The candidate as given; the baseline as given, else the family's current release."""
    cand = ctx.resolve_base(req.candidate)
    if req.baseline:
        base = ctx.resolve_base(req.baseline, family=cand.family)
    else:
        version = ctx.store.pointer(cand.family, "release")
        if version is None:
            raise UsageError(
                f"{cand.family} has no release base to compare against",
                hint="pass --baseline FAMILY:VERSION or an AMI id",
            )
        base = ctx.store.get_base(cand.family, version)
    if (base.family, base.version) == (cand.family, cand.version):
        raise UsageError(f"baseline and candidate are the same base ({cand.ref})")
    # A base `local up --forget-lost` marked lost has no AMIs left to launch: refuse before
    # anything is recorded or launched, rather than fail on InvalidAMIID halfway.
    lost = endpoint_memory.forgotten(ctx.store)
    for arm, b in (("baseline", base), ("candidate", cand)):
        if b.ref in lost:
            raise NotFoundError(
                f"the {arm} {b.ref} is marked lost: its AMIs went with an earlier embedded "
                "endpoint, so there is nothing to benchmark",
                hint=("pass another --baseline FAMILY:VERSION; " if arm == "baseline" else "")
                + endpoint_memory.lost_hint(ctx.store, b.ref),
            )
    return cand, base


class PerfRun:
    """One run; ``execute`` does it all and returns the run document."""

    def __init__(
        self,
        ctx: Context,
        req: RunRequest,
        *,
        progress: Progress | None = None,
        on_launch: Callable[[Fleet], None] | None = None,
        wait: bool = False,
        on_wait: leases.OnWait | None = None,
    ) -> None:
        self.ctx = ctx
        self.wait = wait
        self.on_wait = on_wait
        self.req = req
        self.perf = perf_config.load(ctx.settings)
        self.progress = progress or (lambda _line: None)
        self.on_launch = on_launch
        self.run_id = "perf-" + uuid.uuid4().hex[:12]
        self.store: StateStore = ctx.store  # fenced on the perf lease while the run holds it
        self.revision: int | None = None
        self.doc: dict[str, Any] = {}
        self.owner = ""  # the perf lease's owner token: the run document names it

    # --- the run document -------------------------------------------------------------------------
    def _save(self, **fields: object) -> None:
        self.doc.update(fields)
        self.revision = self.store.put_doc(
            DOC_KIND, self.run_id, self.doc, expected_revision=self.revision
        )

    def execute(self) -> dict[str, Any]:
        """Hold the candidate's perf lease (one benchmark fleet per base at a time) and run."""
        cand, base = resolve_bases(self.ctx, self.req)
        ctx = self.ctx
        with leases.hold(
            ctx.store,
            [perf_lease(cand.family, cand.version)],
            clock=ctx.clock,
            actor=ctx.actor,
            command=f"perf run {cand.ref}",
            ttl_s=ctx.settings.state.lease_ttl,
            wait=self.wait,
            on_wait=self.on_wait,
        ) as held:
            self.store = held.store  # the run's every write is fenced on the perf lease
            self.owner = held.owner
            # Under the lease, a run of this candidate still "running" is a killed one's: close it
            # (its fleet terminated) before launching another.
            close_dead(
                self.store,
                ctx.aws,
                ctx.settings.aws.regions,
                ctx.clock.time(),
                actor=ctx.actor,
                why="its process died; closed by the next run of the same candidate",
                family=cand.family,
                version=cand.version,
                progress=self.progress,
            )
            return self._execute(cand, base)

    def _execute(self, cand: BaseVersion, base: BaseVersion) -> dict[str, Any]:
        ctx, perf = self.ctx, self.perf
        settings = ctx.settings
        region = perf.region or settings.aws.regions[0]
        amis = {"baseline": _ami(base, region), "candidate": _ami(cand, region)}
        if amis["baseline"] == amis["candidate"]:
            raise UsageError(f"{base.ref} and {cand.ref} are the same AMI ({amis['baseline']})")
        types = tuple(self.req.instance_types or perf.instance_types)
        type_amis = _type_amis(ctx, region, types, {"baseline": base, "candidate": cand})
        zones = perf.availability_zones or default_zones(ctx.aws, region)
        prefix = f"{perf.results_prefix}/{self.run_id}"
        slots = plan_slots(types, perf.instances_per_arm, zones, prefix)
        counts = {t: 2 * perf.instances_per_arm for t in types}
        checks = check_quota(ctx.aws, region, counts, perf.vcpu_limit)
        # A non-AWS endpoint never serves EC2's quotas: saying so is a note, not a warning on
        # every local run; on AWS an unserved quota (a missing permission) stays a warning.
        say = ctx.out.note if endpoint_is_custom(ctx.aws.endpoint_url) else ctx.out.warn
        for q in checks:
            if q.limit is None:
                say(f"vCPU quota: {q.message()}")
        short = [q for q in checks if not q.fits]
        if short:
            raise QuotaExceededError(
                "the benchmark fleet would not fit in the vCPU quota: "
                + "; ".join(q.message() for q in short),
                hint="run fewer --instance-types or lower perf.instances_per_arm (minimum "
                f"{perf_config.MIN_INSTANCES_PER_ARM}), or request a quota increase",
            )

        started = datetime.now(UTC)  # tags and cleanup compare real time, never the scaled clock
        budget = perf.launch_timeout + perf.results_timeout + 600
        expires = started + timedelta(seconds=budget)
        bucket = settings.aws.artifact_bucket
        # before the record: an agent that cannot be built or fetched launches nothing
        agent = prepare_agent(
            ctx.aws,
            perf,
            bucket=bucket,
            region=region,
            state_dir=Path(settings.state_dir),
            index_key=f"{prefix}/agent-wheels.txt",
            expires_s=budget,
            progress=self.progress,
        )
        self._save(
            id=self.run_id,
            status="running",
            family=cand.family,
            candidate={"ref": cand.ref, "version": cand.version, "ami": amis["candidate"]},
            baseline={"ref": base.ref, "version": base.version, "ami": amis["baseline"]},
            region=region,
            availability_zones=list(zones),
            instance_types=list(types),
            instances_per_arm=perf.instances_per_arm,
            benchmarks=list(perf.benchmarks),
            repetitions=perf.repetitions,
            duration=perf.duration,
            results=f"s3://{bucket}/{prefix}/",
            quota=[q.to_dict() for q in checks],
            agent=agent.to_dict(),
            started_at=started.astimezone(UTC).isoformat(),
            expires_at=expires.isoformat(),
            actor=ctx.actor,
            lease_owner=self.owner,
            holder={"host": socket.gethostname(), "pid": os.getpid()},
        )
        fleet = Fleet(
            aws=ctx.aws,
            region=region,
            run_id=self.run_id,
            family=cand.family,
            slots=slots,
            amis=amis,
            type_amis=type_amis,
            bucket=bucket,
            perf=perf,
            expires=expires,
            agent=agent.install,
        )
        timings: dict[str, float] = {}
        t0 = ctx.clock.monotonic()
        try:
            with provisioned(
                fleet,
                clock=ctx.clock,
                ready_timeout=perf.launch_timeout,
                poll=perf.poll_interval,
                progress=self._progress(fleet),
            ):
                timings["launch_s"] = round(ctx.clock.monotonic() - t0, 2)
                self._save(**self._instances(fleet))
                kill_point("perf:launched")
                if self.on_launch:
                    self.on_launch(fleet)
                t1 = ctx.clock.monotonic()
                collected = self._wait_and_collect(fleet, bucket, prefix, region)
                timings["results_s"] = round(ctx.clock.monotonic() - t1, 2)
        except LeaseLostError:
            # the fleet (this run's own) is still terminated on the way out; nothing is written
            raise
        except KeyboardInterrupt:
            self._save(
                status="interrupted",
                **self._instances(fleet),
                terminated=len(fleet.terminated),
                finished_at=utcnow(),
            )
            raise
        except BaseException as exc:
            self._save(
                status="failed",
                error=str(exc),
                **self._instances(fleet),
                terminated=len(fleet.terminated),
                finished_at=utcnow(),
            )
            raise
        timings["total_fleet_s"] = round(ctx.clock.monotonic() - t0, 2)
        return self._judge(cand, base, fleet, collected, timings)

    def _instances(self, fleet: Fleet) -> dict[str, object]:
        """The fleet's per-instance list, written next to the agents' results; the record keeps its
        URI and the count (a list of every instance would grow the record with the fleet)."""
        settings = self.ctx.settings
        key = f"{self.perf.results_prefix}/{self.run_id}/instances.json"
        try:
            uri: str | None = put_artifact(
                self.ctx.aws,
                settings.aws.artifact_bucket,
                key,
                json.dumps(fleet.summary()),
                "application/json",
                self.perf.region or settings.aws.regions[0],
            )
        except AwsError as exc:  # a run that is failing anyway records that, not this
            self.progress(f"{self.run_id}: the instance list was not written to {key}: {exc}")
            uri = None
        return {"instance_count": len(fleet.instances), "instances_uri": uri}

    def _progress(self, fleet: Fleet) -> Progress:
        def update(line: str) -> None:
            self.progress(f"{self.run_id}: {line}")

        return update

    def _wait_and_collect(self, fleet: Fleet, bucket: str, prefix: str, region: str) -> Collected:
        """Poll S3 until every instance wrote its samples, or the results timeout."""
        ctx, perf = self.ctx, self.perf
        by_key = {li.slot.results_key: li for li in fleet.instances}

        started = ctx.clock.monotonic()
        said: list[tuple[int, float]] = []  # (count, when) of the last line

        def present() -> set[str]:
            # a run that lost its lease stops waiting (and tears its fleet down)
            self.store.check_fence()
            have = present_keys(ctx.aws, bucket, prefix + "/", region) & set(by_key)
            now = ctx.clock.monotonic()
            # a line when the count moves, and at least every minute while it does not
            if not said or said[-1][0] != len(have) or now - said[-1][1] >= PROGRESS_EVERY:
                said.append((len(have), now))
                self.progress(
                    f"{self.run_id}: results {len(have)}/{len(by_key)} after "
                    f"{human_duration(timedelta(seconds=now - started))} (timeout "
                    f"{human_duration(timedelta(seconds=perf.results_timeout))})"
                )
            return have

        have, _ = ctx.clock.poll_until(
            present,
            lambda have: len(have) == len(by_key),
            timeout=perf.results_timeout,
            every=perf.poll_interval,
        )
        expected = [
            Expected(k, li.instance_id, li.slot.arm, fleet.ami_of(li.slot), li.slot.instance_type)
            for k, li in by_key.items()
        ]
        got = collect(ctx.aws, bucket, expected, region=region, present=have)
        arms = by_arm(got)
        if min(arms.values()) == 0:
            raise AwsError(
                "no usable results from the "
                f"{'baseline' if arms['baseline'] == 0 else 'candidate'} "
                f"arm after {perf.results_timeout}s ({len(got.missing)} instance(s) wrote nothing, "
                f"{len(got.invalid)} wrote something unusable)",
                hint="is the agent running? locally: 'imagefleet local up' starts the agent runner",
            )
        return got

    def _judge(
        self,
        cand: BaseVersion,
        base: BaseVersion,
        fleet: Fleet,
        got: Collected,
        timings: dict[str, float],
    ) -> dict[str, Any]:
        ctx, perf = self.ctx, self.perf
        out_dir = Path(ctx.settings.state_dir) / "perf" / self.run_id
        out_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl(got.frame, out_dir / "samples.jsonl")
        result = compare(
            got.frame,
            thresholds=perf.thresholds,
            default_threshold=perf.default_threshold,
            correction=perf.correction,  # type: ignore[arg-type]
            aggregate=perf.aggregate,  # type: ignore[arg-type]
            cell_test=perf.cell_test,  # type: ignore[arg-type]
        )
        plots = [
            forest_plot(result, out_dir / "forest.png"),
            *distribution_plots(got.frame, out_dir),
        ]
        # insufficient data and inconclusive do not meet the gate unless [perf] allow_inconclusive
        passed = perf.passes(result.verdict)
        regressions = [
            {
                "instance_type": c.instance_type,
                "metric": c.metric,
                "ratio": c.ratio,
                "ci_low": c.ci_low,
                "ci_high": c.ci_high,
            }
            for c in result.regressions
        ]
        self._save(
            status="done",
            verdict=result.verdict,
            passed=passed,
            comparison=result.to_dict(),
            collection=got.to_dict(),
            **self._instances(fleet),
            terminated=len(fleet.terminated),
            plots=[str(p) for p in plots],
            samples=str(out_dir / "samples.jsonl"),
            timings=timings,
            finished_at=utcnow(),
        )
        self.store.add_evidence(
            Evidence(
                family=cand.family,
                version=cand.version,
                gate="perf",
                passed=passed,
                details={
                    "run_id": self.run_id,
                    "verdict": result.verdict,
                    "baseline": base.ref,
                    "regressions": regressions,
                    "missing": len(got.missing),
                },
                at=utcnow(),
                actor=self.doc["actor"],
            )
        )
        self.store.audit(
            self.doc["actor"],
            KIND,
            cand.ref,  # the audit action has always been the kind
            reason=f"verdict {result.verdict} against {base.ref}",
            details={"run_id": self.run_id},
        )
        # what the command prints: the record plus the fleet's instances (the record has their URI)
        return {**self.doc, "instances": fleet.summary(), "terminated": list(fleet.terminated)}
