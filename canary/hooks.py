"""What the canary announces to the layers above it, so that it never imports them.

``cohort_rolled_back`` is announced after the controller rolls a cohort back; ``pipelines``, which
owns retrospectives, listens (``pipelines.retro.listen``). The top layer (``imagefleet.cli``)
wires the two with ``mount``: the listeners load on the first announcement, so a command that rolls
nothing back imports nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from canary.records import RolloutView
    from orchestrator.store import StateStore


@dataclass(frozen=True)
class CohortRolledBack:
    """A cohort the canary rolled back: the rollout as saved (its typed view) and the cohort's
    key."""

    store: StateStore
    state_dir: Path
    rollout: RolloutView
    cohort_key: str


Listener = Callable[[CohortRolledBack], str]  # returns one line for the rollout's progress output

_LISTENERS: list[Listener] = []
_LOADERS: list[Callable[[], None]] = []


def mount(load: Callable[[], None]) -> None:
    """Register ``load``, which registers listeners; it runs once, before the first announcement."""
    if load not in _LOADERS:
        _LOADERS.append(load)


def on_cohort_rolled_back(listener: Listener) -> None:
    """Call ``listener`` for every cohort rolled back (registering one again changes nothing)."""
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


def cohort_rolled_back(event: CohortRolledBack) -> list[str]:
    """Tell every listener; a listener's failure is a line of output, never the rollout's
    failure."""
    while _LOADERS:
        _LOADERS.pop(0)()
    lines = []
    for listener in _LISTENERS:
        try:
            lines.append(listener(event))
        except Exception as exc:  # what listens is a convenience; the rollback is what matters
            lines.append(f"{listener.__name__} failed ({type(exc).__name__}: {exc})")
    return lines
