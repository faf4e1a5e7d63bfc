"""Helpers for the changelog tests: case files, synthetic changelogs, dpkg's own comparison."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

CASES = Path(__file__).parent / "cases"
DPKG = shutil.which("dpkg")


def load_case(name: str) -> object:
    return json.loads((CASES / name).read_text(encoding="utf-8"))


def dpkg_compare(a: str, op: str, b: str) -> bool:
    """dpkg's own answer to ``a op b`` (op: lt, eq, gt, …)."""
    assert DPKG is not None
    return subprocess.run([DPKG, "--compare-versions", a, op, b], check=False).returncode == 0


def changelog_text(
    package: str, versions: list[str], extra: dict[str, list[str]] | None = None
) -> str:
    """A well-formed Debian changelog, newest first, one entry per version."""
    extra = extra or {}
    blocks = []
    for i, version in enumerate(versions):
        lines = extra.get(version, [f"  * Change number {i} for {version}."])
        blocks.append(
            f"{package} ({version}) unstable; urgency=medium\n\n"
            + "\n".join(lines)
            + "\n\n -- Jane Maintainer <jane@example.org>  "
            + f"Mon, 0{1 + i % 9} Jan 2024 12:00:00 +0000\n"
        )
    return "\n".join(blocks)


def write_gz(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(text)
    return path
