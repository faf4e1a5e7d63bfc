"""Resumable operations: record intent before acting, the result after.

An ``Operation`` is found again by what it does: a command that finds an unfinished operation
with the same intent (``promote`` of ``demo:3`` to ``candidate``) continues it instead of starting
a new one, so running the same command again after a kill finishes the job. Each
``step`` is recorded ``pending`` before it runs and ``done`` with its result after; a rerun
returns the stored result of a done step without acting again, and re-runs a pending one —
which is why every step's action must be idempotent (an idempotency token, or a check of what
AWS already has before acting).

Given a fenced store (``orchestrator.store.leases.hold``'s ``Holding.store``), every record is
conditioned on the lease, and the lease is checked again right before each action: a holder
that lost its lease stops (``LeaseLostError``) before its next side effect.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from orchestrator.store import StateStore

T = TypeVar("T")


class KillPoint(BaseException):
    """Raised by the test-only kill hook to simulate ``kill -9`` between two steps.

    A ``BaseException`` so that no ``except Exception`` handler cleans up after it: like a real
    kill, the process just stops.
    """


def kill_point(point: str) -> None:
    """The test hook at every journaled step: die here when the environment says so.

    ``IMAGEFLEET_KILL_AT=<step>:before|acted`` names the point; with ``IMAGEFLEET_KILL_HARD=1`` the
    process ends at once with status 137 (``os._exit``: no handler, ``finally`` or flush runs, as
    with ``kill -9``); with ``IMAGEFLEET_KILL_SIGNAL=STOP`` it stops itself (SIGSTOP) until a
    SIGCONT, as a paused VM or a long GC would; otherwise it raises ``KillPoint``.
    ``IMAGEFLEET_KILL_TRACE=FILE`` appends every point passed, one per line, so a
    kill soak can choose among the points a command really goes through. Real kills need no help.
    """
    trace = os.environ.get("IMAGEFLEET_KILL_TRACE")
    if trace:
        with open(trace, "a", encoding="utf-8") as f:
            f.write(point + "\n")
    target = os.environ.get("IMAGEFLEET_KILL_AT")
    if target and target == point:
        if os.environ.get("IMAGEFLEET_KILL_SIGNAL") == "STOP":
            os.kill(
                os.getpid(), signal.SIGSTOP
            )  # frozen, every thread, like a paused VM; SIGCONT goes on
            return
        if os.environ.get("IMAGEFLEET_KILL_HARD") == "1":
            os._exit(137)
        raise KillPoint(point)


class Operation:
    def __init__(self, store: StateStore, op_id: str, kind: str, intent: dict[str, Any]) -> None:
        self.store = store
        self.id = op_id
        record = store.open_operation(op_id, kind, intent)
        self.intent = record["intent"]
        self.resumed = bool(record.get("resumed"))
        self.status = record["status"]
        self.steps_run: list[str] = []
        self.steps_skipped: list[str] = []

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "aborted")

    def step(self, name: str, action: Callable[[], T]) -> T:
        """Run ``action`` once: *pending* is recorded before it, *done* with its result after;
        a step already done returns its recorded result without acting again."""
        prior = self._begin(name)
        if prior is not None:
            return prior[0]  # type: ignore[no-any-return]
        return self._done(name, action())

    def step_process(
        self, name: str, start: Callable[[], Generator[float, None, T]]
    ) -> Generator[float, None, T]:
        """``step`` for an action that waits as it goes: a generator yielding the seconds it wants
        to wait, run by a scheduler that interleaves several; the same journal records around it."""
        prior = self._begin(name)
        if prior is not None:
            return prior[0]  # type: ignore[no-any-return]
        return self._done(name, (yield from start()))

    def _begin(self, name: str) -> tuple[Any] | None:
        """A done step's recorded result (in a 1-tuple: it may be None); else *pending* recorded."""
        prior = self.store.step(self.id, name)
        if prior and prior["status"] == "done":
            self.steps_skipped.append(name)
            return (prior["result"],)
        self.store.record_step(self.id, name, "pending")  # fenced: refused once the lease is lost
        kill_point(f"{name}:before")
        # a holder frozen since its pending write stops here, before acting
        self.store.check_fence()
        return None

    def is_done(self, name: str) -> bool:
        """Whether step ``name`` ran to its end before (a resumed run replays its result)."""
        prior = self.store.step(self.id, name)
        return bool(prior and prior["status"] == "done")

    def was_started(self, name: str) -> bool:
        """Whether step ``name`` was recorded before, done or pending (killed half-way)."""
        return self.store.step(self.id, name) is not None

    def _done(self, name: str, result: T) -> T:
        kill_point(f"{name}:acted")
        self.store.record_step(self.id, name, "done", result)
        self.steps_run.append(name)
        return result

    def finish(self, status: str = "done") -> None:
        self.store.finish_operation(self.id, status)
        self.status = status
