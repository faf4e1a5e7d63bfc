"""Retrospective drafts: what the records show about a rolled-back base, and empty sections for
people."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from canary import config as canary_config
from canary.judge.decision import verdict
from canary.records import CohortView, RolloutView, WaveVerdict, WaveView
from orchestrator import report
from orchestrator.config import parse
from orchestrator.store import BaseVersion, SqliteStore, utcnow
from pipelines import retro

OLD = "bash\t5.2.21-2ubuntu4\nopenssl\t3.0.13-0ubuntu3.1\ne2fsprogs\t1.47.0-2.4ubuntu0.1\n"
NEW = "bash\t5.2.21-2ubuntu4\nopenssl\t3.0.13-0ubuntu3.4\njq\t1.7.1-3build1\n"


def judged(shift: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    base = {
        "latency_ms": [rng.gauss(100, 3) for _ in range(30)],
        "error_rate": [rng.gauss(1, 0.1) for _ in range(30)],
        "cpu": [rng.gauss(40, 2) for _ in range(30)],
    }
    canary = {
        k: [x * (shift if k == "latency_ms" else 1.0) for x in v[::-1]] for k, v in base.items()
    }
    return verdict(canary_config.from_settings(parse({})), base, canary)


def store_with_bases(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "state.db")
    for v, manifest in ((1, OLD), (2, NEW)):
        store.put_base(
            BaseVersion(
                "web",
                v,
                {"us-east-1": f"ami-{v:017x}"},
                "ami-00000000000000001",
                v - 1 or None,
                f"bake-{v}",
                utcnow(),
                manifest,
            )
        )
    store.audit("arn:aws:iam::1:user/ci", "bake", "web:2", "")
    return store


def test_canary_rollback_draft_names_the_failing_metric_the_packages_and_the_types(
    tmp_path: Path,
) -> None:
    store = store_with_bases(tmp_path)
    failed = CohortView(
        key="r5.large",
        status="rolled_back",
        size=20,
        wave=0,
        replaced=1,
        rolled_back_at=utcnow(),
        last_verdict=None,
        waves=(
            WaveView(0, 1, "failed", WaveVerdict.from_json(judged(1.6, 3)), ("r5.large",)),
            WaveView(1, 20, "pending", None, ()),
        ),
    )
    passed = CohortView(
        key="m5.large",
        status="passed",
        size=40,
        wave=0,
        replaced=40,
        rolled_back_at=None,
        last_verdict=None,
        waves=(),
    )
    rollout = RolloutView(
        id="web-2-abc",
        family="web",
        status="failed",
        reason=None,
        created_at=utcnow(),
        updated_at=utcnow(),
        new_ref="web:2",
        new_version=2,
        new_amis={},
        old_amis=frozenset({"ami-00000000000000001"}),
        api_calls=0,
        api_calls_by_operation={},
        cohorts=(passed, failed),
    )
    draft = retro.canary_rollback(store, tmp_path, rollout, "r5.large")
    text = draft.path.read_text()
    assert draft.path.parent == tmp_path / "retrospectives"
    assert "# Retrospective (draft): web:2: canary rolled back cohort r5.large" in text
    assert "(from web:1)" in text
    assert "| latency_ms | High |" in text  # the metric that decided, with its statistics
    assert "wave 1 of r5.large judged **fail**" in text and "bake web:2" in text
    assert "- openssl: 3.0.13-0ubuntu3.1 → 3.0.13-0ubuntu3.4" in text
    assert (
        "- jq 1.7.1-3build1 (added)" in text and "- e2fsprogs 1.47.0-2.4ubuntu0.1 (removed)" in text
    )
    assert "Instance types affected: r5.large" in text and "Other cohorts: m5.large passed" in text
    assert "## Follow-ups" in text and "How did it get past the earlier gates?" in text
    assert store.get_doc(retro.DOC_KIND, draft.id)[0]["rollout"] == "web-2-abc"

    site = report.build(store, tmp_path / "site", retros=retro.drafts(store))
    family = (site.out / "family-web.html").read_text()
    assert f'href="retros/{draft.id}.html"' in family
    assert "latency_ms" in (site.out / "retros" / f"{draft.id}.html").read_text()


def test_stage_rollback_draft_lists_the_evidence_it_was_promoted_on(tmp_path: Path) -> None:
    store = store_with_bases(tmp_path)
    draft = retro.stage_rollback(
        store,
        tmp_path,
        "web",
        "candidate",
        2,
        1,
        "kernel panics on r5",
        "arn:aws:iam::1:user/alice",
    )
    text = draft.path.read_text()
    assert "alice rolled web candidate back from web:2 to web:1: kernel panics on r5." in text
    assert "- openssl: 3.0.13-0ubuntu3.1 → 3.0.13-0ubuntu3.4" in text
    assert "## The evidence the base was promoted on" in text and "_none recorded_" in text
