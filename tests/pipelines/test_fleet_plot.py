"""The burndown's time axis, read back from the drawn figure (Agg): right for a first snapshot,
for snapshots minutes apart and for years of them, and never labelled with a far-away year."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from pipelines.fleet.plot import burndown_figure, burndown_plot
from pipelines.fleet.view import Burndown

T0 = datetime(2026, 12, 8, 1, 57, tzinfo=UTC)
HH_MM = re.compile(r"^\d\d:\d\d$")


def _burndown(times: list[datetime]) -> Burndown:
    n = len(times)
    return Burndown(
        tuple(times),
        {"ubuntu-20.04": tuple(range(n, 0, -1)), "ubuntu-24.04": tuple(range(n))},
    )


@pytest.fixture
def drawn() -> Iterator[list[Figure]]:
    figures: list[Figure] = []
    yield figures
    for fig in figures:
        plt.close(fig)


def _axis(figures: list[Figure], times: list[datetime]) -> tuple[list[str], str]:
    """The tick labels inside the drawn axis (and the offset text at its end), as a reader sees
    them."""
    fig = burndown_figure(_burndown(times), clock_label="virtual clock")
    figures.append(fig)
    fig.canvas.draw()
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    labels = [
        t.get_text()
        for x, t in zip(ax.get_xticks(), ax.get_xticklabels(), strict=True)
        if lo <= x <= hi
    ]
    assert ax.get_xlabel() == "snapshot taken (virtual clock)"
    return labels, ax.xaxis.get_offset_text().get_text()


def _years(texts: list[str]) -> set[int]:
    return {int(y) for text in texts for y in re.findall(r"\b(\d{4})\b", text)}


def test_a_first_snapshot_is_labelled_with_its_day_and_the_minutes_around_it(
    drawn: list[Figure],
) -> None:
    labels, offset = _axis(drawn, [T0])
    assert offset == "2026-Dec-08"  # the day, once, at the axis's end
    assert labels and all(HH_MM.match(x) for x in labels)  # hour:minute ticks
    assert "02:00" in labels and labels[0] <= "01:57" <= labels[-1]
    assert _years([*labels, offset]) == {2026}  # not the ±2 years of a singular date axis


@pytest.mark.parametrize(
    ("at", "day"),
    [
        (datetime(2026, 12, 31, 23, 50, tzinfo=UTC), "2026-Dec-31"),
        (datetime(2027, 1, 1, 0, 5, tzinfo=UTC), "2027-Jan-01"),
    ],
)
def test_a_snapshot_by_midnight_is_labelled_with_its_own_day_and_year(
    drawn: list[Figure], at: datetime, day: str
) -> None:
    labels, offset = _axis(drawn, [at])
    assert offset == day and _years([*labels, offset]) == {at.year}
    assert all(HH_MM.match(x) for x in labels) and at.strftime("%H:%M")[:4] in "".join(labels)


def test_snapshots_minutes_apart_get_minute_ticks_on_their_day(drawn: list[Figure]) -> None:
    labels, offset = _axis(drawn, [T0, T0 + timedelta(minutes=3), T0 + timedelta(minutes=7)])
    assert offset == "2026-Dec-08"
    assert all(HH_MM.match(x) for x in labels)
    assert labels[0] <= "01:57" and labels[-1] >= "02:04"
    assert _years([*labels, offset]) == {2026}


def test_snapshots_years_apart_get_year_ticks_and_no_other_years(drawn: list[Figure]) -> None:
    times = [datetime(2021, 3, 1, tzinfo=UTC), datetime(2023, 6, 1, tzinfo=UTC), T0]
    labels, offset = _axis(drawn, times)
    assert {"2022", "2023", "2024", "2025", "2026"} <= set(labels)
    assert _years([*labels, offset]) <= set(range(2021, 2028))  # within the data's reach


def test_a_week_of_daily_snapshots_gets_day_ticks_in_its_month(drawn: list[Figure]) -> None:
    labels, offset = _axis(drawn, [T0 + timedelta(days=d) for d in range(8)])
    assert offset == "2026-Dec"
    assert {"08", "10", "12", "14"} <= set(labels)


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    path = burndown_plot(_burndown([T0]), tmp_path / "b" / "burndown.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
