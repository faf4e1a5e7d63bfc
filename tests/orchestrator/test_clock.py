"""The injectable clock: scaled time shared through a common origin, and virtual time with jobs."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime

import pytest

from orchestrator.clock import Clock, VirtualClock, human_age, human_duration


def test_unscaled_clock_is_wall_time() -> None:
    before = time.time()
    now = Clock().time()
    assert before <= now <= time.time()


def test_scaled_clock_runs_faster_and_sleeps_shorter() -> None:
    c = Clock(50)
    m0, t0 = time.monotonic(), c.time()
    c.sleep(5)  # 5 scaled seconds = 0.1 s
    t1, m1 = c.time(), time.monotonic()
    assert m1 - m0 >= 0.099
    # bracketed by the wall time around it (+1 % for wall vs monotonic), whatever the load
    assert 4.9 <= t1 - t0 <= (m1 - m0) * 50 * 1.01


def test_clocks_with_one_origin_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEFLEET_TIME_SCALE", "30")
    monkeypatch.delenv("IMAGEFLEET_TIME_ORIGIN", raising=False)
    first = Clock.from_env()
    time.sleep(0.2)
    second = Clock.from_env()  # started later, e.g. the agent runner
    before, theirs, after = first.time(), second.time(), first.time()
    assert before <= theirs <= after
    assert Clock(30).time() - second.time() < -4  # without the shared origin they would drift apart


def test_virtual_clock_moves_only_when_slept() -> None:
    c = VirtualClock(start=1_800_000_000.0)
    assert c.time() == 1_800_000_000.0 and c.monotonic() == 0.0
    assert c.now() == datetime.fromtimestamp(1_800_000_000, UTC)
    c.sleep(90.5)
    c.sleep(-3)  # a deadline already passed: no time goes back
    assert c.time() == 1_800_000_090.5 and c.monotonic() == 90.5
    assert (
        c.since("2027-01-15T08:00:30+00:00").total_seconds() == 60.5
    )  # 1_800_000_090.5 is 08:01:30.5


def test_virtual_clock_default_start_is_a_whole_minute_of_now() -> None:
    before = time.time()
    c = VirtualClock()
    assert c.time() % 60 == 0 and before - 60 < c.time() <= before


def test_jobs_run_at_their_instants_in_due_order_while_a_sleep_passes() -> None:
    c = VirtualClock(start=0.0)
    seen: list[tuple[str, float]] = []
    c.every(10, lambda: seen.append(("agent", c.time())))  # runs at once, then at 10, 20, ...
    c.every(25, lambda: seen.append(("bench", c.time())), now=False)
    c.sleep(50)
    assert seen == [
        ("agent", 0.0),
        ("agent", 10.0),
        ("agent", 20.0),
        ("bench", 25.0),
        ("agent", 30.0),
        ("agent", 40.0),
        ("agent", 50.0),
        ("bench", 50.0),
    ]
    assert c.time() == 50.0
    c.sleep(4)  # nothing falls due
    assert len(seen) == 8 and c.time() == 54.0


def test_a_cancelled_job_runs_no_more() -> None:
    c = VirtualClock(start=0.0)
    runs: list[float] = []
    cancel = c.every(5, lambda: runs.append(c.time()))
    c.sleep(10)
    cancel()
    cancel()  # twice is harmless
    c.sleep(100)
    assert runs == [0.0, 5.0, 10.0]


def test_a_job_that_sleeps_only_moves_the_clock() -> None:
    c = VirtualClock(start=0.0)
    runs: list[float] = []

    def slow_job() -> None:
        runs.append(c.time())
        c.sleep(3)  # would recurse into itself if jobs ran inside jobs

    c.every(10, slow_job, now=False)
    c.sleep(25)
    assert runs == [10.0, 20.0] and c.time() == 25.0  # due every 10 s, however long a run took
    c.every(1, lambda: runs.append(-c.time()), now=False)
    c.sleep(6)  # the slow job at 30 takes the clock to 33, past this sleep's end
    # at 30 both are due: the older job first, then the other at the time it left
    assert runs == [10.0, 20.0, -26.0, -27.0, -28.0, -29.0, 30.0, -33.0] and c.time() == 33.0


def test_a_job_around_sleeps_sees_each_sleep_begin_and_end() -> None:
    c = VirtualClock(start=0.0)
    runs: list[float] = []
    c.every(100, lambda: runs.append(c.time()), now=False, around_sleeps=True)
    c.sleep(5)
    c.sleep(250)  # begins at 5, ends at 255; due again 100 s after each run: at 105 and 205
    c.sleep(-1)  # no sleep at all: nothing runs
    assert runs == [0.0, 5.0, 5.0, 105.0, 205.0, 255.0]


def test_poll_until_stops_at_the_first_answer_that_is_done() -> None:
    clock = VirtualClock(start=1_000.0)
    asked: list[float] = []

    def check() -> int:
        asked.append(clock.monotonic())
        return len(asked)

    assert clock.poll_until(check, lambda n: n == 3, timeout=60, every=5) == (3, True)
    assert asked == [0.0, 5.0, 10.0]


def test_poll_until_gives_the_last_answer_when_the_timeout_passes() -> None:
    clock = VirtualClock(start=1_000.0)
    asked: list[float] = []

    def check() -> str:
        asked.append(clock.monotonic())
        return "pending"

    assert clock.poll_until(check, lambda state: state != "pending", timeout=12, every=5) == (
        "pending",
        False,
    )
    assert asked == [0.0, 5.0, 10.0, 15.0]  # asked once more after the deadline passed while asleep


def test_a_job_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError):
        VirtualClock().every(0, lambda: None)


@pytest.mark.parametrize(
    ("seconds", "text"), [(5, "5s"), (90, "1m"), (7200, "2h"), (3 * 86400, "3d"), (-3, "0s")]
)
def test_human_age(seconds: int, text: str) -> None:
    from datetime import timedelta

    assert human_age(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0m00s"),
        (249, "4m09s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (7500, "2h05m"),
        (30 * 3600 + 61, "30h01m"),
        (-5, "0m00s"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    from datetime import timedelta

    assert human_duration(timedelta(seconds=seconds)) == text


def test_a_long_wait_says_what_is_left_at_least_every_minute() -> None:
    c = VirtualClock(start=1_800_000_000.0)
    seen: list[tuple[float, str]] = []
    c.wait(150.5, lambda m: seen.append((c.monotonic(), m)), "analysing m5.large")
    assert c.monotonic() == 150.5
    assert seen == [
        (0.0, "analysing m5.large: 2m30s to go"),
        (60.0, "analysing m5.large: 1m30s to go"),
        (120.0, "analysing m5.large: 0m30s to go"),
    ]
    c.wait(0, seen.append, "nothing")  # nothing to wait for: no line, no time
    c.wait(-5, seen.append, "nothing")
    assert len(seen) == 3 and c.monotonic() == 150.5
    hourly: list[float] = []
    c.wait(24 * 3600, lambda _m: hourly.append(c.monotonic()), "soaking", every=60)
    gaps = [b - a for a, b in itertools.pairwise(hourly)]
    assert len(hourly) == 24 * 60 and max(gaps) == 60.0  # a day of soak: a line a minute


def test_a_resource_that_stays_unready_says_so_each_minute_not_each_poll() -> None:
    from orchestrator.lifecycle import Resource

    class Slow(Resource):
        label = "fleet"

        def _create(self, progress: object) -> None: ...
        def _delete(self, progress: object) -> None: ...
        def _is_ready(self) -> tuple[bool, str]:
            t = c.monotonic()  # 0/2 running, 1/2 from 30 s, 2/2 from 200 s
            return t >= 200, f"running {(t >= 30) + (t >= 200)}/2"

    c = VirtualClock(start=1_800_000_000.0)
    seen: list[tuple[float, str]] = []
    Slow().wait_ready(c, timeout=600, poll=5, progress=lambda m: seen.append((c.monotonic(), m)))
    assert seen == [
        (0.0, "running 0/2"),
        (30.0, "running 1/2"),
        (90.0, "running 1/2 (after 1m30s of 10m00s)"),  # polled every 5 s, said each minute
        (150.0, "running 1/2 (after 2m30s of 10m00s)"),
        (200.0, "running 2/2"),
    ]


def test_a_wait_ends_when_its_remainder_is_below_the_clocks_resolution() -> None:
    # far from the origin, a remainder of 1e-7 s cannot move the clock: the wait must still end
    clock = VirtualClock(start=1.8e9)
    clock.sleep(0.3)
    lines: list[str] = []
    clock.wait(300 + 1e-7, lines.append, "soaking")
    assert 299.999 < clock.monotonic() - 0.3 < 300.01 and len(lines) == 5


def test_a_clock_says_which_clock_its_times_are_on() -> None:
    assert Clock().label == "UTC"
    assert Clock(scale=60).label == "scaled clock (×60 from UTC)"
    assert VirtualClock(start=1.8e9).label == "virtual clock"
