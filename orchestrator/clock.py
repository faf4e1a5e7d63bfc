"""Time, injectable: soak windows, canary analysis windows and waits use a ``Clock``.

``Clock`` is the wall clock. ``IMAGEFLEET_TIME_SCALE=60`` makes every wait 60 times shorter and
the reported time move 60 times faster, so a demo walks through an hour of soak and analysis in
a minute without changing any configured duration.

``VirtualClock`` is time that moves only when someone sleeps: tests and simulations use it, and
the local agents run inside its sleeps (``every``), so whatever they write for a stretch of time
is there when the sleeper wakes up, however slow the machine is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

T = TypeVar("T")
PROGRESS_EVERY = 60.0  # a long wait says how long is left at least this often (seconds)


class Clock:
    def __init__(self, scale: float = 1.0, origin: float | None = None) -> None:
        if scale <= 0:
            raise ValueError("time scale must be positive")
        self.scale = scale
        # Scaled time runs `scale` times faster from `origin` (a wall-clock instant); processes
        # that share the origin (IMAGEFLEET_TIME_ORIGIN) agree on the time, e.g. the local agent
        # runner stamping metrics and the canary controller querying them.
        self.origin = time.time() if origin is None else origin
        self._mono0 = time.monotonic()

    @classmethod
    def from_env(cls) -> Clock:
        scale = float(os.environ.get("IMAGEFLEET_TIME_SCALE", "1") or 1)
        origin = os.environ.get("IMAGEFLEET_TIME_ORIGIN")
        if scale != 1 and not origin:
            origin = repr(time.time())
            os.environ["IMAGEFLEET_TIME_ORIGIN"] = origin  # inherited by the processes we start
        return cls(scale, float(origin) if origin else None)

    @property
    def label(self) -> str:
        """Which clock its times are on, for people reading them (the report's timestamps):
        "UTC" on the wall clock, else the clock they were read from."""
        return "UTC" if self.scale == 1 else f"scaled clock (×{self.scale:g} from UTC)"

    def time(self) -> float:
        """Seconds since the epoch, on the (possibly scaled) clock."""
        return self.origin + (time.time() - self.origin) * self.scale

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def monotonic(self) -> float:
        return (time.monotonic() - self._mono0) * self.scale

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.scale)

    def poll_until(
        self, check: Callable[[], T], done: Callable[[T], bool], *, timeout: float, every: float
    ) -> tuple[T, bool]:
        """Call ``check`` every ``every`` seconds until ``done`` holds for its answer or ``timeout``
        seconds of this clock passed; returns the last answer and whether ``done`` held.

        imagefleet's one poll-until-deadline loop: the caller says what a timeout means (an error,
        or going on with what there is). On a ``VirtualClock`` the waiting is virtual too."""
        deadline = self.monotonic() + timeout
        while True:
            answer = check()
            if done(answer):
                return answer, True
            if self.monotonic() >= deadline:
                return answer, False
            self.sleep(every)

    def wait(
        self,
        seconds: float,
        report: Callable[[str], None],
        what: str,
        *,
        every: float = PROGRESS_EVERY,
    ) -> None:
        """Sleep ``seconds`` on this clock, saying ``"{what}: {left} to go"`` through ``report``
        as it starts and then at least every ``every`` seconds (a spinner's message on a
        terminal, a line each otherwise): a long wait is never silent for more than a minute."""
        end = self.monotonic() + seconds
        # A remainder below a millisecond is done: on a clock that counts from the epoch, so small a
        # sleep may not move it at all (float resolution), and the wait would never end.
        while (left := end - self.monotonic()) > 1e-3:
            report(f"{what}: {human_duration(timedelta(seconds=left))} to go")
            before = self.monotonic()
            self.sleep(min(left, every))
            if self.monotonic() <= before:
                break

    def since(self, iso: str) -> timedelta:
        """How long ago an ISO-8601 UTC timestamp (as the store writes them) was."""
        then = datetime.fromisoformat(iso)
        if then.tzinfo is None:
            then = then.replace(tzinfo=UTC)
        return self.now() - then


@dataclass
class _Job:
    every: float
    due: float
    fn: Callable[[], None]
    around_sleeps: bool


class VirtualClock(Clock):
    """A clock that stands still until ``sleep``, which moves it at once.

    Jobs registered with ``every`` run at their due instants while a sleep passes over them
    (the clock reads the job's instant while it runs), in due order: a test's health agent
    publishes a wave's datapoints, stamped with virtual time, before the controller that slept
    through the analysis window queries them. Single-threaded by design; a job that sleeps
    only moves the clock, it never runs other jobs.
    """

    def __init__(self, start: float | None = None) -> None:
        # A whole minute of the wall clock by default: readable timestamps, and metric periods
        # that line up the same way on every run.
        self.scale = 1.0
        self.origin = float(int(time.time()) // 60 * 60) if start is None else start
        self._now = self.origin
        self._jobs: list[_Job] = []
        self._in_job = False

    @property
    def label(self) -> str:
        return "virtual clock"

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self.origin

    def sleep(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, running every job that falls due on the way."""
        if seconds <= 0:
            return
        target = self._now + seconds
        if self._in_job:
            self._now = target
            return
        self._run_around_sleeps()
        while (job := self._next_due(target)) is not None:
            self._now = max(self._now, job.due)
            self._run(job)
        self._now = max(self._now, target)
        self._run_around_sleeps()

    def every(
        self,
        seconds: float,
        fn: Callable[[], None],
        *,
        now: bool = True,
        around_sleeps: bool = False,
    ) -> Callable[[], None]:
        """Run ``fn`` every ``seconds`` of this clock (first at once when ``now``); returns a
        cancel.

        ``around_sleeps`` also runs it when a sleep begins and when it ends (the interval then
        counts from there): for a job that must see what the sleeper just changed, such as an
        agent discovering new instances, and that catches up on the time in between itself."""
        if seconds <= 0:
            raise ValueError("a job's interval must be positive")
        job = _Job(seconds, self._now + seconds, fn, around_sleeps)
        if now:
            self._run(job)
        self._jobs.append(job)
        return lambda: self._jobs.remove(job) if job in self._jobs else None

    def _next_due(self, target: float) -> _Job | None:
        due = [j for j in self._jobs if j.due <= target]
        return min(due, key=lambda j: j.due) if due else None

    def _run_around_sleeps(self) -> None:
        for job in [j for j in self._jobs if j.around_sleeps]:
            self._run(job)

    def _run(self, job: _Job) -> None:
        job.due = self._now + job.every
        self._in_job = True
        try:
            job.fn()
        finally:
            self._in_job = False


def human_age(delta: timedelta) -> str:
    s = int(delta.total_seconds())
    if s < 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def human_duration(delta: timedelta) -> str:
    """A span to the minute or second, for progress and gate reasons: ``2h05m``, ``4m09s``.

    ``human_age`` is the coarse one (one unit) for tables; this one is imagefleet's other
    duration format, and its only one."""
    s = max(0, int(delta.total_seconds()))
    h, rem = divmod(s, 3600)
    return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m{rem % 60:02d}s"
