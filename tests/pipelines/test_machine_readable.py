"""Parsing Packer's -machine-readable output, on output recorded from real builds."""

from __future__ import annotations

from pathlib import Path

from pipelines.packer import machine_readable as mr

DATA = Path(__file__).parent / "data"


def lines(name: str) -> list[mr.Line]:
    return mr.parse((DATA / name).read_text().splitlines())


def test_artifact_line_gives_ami_per_region() -> None:
    amis = mr.amis_by_region(lines("packer-success.log"))
    assert amis == {"us-east-1": "ami-a076f52c1606943fe", "us-west-2": "ami-8536583440ef26a32"}


def test_successful_build_has_no_errors_and_readable_progress() -> None:
    parsed = lines("packer-success.log")
    assert mr.errors(parsed) == []
    messages = [m for m in (mr.progress(ln) for ln in parsed) if m]
    assert any(m.startswith("amazon-ebs: Creating AMI") for m in messages)
    assert all("%!(PACKER_COMMA)" not in m for m in messages)


def test_failed_build_yields_packers_own_error_text() -> None:
    parsed = lines("packer-bad-template.log")
    assert mr.amis_by_region(parsed) == {}
    errors = mr.errors(parsed)
    assert len(errors) == 1
    assert "unknown configuration key: '\"bogus_option\"'" in errors[0]
    assert "\n" in errors[0]  # escaped newlines are restored


def test_escapes_and_non_machine_lines() -> None:
    ln = mr.parse_line(
        "1700000000,amazon-ebs,artifact,0,id,eu-west-1:ami-1%!(PACKER_COMMA)eu-central-1:ami-2"
    )
    assert ln is not None and ln.target == "amazon-ebs" and ln.timestamp == 1700000000
    assert mr.amis_by_region([ln]) == {"eu-west-1": "ami-1", "eu-central-1": "ami-2"}
    assert mr.parse_line("==> plain text Packer sometimes prints") is None
    assert mr.parse_line("") is None
    assert mr.parse_line("123,x") is None


def test_the_ami_is_known_as_soon_as_packer_creates_it() -> None:
    lines = mr.parse((DATA / "packer-success.log").read_text().splitlines())
    created = [a for a in (mr.created_ami(ln) for ln in lines) if a]
    assert created[0] == "ami-a076f52c1606943fe"
    assert created[0] in mr.amis_by_region(lines).values()


def test_amis_from_packers_manifest_post_processor_take_the_last_run() -> None:
    # the shape Packer's manifest post-processor writes (packer-manifest.json)
    manifest = {
        "builds": [
            {
                "name": "base",
                "builder_type": "amazon-ebs",
                "artifact_id": "us-east-1:ami-0old",
                "packer_run_uuid": "r1",
            },
            {
                "name": "base",
                "builder_type": "amazon-ebs",
                "artifact_id": "us-east-1:ami-0aaa,us-west-2:ami-0bbb",
                "packer_run_uuid": "r2",
            },
        ],
        "last_run_uuid": "r2",
    }
    assert mr.amis_from_manifest(manifest) == {"us-east-1": "ami-0aaa", "us-west-2": "ami-0bbb"}
    assert mr.amis_from_manifest({"builds": "nope"}) == {}


def test_packers_multi_line_summary_is_shown_whole() -> None:
    # line 50 of the recorded build: "--> amazon-ebs: AMIs were created:\nus-east-1: …\n…"
    summary = [m for m in (mr.progress(ln) for ln in lines("packer-success.log")) if m][-1]
    assert summary.splitlines() == [
        "amazon-ebs: AMIs were created:",
        "  us-east-1: ami-a076f52c1606943fe",
        "  us-west-2: ami-8536583440ef26a32",
    ]
    # a message with an escaped comma and a leading escaped newline keeps its text
    ln = mr.parse_line("1,,ui,say,\\n==> amazon-ebs: a%!(PACKER_COMMA) b\\n  c\\n")
    assert ln is not None and mr.progress(ln) == "amazon-ebs: a, b\n  c"


def test_progress_of_several_lines_is_printed_as_one_indented_block() -> None:
    import io

    from orchestrator.output import Output

    err = io.StringIO()
    out = Output(stderr=err, transcript=True)
    with out.status("baking base with packer") as update:
        update("amazon-ebs: AMIs were created:\n  us-east-1: ami-1\n  us-west-2: ami-2")
    assert err.getvalue().splitlines() == [
        "baking base with packer",
        "  amazon-ebs: AMIs were created:",
        "    us-east-1: ami-1",
        "    us-west-2: ami-2",
    ]


def test_a_template_with_two_sources_gives_each_builds_amis() -> None:
    # packer-two-sources.log: Packer 1.6.6 building data/templates/multiarch-hcl2 (an arm64 and an
    # x86_64 source) against the local endpoint, as test_multiarch's bake ran it
    builds = mr.amis_by_build(lines("packer-two-sources.log"))
    assert builds == {
        "amazon-ebs.arm64": {
            "us-east-1": "ami-a1ea214dcf06a14e0",
            "us-west-2": "ami-0cbd6a3973ae10e26",
        },
        "amazon-ebs.x86_64": {
            "us-east-1": "ami-db38600af6d83f535",
            "us-west-2": "ami-57ac4f8c317f768f3",
        },
    }
    # folded per region, one build hides the other: why the bake reads them per build
    assert len(mr.amis_by_region(lines("packer-two-sources.log"))) == 2


def test_a_manifest_with_two_builds_gives_each_builds_amis() -> None:
    # the shape of Packer's manifest post-processor output (packer/post-processor/manifest)
    manifest = {
        "builds": [
            {
                "name": "arm64",
                "builder_type": "amazon-ebs",
                "packer_run_uuid": "r1",
                "artifact_id": "us-east-1:ami-0a,us-west-2:ami-0b",
            },
            {
                "name": "x86_64",
                "builder_type": "amazon-ebs",
                "packer_run_uuid": "r1",
                "artifact_id": "us-east-1:ami-0c,us-west-2:ami-0d",
            },
            {
                "name": "x86_64",
                "builder_type": "amazon-ebs",
                "packer_run_uuid": "r0",
                "artifact_id": "us-east-1:ami-0old",
            },
        ],
        "last_run_uuid": "r1",
    }
    assert mr.builds_from_manifest(manifest) == {
        "arm64": {"us-east-1": "ami-0a", "us-west-2": "ami-0b"},
        "x86_64": {"us-east-1": "ami-0c", "us-west-2": "ami-0d"},
    }
