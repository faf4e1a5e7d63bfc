"""One launch → wait ready → post-create → delete lifecycle for anything imagefleet provisions.

The shape is PerfKitBenchmarker's ``BaseResource``: a provider fills in the primitive steps
(``_create``, ``_is_ready``, ``_post_create``, ``_delete``) and ``provisioned`` runs them in order
and **always** deletes, whether the body returns, raises, or is interrupted (Ctrl-C, SIGTERM).
Benchmark fleets (``perf.fleet``) use it; canary smoke instances can fill in the same steps.

``_create`` must record what it made as it goes (so a Ctrl-C half-way still deletes the part that
exists), and ``_delete`` must be idempotent and also find what it made by tag, because a create
call can succeed on the AWS side after the client stopped waiting for its answer.
"""

from __future__ import annotations

import signal
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import FrameType
from typing import TypeVar

from orchestrator.clock import PROGRESS_EVERY, Clock, human_duration
from orchestrator.errors import AwsError

Progress = Callable[[str], None]
R = TypeVar("R", bound="Resource")


class Resource(ABC):
    """Something imagefleet creates and must delete again."""

    #: what the resource is, for messages ("benchmark fleet perf-abc123")
    label: str = "resource"

    @abstractmethod
    def _create(self, progress: Progress) -> None:
        """Create everything; record each created part before creating the next."""

    def _is_ready(self) -> tuple[bool, str]:
        """(ready?, a short progress line). Ready at once by default."""
        return True, "ready"

    def _post_create(self, progress: Progress) -> None:  # noqa: B027 - optional, not abstract
        """Anything to do once ready (nothing by default)."""

    @abstractmethod
    def _delete(self, progress: Progress) -> None:
        """Delete everything created (idempotent; safe after a partial create)."""

    def wait_ready(self, clock: Clock, timeout: float, poll: float, progress: Progress) -> None:
        """Poll ``_is_ready`` until true or ``timeout`` (clock seconds) passed; its line goes to
        ``progress`` when it changes, and again at least every minute while it does not."""
        start = clock.monotonic()
        said, said_at = [""], [start]  # the last line and when it was said

        def looked() -> tuple[bool, str]:
            ready, line = self._is_ready()
            now = clock.monotonic()
            if line != said[0]:
                progress(line)
                said[0], said_at[0] = line, now
            elif now - said_at[0] >= PROGRESS_EVERY:
                waited = human_duration(timedelta(seconds=now - start))
                progress(f"{line} (after {waited} of {human_duration(timedelta(seconds=timeout))})")
                said_at[0] = now
            return ready, line

        (_, line), ready = clock.poll_until(
            looked, lambda answer: answer[0], timeout=timeout, every=poll
        )
        if not ready:
            raise AwsError(f"{self.label} not ready after {timeout:.0f}s: {line}")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same unwinding as Ctrl-C so the resource gets deleted."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def provisioned(
    resource: R, *, clock: Clock, ready_timeout: float, poll: float, progress: Progress
) -> Iterator[R]:
    """Create, wait until ready, post-create, yield; delete on every way out.

    A second Ctrl-C while deleting does not stop the deletion: it is retried once and the
    interrupt re-raised after, so an impatient user never leaves instances running.
    """
    with _sigterm_as_interrupt():
        try:
            resource._create(progress)
            resource.wait_ready(clock, ready_timeout, poll, progress)
            resource._post_create(progress)
            yield resource
        finally:
            try:
                resource._delete(progress)
            except KeyboardInterrupt:
                resource._delete(progress)
                raise
