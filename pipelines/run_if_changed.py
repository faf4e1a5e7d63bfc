"""``imagefleet run FAMILY --if-changed``: whether the run has anything to do, decided from
``pipelines.upstream`` (the parent moved, the recipe changed, the base is too old).

The job decides before it takes the family's ``run`` lease (an hourly check with nothing to do
writes nothing) and again under it (a run racing this one may have just baked the same move). A
run of the family already in progress is no failure: the next check decides again. An unfinished
job whose base upstream has moved past is closed, so the run bakes anew.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.errors import LeaseHeldError
from orchestrator.store import StateStore
from pipelines.run_plan import JobResult
from pipelines.upstream import Upstream, skipping_line


class IfChanged:
    """One job's ``--if-changed`` decision: taken, said once, and kept for its result."""

    def __init__(self, family: str, announce: Callable[[str], None]) -> None:
        self.family = family
        self.announce = announce
        self.decided: Upstream | None = None  # the decision that let the job run

    def skip(self, answer: Upstream) -> JobResult | None:
        """The result of a run that has nothing to do, or None to run (``answer`` is outdated)."""
        if answer.outdated:
            if self.decided is None:  # said once, though decided before the lease and under it
                self.announce(f"{self.family} is outdated: " + "; ".join(answer.reasons))
            self.decided = answer
            return None
        result = JobResult("", self.family, answer.newest, False, upstream=answer)
        result.skipped = skipping_line(answer)
        return result

    def in_progress(self, exc: LeaseHeldError) -> JobResult:
        """A job of the family is in progress (a soak, a canary): nothing now, exit 0."""
        result = JobResult("", self.family, None, False, upstream=self.decided)
        result.skipped = (
            f"{self.family} is outdated upstream, but a run of it is in progress: "
            f"{exc.message}; the next --if-changed after it ends decides again"
        )
        return result

    def supersede(self, store: StateStore, op_id: str | None, actor: str) -> None:
        """An unfinished job (``op_id``) that baked already baked what upstream has moved past:
        close it (as ``--abandon`` does, audited), so this run bakes anew. One killed before its
        bake is finished goes on, and its bake takes the parent upstream names now."""
        done = store.step(op_id, "bake") if op_id else None
        if op_id and done and done["status"] == "done":
            store.finish_operation(op_id, "aborted")
            reasons = self.decided.reasons if self.decided else []
            store.audit(
                actor,
                "run-superseded",
                self.family,
                details={"operation": op_id, "reasons": reasons},
            )
            self.announce(f"closed the unfinished job {op_id}: its base is outdated upstream")
