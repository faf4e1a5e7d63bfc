"""`changelog diff` through click's CliRunner: formats, output file, errors, resolver hook."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from changelog_support import changelog_text, write_gz
from click.testing import CliRunner

from changelog.cli import changelog_group, resolve_manifest
from changelog.manifest import Manifest, parse_manifest_text
from orchestrator.errors import ExitStatus, ManifestError, NotFoundError, UsageError


@pytest.fixture
def pair(tmp_path: Path) -> tuple[str, str, str]:
    old = tmp_path / "old.manifest"
    new = tmp_path / "new.manifest"
    old.write_text("zlib1g:amd64\t1:1.2.11.dfsg-4\nbash\t5.2-1\n")
    new.write_text("zlib1g:amd64\t1:1.2.13.dfsg-1\nbash\t5.2-1\ncurl\t7.88.1-10\n")
    logs = tmp_path / "logs"
    write_gz(
        logs / "zlib1g.changelog.Debian.gz",
        changelog_text(
            "zlib",
            ["1:1.2.13.dfsg-1", "1:1.2.11.dfsg-4.1", "1:1.2.11.dfsg-4"],
            extra={"1:1.2.11.dfsg-4.1": ["  * Fix CVE-2022-37434."]},
        ),
    )
    return str(old), str(new), str(logs)


def test_diff_json(pair: tuple[str, str, str]) -> None:
    old, new, logs = pair
    result = CliRunner().invoke(
        changelog_group, ["diff", old, new, "--format", "json", "--changelog-dir", logs]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["summary"]["upgraded"] == 1 and data["summary"]["added"] == 1
    (item,) = data["upgraded"]
    assert [e["version"] for e in item["entries"]] == ["1:1.2.13.dfsg-1", "1:1.2.11.dfsg-4.1"]
    assert data["cves"] == {"CVE-2022-37434": ["zlib1g"]}


def test_diff_markdown_default_to_file(pair: tuple[str, str, str], tmp_path: Path) -> None:
    old, new, logs = pair
    out = tmp_path / "out.md"
    result = CliRunner().invoke(
        changelog_group, ["diff", old, new, "--changelog-dir", logs, "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert out.read_text().startswith("# Changelog:")
    assert "CVE-2022-37434" in out.read_text()


def test_diff_html(pair: tuple[str, str, str]) -> None:
    old, new, _ = pair
    result = CliRunner().invoke(changelog_group, ["diff", old, new, "--format", "html"])
    assert result.exit_code == 0
    assert result.output.startswith("<!DOCTYPE html>")
    assert "no changelog source configured" in result.output


def test_bad_manifest_propagates_manifest_error(pair: tuple[str, str, str], tmp_path: Path) -> None:
    _, new, _ = pair
    bad = tmp_path / "bad.manifest"
    bad.write_text("bash\t5.2-1\nbash\t5.2-2\n")
    result = CliRunner().invoke(changelog_group, ["diff", str(bad), new])
    assert isinstance(result.exception, ManifestError)
    assert str(result.exception).startswith(f"{bad}:2:")
    assert result.exception.exit_code == ExitStatus.BAD_INPUT == 2


def test_empty_manifest_exit_2(pair: tuple[str, str, str], tmp_path: Path) -> None:
    _, new, _ = pair
    empty = tmp_path / "empty.manifest"
    empty.write_bytes(b"")
    result = CliRunner().invoke(changelog_group, ["diff", str(empty), new])
    assert isinstance(result.exception, ManifestError)
    assert result.exception.exit_code == 2


def test_unknown_ref_without_resolver_is_not_found(pair: tuple[str, str, str]) -> None:
    _, new, _ = pair
    result = CliRunner().invoke(changelog_group, ["diff", "debian12:2024.05.01", new])
    assert isinstance(result.exception, NotFoundError)
    assert "debian12:2024.05.01" in str(result.exception)
    assert result.exception.exit_code == 2


def test_bad_format_is_click_usage_exit_2(pair: tuple[str, str, str]) -> None:
    old, new, _ = pair
    result = CliRunner().invoke(changelog_group, ["diff", old, new, "--format", "pdf"])
    assert result.exit_code == 2
    assert "pdf" in result.output


def test_changelog_dir_must_exist(pair: tuple[str, str, str], tmp_path: Path) -> None:
    old, new, _ = pair
    result = CliRunner().invoke(
        changelog_group, ["diff", old, new, "--changelog-dir", str(tmp_path / "nope")]
    )
    assert isinstance(result.exception, UsageError)


def test_resolver_hook_on_context_object(pair: tuple[str, str, str]) -> None:
    old, _, _ = pair
    seen = []

    def resolver(ref: str) -> Manifest:
        seen.append(ref)
        return parse_manifest_text("zlib1g\t1:1.3.dfsg-1\n", ref)

    obj = SimpleNamespace(manifest_resolver=resolver)
    result = CliRunner().invoke(
        changelog_group, ["diff", old, "ami-0abc", "--format", "json"], obj=obj
    )
    assert result.exit_code == 0, result.output
    assert seen == ["ami-0abc"]  # an existing file never goes to the resolver
    data = json.loads(result.output)
    assert data["upgraded"][0]["new"] == "1:1.3.dfsg-1"
    assert data["removed"] == [{"package": "bash", "version": "5.2-1"}]


def test_resolver_may_return_a_path(pair: tuple[str, str, str]) -> None:
    old, new, _ = pair
    manifest = resolve_manifest("debian12:7", SimpleNamespace(manifest_resolver=lambda ref: new))
    assert manifest.path == new and "curl" in manifest
    assert resolve_manifest(old, None).versions["bash"] == "5.2-1"


def test_unwritable_output_is_usage_error(pair: tuple[str, str, str], tmp_path: Path) -> None:
    old, new, _ = pair
    target = tmp_path / "no-such-dir" / "out.md"
    result = CliRunner().invoke(changelog_group, ["diff", old, new, "--output", str(target)])
    assert isinstance(result.exception, UsageError)
    assert "cannot write --output" in str(result.exception)


def test_json_flag_prints_the_json_document(pair: tuple[str, str, str]) -> None:
    old, new, logs = pair
    as_format = CliRunner().invoke(
        changelog_group, ["diff", old, new, "--format", "json", "--changelog-dir", logs]
    )
    as_flag = CliRunner().invoke(
        changelog_group, ["diff", old, new, "--json", "--changelog-dir", logs]
    )
    assert as_flag.exit_code == 0, as_flag.output
    assert json.loads(as_flag.output) == json.loads(as_format.output)
    clash = CliRunner().invoke(changelog_group, ["diff", old, new, "--json", "--format", "html"])
    assert isinstance(clash.exception, UsageError)
    assert "--json and --format html" in str(clash.exception)


def test_a_resolved_base_brings_its_family_changelog_dir(pair: tuple[str, str, str]) -> None:
    from changelog.sides import Side

    old, new, logs = pair

    def resolver(ref: str) -> Side:
        text = Path(old if ref == "fam:1" else new).read_text()
        return Side(parse_manifest_text(text, ref), (Path(logs),))

    import io

    from orchestrator.context import Context
    from orchestrator.output import Output

    stdout = io.StringIO()
    embedder = Context(output=Output(stdout=stdout))
    embedder.manifest_resolver = resolver  # type: ignore[attr-defined]  # the embedding hook
    result = CliRunner().invoke(changelog_group, ["diff", "fam:1", "fam:2", "--json"], obj=embedder)
    assert result.exit_code == 0, result.output
    assert json.loads(stdout.getvalue())["cves"] == {"CVE-2022-37434": ["zlib1g"]}
