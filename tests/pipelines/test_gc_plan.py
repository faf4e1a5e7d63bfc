"""gc's decisions on plain data: what no record owns is removed, everything else is kept with a
reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipelines.gc.plan import (
    Image,
    Instance,
    Inventory,
    Records,
    SideGroup,
    TemplateVersion,
    plan,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(hours=3)


def img(ami: str, family: str = "web", **tags: str) -> Image:
    return Image("us-east-1", ami, (f"snap-{ami[4:]}",), {"imagefleet:family": family, **tags})


def inst(iid: str, role: str, launched: datetime = OLD, **tags: str) -> Instance:
    return Instance(
        "us-east-1",
        iid,
        "running",
        {"imagefleet:family": "web", "imagefleet:role": role, **tags},
        launched,
    )


def records(**over: object) -> Records:
    return Records(**{"families": {"web"}, "owned_amis": {"ami-owned"}, **over})  # type: ignore[arg-type]


def ids(p, kind: str) -> list[str]:
    return sorted(r.id for r in p.remove if r.kind == kind)


def test_images_no_base_owns_are_removed_with_their_snapshots() -> None:
    inv = Inventory(
        images=[
            img("ami-owned"),
            img("ami-orphan", **{"imagefleet:bake-id": "web-2"}),
            img("ami-other", family="not-ours"),
        ]
    )
    p = plan(inv, records(), now=NOW)
    assert ids(p, "image") == ["ami-orphan"]
    (removal,) = p.remove
    assert removal.snapshots == ("snap-orphan",) and "web-2" in removal.reason


def test_a_running_bake_keeps_its_familys_images() -> None:
    p = plan(Inventory(images=[img("ami-new")]), records(baking={"web"}), now=NOW)
    assert p.remove == [] and [k.id for k in p.keep] == ["ami-new"]


def test_benchmark_and_baseline_instances_of_finished_or_unknown_runs_go() -> None:
    inv = Inventory(
        instances=[
            inst("i-done", "perf", **{"imagefleet:perf-run": "r1"}),
            inst("i-running", "perf", **{"imagefleet:perf-run": "r2"}),
            inst(
                "i-expired",
                "perf",
                **{
                    "imagefleet:perf-run": "r2b",
                    "imagefleet:perf-expires": "2026-11-25T11:00:00+00:00",
                },
            ),
            inst("i-unknown", "perf", **{"imagefleet:perf-run": "gone"}),
            inst(
                "i-young",
                "perf",
                launched=NOW - timedelta(minutes=5),
                **{"imagefleet:perf-run": "gone"},
            ),
            inst("i-base-ended", "baseline", **{"imagefleet:rollout": "ro1"}),
            inst("i-base-live", "baseline", **{"imagefleet:rollout": "ro2"}),
            inst("i-canary-member", "canary", **{"imagefleet:rollout": "ro1"}),
        ]
    )
    recs = records(
        runs={"r1": "done", "r2": "running", "r2b": "running"},
        rollouts={"ro1": "succeeded", "ro2": "running"},
    )
    p = plan(inv, recs, now=NOW)
    assert ids(p, "instance") == ["i-base-ended", "i-done", "i-expired", "i-unknown"]
    kept = {k.id: k.reason for k in p.keep}
    assert kept["i-running"] == "perf run r2 is running" and "grace" in kept["i-young"]
    assert kept["i-base-live"] == "rollout ro2 is running" and "i-canary-member" not in kept


def test_rollout_template_versions_go_once_the_rollout_ended_unless_in_use() -> None:
    def v(n: int, desc: str, default: bool = False) -> TemplateVersion:
        return TemplateVersion("us-east-1", "lt-1", n, desc, default)

    inv = Inventory(
        template_versions=[
            v(1, "", default=True),
            v(2, "imagefleet canary ro1 from v1"),
            v(3, "imagefleet canary ro2 from v1"),
            v(4, "imagefleet canary ro3 from v1"),
            v(5, "imagefleet canary ro1 from v2"),
            v(6, "hand made"),
            v(7, "imagefleet canary gone from v1"),
        ],
        in_use={("us-east-1", "lt-1", 5)},
    )
    p = plan(
        inv, records(rollouts={"ro1": "rolled_back", "ro2": "running", "ro3": "aborted"}), now=NOW
    )
    assert ids(p, "template-version") == ["2", "4", "7"]
    assert {k.id for k in p.keep} == {"lt-1:3", "lt-1:5"}


def test_an_untagged_ami_recorded_by_a_failed_bake_is_removed_too() -> None:
    untagged = Image("us-west-2", "ami-untagged", ("snap-1",), {})
    p = plan(
        Inventory(images=[untagged, Image("us-west-2", "ami-stranger", (), {})]),
        records(recorded={"ami-untagged": "web"}),
        now=NOW,
    )
    assert ids(p, "image") == ["ami-untagged"] and "reservation" in p.remove[0].reason


def test_a_fresh_unowned_ami_is_kept_for_the_grace_period_unless_a_dead_bake_recorded_it() -> None:
    fresh, old = NOW - timedelta(minutes=2), NOW - timedelta(hours=2)
    copy = Image("us-west-2", "ami-copy", (), {"imagefleet:family": "web"}, fresh)
    killed = Image("us-west-2", "ami-killed", (), {"imagefleet:family": "web"}, fresh)
    stale = Image("us-west-2", "ami-stale", (), {"imagefleet:family": "web"}, old)
    p = plan(
        Inventory(images=[copy, killed, stale]), records(recorded={"ami-killed": "web"}), now=NOW
    )
    assert ids(p, "image") == ["ami-killed", "ami-stale"]
    assert "grace" in {k.id: k.reason for k in p.keep}["ami-copy"]
    assert ids(plan(Inventory(images=[copy]), records(), now=NOW, grace=timedelta(0)), "image") == [
        "ami-copy"
    ]


def test_operations_in_flight_keep_what_they_made_whatever_its_age() -> None:
    inv = Inventory(
        images=[img("ami-copy")],
        instances=[inst("i-base", "baseline", **{"imagefleet:rollout": "ro9"})],
        template_versions=[
            TemplateVersion("us-east-1", "lt-1", 2, "imagefleet canary ro9 from v1", False)
        ],
    )
    live = records(live={"stage:web:candidate", "rollout:ro9"})
    p = plan(inv, live, now=NOW, grace=timedelta(0))
    assert p.remove == []
    kept = {k.id: k.reason for k in p.keep}
    assert kept == {
        "ami-copy": "a promotion of web is running",
        "i-base": "rollout ro9 holds its lease",
        "lt-1:2": "rollout ro9 holds its lease",
    }
    # the same resources once those leases are gone: the rollout is unknown, the copy unowned
    assert len(plan(inv, records(), now=NOW, grace=timedelta(0)).remove) == 3


def test_side_target_groups_go_once_their_rollout_ended_or_is_unknown() -> None:
    def tg(name: str, rollout: str, family: str = "web") -> SideGroup:
        return SideGroup("us-east-1", f"arn:tg/{name}", family, rollout)

    inv = Inventory(
        side_groups=[
            tg("a", "ro1"),  # ended
            tg("b", "ro2"),  # running
            tg("c", "gone"),  # unknown
            tg("d", "ro4"),  # paused by its lease holder
            tg("e", "ro1", family="other"),  # not this config's
        ]
    )
    p = plan(
        inv,
        records(
            rollouts={"ro1": "succeeded", "ro2": "running", "ro4": "failed"},
            live={"rollout:ro4"},
        ),
        now=NOW,
    )
    assert ids(p, "target-group") == ["arn:tg/a", "arn:tg/c"]
    assert {k.id: k.reason for k in p.keep} == {
        "arn:tg/b": "rollout ro2 is running",
        "arn:tg/d": "rollout ro4 holds its lease",
    }
