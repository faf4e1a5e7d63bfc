"""What `imagefleet retire` decides, on plain data: retention per stage, what protects a base
(a stage's pointer, its rollback target, friend teams, an unfinished rollout), and when disabling
and deregistering fall due on a test clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator import config
from orchestrator.store import BaseVersion, utc_iso
from orchestrator.store.sqlite import SqliteStore
from pipelines.retire import plan
from pipelines.retire.plan import Base, Facts, Move

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def base(version: int, stage: str = "unstable", day: int = 0, **kw: object) -> Base:
    return Base(version, stage, T0 + day * DAY, **kw)  # type: ignore[arg-type]


def facts(*bases: Base, **kw: object) -> Facts:
    return Facts("demo", tuple(bases), **kw)  # type: ignore[arg-type]


def actions(f: Facts, now: datetime) -> dict[int, str]:
    return {d.version: d.action for d in plan.decide(f, now)}


def test_retention_keeps_the_newest_n_of_each_stage_separately() -> None:
    f = facts(
        base(1, "release", 0),
        base(2, "release", 10),
        base(3, "unstable", 20),
        base(4, "unstable", 21),
        base(5, "unstable", 22),
        retain=2,
    )
    got = actions(f, T0 + 200 * DAY)
    # three unstable bakes never push a release out; the oldest unstable one is out
    assert got == {5: "keep", 4: "keep", 3: "disable", 2: "keep", 1: "keep"}
    reasons = {d.version: d.reason for d in plan.decide(f, T0 + 200 * DAY)}
    assert reasons[1] == "among the newest 2 release bases"


def test_out_of_retention_counts_from_when_the_newer_base_pushed_it_out() -> None:
    f = facts(base(1, day=0), base(2, day=10), base(3, day=40), retain=1)
    (d3, d2, d1) = plan.decide(f, T0 + 45 * DAY)
    assert d1.since == T0 + 10 * DAY and d1.action == "disable"  # 35 days out: past 30
    assert d2.since == T0 + 40 * DAY and d2.action == "wait" and d2.due == T0 + 70 * DAY
    assert d3.action == "keep"


def test_the_current_and_the_previous_of_a_stage_are_protected_whatever_their_age() -> None:
    moves = [Move(1, None, T0), Move(2, 1, T0 + 5 * DAY), Move(3, 2, T0 + 9 * DAY)]
    f = facts(
        *(base(v, "release", v) for v in (1, 2, 3)),
        pointers={"release": 3},
        history={"release": moves},
        retain=1,
    )
    got = {d.version: d for d in plan.decide(f, T0 + 400 * DAY)}
    assert got[3].reason.startswith("the current release")
    assert got[2].action == "keep" and "rollback target" in got[2].reason
    # v1 left the history when v3 came in (it stopped being the rollback target)
    assert got[1].action == "disable" and got[1].since == T0 + 9 * DAY


def test_the_rollback_target_skips_a_base_rolled_back_from() -> None:
    moves = [
        Move(1, None, T0),
        Move(2, 1, T0 + DAY),
        Move(3, 2, T0 + 2 * DAY, rolled_back=True),
        Move(4, 3, T0 + 3 * DAY),
    ]
    f = facts(
        *(base(v, "release", v) for v in (1, 2, 3, 4)),
        pointers={"release": 4},
        history={"release": moves},
        retain=1,
    )
    got = actions(f, T0 + 400 * DAY)
    assert got == {4: "keep", 3: "disable", 2: "keep", 1: "disable"}


def test_friend_teams_and_unfinished_rollouts_protect_what_they_name() -> None:
    f = facts(
        base(1, "candidate", 0),
        base(2, "candidate", 1),
        base(3, "candidate", 2),
        base(4, "unstable", 3),
        pointers={"candidate": 1},
        friend_teams=("payments",),
        rollouts={"ro-7": frozenset({2})},
        retain=1,
    )
    got = {d.version: d for d in plan.decide(f, T0 + 400 * DAY)}
    assert "friend teams payments resolve it" in got[1].reason
    assert got[2].reason == "rollout ro-7 (unfinished) names it"
    assert got[3].action == "keep" and got[4].action == "keep"  # each its stage's newest


def test_disable_then_deregister_fall_due_on_the_clock() -> None:
    f = facts(
        base(1, day=0),
        base(2, day=10),
        deprecate_after=timedelta(days=30),
        deregister_after=timedelta(days=14),
        retain=1,
    )
    assert actions(f, T0 + 39 * DAY)[1] == "wait"
    assert actions(f, T0 + 40 * DAY)[1] == "disable"
    disabled = facts(
        base(1, day=0, disabled_at=T0 + 41 * DAY), base(2, day=10), retain=1
    )  # default 14 days
    (_, d1) = plan.decide(disabled, T0 + 54 * DAY)
    assert d1.action == "wait" and d1.due == T0 + 55 * DAY
    assert actions(disabled, T0 + 55 * DAY)[1] == "deregister"
    done = facts(base(1, retired_at=T0 + 60 * DAY, disabled_at=T0), base(2, day=10), retain=1)
    assert actions(done, T0 + 400 * DAY)[1] == "retired"


def test_a_protected_disabled_base_is_kept_not_deregistered() -> None:
    f = facts(
        base(1, "release", 0, disabled_at=T0 + DAY),
        base(2, "release", 1),
        pointers={"release": 2},
        history={"release": [Move(1, None, T0), Move(2, 1, T0 + DAY)]},
        retain=1,
    )
    assert actions(f, T0 + 400 * DAY)[1] == "keep"


def test_overdue_reads_the_store_and_the_config(tmp_path) -> None:
    settings = config.parse(
        {
            "aws": {"regions": ["us-east-1"]},
            "families": {
                "demo": {
                    "os": "debian-12",
                    "template": "packer/demo.pkr.hcl",
                    "source_ami": "ami-12c6146b",
                    "regions": ["us-east-1"],
                    "retain": 1,
                }
            },
        }
    )
    store = SqliteStore(tmp_path / "state.db")
    for v, day in ((1, 0), (2, 5), (3, 50)):
        store.put_base(
            BaseVersion(
                "demo",
                v,
                {"us-east-1": f"ami-{v:08x}"},
                "ami-src",
                v - 1 or None,
                f"bake-{v}",
                utc_iso((T0 + day * DAY).timestamp()),
            )
        )
    store.move_pointer("demo", "release", 3, action="promote", actor="t", reason="")
    store.update_base("demo", 3, stage="release")
    now = T0 + 60 * DAY
    # v2 is the newest unstable (kept), v3 the release; v1 was pushed out on day 5
    assert [b.version for b in plan.overdue(settings, store, "demo", now)] == [1]
    store.update_base("demo", 1, disabled_at=utc_iso(now.timestamp()))
    assert plan.overdue(settings, store, "demo", now) == []  # disabled: deregistering not due
    assert [b.version for b in plan.overdue(settings, store, "demo", now + 14 * DAY)] == [1]
    store.update_base("demo", 1, retired_at=utc_iso(now.timestamp()))
    assert plan.overdue(settings, store, "demo", now + 400 * DAY) == []
