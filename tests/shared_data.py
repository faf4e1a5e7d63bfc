"""Where the shared test data lies: ``shared/testdata`` beside the repository (its README names
the source of each file), or ``$IMAGEFLEET_SHARED/testdata`` when a checkout lives elsewhere."""

from __future__ import annotations

import os
from pathlib import Path


def shared_testdata() -> Path:
    """``$IMAGEFLEET_SHARED/testdata`` if set, else ``../shared/testdata`` beside the repository."""
    override = os.environ.get("IMAGEFLEET_SHARED")
    if override:
        return Path(override) / "testdata"
    return Path(__file__).resolve().parents[1].parent / "shared" / "testdata"
