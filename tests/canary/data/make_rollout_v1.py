"""Writes tests/canary/data/rollout-v1.db with the code at 4006878 (one document per rollout)."""

import shutil
import sys
from pathlib import Path

from canary.config import from_settings
from canary.controller import Controller
from canary.prepare import prepare
from canary.simulate.controller_run import FAMILY, build_world, fail_cohort, sim_context
from canary.simulate.rollout import Scenario
from orchestrator.clock import VirtualClock

out = Path(sys.argv[1])
scenario = Scenario(
    instances=240, cohorts=4, regions=("us-east-1", "eu-west-1"), failing_cohort=1, seed=7
)
clock = VirtualClock(start=1_700_000_000.0)
world, _ = build_world(scenario, clock)
root = Path("/tmp/oldstore")
shutil.rmtree(root, ignore_errors=True)
root.mkdir()
ctx = sim_context(root, scenario, world, {"cohorts_in_flight": 2})
cfg = from_settings(ctx.settings)
rollout, plan = prepare(ctx, cfg, f"{FAMILY}:2", FAMILY)
fail_cohort(world, plan, 1, 5.0)
done = Controller.create(ctx, cfg, rollout).run()
print(done.status, [(c.key, c.status) for c in done.cohorts])
ctx.store.close()
shutil.copy(root / "state.db", out)
