"""Teams' own Packer templates, as they are, baked with real Packer against the local endpoint.

The templates under data/templates/ are shaped like well-known public ones (see each file's
comment): a production JSON template with a variables file and ``{{template_dir}}`` scripts
(awslabs/amazon-eks-ami), an HCL2 source + build split over files (HashiCorp's learn-packer
tutorial), and a JSON template that copies and shares its AMI (``ami_regions``, ``ami_users``).
Packer runs them where they are; imagefleet's part goes in through variables only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipelines.reservations import reservations

pytestmark = [pytest.mark.integration, pytest.mark.packer]

TEMPLATES = Path(__file__).parent / "data" / "templates"


def use_template(ws: Any, name: str, template: str, *, var_files: list[str] = ()) -> Path:
    """Copy a team's template directory into the workspace and point the family at it."""
    dest = ws.root / "teams" / name
    shutil.copytree(TEMPLATES / name, dest)
    ws.edit(
        r"^template = .*$",
        f'template = "teams/{name}/{template}"' if template else f'template = "teams/{name}"',
    )
    if var_files:
        files = ", ".join(f'"teams/{name}/{f}"' for f in var_files)
        ws.edit(r"^build_timeout = .*$", f'build_timeout = "20m"\nvar_files = [{files}]')
    return dest


def tags(aws: Any, region: str, ami: str) -> dict[str, str]:
    image = aws.client("ec2", region).describe_images(ImageIds=[ami])["Images"][0]
    return {t["Key"]: t["Value"] for t in image.get("Tags", [])}


def bake_dir(ws: Any, result: dict) -> Path:
    return Path(result["packer_log"]).parent


def test_production_json_template_with_variables_file_and_template_dir_scripts(
    workspace: Any, aws: Any
) -> None:
    ws = workspace
    team = use_template(
        ws, "eks-style-json", "eks-worker-al2.json", var_files=["eks-worker-al2-variables.json"]
    )
    before = (team / "eks-worker-al2.json").read_text()
    r = ws.run("bake", ws.family, "--json")
    assert r.code == 0, r.stderr
    result = r.json()
    assert set(result["amis"]) == {"us-east-1", "us-west-2"} and result["version"] == 1
    out = bake_dir(ws, result)
    # the team's variables file reached the scripts found through {{template_dir}}
    assert (
        out / "install.log"
    ).read_text().strip() == "kubernetes 1.24.7 (2022-10-31) from amazon-eks"
    # the endpoint's credentials beat the variables file's access key (docs/pipelines.md,
    # precedence)
    assert (out / "seen-access-key").read_text().strip() == "testing"
    assert "aws_access_key_id" not in json.loads((out / "imagefleet.vars.json").read_text())
    assert not (out / "credentials.vars.json").exists()  # the owner-only file went with the bake
    assert "openssl\t3.0.13-0ubuntu3.1" in ws.context().store.get_base(ws.family, 1).manifest
    assert (team / "eks-worker-al2.json").read_text() == before  # the team's file is untouched
    for region, ami in result["amis"].items():
        t = tags(aws, region, ami)
        assert t["kubernetes_version"] == "1.24.7" and t["imagefleet:version"] == "1"
        assert t["imagefleet:bake-id"] == result["packer_run_id"]


def test_hcl2_source_and_build_directory_with_path_root_script(workspace: Any, aws: Any) -> None:
    ws = workspace
    use_template(ws, "learn-hcl2", "")
    r = ws.run("bake", ws.family, "--json")
    assert r.code == 0, r.stderr
    result = r.json()
    assert set(result["amis"]) == {"us-east-1", "us-west-2"}
    log = (bake_dir(ws, result) / "setup.log").read_text().splitlines()
    assert log[0] == "FOO is hello world"
    assert log[1] == str(ws.root)  # Packer ran in the config's directory, as the operator would
    passed = json.loads((bake_dir(ws, result) / "imagefleet.vars.json").read_text())
    assert "imagefleet_bake_id" not in passed  # not declared by this template, so not passed
    assert passed["region"] == "us-east-1" and passed["ami_regions"] == ["us-west-2"]
    for region, ami in result["amis"].items():
        t = tags(aws, region, ami)
        assert t["OS_Version"] == "Ubuntu" and t["imagefleet:family"] == ws.family


def test_json_template_with_ami_regions_and_ami_users(workspace: Any, aws: Any) -> None:
    ws = workspace
    use_template(ws, "shared-amis-json", "template.json")
    r = ws.run("bake", ws.family, "--json")
    assert r.code == 0, r.stderr
    for region, ami in r.json()["amis"].items():
        perms = aws.client("ec2", region).describe_image_attribute(
            ImageId=ami, Attribute="launchPermission"
        )
        assert sorted(p["UserId"] for p in perms["LaunchPermissions"]) == [
            "123456789012",
            "210987654321",
        ]


def images_of(aws: Any, family: str) -> list[str]:
    return [
        i["ImageId"]
        for region in ("us-east-1", "us-west-2")
        for i in aws.client("ec2", region).describe_images(
            Owners=["self"], Filters=[{"Name": "tag:imagefleet:family", "Values": [family]}]
        )["Images"]
    ]


def test_region_mismatch_is_exit_2_naming_both_before_building(workspace: Any, aws: Any) -> None:
    ws = workspace
    team = use_template(ws, "shared-amis-json", "template.json")
    text = (
        (team / "template.json")
        .read_text()
        .replace('"ami_regions": ["us-west-2"]', '"ami_regions": ["eu-west-1"]')
    )
    (team / "template.json").write_text(text)
    r = ws.run("bake", ws.family)
    assert r.code == 2, r.stderr
    assert "eu-west-1" in r.stderr and "us-east-1, us-west-2" in r.stderr
    assert reservations(ws.context().store, ws.family) == [] and images_of(aws, ws.family) == []


@pytest.mark.parametrize(
    "name, edit",
    [
        ("learn-hcl2", ("build.pkr.hcl", '">= 1.6.0, < 2.0.0"', '">= 1.9.2"')),
        (
            "shared-amis-json",
            (
                "template.json",
                '"variables": {',
                '"min_packer_version": "1.10.0",\n  "variables": {',
            ),
        ),
    ],
)
def test_template_needing_a_newer_packer_is_exit_2(
    workspace: Any, aws: Any, name: str, edit: tuple
) -> None:
    ws = workspace
    team = use_template(ws, name, "template.json" if name == "shared-amis-json" else "")
    file, old, new = edit
    (team / file).write_text((team / file).read_text().replace(old, new))
    r = ws.run("bake", ws.family)
    assert r.code == 2, r.stderr
    assert "1.6.6" in r.stderr and ("1.9.2" in r.stderr or "1.10.0" in r.stderr)
    assert reservations(ws.context().store, ws.family) == [] and images_of(aws, ws.family) == []


def test_a_templates_own_literal_credentials_are_refused_with_an_endpoint(workspace: Any) -> None:
    ws = workspace
    team = use_template(ws, "shared-amis-json", "template.json")
    text = (
        (team / "template.json")
        .read_text()
        .replace(
            '"instance_type": "t3.small",',
            '"instance_type": "t3.small",\n      "access_key": "AKIALITERAL", "secret_key": "x",',
        )
    )
    (team / "template.json").write_text(text)
    r = ws.run("bake", ws.family)
    assert r.code == 2 and "sets access_key itself" in r.stderr
    assert reservations(ws.context().store, ws.family) == []


def test_init_writes_hcl2_by_default_and_json_on_request(
    tmp_path: Path, workspace: Any, aws: Any
) -> None:
    import io

    from imagefleet.cli import raw_main
    from orchestrator.context import Context
    from orchestrator.output import Output

    quiet = Output(stdout=io.StringIO(), stderr=io.StringIO())
    assert raw_main(["init", str(tmp_path / "h")], obj=Context(output=quiet)) == 0
    assert (tmp_path / "h" / "packer" / "demo.pkr.hcl").is_file()
    assert 'template = "packer/demo.pkr.hcl"' in (tmp_path / "h" / "imagefleet.toml").read_text()

    ws = workspace  # the JSON one bakes as it is
    config = ws.config.read_text()
    assert (
        raw_main(["init", str(ws.root), "--format", "json", "--force"], obj=Context(output=quiet))
        == 0
    )
    assert 'template = "packer/demo.json"' in ws.config.read_text()
    ws.config.write_text(config)  # the workspace's endpoint and family
    ws.edit(r"^template = .*$", 'template = "packer/demo.json"')
    assert (
        json.loads((ws.root / "packer" / "demo.json").read_text())["builders"][0]["type"]
        == "amazon-ebs"
    )
    r = ws.run("bake", ws.family, "--json")
    assert r.code == 0, r.stderr
    for region, ami in r.json()["amis"].items():
        assert tags(aws, region, ami)["imagefleet:bake-id"] == r.json()["packer_run_id"]


def test_bake_check_runs_every_check_and_packer_validate_and_builds_nothing(
    workspace: Any, aws: Any
) -> None:
    ws = workspace
    use_template(ws, "learn-hcl2", "")
    r = ws.run("bake", ws.family, "--check", "--json")
    assert r.code == 0, r.stderr
    report = r.json()
    assert report["would_bake"] is True and report["findings"] == []
    assert report["packer"] == "1.6.6" and report["format"] == "hcl2"
    assert report["checks"][-2:] == ["packer version", "packer validate"]
    assert reservations(ws.context().store, ws.family) == [] and images_of(aws, ws.family) == []
    assert not list(ws.context().settings.state_dir.glob("bake*/**/*.json"))  # no var file left


def test_bake_check_reports_every_finding_of_hashicorps_example_and_exits_2(
    workspace: Any, aws: Any
) -> None:
    ws = workspace
    use_template(ws, "hashicorp-amazon-example", "build.pkr.hcl")
    r = ws.run("bake", ws.family, "--check", "--json")
    assert r.code == 2, r.stderr
    found = {f["check"]: f["message"] for f in r.json()["findings"]}
    assert set(found) == {"regions", "endpoint", "packer validate"}, found
    # no region: the build region imagefleet sets, so only the family's second region is missing
    assert "builds in us-east-1 (region us-east-1 from AWS_REGION" in found["regions"]
    assert "needs Packer ≥ 1.7.0 but the installed Packer is 1.6.6" in found["packer validate"]
    (error, hint) = r.stderr.splitlines()[-2:]
    assert error.startswith("error: bake --check:") and hint.startswith("hint:")
    assert reservations(ws.context().store, ws.family) == [] and images_of(aws, ws.family) == []
