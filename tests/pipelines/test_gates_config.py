"""``[gates]`` belongs to pipelines (``pipelines/config.py``): defaults, a soak that is a gate of
its
own, and errors that name file:line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import config
from orchestrator.errors import ConfigError
from pipelines.config import GateSettings, gates

TEMPLATE = (Path(config.__file__).parent / "templates" / "init" / "imagefleet.toml").read_text()


def load_text(tmp_path: Path, text: str) -> config.Settings:
    path = tmp_path / "imagefleet.toml"
    path.write_text(text)
    return config.load(path)


def test_the_init_template_gates_release_on_everything(tmp_path: Path) -> None:
    g = gates(load_text(tmp_path, TEMPLATE))
    assert g["release"] == GateSettings("release", ("image_tests", "perf", "canary", "soak"), 300)
    assert g["candidate"].require == ("image_tests",)


def test_defaults_and_a_soak_that_is_a_gate_of_its_own(tmp_path: Path) -> None:
    minimal = '[families.web]\nos = "debian-12"\ntemplate = "t.json"\nsource_ami = "ami-0abc1234"\n'
    assert gates(load_text(tmp_path, minimal))["candidate"] == GateSettings(
        "candidate", ("image_tests",), 0
    )
    soaked = gates(load_text(tmp_path, minimal + '[gates.release]\nrequire = []\nsoak = "1h"\n'))
    assert soaked["release"] == GateSettings("release", ("soak",), 3600)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        (
            'require = ["image_tests"]',
            'require = ["image_tests", "vibes"]',
            "gates.candidate.require",
        ),
        ('soak = "5m"', 'soak = "a day"', "gates.release.soak"),
        (
            "[gates.candidate]",
            "[gates.unstable]\nrequire = []\n[gates.candidatex]",
            "gates.unstable",
        ),
    ],
)
def test_a_bad_gate_names_file_line_and_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert old in TEMPLATE
    settings = load_text(
        tmp_path, TEMPLATE.replace(old, new, 1)
    )  # the core leaves [gates] to pipelines
    with pytest.raises(ConfigError) as caught:
        gates(settings)
    assert (
        f"{tmp_path / 'imagefleet.toml'}:" in caught.value.message and key in caught.value.message
    )
