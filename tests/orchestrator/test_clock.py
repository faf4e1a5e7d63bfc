"""The injectable clock: scaled time, shared between processes through a common origin."""

from __future__ import annotations

import time

import pytest

from orchestrator.clock import Clock, human_age


def test_unscaled_clock_is_wall_time() -> None:
    assert abs(Clock().time() - time.time()) < 0.05


def test_scaled_clock_runs_faster_and_sleeps_shorter() -> None:
    c = Clock(50)
    t0, m0 = c.time(), time.monotonic()
    c.sleep(5)  # 5 scaled seconds = 0.1 s
    wall = time.monotonic() - m0
    assert 0.09 <= wall < 0.5
    assert c.time() - t0 == pytest.approx(wall * 50, rel=0.1)


def test_clocks_with_one_origin_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEFLEET_TIME_SCALE", "30")
    monkeypatch.delenv("IMAGEFLEET_TIME_ORIGIN", raising=False)
    first = Clock.from_env()
    time.sleep(0.2)
    second = Clock.from_env()  # started later, e.g. the agent runner
    assert abs(first.time() - second.time()) < 0.1
    assert Clock(30).time() - second.time() < -4  # without the shared origin they would drift apart


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (90, "1m"), (7200, "2h"), (3 * 86400, "3d"), (-3, "0s")])
def test_human_age(seconds: int, text: str) -> None:
    from datetime import timedelta

    assert human_age(timedelta(seconds=seconds)) == text
