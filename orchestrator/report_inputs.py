"""What the areas hand the report site, typed: the protocols their own records satisfy (a
retrospective, the fleet snapshot, the scorecard, a base's changelogs and their bodies, a perf run,
a family's upstream answer) and the rollout matrix the canary builds (``canary.report_rows``).

The core never imports an area to draw it; an area imports these (no template engine comes with
them) and ``orchestrator.report`` draws what it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class RetroPage(Protocol):
    """A retrospective draft as its page draws it (``pipelines.records.RetroRecord`` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def at(self) -> str: ...
    @property
    def markdown(self) -> str: ...
    @property
    def rollout(self) -> str | None: ...


class FleetPage(Protocol):
    """The latest fleet snapshot (``pipelines.fleet.snapshot.SnapshotPage`` is one)."""

    @property
    def taken_at(self) -> str: ...
    @property
    def rows(self) -> Sequence[Any]: ...
    @property
    def summary(self) -> Sequence[Any]: ...
    @property
    def snapshots(self) -> int: ...
    @property
    def plot(self) -> Path | None: ...
    @property
    def accounts(self) -> Sequence[str]: ...


class ScorecardPage(Protocol):
    """The hygiene scorecard (``pipelines.scorecard.Scorecard`` is one): a row per family, each
    with its ``cells`` (``name``, ``status`` pass / fail / n/a / unknown, ``why``) and score."""

    @property
    def at(self) -> str: ...
    @property
    def fleet_from(self) -> str: ...
    @property
    def cells(self) -> Sequence[str]: ...
    @property
    def rows(self) -> Sequence[Any]: ...


class ChangelogPage(Protocol):
    """A base's changelog summary (``changelog.records.ChangelogSummary`` is one)."""

    @property
    def against(self) -> int: ...
    @property
    def counts(self) -> Mapping[str, int]: ...
    @property
    def cves(self) -> int: ...
    @property
    def uris(self) -> Mapping[str, str]: ...


class ChangelogBody(Protocol):
    """A stored changelog's body as its page draws it (``changelog.pages.ChangelogBody`` is one):
    HTML its area rendered with every value escaped, or why it could not be read."""

    @property
    def html(self) -> str | None: ...
    @property
    def problem(self) -> str | None: ...


class RunPage(Protocol):
    """A perf run as its page draws it (``perf.records.PerfRunRecord`` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def candidate_ref(self) -> str: ...
    @property
    def baseline_ref(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def verdict(self) -> str | None: ...
    @property
    def started_at(self) -> str: ...
    @property
    def plots(self) -> Sequence[str]: ...
    @property
    def simulated(self) -> Sequence[str]: ...  # arms measured on simulated instances, if any
    @property
    def cells(
        self,
    ) -> Sequence[Any]: ...  # instance_type, metric, ratio, ci_low, ci_high, p_adjusted, verdict


class UpstreamPage(Protocol):
    """Whether a family is due a rebake, as its page draws it (``pipelines.upstream.Upstream``)."""

    @property
    def parent(self) -> str | None: ...
    @property
    def outdated(self) -> bool: ...
    @property
    def reasons(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class MetricRow:
    """One metric behind a wave's verdict, as a cell of the matrix lists it."""

    name: str
    classification: str
    critical: bool
    estimate: float | None
    ci: tuple[float | None, float | None]
    effect_size: float | None
    measure: str
    control_mean: float | None
    experiment_mean: float | None
    reason: str
    unit: str = ""  # what its values are in ("ms"), from the rollout's metric settings
    ratio: float | None = None  # the canaries' mean over the baselines' (None: no ratio)


@dataclass(frozen=True)
class Cell:
    """One wave of one cohort: its colour class (pass, marginal, fail, running, pending,
    skipped)."""

    cls: str
    label: str
    score: float | None = None
    metrics: tuple[MetricRow, ...] = ()
    reasons: tuple[str, ...] = ()
    traffic: tuple[str, ...] = ()  # where each side took traffic ("canaries: targetgroup/web")
    # The metrics that made it fail or marginal, worst first: shown without a click.
    headline: tuple[MetricRow, ...] = ()
    window: tuple[str, str] | None = None  # the judged interval (ISO instants), once analysing


@dataclass(frozen=True)
class MatrixRow:
    key: str
    status: str
    replaced: int
    size: int
    cells: tuple[Cell | None, ...]
    places: tuple[str, ...] = ()  # where it acted: "region", or "account/region" (member)


@dataclass(frozen=True)
class RolloutMatrix:
    """A rollout as the page draws it: one row per cohort, one cell per wave. The canary builds
    these from its records (``canary.report_rows``); the core only draws them."""

    id: str
    family: str
    new_ref: str | None
    status: str
    reason: str | None
    created_at: str
    rows: tuple[MatrixRow, ...]
    width: int
    api_calls: int | None

    @property
    def windows(self) -> list[tuple[str, int, Cell]]:
        """Each judged interval: cohort, wave (from 1) and its cell, in the matrix's order."""
        return [
            (row.key, i + 1, c)
            for row in self.rows
            for i, c in enumerate(row.cells)
            if c is not None and c.window
        ]
