"""Pacing a rollout's launches by the shared API budget, with several regions in one thread.

A replacement is a launch by the Auto Scaling group, so terminating instances spends the
``RunInstances`` budget of their region (``canary.budget``). The controller runs in one thread;
to keep every region busy while one waits for tokens, each region's work is a *process*: a
generator that yields the seconds it wants to wait. ``interleave`` runs them on the rollout's
clock, always the process due first, so region A's wait is region B's working time, and a
virtual clock (tests, the simulator) sees the same order of events as the wall clock would.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Generator, Iterable
from dataclasses import dataclass

from canary.budget import ApiBudget, BucketSpec, launch_bucket
from orchestrator.clock import Clock

# A process yields seconds to wait (0 lets the others run first) and returns its result.
Paced = Generator[float, None, object]


def interleave(clock: Clock, processes: Iterable[Paced]) -> list[object]:
    """Run ``processes`` to their ends, each resumed when its wait is over; their results in order.

    The earliest-due process runs first (ties: the order given), so the clock only moves
    forward and no process waits longer than it asked.
    """
    queue: list[tuple[float, int, int, Paced]] = []
    seq = itertools.count()
    results: list[object] = []
    for index, process in enumerate(processes):
        results.append(None)
        heapq.heappush(queue, (clock.time(), next(seq), index, process))
    while queue:
        due, _, index, process = heapq.heappop(queue)
        clock.sleep(due - clock.time())
        try:
            wait = next(process)
        except StopIteration as done:
            results[index] = done.value
            continue
        heapq.heappush(queue, (clock.time() + max(0.0, float(wait)), next(seq), index, process))
    return results


@dataclass
class LaunchPacer:
    """Launch tokens taken from the region's shared bucket before each chunk of replacements.

    A take *reserves* (``ApiBudget.reserve``): the tokens are ours at once, the process waits
    until the bucket has really refilled them, plus a random jitter so controllers that waited
    together do not act together. ``budget`` None: no pacing (a rollout with no budget set).
    """

    budget: ApiBudget | None
    spec: BucketSpec
    chunk: int
    jitter_s: float
    rng: random.Random

    @classmethod
    def of(cls, budget: ApiBudget | None, share: float, chunk: int, jitter_s: float, seed: int) -> LaunchPacer:
        return cls(budget, launch_bucket(share), max(1, chunk), max(0.0, jitter_s), random.Random(seed))

    def take(self, region: str, count: int) -> Generator[float, None, None]:
        """Wait (as a process) until ``count`` launches are ours in ``region``'s bucket."""
        if self.budget is None or count <= 0:
            return
        wait = self.budget.reserve(region, self.spec, count)
        if wait > 0.0:
            yield wait + self.rng.uniform(0.0, self.jitter_s)
