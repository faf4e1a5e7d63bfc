"""A small discrete-event engine on a ``VirtualClock``: processes are generators.

A process yields a number (sleep that many virtual seconds) or a list of processes (run them
concurrently; resume when all have finished). The engine always runs the process due first,
moving the clock to its instant, so every concurrent rollout sees the same, ordered time.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Generator
from dataclasses import dataclass, field

from orchestrator.clock import VirtualClock

Process = Generator["float | list[Process]", None, None]


@dataclass
class _Join:
    parent: Process
    left: int


@dataclass
class Engine:
    clock: VirtualClock
    _queue: list[tuple[float, int, Process]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _joins: dict[int, _Join] = field(default_factory=dict)  # id(child) -> its parent's join

    def start(self, process: Process, delay: float = 0.0) -> None:
        heapq.heappush(self._queue, (self.clock.time() + max(0.0, delay), next(self._seq), process))

    def run(self) -> None:
        """Run every process to its end."""
        while self._queue:
            due, _, process = heapq.heappop(self._queue)
            self.clock.sleep(due - self.clock.time())
            self._step(process)

    def _step(self, process: Process) -> None:
        try:
            what = next(process)
        except StopIteration:
            self._finished(process)
            return
        if isinstance(what, list):
            if not what:
                self.start(process)
                return
            join = _Join(process, len(what))
            for child in what:
                self._joins[id(child)] = join
                self.start(child)
        else:
            self.start(process, float(what))

    def _finished(self, process: Process) -> None:
        join = self._joins.pop(id(process), None)
        if join is None:
            return
        join.left -= 1
        if join.left == 0:
            self.start(join.parent)
