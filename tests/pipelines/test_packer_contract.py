"""The template contract on plain data: what imagefleet passes, and the checks made before
building."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ConfigError, UsageError
from pipelines.packer import contract
from pipelines.packer import template as templates
from pipelines.packer.template import Builder, Template

TEMPLATES = Path(__file__).parent / "data" / "templates"


def inputs(**over: object) -> contract.BakeInputs:
    base: dict[str, object] = {
        "family": "web",
        "regions": ("us-east-1", "us-west-2"),
        "source_ami": "ami-0123456789abcdef0",
        "bake_id": "web-1-abc",
        "ami_name": "web-1-abc",
        "manifest_path": "/b/manifest.txt",
        "packer_manifest_path": "/b/packer-manifest.json",
    }
    return contract.BakeInputs(**{**base, **over})  # type: ignore[arg-type]


def template(settings: dict, variables: dict | None = None, fmt: str = "hcl2") -> Template:
    return Template(
        Path("t.pkr.hcl"), fmt, variables or {}, [Builder("amazon-ebs.x", settings)], None
    )


@pytest.mark.parametrize(
    "version, constraint, ok",
    [
        ("1.6.6", ">= 1.6.0", True),
        ("1.6.6", ">= 1.7.0", False),
        ("1.6.6", ">= 1.6.0, < 2.0.0", True),
        ("1.6.6", "~> 1.6.2", True),
        ("1.6.6", "~> 1.5.0", False),
        ("1.6.6", "~> 1.6", True),
        ("1.6.6", "~> 1.7", False),
        ("1.6.6", "!= 1.6.6", False),
        ("1.6.6", "= 1.6.6", True),
        ("1.6.6", "1.6.6", True),
        ("1.6.6", "> 1.6.6", False),
        ("1.10.0", ">= 1.9.2", True),  # numeric, not string, comparison
    ],
)
def test_version_constraints_follow_hashicorp_syntax(
    version: str, constraint: str, ok: bool
) -> None:
    assert contract.satisfies(version, constraint) is ok


def test_unreadable_constraint_is_bad_input() -> None:
    with pytest.raises(ConfigError, match="constraint"):
        contract.satisfies("1.6.6", ">= one")


def test_only_declared_variables_are_passed_and_hcl2_gets_lists_and_maps() -> None:
    t = template(
        {},
        {
            "region": "us-east-1",
            "ami_regions": [],
            "imagefleet_tags": {},
            "source_ami": None,
            "extra": "x",
        },
    )
    passed = contract.variables_for(t, inputs(), {"extra": "mine", "undeclared": "y"})
    assert passed == {
        "region": "us-east-1",
        "ami_regions": ["us-west-2"],
        "source_ami": "ami-0123456789abcdef0",
        "imagefleet_tags": {
            "imagefleet:family": "web",
            "imagefleet:stage": "unstable",
            "imagefleet:bake-id": "web-1-abc",
        },
        "extra": "mine",
    }
    json_t = template({}, {"ami_regions": "", "imagefleet_tags": ""}, fmt="json")
    # JSON variables are strings only: no map, and ami_regions comma-separated (Packer splits it)
    assert contract.variables_for(json_t, inputs(), {}) == {"ami_regions": "us-west-2"}
    three = inputs(regions=("us-east-1", "us-west-2", "eu-west-1"))
    assert contract.variables_for(json_t, three, {}) == {"ami_regions": "us-west-2,eu-west-1"}


def test_user_variables_may_not_set_the_contracts_but_may_change_the_recipe() -> None:
    with pytest.raises(UsageError, match="region"):
        contract.check_user_variables({"region": "eu-west-1"})
    t = template({}, {"recipe_manifest": ""})
    assert contract.variables_for(t, inputs(recipe_manifest="/a"), {"recipe_manifest": "/b"}) == {
        "recipe_manifest": "/b"
    }


@pytest.mark.parametrize(
    "settings, variables, ok",
    [
        (
            {"region": "${var.region}", "ami_regions": "${var.ami_regions}"},
            {"region": "us-east-1", "ami_regions": ["us-west-2"]},
            True,
        ),
        ({"region": "us-east-1", "ami_regions": ["us-west-2"]}, {}, True),
        (
            {"region": "us-east-1", "ami_regions": ["us-west-2", "us-east-1"]},
            {},
            True,
        ),  # the build region repeated
        ({"region": "us-west-2", "ami_regions": ["us-east-1"]}, {}, False),  # wrong build region
        ({"region": "us-east-1"}, {}, False),  # the family's second region missing
        (
            {"region": "us-east-1", "ami_regions": ["us-west-2", "eu-west-1"]},
            {},
            False,
        ),  # one too many
        (
            {"region": "{{user `aws_region`}}", "ami_regions": ["us-west-2"]},
            {"aws_region": "eu-west-1"},
            False,
        ),
        (
            {"region": "${local.region}", "ami_regions": ["us-west-2"]},
            {},
            True,
        ),  # computed: left to the artifact check
    ],
)
def test_region_check(settings: dict, variables: dict, ok: bool) -> None:
    t = template(settings)
    if ok:
        contract.check_regions(t, variables, inputs(), "families.web.template")
    else:
        with pytest.raises(ConfigError) as exc:
            contract.check_regions(t, variables, inputs(), "families.web.template")
        assert "us-east-1, us-west-2" in exc.value.message


def test_credentials_imagefleet_holds_fill_the_templates_credential_variables() -> None:
    t = template(
        {
            "access_key": "{{user `aws_access_key_id`}}",
            "secret_key": "${var.sk}",
            "profile": "${var.p}",
        }
    )
    creds = {"aws_access_key_id": "AKIAENDPOINT", "aws_secret_access_key": "s3cret"}
    assert contract.credential_values(t, inputs(credentials=creds)) == {
        "aws_access_key_id": "AKIAENDPOINT",
        "sk": "s3cret",
        "p": "",
    }
    assert contract.credential_values(t, inputs()) == {}  # none of its own: the template's stand


def test_literal_credentials_conflict_only_when_imagefleet_has_its_own() -> None:
    t = template({"access_key": "AKIALITERAL", "secret_key": "x"})
    with pytest.raises(ConfigError, match="sets access_key itself"):
        contract.check_credentials(t, inputs(profile="ops"), "w")
    contract.check_credentials(t, inputs(), "w")  # real AWS, no profile: the template decides


def test_an_endpoint_needs_the_template_to_use_it() -> None:
    with pytest.raises(ConfigError, match="imagefleet_endpoint"):
        contract.check_endpoint(
            template({"custom_endpoint_ec2": "http://elsewhere"}),
            inputs(endpoint_url="http://x"),
            "w",
        )
    contract.check_endpoint(
        template({"custom_endpoint_ec2": "${var.imagefleet_endpoint}"}),
        inputs(endpoint_url="http://x"),
        "w",
    )
    contract.check_endpoint(template({}), inputs(), "w")


def test_reading_an_hcl2_directory_and_a_json_template() -> None:
    hcl = templates.load(TEMPLATES / "learn-hcl2")
    assert hcl.format == "hcl2" and hcl.required_version == ">= 1.6.0, < 2.0.0"
    assert (
        hcl.variables["region"] == "us-west-2"
        and hcl.variables["ami_regions"] == []
        and hcl.variables["source_ami"] is None
    )
    (b,) = hcl.builders
    assert (
        b.name == "amazon-ebs.ubuntu"
        and b.settings["region"] == "${var.region}"
        and b.settings["instance_type"] == "t2.micro"
    )
    js = templates.load(TEMPLATES / "shared-amis-json" / "template.json")
    assert js.format == "json" and js.builders[0].settings["ami_users"] == [
        "123456789012",
        "210987654321",
    ]
    assert templates.reference(js.builders[0].settings["region"]) == "region"


def test_unreadable_templates_are_bad_input(tmp_path: Path) -> None:
    (tmp_path / "x.pkr.json").write_text('{"builders": []}')
    (tmp_path / "bad.pkr.hcl").write_text('source "amazon-ebs" {{{')
    (tmp_path / "null.json").write_text('{"builders": [{"type": "null"}]}')
    (tmp_path / "empty").mkdir()
    for path, message in [
        ("x.pkr.json", "HCL2 in JSON syntax"),
        ("bad.pkr.hcl", "not HCL2"),
        ("null.json", "no amazon-ebs"),
        ("empty", "no .pkr.hcl"),
        ("missing.json", "no file"),
    ]:
        with pytest.raises(ConfigError, match=message):
            templates.load(tmp_path / path)


def test_a_template_that_does_not_tag_with_the_bake_id_gets_a_warning() -> None:
    assert (
        contract.tagging_warnings(template({"tags": "${merge(var.imagefleet_tags, {a = 1})}"}))
        == []
    )
    assert (
        contract.tagging_warnings(
            template({"tags": {"imagefleet:bake-id": "{{user `imagefleet_bake_id`}}"}})
        )
        == []
    )
    (warning,) = contract.tagging_warnings(
        template({"tags": {"Name": "x"}}, {"imagefleet_tags": {}})
    )
    assert "only through its reservation" in warning
