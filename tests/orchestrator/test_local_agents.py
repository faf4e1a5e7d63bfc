"""The local agent runner on a virtual clock: handlers tick inside the clock's sleeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.aws import AwsFactory
from orchestrator.clock import Clock, VirtualClock
from orchestrator.local.agents import AgentEnv, attach, tick_all


def _env(clock: Clock, tmp_path: Path) -> AgentEnv:
    return AgentEnv(
        aws=AwsFactory(endpoint_url="http://127.0.0.1:9"),
        state_dir=tmp_path,
        regions=("us-east-1",),
        clock=clock,
    )


def test_handlers_run_around_each_sleep_on_the_clock_they_share(tmp_path: Path) -> None:
    clock = VirtualClock(start=1000.0)
    env = _env(clock, tmp_path)
    seen: list[float] = []
    agents = attach(clock, env, [("record", lambda e: seen.append(e.clock.time()))], interval=60)
    assert seen == [1000.0]  # at once: what already runs is seen before anyone sleeps
    clock.sleep(130)
    assert seen == [1000.0, 1000.0, 1060.0, 1120.0, 1130.0]
    agents.cancel()
    clock.sleep(500)
    assert agents.ticks == 5 and len(seen) == 5 and agents.failures == []


def test_a_failing_handler_is_recorded_and_the_others_still_run(tmp_path: Path) -> None:
    clock = VirtualClock(start=0.0)
    calls: list[str] = []

    def broken(_: Any) -> None:
        calls.append("broken")
        raise RuntimeError("endpoint answered 500")

    agents = attach(
        clock, _env(clock, tmp_path), [("broken", broken), ("ok", lambda _: calls.append("ok"))]
    )
    clock.sleep(10)
    assert calls == ["broken", "ok"] * 3
    assert agents.ticks == 3 and [str(e) for e in agents.failures] == ["endpoint answered 500"] * 3


def test_tick_all_returns_failures_instead_of_raising(tmp_path: Path) -> None:
    def broken(_: Any) -> None:
        raise KeyError("x")

    assert [type(e) for e in tick_all(_env(Clock(), tmp_path), [("broken", broken)])] == [KeyError]


def test_agents_must_run_on_the_clock_they_are_attached_to(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clock they are attached to"):
        attach(VirtualClock(), _env(VirtualClock(), tmp_path), [])
