"""The real-AWS example Packer template in docs/examples is valid for the Packer imagefleet runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "ubuntu-24.04.pkr.hcl"
PACKER = shutil.which("packer")


@pytest.mark.skipif(PACKER is None, reason="packer is not installed (make test installs it)")
def test_the_hcl2_example_validates_and_writes_the_manifest_where_imagefleet_reads_it(
    tmp_path: Path,
) -> None:
    assert PACKER is not None
    r = subprocess.run(
        [
            PACKER,
            "validate",
            "-var",
            "source_ami=ami-0123456789abcdef0",
            "-var",
            "ami_name=ex-1",
            "-var",
            f"imagefleet_manifest={tmp_path / 'manifest.txt'}",
            str(EXAMPLE),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={"CHECKPOINT_DISABLE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    text = EXAMPLE.read_text()
    assert 'communicator                = "ssh"' in text and "dpkg-query -W" in text
    assert 'direction   = "download"' in text and "destination = var.imagefleet_manifest" in text
