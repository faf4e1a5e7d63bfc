"""The hygiene scorecard: every cell judged on plain facts with known answers, the facts gathered
from a real SQLite store with the three owned checks handed in as plain fakes, and the report's
index drawing the table with a colour class per cell."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from canary.records import KIND as ROLLOUT_KIND
from orchestrator import report
from orchestrator.config import Settings, parse
from orchestrator.errors import AwsError, ConfigError, NotFoundError
from orchestrator.store import BaseVersion, Evidence, SqliteStore, StateStore
from pipelines import scorecard
from pipelines.fleet import view as fleet_view
from pipelines.scorecard.assess import (
    CELLS,
    FAIL,
    NA,
    PASS,
    UNKNOWN,
    BaseFacts,
    FamilyFacts,
    FleetShare,
    PerfFacts,
    RolloutFacts,
    Thresholds,
    Unknown,
    UpstreamFacts,
    assess,
)
from pipelines.scorecard.facts import GroupCount, counts_of_view, fleet_share, gather

NOW = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
DAY = 86400


def facts(**changes: Any) -> FamilyFacts:
    """A family in good health; each test changes what it is about."""
    good = FamilyFacts(
        family="web",
        now=NOW,
        release=BaseFacts("web:7", 7, NOW - timedelta(days=10)),
        stages=(("candidate", "web:8"), ("release", "web:7")),
        max_age=30 * DAY,
        os_release="debian-12",
        end_of_life=date(2028, 6, 30),
        fleet=FleetShare(groups=3, instances=100, on_release=95),
        canary=RolloutFacts("r-1", "succeeded", "web:7"),
        perf=(PerfFacts(True, "2025-06-20T00:00:00Z"),),
        overdue=(),
        upstream=UpstreamFacts(False),
        cves=(),
    )
    return replace(good, **changes)


def cell(f: FamilyFacts, name: str, t: Thresholds | None = None) -> tuple[str, str]:
    c = assess(f, t).cell(name)
    return c.status, c.why


def test_a_healthy_family_passes_every_cell_in_order() -> None:
    row = assess(facts())
    assert [c.name for c in row.cells] == list(CELLS)
    assert {c.status for c in row.cells} == {PASS}
    assert (row.passed, row.total, row.score, row.status) == (8, 8, "8/8", PASS)
    assert assess(facts(cves=("CVE-1",), upstream=Unknown("x"))).status == FAIL


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, (PASS, "release web:7 is 10d old, max_age 30d")),
        (
            {"release": BaseFacts("web:7", 7, NOW - timedelta(days=41))},
            (FAIL, "release web:7 is 41d old, max_age 30d"),
        ),
        # exactly max_age old is due: the release must be younger
        ({"release": BaseFacts("web:7", 7, NOW - timedelta(days=30))}, (FAIL, None)),
        ({"max_age": 12 * 3600}, (FAIL, "release web:7 is 10d old, max_age 12h")),
        ({"max_age": None}, (NA, "release web:7 is 10d old; no max_age set")),
        ({"release": None}, (NA, "no release yet")),
    ],
)
def test_release_age(change: dict[str, Any], expected: tuple[str, str | None]) -> None:
    status, why = cell(facts(**change), "release_age")
    assert status == expected[0]
    assert expected[1] is None or why == expected[1]


def test_eol_passes_until_the_day_fails_after_and_names_every_stage() -> None:
    assert cell(facts(), "eol") == (PASS, "debian-12 supported until 2028-06-30 (1095d left)")
    on_the_day = facts(end_of_life=NOW.date())
    assert cell(on_the_day, "eol")[0] == PASS
    past = facts(end_of_life=date(2025, 6, 30), os_release="debian-11")
    assert cell(past, "eol") == (
        FAIL,
        "candidate web:8, release web:7 on debian-11, past end of life 2025-06-30",
    )
    assert cell(facts(end_of_life=None), "eol") == (NA, "no end_of_life set for debian-12")
    # no stage set: nothing runs on the OS release yet
    assert cell(facts(stages=(), end_of_life=date(2020, 1, 1)), "eol")[0] == NA
    # only an unstable base on an ended release still fails: a stage points at it
    unstable = facts(stages=(("unstable", "web:9"),), release=None, end_of_life=date(2020, 1, 1))
    assert cell(unstable, "eol")[0] == FAIL


def test_fleet_on_release_at_and_below_the_threshold() -> None:
    assert cell(facts(), "fleet_on_release") == (
        PASS,
        "95% (95/100) on release web:7, threshold 90%",
    )
    at = facts(fleet=FleetShare(1, 10, 9))
    assert cell(at, "fleet_on_release")[0] == PASS  # 90% meets 90%
    below = facts(fleet=FleetShare(1, 1000, 899))
    assert cell(below, "fleet_on_release") == (
        FAIL,
        "90% (899/1000) on release web:7, threshold 90%",
    )
    assert cell(below, "fleet_on_release", Thresholds(fleet_on_release=85))[0] == PASS
    assert cell(facts(fleet=FleetShare(1, 4, 0)), "fleet_on_release", Thresholds(0))[0] == PASS


def test_fleet_on_release_without_a_fleet_a_release_or_a_discovery() -> None:
    assert cell(facts(fleet=None), "fleet_on_release") == (
        NA,
        "no instances run the family's bases",
    )
    assert cell(facts(fleet=FleetShare(2, 0, 0)), "fleet_on_release")[0] == NA
    no_release = facts(release=None, fleet=FleetShare(1, 5, 0))
    assert cell(no_release, "fleet_on_release") == (
        FAIL,
        "5 instances, none on a release (no release)",
    )
    lost = facts(fleet=Unknown("AwsError: DescribeAutoScalingGroups throttled"))
    assert cell(lost, "fleet_on_release") == (
        UNKNOWN,
        "AwsError: DescribeAutoScalingGroups throttled",
    )


def test_canary_reads_the_last_finished_rollout() -> None:
    assert cell(facts(), "canary") == (PASS, "last rollout r-1 of web:7 succeeded")
    failed = RolloutFacts("r-2", "rolled_back", "web:8", "latency_ms regressed", running="r-3")
    assert cell(facts(canary=failed), "canary") == (
        FAIL,
        "last rollout r-2 of web:8 rolled_back: latency_ms regressed (r-3 still running)",
    )
    assert cell(facts(canary=RolloutFacts("r-4", "aborted", None)), "canary") == (
        FAIL,
        "last rollout r-4 aborted",
    )
    assert cell(facts(canary=None), "canary") == (NA, "no finished canary rollout yet")


def test_perf_needs_evidence_of_the_release_and_reads_the_newest() -> None:
    assert cell(facts(), "perf") == (PASS, "perf passed for release web:7 at 2025-06-20")
    assert cell(facts(perf=()), "perf") == (FAIL, "no perf evidence for release web:7")
    later_fail = (PerfFacts(True, "2025-06-20T00:00:00Z"), PerfFacts(False, "2025-06-21T00:00:00Z"))
    assert cell(facts(perf=later_fail), "perf") == (
        FAIL,
        "last perf evidence for release web:7 failed (2025-06-21)",
    )
    assert cell(facts(perf=later_fail[::-1][1:] + later_fail[1:]), "perf")[0] == FAIL
    assert cell(facts(release=None), "perf") == (NA, "no release yet")


def test_retirement_upstream_and_exposure_from_their_checks() -> None:
    assert cell(facts(), "retirement") == (PASS, "no base overdue for retirement")
    many = facts(overdue=("web:1", "web:2", "web:3", "web:4", "web:5"))
    assert cell(many, "retirement") == (
        FAIL,
        "overdue for retirement: web:1, web:2, web:3 and 2 more",
    )
    assert cell(facts(), "upstream") == (
        PASS,
        "up to date: the newest base has the parent upstream names now and the current recipe",
    )
    old = facts(upstream=UpstreamFacts(True, ("a newer source AMI ami-0b", "recipe changed")))
    assert cell(old, "upstream") == (FAIL, "a newer source AMI ami-0b; recipe changed")
    assert cell(facts(upstream=UpstreamFacts(True)), "upstream")[1] == "outdated against upstream"
    assert cell(facts(), "exposure") == (PASS, "no known unfixed CVE in release web:7")
    exposed = facts(cves=("CVE-2025-1", "CVE-2025-2"))
    assert cell(exposed, "exposure") == (FAIL, "release web:7 exposed to CVE-2025-1, CVE-2025-2")
    assert cell(facts(release=None), "exposure") == (NA, "no release yet")


def test_a_source_that_failed_is_unknown_and_earns_no_point() -> None:
    broken = facts(
        overdue=Unknown("StateError: locked"),
        upstream=Unknown("AwsError: throttled"),
        cves=Unknown("check not installed (pipelines.exposure)"),
        perf=Unknown("StateError: locked"),
        canary=Unknown("StateError: locked"),
    )
    row = assess(broken)
    assert [c.status for c in row.cells] == [PASS, PASS, PASS] + [UNKNOWN] * 5
    assert row.cell("upstream").why == "AwsError: throttled"
    assert (row.passed, row.total, row.failed, row.status) == (3, 8, 0, UNKNOWN)


def test_a_family_with_nothing_yet_is_mostly_not_applicable() -> None:
    empty = FamilyFacts(family="new", now=NOW, release=None, upstream=None, max_age=None)
    row = assess(empty)
    assert {c.name: c.status for c in row.cells} == {
        "release_age": NA,
        "eol": NA,
        "fleet_on_release": NA,
        "canary": NA,
        "perf": NA,
        "retirement": PASS,
        "upstream": NA,
        "exposure": NA,
    }
    assert row.score == "1/1"
    assert row.to_dict()["cells"]["upstream"] == {"status": NA, "why": "no release yet"}


def test_the_family_fleet_is_every_group_running_one_of_its_bases() -> None:
    groups = [
        GroupCount(10, {"web:7": 8, "web:6": 2}),
        GroupCount(5, {"web:6": 4, "unmanaged": 1}),
        GroupCount(50, {"db:3": 50}),
        GroupCount(3, {"webby:1": 3}),  # another family whose name starts the same
    ]
    assert fleet_share(groups, "web", "web:7") == FleetShare(2, 15, 8)
    assert fleet_share(groups, "web", None) == FleetShare(2, 15, 0)
    assert fleet_share(groups, "cache", None) is None


# --- gathered from a real store, the checks handed in as fakes -----------------------------------
def settings(**family: Any) -> Settings:
    return parse(
        {
            "families": {
                "web": {
                    "os": "debian-12",
                    "template": "t.pkr.hcl",
                    "source_ami": "ami-0abc1234",
                    "max_age": "30d",
                    **family,
                }
            },
            "os_releases": {"debian-12": {"end_of_life": "2028-06-30"}},
            "scorecard": {"fleet_on_release": 80},
        }
    )


def seed(store: StateStore) -> None:
    for v, age in ((6, 50), (7, 41), (8, 2)):
        created = (NOW - timedelta(days=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
        store.put_base(
            BaseVersion(
                "web", v, {"us-east-1": f"ami-{v:017x}"}, "ami-0abc1234", v - 1, "b", created
            )
        )
    for stage, v in (("unstable", 8), ("candidate", 8), ("release", 7)):
        store.move_pointer("web", stage, v, action="promote", actor="ci", reason="test")
    store.add_evidence(Evidence("web", 7, "perf", True, {}, "2025-06-01T00:00:00Z", "ci"))
    store.add_evidence(Evidence("web", 7, "image_tests", False, {}, "2025-06-02T00:00:00Z", "ci"))
    for rid, status, at in (
        ("r-1", "succeeded", "2025-06-01T00:00:00Z"),
        ("r-2", "rolled_back", "2025-06-10T00:00:00Z"),
        ("r-3", "running", "2025-06-11T00:00:00Z"),
    ):
        store.put_doc(
            ROLLOUT_KIND,
            rid,
            {
                "id": rid,
                "family": "web",
                "status": status,
                "created_at": at,
                "new": {"ref": "web:8", "version": 8},
                "reason": "error_rate regressed" if status == "rolled_back" else None,
                "cohorts": [],
            },
            expected_revision=None,
        )


@dataclass
class Fakes:
    """The three owned checks as plain functions, recording what they were asked."""

    outdated: bool = False
    fail_upstream: bool = False
    asked: list[tuple[str, ...]] = field(default_factory=list)

    def overdue(self, st: Settings, store: StateStore, family: str, now: datetime) -> list[Any]:
        self.asked.append(("overdue", family))
        return [store.get_base(family, 6)]

    def upstream(
        self, aws: Any, st: Settings, store: StateStore, family: str, now: datetime
    ) -> Any:
        self.asked.append(("upstream", family))
        if self.fail_upstream:
            raise AwsError("DescribeImages: throttled after 8 attempts")

        @dataclass
        class Upstream:
            outdated: bool
            reasons: list[str]

        return Upstream(self.outdated, ["debian-12 20250701 is newer"] if self.outdated else [])

    def cves(self, store: StateStore, family: str, version: int) -> list[str]:
        self.asked.append(("cves", f"{family}:{version}"))
        raise NotFoundError(f"no manifest for {family}:{version}")


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    s = SqliteStore(tmp_path / "state.db")
    seed(s)
    return s


def test_gather_reads_the_store_and_the_checks_it_is_given(store: StateStore) -> None:
    fakes = Fakes(outdated=True)
    fleet = [GroupCount(10, {"web:7": 7, "web:8": 3})]
    f = gather(
        store,
        settings(),
        "web",
        NOW,
        fleet=fleet,
        aws=object(),  # type: ignore[arg-type]  # the fake check never touches it
        overdue=fakes.overdue,
        upstream=fakes.upstream,
        unfixed_cves=fakes.cves,
    )
    assert f.release is not None and f.release.ref == "web:7"
    assert list(f.stages) == [("unstable", "web:8"), ("candidate", "web:8"), ("release", "web:7")]
    assert f.canary == RolloutFacts("r-2", "rolled_back", "web:8", "error_rate regressed", "r-3")
    assert f.perf == [PerfFacts(True, "2025-06-01T00:00:00Z")]
    assert fakes.asked == [("upstream", "web"), ("overdue", "web"), ("cves", "web:7")]
    row = assess(f, Thresholds(80))
    assert {c.name: c.status for c in row.cells} == {
        "release_age": FAIL,
        "eol": PASS,
        "fleet_on_release": FAIL,
        "canary": FAIL,
        "perf": PASS,
        "retirement": FAIL,
        "upstream": FAIL,
        "exposure": UNKNOWN,
    }
    assert row.cell("release_age").why == "release web:7 is 41d old, max_age 30d"
    assert row.cell("retirement").why == "overdue for retirement: web:6"
    assert row.cell("exposure").why == "NotFoundError: no manifest for web:7"


def test_an_aws_error_in_the_upstream_check_is_an_unknown_cell_not_a_crash(
    store: StateStore,
) -> None:
    fakes = Fakes(fail_upstream=True)
    card = scorecard.score(
        store,
        settings(),
        NOW,
        fleet=Unknown("AwsError: AccessDenied"),
        fleet_from="unknown",
        aws=object(),  # type: ignore[arg-type]
        overdue=fakes.overdue,
        upstream=fakes.upstream,
        unfixed_cves=lambda store, family, version: [],
    )
    (row,) = card.rows
    assert row.cell("upstream").status == UNKNOWN
    assert row.cell("upstream").why.startswith("AwsError: DescribeImages: throttled")
    assert row.cell("fleet_on_release").why == "AwsError: AccessDenied"
    assert card.thresholds == Thresholds(80)
    assert card.to_dict()["families"][0]["score"] == row.score


def test_checks_not_installed_or_broken_are_unknown(store: StateStore) -> None:
    def missing(*args: Any) -> Any:
        raise ModuleNotFoundError("No module named 'pipelines.retire'", name="pipelines.retire")

    def broken(*args: Any) -> Any:
        return {}["web"]

    f = gather(store, settings(), "web", NOW, fleet=[], overdue=missing, unfixed_cves=broken)
    assert f.overdue == Unknown("check not installed (pipelines.retire)")
    assert f.cves == Unknown("check failed unexpectedly (KeyError: 'web')")
    # without an AWS factory the upstream check is not made at all
    assert isinstance(f.upstream, Unknown) and "no AWS calls" in f.upstream.reason
    assert f.fleet is None


def test_a_bad_scorecard_table_or_family_is_bad_input(store: StateStore) -> None:
    bad = parse(
        {
            "families": {"web": {"os": "debian-12", "template": "t", "source_ami": "ami-0abc1234"}},
            "scorecard": {"fleet_on_release": 150},
        }
    )
    with pytest.raises(ConfigError, match=r"scorecard.fleet_on_release: expected a number in"):
        scorecard.score(store, bad, NOW, fleet=[], fleet_from="-")
    with pytest.raises(NotFoundError):
        scorecard.score(store, settings(), NOW, fleet=[], fleet_from="-", families=["nope"])


def test_a_fresh_discovery_counts_as_the_snapshot_does(store: StateStore) -> None:
    groups = [fleet_view.DiscoveredGroup("web-a", "us-east-1", "web", {f"ami-{7:017x}": 4})]
    bases = [
        fleet_view.KnownBase(b.ref, b.family, b.amis, b.created_at) for b in store.bases("web")
    ]
    view = fleet_view.view(groups, bases, {}, {}, NOW)
    assert counts_of_view(view) == [GroupCount(4, {"web:7": 4})]


# --- the report's index -----------------------------------------------------------------------
def test_the_report_index_draws_the_scorecard_with_a_class_per_status(
    store: StateStore, tmp_path: Path
) -> None:
    card = scorecard.for_report(
        store,
        settings(),
        NOW,
        overdue=lambda *a: [],
        unfixed_cves=lambda *a: ["CVE-2025-0001"],
    )
    site = report.build(store, tmp_path / "site", scorecard=card)
    html = (site.out / "index.html").read_text()
    assert '<table id="scorecard"' in html
    table = html.split('<table id="scorecard"')[1].split("</table>")[0]
    row = table.split('<a href="family-web.html">web</a>')[1].split("</tr>")[0]
    assert row.count('class="sc sc-') == len(CELLS)
    assert '<td class="sc sc-fail" title="release web:7 is 41d old, max_age 30d">' in row
    assert '<td class="sc sc-pass" title="no base overdue for retirement">' in row
    assert 'class="sc sc-na" title="no instances run the family&#39;s bases"' not in row
    # no snapshot yet: the fleet cell is unknown and says how to get one
    assert "sc-unknown" in row and "no fleet snapshot yet" in row
    assert "CVE-2025-0001" in row
    assert "sc-score sc-fail" in row
    css = (site.out / "assets" / "style.css").read_text()
    assert all(f".sc-{s}" in css for s in ("pass", "fail", "na", "unknown"))


def test_the_report_without_a_scorecard_says_how_to_get_one(
    store: StateStore, tmp_path: Path
) -> None:
    site = report.build(store, tmp_path / "site")
    assert "No scorecard" in (site.out / "index.html").read_text()


def test_the_report_takes_the_fleet_from_the_latest_snapshot(store: StateStore) -> None:
    ami = {v: f"ami-{v:017x}" for v in (6, 7)}
    for taken, on_7 in ((NOW - timedelta(days=2), 1), (NOW, 9)):
        groups = [
            fleet_view.DiscoveredGroup("web-a", "us-east-1", "web", {ami[7]: on_7, ami[6]: 1}),
            fleet_view.DiscoveredGroup("db-a", "us-east-1", "db", {"ami-0ffff": 40}),
        ]
        body = fleet_view.view(
            groups,
            [fleet_view.KnownBase(b.ref, b.family, b.amis, b.created_at) for b in store.bases()],
            {},
            {},
            taken,
        ).to_dict()
        store.put_doc(fleet_view.SNAPSHOT_KIND, body["taken_at"], body, expected_revision=None)
    card = scorecard.for_report(store, settings(), NOW, overdue=lambda *a: [])
    assert card.fleet_from == "snapshot 2025-07-01T12:00:00Z"
    assert card.rows[0].cell("fleet_on_release") == scorecard.assess(
        replace(facts(), fleet=FleetShare(1, 10, 9)), Thresholds(80)
    ).cell("fleet_on_release")
    assert card.rows[0].cell("fleet_on_release").why.startswith("90% (9/10) on release web:7")
