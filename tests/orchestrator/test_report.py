"""The report site: built from a store, opened in headless Chromium (Debian's), no console
errors."""

from __future__ import annotations

import io
import random
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from canary import config as canary_config
from canary.judge.decision import verdict
from canary.model import Rollout
from canary.records import RolloutRecords
from canary.report_rows import matrices
from changelog.records import summaries
from imagefleet.cli import raw_main
from orchestrator import report
from orchestrator.clock import VirtualClock
from orchestrator.config import parse
from orchestrator.context import Context
from orchestrator.output import Output
from orchestrator.store import BaseVersion, SqliteStore, StateStore, utcnow
from perf.records import KIND as PERF_KIND
from perf.records import runs
from pipelines import retro
from pipelines.fleet import snapshot

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _wave(index: int, decision_shift: float | None, seed: int) -> dict[str, Any]:
    """A wave as the controller records it; its verdict from the real judge on seeded samples."""
    if decision_shift is None:
        return {
            "index": index,
            "target": 1,
            "steps": 1,
            "batches": [],
            "status": "pending",
            "verdict": None,
        }
    rng = random.Random(seed)
    base = {
        "latency_ms": [rng.gauss(100, 3) for _ in range(30)],
        "error_rate": [rng.gauss(1, 0.1) for _ in range(30)],
        "cpu": [rng.gauss(40, 2) for _ in range(30)],
    }
    # the same values in another order: only the latency shift tells the two sides apart
    canary = {
        k: [x * (decision_shift if k == "latency_ms" else 1.0) for x in v[::-1]]
        for k, v in base.items()
    }
    cfg = canary_config.from_settings(parse({}))
    return {
        "index": index,
        "target": 1,
        "steps": 1,
        "batches": [],
        "status": "judged",
        # the interval it judged, as canary.rounds records it (on the controller's clock)
        "analysis": {
            "healthy_at": 0.0,
            "window_start": f"2031-05-0{index + 1}T10:02:00Z",
            "window_end": f"2031-05-0{index + 1}T10:12:00Z",
        },
        "verdict": verdict(cfg, base, canary),
    }


def populate(store: StateStore) -> None:
    for v in (1, 2, 3):
        store.put_base(
            BaseVersion(
                "web",
                v,
                {"us-east-1": f"ami-{v:017x}"},
                "ami-00000000000000001",
                v - 1 or None,
                f"bake-{v}",
                utcnow(),
                changelog={
                    "vs_parent": {
                        "against": v - 1,
                        "summary": {"upgraded": v, "added": 1},
                        "cves": 2 * v,
                        "uris": {"html": f"s3://bucket/web/{v}/changelog.html"},
                    }
                }
                if v > 1
                else {},
            )
        )
    for v in (1, 2, 3):
        store.move_pointer(
            "web", "candidate", v, action="promote", actor="arn:aws:iam::1:user/ops", reason=""
        )
    store.move_pointer(
        "web", "candidate", 2, action="rollback", actor="arn:aws:iam::1:user/ops", reason="kernel"
    )
    store.move_pointer(
        "web", "release", 1, action="promote", actor="arn:aws:iam::1:user/ops", reason="first"
    )
    cohorts = [
        {
            "key": "m5.large",
            "status": "passed",
            "size": 40,
            "replaced": 40,
            "groups": [],
            "waves": [_wave(0, 1.0, 1), _wave(1, 1.0, 2)],
        },
        {
            "key": "r5.large",
            "status": "rolled_back",
            "size": 20,
            "replaced": 0,
            "groups": [],
            "waves": [_wave(0, 1.6, 3), _wave(1, None, 4)],
        },
    ]
    rollout = Rollout.from_dict(
        {
            "id": "web-3-abc123",
            "family": "web",
            "new": {"ref": "web:3", "version": 3, "amis": {}},
            "status": "failed",
            "reason": "rolled back: r5.large",
            "created_at": utcnow(),
            # the settings it ran with: the metrics' units come from here
            "config": canary_config.from_settings(parse({})).to_dict(),
            "cohorts": cohorts,
            "groups": {},
            "api_calls": {"by_operation": {"ec2.RunInstances": 123}},
        }
    )
    RolloutRecords(rollout.id).save(
        store, rollout
    )  # as the controller saves it: a header and parts
    store.put_doc(
        PERF_KIND,
        "perf-0001",
        {
            "id": "perf-0001",
            "family": "web",
            "status": "done",
            "verdict": "no_regression",
            "candidate": {"ref": "web:3"},
            "baseline": {"ref": "web:1"},
            "started_at": utcnow(),
            "plots": [],
            "comparison": {
                "comparisons": [
                    {
                        "instance_type": "m5.large",
                        "metric": "sysbench_cpu",
                        "ratio": 1.004,
                        "ci_low": 0.99,
                        "ci_high": 1.02,
                        "p_adjusted": 0.6,
                        "verdict": "no_regression",
                    }
                ],
                "simulated": ["baseline", "candidate"],  # run on the local endpoint's model
            },
        },
        expected_revision=None,
    )
    store.audit("arn:aws:iam::1:user/ops", "bake", "web:3", "")
    store.audit(  # as the canary's controller audits a cohort it rolled back
        "arn:aws:iam::1:user/ops",
        "canary.rollback_cohort",
        "web:3",
        details={"rollout": "web-3-abc123", "cohort": "r5.large", "replaced": 1},
    )


def add_fleet_snapshots(store: StateStore, plot_dir: Path) -> None:
    """Two fleet snapshots as `imagefleet fleet` records them: a week apart, 6 of 10 instances moved
    from web:1 (ubuntu-20.04, past its end of life) to noble:1 (ubuntu-24.04); the burndown plot."""
    from pipelines.fleet import view as fleet
    from pipelines.fleet.plot import burndown_plot

    bases = [fleet.KnownBase(b.ref, b.family, b.amis, b.created_at) for b in store.bases()]
    bases.append(
        fleet.KnownBase("noble:1", "noble", {"us-east-1": "ami-0000000000000000a"}, utcnow())
    )
    releases = {
        "ubuntu-20.04": fleet.OsRelease("ubuntu-20.04", date(2025, 5, 31)),
        "ubuntu-24.04": fleet.OsRelease("ubuntu-24.04", date(2029, 5, 31)),
    }
    bodies = []
    for day, moved in ((1, 0), (8, 6)):
        groups = [
            fleet.DiscoveredGroup(
                "web-m5",
                "us-east-1",
                "web",
                {"ami-00000000000000001": 10 - moved, "ami-0000000000000000a": moved},
            )
        ]
        # the second snapshot also read a member account, whose group of the same name runs
        # the shared noble AMI
        members = ["stream"] if moved else []
        groups += [
            fleet.DiscoveredGroup("web-m5", "us-east-1", "web", {"ami-0000000000000000a": 3}, m)
            for m in members
        ]
        v = fleet.view(
            groups,
            bases,
            {"web": "ubuntu-20.04", "noble": "ubuntu-24.04"},
            releases,
            datetime.now(UTC) + timedelta(days=day),
            members,
        )
        bodies.append({"id": f"snap-{day}", **v.to_dict()})
    plot = burndown_plot(
        fleet.burndown(bodies), plot_dir / "fleet-burndown.png", frozenset({"ubuntu-20.04"})
    )
    for body in bodies:
        store.put_doc(
            fleet.SNAPSHOT_KIND, body["id"], {**body, "plot": str(plot)}, expected_revision=None
        )


def _build(store: StateStore, out: Path, **clock: Any) -> report.Site:
    return report.build(
        store,
        out,
        rollouts=matrices(store),
        runs=runs(store),
        retros=retro.drafts(store),
        fleet=snapshot.latest(store),
        changelogs={b.ref: summaries(b.changelog) for b in store.bases()},
        **clock,
    )


@pytest.fixture
def site(tmp_path: Path) -> report.Site:
    store = SqliteStore(tmp_path / "state.db")
    populate(store)
    add_fleet_snapshots(store, tmp_path)
    return _build(store, tmp_path / "site")


def test_the_site_has_every_page_and_the_rollout_matrix_says_what_happened(
    site: report.Site,
) -> None:
    names = sorted(p.relative_to(site.out).as_posix() for p in site.pages)
    assert names == [
        "audit.html",
        "changelogs/web-2.html",
        "changelogs/web-3.html",
        "family-web.html",
        "index.html",
        "rollouts/web-3-abc123.html",
        "runs/perf-0001.html",
    ]
    matrix = (site.out / "rollouts" / "web-3-abc123.html").read_text()
    assert matrix.count('<td class="cell pass"') == 2  # both m5 waves passed
    assert (
        matrix.count('<td class="cell fail"') == 1 and '<td class="cell skipped"' in matrix
    )  # r5 failed, never reached wave 2
    assert "latency_ms" in matrix and "High" in matrix
    run_page = " ".join((site.out / "runs" / "perf-0001.html").read_text().split())
    assert "<strong>Simulated instances</strong> (both arms)" in run_page
    family = (site.out / "family-web.html").read_text()
    assert family.count("rolled back</span>") == 1  # web:3's move to candidate
    # each base's changelog summary, read through changelog's typed record
    linked = '<a href="changelogs/web-3.html#vs_parent">vs web:2</a>'  # to web:3's own page
    assert f"{linked}: 3 upgraded, 1 added; 6 CVEs" in " ".join(family.split())


def test_a_failing_cell_names_its_metric_ratio_and_unit_and_every_wave_its_window(
    site: report.Site,
) -> None:
    page = " ".join((site.out / "rollouts" / "web-3-abc123.html").read_text().split())
    fail = page.split('<td class="cell fail">', 1)[1].split('<td class="cell ', 1)[0]
    # without a click: the failing metric, canary over baseline, both means in the metric's unit
    shown = fail.split("<details>", 1)[0]
    assert '<b class="metric">latency_ms</b>' in shown and ">×1.60</span>" in shown
    assert re.search(r"159 ms vs 99.5 ms", shown) and "High" in shown
    assert "error_rate" not in shown  # passing metrics stay behind the details
    assert "<summary>all 3 metrics</summary>" in fail and "<td>%</td>" in fail
    # each judged wave's analysis window, in the cell and in the table of windows
    assert "judged <time" in fail and ">2031-05-01 10:02:00</time>" in fail
    assert ">10:12:00</time>" in fail  # the end, on the same day, as a time of day
    windows = page.split('<table id="windows">', 1)[1].split("</table>", 1)[0]
    assert windows.count("<tr><td>") == 3  # m5's two waves, r5's first (its second never ran)
    assert "<td>r5.large</td><td>1</td>" in windows and ">2031-05-02 10:12:00</time>" in windows
    assert "judged from (UTC)" in windows


def test_times_say_virtual_clock_on_one_and_utc_on_the_wall_clock(
    site: report.Site, tmp_path: Path
) -> None:
    wall = " ".join((site.out / "rollouts" / "web-3-abc123.html").read_text().split())
    assert "virtual clock" not in wall and "All times are UTC." in wall
    assert re.search(r"generated <time [^>]*>[-\d: ]+</time> UTC", wall)
    clock = VirtualClock(start=datetime(2031, 5, 2, 11, 0, tzinfo=UTC).timestamp())
    virtual = _build(
        SqliteStore(site.out.parent / "state.db"),
        tmp_path / "virtual",
        now=clock.now(),
        clock_label=clock.label,
    )
    page = " ".join((virtual.out / "rollouts" / "web-3-abc123.html").read_text().split())
    assert re.search(r"generated <time [^>]*>2031-05-02 11:00:00</time> virtual clock", page)
    assert 'title="2031-05-01 10:02:00 virtual clock"' in page  # a window, hovered
    assert "judged from (virtual clock)" in page
    assert "on the <strong>virtual clock</strong>" in page  # the footnote
    # the store's own stamps stay on the wall clock, and say so
    assert "UTC, wall clock (the store&#39;s own stamp)" in page
    audit = " ".join((virtual.out / "audit.html").read_text().split())
    assert "<th>when (UTC)</th>" in audit and "wall clock" in audit


def test_audit_rows_say_which_stage_and_which_cohort(site: report.Site) -> None:
    audit = " ".join((site.out / "audit.html").read_text().split())
    # newest first: the canary's cohort, then the promotion to release, the rollback of candidate
    assert "<td>canary.rollback_cohort</td><td>web:3</td><td></td><td>cohort=r5.large</td>" in audit
    assert "<td>promote</td><td>web:1</td><td>first</td><td>stage=release</td>" in audit
    assert "<td>rollback</td><td>web:2</td><td>kernel</td><td>stage=candidate</td>" in audit
    index = " ".join((site.out / "index.html").read_text().split())
    assert "<td>stage=release</td>" in index and "<td>cohort=r5.large</td>" in index


def test_the_index_shows_the_latest_fleet_snapshot_and_its_burndown(site: report.Site) -> None:
    index = (site.out / "index.html").read_text()
    assert "2 snapshot(s)" in index and "noble:1 ×6" in index and "web:1 ×4" in index
    assert index.count("past end of life</span>") == 2  # the summary row and the group row
    # the fleet spans two accounts: an account column, the caller's own shown as such
    fleet_rows = " ".join(index.split("fleet-groups", 1)[1].split())
    assert "<th>account</th>" in fleet_rows and "member accounts stream" in " ".join(index.split())
    assert "<td>(own)</td>" in fleet_rows and "<td>stream</td>" in fleet_rows
    assert "noble:1 ×3" in fleet_rows
    assert (site.out / "assets" / "fleet-burndown.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)"
)
def test_pages_load_in_chromium_without_console_errors(site: report.Site) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        for p in site.pages:
            page.goto(p.as_uri())
            assert page.title().endswith("imagefleet report")
        page.goto((site.out / "index.html").as_uri())
        assert page.locator("#families tbody tr").count() == 1
        assert page.locator("#fleet-summary tbody tr").count() == 2
        assert (
            page.evaluate("document.querySelector('#fleet-burndown').naturalWidth") > 100
        )  # the plot loaded
        page.click("text=web")
        assert page.locator("#stage-history tbody tr").count() == 5
        page.goto((site.out / "rollouts" / "web-3-abc123.html").as_uri())
        cells = page.locator("#matrix td.cell")
        assert cells.count() == 4 and page.locator("#matrix td.fail").count() == 1
        assert (
            page.evaluate(
                "getComputedStyle(document.querySelector('#matrix td.fail')).backgroundColor"
            )
            == "rgb(249, 210, 210)"
        )  # the stylesheet loaded from file://
        # the failing metric is on screen without a click; the full table waits behind one
        failing = page.locator("#matrix td.fail ul.failing")
        assert failing.is_visible() and "latency_ms ×1.60" in " ".join(failing.inner_text().split())
        assert not page.locator("#matrix td.fail table.metrics").is_visible()
        page.click("#matrix td.fail summary")
        assert page.locator("#matrix td.fail table.metrics").is_visible()
        assert page.locator("#windows tbody tr").count() == 3
        ARTIFACTS.mkdir(exist_ok=True)
        page.goto((site.out / "index.html").as_uri())
        page.screenshot(path=str(ARTIFACTS / "report-index.png"), full_page=True)
        browser.close()
    assert errors == []
    assert (ARTIFACTS / "report-index.png").stat().st_size > 10_000


@pytest.mark.parametrize("virtual", [True, False])
def test_the_report_command_labels_times_with_the_clock_it_runs_on(
    tmp_path: Path, virtual: bool
) -> None:
    """As `imagefleet demo` runs it: the command's context carries the demo's virtual clock."""
    out = io.StringIO()
    assert raw_main(["init", str(tmp_path / "ws")], obj=Context(output=Output(stdout=out))) == 0
    clock = VirtualClock(start=datetime(2031, 5, 2, 11, 0, tzinfo=UTC).timestamp())
    ctx = Context(clock=clock if virtual else None, output=Output(stdout=out))
    config = str(tmp_path / "ws" / "imagefleet.toml")
    assert raw_main(["--config", config, "report", "--out", str(tmp_path / "site")], obj=ctx) == 0
    index = " ".join((tmp_path / "site" / "index.html").read_text().split())
    if virtual:
        assert re.search(r"generated <time [^>]*>2031-05-02 11:00:00</time> virtual clock", index)
    else:
        assert "virtual clock" not in index and "All times are UTC." in index
        assert re.search(r"generated <time [^>]*>[-\d: ]+</time> UTC", index)
