"""The pipelines' tables of imagefleet.toml: ``[gates]`` (what a base must show to enter a stage)
and ``[notify]`` (how friend teams are told of a new candidate).

The core's config loader keeps them as free-form data (``settings.raw``), like ``[canary]`` and
``[perf]``; this module validates them through ``orchestrator.schema`` (``GATES`` and ``NOTIFY``
hold every default) when a command first needs them. Every error is a ``ConfigError`` that names
file:line and the key (``gates.release.soak``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import schema as s

if TYPE_CHECKING:
    from orchestrator.config import Settings

GATE_KINDS = ("image_tests", "perf", "canary", "soak")


@dataclass(frozen=True)
class GateSettings:
    """Gates a base must pass to enter ``stage`` (from the stage before it)."""

    stage: str
    require: tuple[str, ...] = ()
    soak_seconds: int = 0


def _gate(require: tuple[str, ...]) -> s.Table:
    return s.Table(fields={
        "require": s.List(require, item=s.Choice(options=GATE_KINDS),
                          what=f"a list of gate names from {', '.join(GATE_KINDS)}"),
        "soak": s.Duration("0s"),
    })


GATES = s.Table(fields={"candidate": _gate(("image_tests",)), "release": _gate(("image_tests",))})


def parse_gates(raw: Mapping[str, Any] | None, *, path: Path | None = None,
                text: str = "") -> dict[str, GateSettings]:
    """Validate a ``[gates]`` table (None or {} gives the defaults); errors name file:line and key."""
    doc = GATES.read(dict(raw or {}), "gates", s.Where(path, text))
    return {stage: _gate_settings(stage, g) for stage, g in doc.items()}


def gates(settings: Settings) -> dict[str, GateSettings]:
    """The ``[gates]`` table of loaded settings, by target stage (``candidate``, ``release``)."""
    return parse_gates(settings.raw.get("gates"), path=settings.path, text=settings.text)


def _gate_settings(stage: str, g: dict[str, Any]) -> GateSettings:
    """A soak longer than zero is a gate of its own, whether or not ``require`` names it."""
    require = g["require"]
    if g["soak"] and "soak" not in require:
        require = (*require, "soak")
    return GateSettings(stage=stage, require=require, soak_seconds=g["soak"])
