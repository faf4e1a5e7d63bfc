"""Light commands start at once: they never import the statistics, plotting or local-AWS
libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("scipy", "pandas", "matplotlib", "moto")
# What the instant commands (--version, --help, changelog diff of two files) leave out besides:
# the AWS SDK, the terminal renderer and the template engine. They need click, python-debian and
# the standard library.
NOT_AT_START = (*HEAVY, "boto3", "botocore", "rich", "jinja2")
PROBE = """
import json, sys
from imagefleet.cli import raw_main
code = raw_main(sys.argv[1:])
loaded = sorted(m for m in WATCHED_NAMES if m in sys.modules)
heavy = [m for m in loaded if m in HEAVY_NAMES]
print(json.dumps({"code": code, "heavy": heavy, "loaded": loaded}), file=sys.stderr)
""".replace("HEAVY_NAMES", repr(HEAVY)).replace("WATCHED_NAMES", repr(NOT_AT_START))


def run_light(*args: str, cwd: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    return json.loads(proc.stderr.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("startup")
    assert run_light("init", str(root), cwd=root)["code"] == 0
    (root / "a.manifest").write_text("bash\t5.2-1\nopenssl\t3.0.13-1\n")
    (root / "b.manifest").write_text("bash\t5.2-2\nopenssl\t3.0.13-1\ncurl\t8.5.0-1\n")
    return root


@pytest.mark.parametrize(
    "args",
    [
        ("--version",),
        ("--help",),
        ("status",),
        ("history",),
        ("leases",),
        ("changelog", "diff", "a.manifest", "b.manifest"),
    ],
)
def test_light_commands_import_no_heavy_library(workdir: Path, args: tuple[str, ...]) -> None:
    result = run_light(*args, cwd=workdir)
    assert result["code"] == 0
    assert result["heavy"] == []


@pytest.mark.parametrize(
    "args",
    [
        ("--version",),
        ("--help",),
        ("changelog", "diff", "a.manifest", "b.manifest"),
        ("changelog", "diff", "a.manifest", "b.manifest", "--format", "json"),
    ],
)
def test_instant_commands_import_neither_aws_nor_rendering_libraries(
    workdir: Path, args: tuple[str, ...]
) -> None:
    result = run_light(*args, cwd=workdir)
    assert result["code"] == 0
    assert result["loaded"] == []


def test_the_probe_sees_what_a_command_loads(workdir: Path) -> None:
    result = run_light(
        "changelog", "diff", "a.manifest", "b.manifest", "--format", "html", cwd=workdir
    )
    assert result["code"] == 0
    assert "jinja2" in result["loaded"]  # the HTML page is a template: the check would see a leak


def test_a_heavy_command_still_loads_what_it_needs(workdir: Path) -> None:
    result = run_light("canary", "judge", "--help", cwd=workdir)
    assert result["code"] == 0  # the command is found and described, through the lazy group


# moto is the `local` extra: an install without it must run every command that does not start the
# embedded endpoint. A None entry in sys.modules makes `import moto` fail as if it were not
# installed.
NO_MOTO = "import sys; sys.modules['moto'] = None\n" + PROBE


def run_without_moto(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_MOTO, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "args, code, says",
    [
        (("--help",), 0, ""),
        (("status",), 0, ""),
        # resolve reads SSM: it gets as far as asking for the endpoint, which this workspace has not
        # started
        (
            ("resolve", "demo", "--stage", "candidate"),
            3,
            "error: the local endpoint is not running",
        ),
    ],
)
def test_commands_run_without_moto(
    workdir: Path, args: tuple[str, ...], code: int, says: str
) -> None:
    proc = run_without_moto(*args, cwd=workdir)
    *said, probe = proc.stderr.strip().splitlines()
    assert json.loads(probe)["code"] == code
    assert says in "\n".join(said)
    assert "moto" not in "\n".join(said)


def test_local_up_without_moto_names_the_extra(workdir: Path) -> None:
    proc = run_without_moto("local", "up", cwd=workdir)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert json.loads(proc.stderr.strip().splitlines()[-1])["code"] == 3
    assert len(errors) == 1
    assert "imagefleet[local]" in errors[0]
    assert not (
        workdir / ".imagefleet" / "local.json"
    ).exists()  # nothing started, nothing recorded
