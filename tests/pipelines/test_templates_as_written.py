"""Public templates as their authors wrote them: regions, provisioner names, an older Packer.

``data/templates/eks-ami-upstream`` is awslabs/amazon-eks-ami's own JSON template and variables
file and ``data/templates/hashicorp-amazon-example`` HashiCorp's own amazon-ebs example (see
data/templates/README.md). The Packer outputs are what the installed Packer 1.6.6 prints, run here
(``packer validate`` takes well under a second and builds nothing).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.output import Output
from pipelines import bake_check
from pipelines.packer import contract, validate_errors
from pipelines.packer import machine_readable as mr
from pipelines.packer import run as packer_run
from pipelines.packer import template as templates

TEMPLATES = Path(__file__).parent / "data" / "templates"
EKS = TEMPLATES / "eks-ami-upstream"
HASHICORP = TEMPLATES / "hashicorp-amazon-example"


def inputs(*regions: str) -> contract.BakeInputs:
    return contract.BakeInputs(
        family="eks",
        regions=regions,
        source_ami="ami-0123456789abcdef0",
        bake_id="eks-1-abc",
        ami_name="eks-1-abc",
        manifest_path="/b/manifest.txt",
        packer_manifest_path="/b/packer-manifest.json",
    )


def eks_values(family: contract.BakeInputs) -> dict:
    template = templates.load(EKS / "eks-worker-al2.json")
    team = templates.parse_var_file(EKS / "eks-worker-al2-variables.json", where="var_files")
    passed = contract.variables_for(template, family, {})
    return contract.effective_values(template, passed, team)


# --- ami_regions and region ---------------------------------------------------------------------
def test_the_eks_templates_string_ami_regions_is_read_as_packer_reads_it() -> None:
    template = templates.load(EKS / "eks-worker-al2.json")
    (builder,) = template.builders
    assert builder.settings["ami_regions"] == "{{user `ami_regions`}}"
    # its variables file builds in us-west-2 with ami_regions "": a one-region family bakes
    one = inputs("us-west-2")
    values = eks_values(one)
    assert values["ami_regions"] == ""
    contract.check_regions(template, values, one, "families.eks.template")
    # three regions: imagefleet gives ami_regions as Packer's comma-separated string
    three = inputs("us-west-2", "us-east-1", "eu-west-1")
    values = eks_values(three)
    assert values["ami_regions"] == "us-east-1,eu-west-1"
    contract.check_regions(template, values, three, "families.eks.template")


@pytest.mark.parametrize(
    "copies, regions",
    [
        ("", ["us-west-2"]),
        ("us-east-1,eu-west-1", ["us-west-2", "us-east-1", "eu-west-1"]),
        (" us-east-1 , eu-west-1 ", ["us-west-2", "us-east-1", "eu-west-1"]),
        (["us-east-1"], ["us-west-2", "us-east-1"]),
    ],
)
def test_json_ami_regions_as_a_string_or_a_list(copies: object, regions: list[str]) -> None:
    template = templates.load(EKS / "eks-worker-al2.json")
    values = {"aws_region": "us-west-2", "ami_regions": copies}
    contract.check_regions(template, values, inputs(*regions), "w")


def test_a_json_region_mismatch_hints_in_json_and_names_the_templates_own_variable() -> None:
    template = templates.load(EKS / "eks-worker-al2.json")
    family = inputs("us-east-1", "eu-west-1")
    with pytest.raises(ConfigError) as exc:
        contract.check_regions(template, eks_values(family), family, "families.eks.template")
    err = exc.value
    assert "builds in us-west-2, eu-west-1" in err.message
    assert "family's regions are us-east-1, eu-west-1" in err.message
    assert err.hint is not None and "{{user `ami_regions`}}" in err.hint
    assert "comma-separated" in err.hint and "var." not in err.hint  # a JSON hint, not HCL2's
    assert "give the variable aws_region the value us-east-1" in err.hint


def test_no_region_builds_in_the_region_imagefleet_sets() -> None:
    template = templates.load(HASHICORP)
    (builder,) = template.builders
    assert "region" not in builder.settings  # HashiCorp's example leaves it to AWS_REGION
    contract.check_regions(template, {}, inputs("us-east-1"), "w")
    with pytest.raises(ConfigError) as exc:
        contract.check_regions(template, {}, inputs("us-east-1", "us-west-2"), "w")
    assert "builds in us-east-1 (region us-east-1 from AWS_REGION" in exc.value.message
    assert "None" not in exc.value.message
    assert exc.value.hint is not None and "ami_regions = var.ami_regions" in exc.value.hint
    assert "{{user" not in exc.value.hint  # an HCL2 hint for an HCL2 template


# --- provisioners named by type and position ----------------------------------------------------
HCL2_TWO_PROVISIONERS = """
variable "greeting" {
  type    = string
  default = "hi"
}
source "amazon-ebs" "x" {
  region = "us-east-1"
}
build {
  sources = ["source.amazon-ebs.x"]
  provisioner "file" {
    source      = "a"
    destination = "/tmp/a"
  }
  provisioner "shell" {
    inline = ["echo ${var.greeting}"]
  }
}
"""


def test_an_hcl2_provisioner_is_named_by_type_and_position_in_its_build(tmp_path: Path) -> None:
    path = tmp_path / "t.pkr.hcl"
    path.write_text(HCL2_TWO_PROVISIONERS)
    with pytest.raises(ConfigError) as exc:
        contract.check_shell_commands(templates.load(path), "w")
    assert "build.provisioner[1] (shell) builds a shell command" in exc.value.message


def test_a_json_provisioner_is_named_by_its_section_and_position() -> None:
    template = templates.load(EKS / "eks-worker-al2.json")
    # the EKS template's shell provisioners, by their place among all 15 of its provisioners
    assert sorted({w for w, _ in template.shell_commands}) == [
        "provisioners[0] (shell)",
        "provisioners[12] (shell)",
        "provisioners[14] (shell)",
        "provisioners[4] (shell)",
        "provisioners[7] (shell)",
    ]
    # it splices {{user `working_dir`}} into its commands: refused, naming the first place
    with pytest.raises(ConfigError) as exc:
        contract.check_shell_commands(template, "w")
    assert "provisioners[0] (shell) builds a shell command" in exc.value.message


# --- packer validate, in one line, naming the Packer a key needs --------------------------------
def validate(template: Path, var_files: list[Path], cwd: Path) -> ConfigError:
    env = packer_run.packer_env({"AWS_REGION": "us-east-1"})
    with pytest.raises(ConfigError) as exc:
        packer_run.validate(
            str(template),
            var_files,
            cwd=cwd,
            env=env,
            where="families.t.template",
            installed=packer_run.version(env),
        )
    return exc.value


@pytest.mark.packer
def test_hashicorps_example_needs_packer_1_7_for_required_plugins_and_data(tmp_path: Path) -> None:
    err = validate(HASHICORP / "build.pkr.hcl", [], tmp_path)
    assert "needs Packer ≥ 1.7.0 but the installed Packer is 1.6.6" in err.message
    assert "required_plugins (Packer 1.7.0), data (Packer 1.7.0)" in err.message
    assert "\n" not in err.message and err.hint is not None and "\n" not in err.hint


@pytest.mark.packer
def test_the_eks_template_needs_packer_1_7_for_metadata_options(tmp_path: Path) -> None:
    team = tmp_path / "eks"
    shutil.copytree(EKS, team)
    # the provisioners' files, which validate looks for (the template's repository has them)
    for d in ("files", "log-collector-script/linux", "scripts"):
        (team / d).mkdir(parents=True, exist_ok=True)
    raw = json.loads((team / "eks-worker-al2.json").read_text())
    for p in raw["provisioners"]:
        script = str(p.get("script", ""))
        if script.startswith("{{template_dir}}/"):
            (team / script.removeprefix("{{template_dir}}/")).touch()
    given = {  # what the repository's Makefile passes, and imagefleet's ami_name and ami_regions
        "instance_type": "m5.large",
        "arch": "x86_64",
        "kubernetes_version": "1.28.5",
        "kubernetes_build_date": "2024-01-02",
        "ami_name": "eks-1-abc",
        "ami_regions": "us-east-1,eu-west-1",
    }
    (tmp_path / "given.json").write_text(json.dumps(given))
    err = validate(
        team / "eks-worker-al2.json",
        [team / "eks-worker-al2-variables.json", tmp_path / "given.json"],
        tmp_path,
    )
    assert "needs Packer ≥ 1.7.0 but the installed Packer is 1.6.6" in err.message
    assert "metadata_options (Packer 1.7.0)" in err.message and "\n" not in err.message


@pytest.mark.packer
def test_an_unknown_key_shows_the_version_found_and_both_readings(tmp_path: Path) -> None:
    path = tmp_path / "t.pkr.hcl"
    path.write_text(
        'source "amazon-ebs" "x" {\n  ami_name = "xyz"\n  instance_type = "t3.micro"\n'
        '  source_ami = "ami-12345678"\n  communicator = "none"\n  deprecate_at = "2030-01-01"\n'
        "}\n"
        'build {\n  sources = ["source.amazon-ebs.x"]\n}\n'
    )
    err = validate(path, [], tmp_path)
    assert "Packer 1.6.6 does not know deprecate_at" in err.message
    assert "a key of a newer Packer than 1.6.6, or a typo" in err.message
    assert err.hint is not None and "t.pkr.hcl line 6: Unsupported argument" in err.hint
    assert "\n" not in err.message + err.hint


# Packer 1.6.6's own words (``packer validate -machine-readable``, the error line unescaped)
HCL2_TWO_ERRORS = (
    "Error: Unsupported argument\n\n  on a.pkr.hcl line 6:\n  (source code not available)\n\n"
    'An argument named "deprecate_at" is not expected here.\n\n'
    "Error: Unsupported argument\n\n  on a.pkr.hcl line 7:\n  (source code not available)\n\n"
    'An argument named "imds_support" is not expected here.\n\n'
)
JSON_ITEMS = (
    'Error: Failed to prepare build: "amazon-ebs"\n\n2 errors occurred:\n'
    "\t* unknown configuration key: '\"deprecate_at\"'\n"
    "\t* unknown configuration key: '\"imds_support\"'\n\n\n\n"
)
HCL2_PREPARE = (
    "Error: 1 error(s) occurred:\n\n* ami_name must be between 3 and 128 characters long\n\n"
    "  on a.pkr.hcl line 1:\n  (source code not available)\n\n\n"
)


@pytest.mark.parametrize(
    "output, lines, keys",
    [
        (
            HCL2_TWO_ERRORS,
            [
                'a.pkr.hcl line 6: Unsupported argument: An argument named "deprecate_at" is '
                "not expected here.",
                'a.pkr.hcl line 7: Unsupported argument: An argument named "imds_support" is '
                "not expected here.",
            ],
            ["deprecate_at", "imds_support"],
        ),
        (
            JSON_ITEMS,
            [
                "amazon-ebs: unknown configuration key: '\"deprecate_at\"'",
                "amazon-ebs: unknown configuration key: '\"imds_support\"'",
            ],
            ["deprecate_at", "imds_support"],
        ),
        (
            HCL2_PREPARE,
            ["a.pkr.hcl line 1: ami_name must be between 3 and 128 characters long"],
            [None],
        ),
    ],
)
def test_packers_pretty_printed_errors_become_one_line_each(
    output: str, lines: list[str], keys: list[str | None]
) -> None:
    found = validate_errors.problems(output)
    assert [p.text for p in found] == lines
    assert [p.unknown_key for p in found] == keys
    message, _hint = validate_errors.message("t", output, "1.6.6")
    assert "\n" not in message


def test_a_key_the_installed_packer_already_has_is_not_blamed_on_its_version() -> None:
    output = (
        'Error: Failed to prepare build: "amazon-ebs"\n\n1 error occurred:\n'
        "\t* unknown configuration key: '\"metadata_options\"'\n"
    )
    message, _ = validate_errors.message("t.json", output, "1.7.0")
    assert (
        "needs Packer" not in message and "Packer 1.7.0 does not know metadata_options" in message
    )


def test_packers_own_log_of_a_refused_template_is_one_line() -> None:
    # data/packer-bad-template.log: Packer 1.6.6's machine-readable output for an unknown option
    log = (Path(__file__).parent / "data" / "packer-bad-template.log").read_text()
    text = "\n".join(mr.errors(mr.parse(log.splitlines())))
    (problem,) = validate_errors.problems(text)
    assert problem == validate_errors.Problem(
        "amazon-ebs: unknown configuration key: '\"bogus_option\"'", "bogus_option"
    )


def test_bake_check_shows_one_line_per_finding_and_exits_2() -> None:
    report = bake_check.CheckReport("web", "packer/web.json", "json", "1.6.6", ("us-east-1",))
    report.checks = ["template", "shell commands", "packer validate"]
    report.findings = [
        bake_check.Finding("shell commands", "t provisioners[0] (shell) builds [red]", "use env"),
        bake_check.Finding("packer validate", "t needs Packer ≥ 1.7.0"),
    ]
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(ConfigError) as exc:
        bake_check.show(Output(stdout=out, stderr=err), report)
    assert out.getvalue().splitlines() == [
        "web would not bake: 2 finding(s)",
        "  shell commands: t provisioners[0] (shell) builds [red]",  # text, never markup
        "    hint: use env",
        "  packer validate: t needs Packer ≥ 1.7.0",
    ]
    assert exc.value.message == "bake --check: web would not bake (shell commands, packer validate)"
    json_out = io.StringIO()
    with pytest.raises(ConfigError):
        bake_check.show(Output(json_mode=True, stdout=json_out, stderr=err), report)
    doc = json.loads(json_out.getvalue())
    assert doc["would_bake"] is False and [f["check"] for f in doc["findings"]] == [
        "shell commands",
        "packer validate",
    ]
    report.findings = []
    ok = io.StringIO()
    bake_check.show(Output(stdout=ok, stderr=err), report)  # no error: exit 0
    assert ok.getvalue().startswith("web would bake: 3 checks passed")


HCL2_STRING_AMI_REGIONS = """
variable "region" {
  type = string
}
variable "ami_regions" {
  type    = string
  default = ""
}
source "amazon-ebs" "x" {
  ami_name      = "xyz-1"
  instance_type = "t3.micro"
  source_ami    = "ami-12345678"
  communicator  = "none"
  region        = var.region
  ami_regions   = compact(split(",", var.ami_regions))
}
build {
  sources = ["source.amazon-ebs.x"]
}
"""


@pytest.mark.packer
def test_an_hcl2_string_ami_regions_variable_gets_a_string_packer_accepts(tmp_path: Path) -> None:
    path = tmp_path / "t.pkr.hcl"
    path.write_text(HCL2_STRING_AMI_REGIONS)
    template = templates.load(path)
    assert template.variable_types == {"region": "string", "ami_regions": "string"}
    family = inputs("us-east-1", "us-west-2", "eu-west-1")
    passed = contract.variables_for(template, family, {})
    assert passed == {"region": "us-east-1", "ami_regions": "us-west-2,eu-west-1"}
    (tmp_path / "vars.json").write_text(json.dumps(passed))
    env = packer_run.packer_env({"AWS_REGION": "us-east-1"})
    packer_run.validate(str(path), [tmp_path / "vars.json"], cwd=tmp_path, env=env, where="t")
    # the list imagefleet passes a list(string) variable would be refused by Packer for this one
    (tmp_path / "list.json").write_text(json.dumps({**passed, "ami_regions": ["us-west-2"]}))
    with pytest.raises(ConfigError, match="packer validate refused"):
        packer_run.validate(str(path), [tmp_path / "list.json"], cwd=tmp_path, env=env, where="t")
