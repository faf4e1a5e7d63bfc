"""`imagefleet init`: a workspace whose canary finishes in minutes on the embedded endpoint, and
says so."""

from __future__ import annotations

import io
from pathlib import Path

from canary import config as canary_config
from canary.cohorts import Cohort, Group
from canary.plan import plan
from imagefleet.cli import raw_main
from orchestrator.config import load
from orchestrator.context import Context
from orchestrator.output import Output


def test_inits_canary_is_minutes_on_the_local_fleet_and_the_file_says_so(tmp_path: Path) -> None:
    assert (
        raw_main(["init", str(tmp_path / "ws")], obj=Context(output=Output(stdout=io.StringIO())))
        == 0
    )
    config = tmp_path / "ws" / "imagefleet.toml"
    settings = load(config)
    cfg = canary_config.from_settings(settings)
    fam = settings.families["demo"]
    # the 4 groups `local fleet` makes: one per cohort type, 10 instances each
    cohorts = [
        Cohort(
            key=t,
            groups=(
                Group(
                    name=f"demo-{t}",
                    region="us-east-1",
                    instance_ids=tuple(f"i-{t}-{n}" for n in range(10)),
                    instance_types=t,
                ),
            ),
        )
        for t in fam.cohort_instance_types
    ]
    s = plan(cohorts, cfg.policy).summary(
        cfg.warmup_s + cfg.analysis_s, cfg.poll_s
    )  # as the dry run does
    assert (s["waves"], s["instances"]) == (8, 40)
    assert (
        s["estimated_duration_s"] / 60 < 10
    )  # minutes (about 8), where the defaults estimate about 8 hours
    assert "minutes" in config.read_text().split("[canary]")[0].rsplit("\n\n", 1)[-1]
