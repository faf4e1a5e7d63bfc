"""Which architecture's AMIs a base's stage parameter names, and the parameters' names (pure)."""

from __future__ import annotations

from orchestrator.store import BaseVersion
from pipelines.publish import default_arch, parameter_name

ARCHS = {
    "arm64": {"us-east-1": "ami-0a1", "us-west-2": "ami-0a2"},
    "x86_64": {"us-east-1": "ami-0x1", "us-west-2": "ami-0x2"},
}


def _base(amis: dict[str, str]) -> BaseVersion:
    return BaseVersion("web", 3, amis, "ami-s", 2, "b", "t", architectures=ARCHS)


def test_the_default_architecture_is_the_one_the_records_amis_are() -> None:
    assert default_arch(_base(ARCHS["arm64"]), ARCHS) == "arm64"
    assert default_arch(_base(ARCHS["x86_64"]), ARCHS) == "x86_64"
    # a copy made later adds regions to the map, never to a different architecture
    assert default_arch(_base({"us-east-1": "ami-0x1"}), ARCHS) == "x86_64"


def test_stage_parameters_per_architecture() -> None:
    assert parameter_name("web", "release") == "/imagefleet/web/release"
    assert parameter_name("web", "release", "arm64") == "/imagefleet/web/release/arm64"
