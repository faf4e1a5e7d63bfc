"""``[scorecard]`` in imagefleet.toml: the share of a family's fleet that must run its release.

The core's loader keeps the table as free-form data (``settings.raw``), as it does ``[gates]``;
this module validates it through ``orchestrator.schema`` when the scorecard is first drawn, so an
error names file:line and the key (``scorecard.fleet_on_release``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator import schema as s
from pipelines.scorecard.assess import Thresholds

if TYPE_CHECKING:
    from orchestrator.config import Settings

SCORECARD = s.Table(fields={"fleet_on_release": s.Num(90, lo=0, hi=100)})


def thresholds(settings: Settings) -> Thresholds:
    """The ``[scorecard]`` table of loaded settings (absent: every default)."""
    doc = SCORECARD.read(
        dict(settings.raw.get("scorecard") or {}),
        "scorecard",
        s.Where(settings.path, settings.text),
    )
    return Thresholds(fleet_on_release=float(doc["fleet_on_release"]))
