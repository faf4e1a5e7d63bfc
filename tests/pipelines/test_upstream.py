"""Is a family due a rebake: ``pipelines.upstream.decide`` and the recipe's digest, on plain
data."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.config import FamilySettings
from orchestrator.store import BaseVersion
from pipelines import recipe
from pipelines.upstream import decide, newest_base, skipping_line

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
PARENT = "ami-0aaaaaaa1111"
MOVED = "ami-0bbbbbbb2222"
RECIPE = "sha256:" + "1" * 64


def base(
    version: int, *, source: str = PARENT, digest: str = RECIPE, age_h: float = 1
) -> BaseVersion:
    created = (NOW - timedelta(hours=age_h)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return BaseVersion(
        family="ubuntu",
        version=version,
        amis={"us-east-1": f"ami-0{version:011d}"},
        source_ami=source,
        parent=version - 1 or None,
        packer_run_id=f"bake-{version}",
        created_at=created,
        recipe_digest=digest,
    )


def test_nothing_changed_is_up_to_date() -> None:
    u = decide("ubuntu", PARENT, [base(1, age_h=30), base(2)], RECIPE, 86400, NOW)
    assert (u.newest, u.baked_from, u.parent) == (2, PARENT, PARENT)
    assert not (u.moved or u.recipe_changed or u.too_old or u.outdated)
    assert u.reasons == []
    assert "nothing to do" in skipping_line(u) and "ubuntu:2" in skipping_line(u)


def test_no_base_yet_is_outdated() -> None:
    u = decide("ubuntu", PARENT, [], RECIPE, None, NOW)
    assert u.outdated and u.newest is None and u.baked_from is None
    assert not (u.moved or u.recipe_changed or u.too_old)
    assert u.reasons == ["ubuntu has no base yet: its first bake is due"]


def test_upstream_moved_names_both_parents() -> None:
    u = decide("ubuntu", MOVED, [base(1)], RECIPE, None, NOW, source="/aws/service/x/ami-id")
    assert u.moved and u.outdated and not u.recipe_changed
    assert u.reasons == [
        f"upstream moved: /aws/service/x/ami-id names {MOVED} now; ubuntu:1 was baked from {PARENT}"
    ]


def test_recipe_changed() -> None:
    u = decide("ubuntu", PARENT, [base(1)], "sha256:" + "2" * 64, None, NOW)
    assert u.recipe_changed and u.outdated and not u.moved
    assert "the recipe changed since ubuntu:1" in u.reasons[0]


def test_a_base_from_before_recipe_digests_says_nothing_about_the_recipe() -> None:
    u = decide("ubuntu", PARENT, [base(1, digest="")], RECIPE, None, NOW)
    assert not u.recipe_changed and not u.outdated


@pytest.mark.parametrize(("age_h", "too_old"), [(23.9, False), (24.1, True)])
def test_too_old_against_max_age(age_h: float, too_old: bool) -> None:
    u = decide("ubuntu", PARENT, [base(1, age_h=age_h)], RECIPE, 86400, NOW)
    assert u.too_old is too_old and u.outdated is too_old
    if too_old:
        assert u.reasons == ["ubuntu:1 is 1d old, past max_age 1d"]
    assert decide("ubuntu", PARENT, [base(1, age_h=1000)], RECIPE, None, NOW).too_old is False


def test_every_reason_at_once() -> None:
    u = decide("ubuntu", MOVED, [base(3, age_h=50)], "sha256:" + "3" * 64, 86400, NOW)
    assert (u.moved, u.recipe_changed, u.too_old) == (True, True, True) and len(u.reasons) == 3
    doc = u.to_dict()
    assert doc["outdated"] is True and doc["ref"] == "ubuntu:3" and doc["reasons"] == u.reasons
    assert doc["age_seconds"] == pytest.approx(50 * 3600)


def test_the_newest_base_is_the_highest_not_retired() -> None:
    retired = replace(base(3, source=MOVED), retired_at="2026-12-01T00:00:00.000000Z")
    assert newest_base([base(1), base(2), retired]) == base(2)
    assert newest_base([retired]) is None
    # a retired newest base does not hide that upstream moved since the live one
    u = decide("ubuntu", MOVED, [base(2), retired], RECIPE, None, NOW)
    assert u.newest == 2 and u.moved


def test_unknown_parent_is_not_a_move() -> None:
    assert not decide("ubuntu", None, [base(1)], RECIPE, None, NOW).moved


# --- the recipe's digest ------------------------------------------------------------------------
def family(tmp_path: Path, **changes: object) -> FamilySettings:
    fam = FamilySettings(
        name="ubuntu",
        os="ubuntu-24.04",
        architecture="x86_64",
        template=tmp_path / "packer",
        variables={"size": "8"},
        source_ami=None,
        source_filter=None,
        regions=("us-east-1",),
        cohort_instance_types=("t3.micro",),
        manifest=tmp_path / "recipe.manifest",
        changelog_dir=None,
        root_device_type=None,
        ena_support=None,
        build_timeout=600,
        var_files=(tmp_path / "team.pkrvars.hcl",),
        source_parameter="/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/"
        "ebs-gp3/ami-id",
    )
    return replace(fam, **changes)  # type: ignore[arg-type]


@pytest.fixture
def recipe_dir(tmp_path: Path) -> Path:
    (tmp_path / "packer").mkdir()
    (tmp_path / "packer" / "main.pkr.hcl").write_text('source "amazon-ebs" "x" {}\n')
    (tmp_path / "packer" / "vars.pkr.hcl").write_text('variable "size" {}\n')
    (tmp_path / "packer" / "notes.txt").write_text("not read by packer\n")
    (tmp_path / "team.pkrvars.hcl").write_text('size = "8"\n')
    (tmp_path / "recipe.manifest").write_text("bash\t5.2-1\n")
    return tmp_path


def test_the_digest_follows_what_decides_the_build(recipe_dir: Path) -> None:
    d0 = recipe.digest(family(recipe_dir))
    assert d0.startswith("sha256:") and d0 == recipe.digest(family(recipe_dir))
    # a variable given to the bake is the same recipe as the config giving it
    assert recipe.digest(family(recipe_dir, variables={})) != d0
    assert recipe.digest(family(recipe_dir, variables={}), {"size": "8"}) == d0
    # not the parent: a family naming another source bakes the same recipe
    assert recipe.digest(family(recipe_dir, source_ami=PARENT, source_parameter=None)) == d0
    assert recipe.digest(family(recipe_dir, regions=("us-west-2",))) == d0
    # a file Packer does not read in the template directory changes nothing
    (recipe_dir / "packer" / "notes.txt").write_text("edited\n")
    assert recipe.digest(family(recipe_dir)) == d0
    changed = {
        "variables": recipe.digest(family(recipe_dir, variables={"size": "9"})),
        "extra var": recipe.digest(family(recipe_dir), {"size": "7"}),
        "architecture": recipe.digest(family(recipe_dir, architecture="arm64")),
    }
    (recipe_dir / "packer" / "vars.pkr.hcl").write_text('variable "size" { default = "8" }\n')
    changed["any .pkr.hcl of the directory"] = recipe.digest(family(recipe_dir))
    (recipe_dir / "team.pkrvars.hcl").write_text('size = "10"\n')
    changed["var file"] = recipe.digest(family(recipe_dir))
    (recipe_dir / "recipe.manifest").write_text("bash\t5.2-2\n")
    changed["manifest"] = recipe.digest(family(recipe_dir))
    assert d0 not in changed.values()
    assert len(set(changed.values())) == len(changed)


# --- where it is shown ---------------------------------------------------------------------------
def test_the_family_page_shows_each_parent_and_whether_upstream_moved(tmp_path: Path) -> None:
    from orchestrator import report
    from orchestrator.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "state.db")
    for b in (base(1), base(2, source=MOVED)):
        store.put_base(replace(b, family="web"))
    store.put_base(replace(base(1), family="db"))
    moved = decide("web", "ami-0cccccccc3333", store.bases("web"), RECIPE, None, NOW, "/aws/x")
    current = decide("db", PARENT, store.bases("db"), RECIPE, None, NOW)
    site = report.build(
        store, tmp_path / "site", upstream={"web": moved, "db": current, "api": "unknown"}
    )
    web = " ".join((site.out / "family-web.html").read_text().split())
    assert f"<code>{PARENT}</code>" in web and f"<code>{MOVED}</code>" in web  # each base's parent
    assert "outdated</span> upstream moved: /aws/x names ami-0cccccccc3333 now" in web
    db = " ".join((site.out / "family-db.html").read_text().split())
    assert f"up to date: the parent upstream names now, <code>{PARENT}</code>" in db


def test_once_aws_cannot_be_reached_the_other_families_are_not_asked(tmp_path: Path) -> None:
    """The report asks every family; a connection failure after retries is said for each, paid
    once."""
    from imagefleet.cli import raw_main
    from orchestrator.aws import AwsFactory
    from orchestrator.cli_support import Context
    from orchestrator.local.endpoint import free_port
    from orchestrator.output import Output
    from pipelines.upstream import answers

    ws = tmp_path / "ws"
    quiet = Output(stdout=io.StringIO(), stderr=io.StringIO())
    assert raw_main(["init", str(ws)], obj=Context(output=quiet)) == 0
    config = ws / "imagefleet.toml"
    text = config.read_text()
    demo = text.split("[families.demo]\n", 1)[1].split("\n\n", 1)[0]
    config.write_text(f"{text}\n[families.web]\n{demo}\n")
    ctx = Context(config_path=config)
    down = AwsFactory(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        credentials={"aws_access_key_id": "x", "aws_secret_access_key": "y"},
        max_attempts=1,
    )
    said = answers(down, ctx.settings, ctx.store, ["demo", "web"], NOW)
    assert set(said) == {"demo", "web"} and said["demo"] == said["web"]
    assert isinstance(said["web"], str) and "cannot reach AWS" in said["web"]
    assert down.counter.total == 1  # one read of the first family's parent, not one a family
