"""Helpers for canary tests, in a uniquely named module so they never clash with other areas'."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def shared_testdata() -> Path:
    """``$IMAGEFLEET_SHARED/testdata`` if set, else ``../shared/testdata`` beside the repo."""
    override = os.environ.get("IMAGEFLEET_SHARED")
    if override:
        return Path(override) / "testdata"
    return Path(__file__).resolve().parents[2].parent / "shared" / "testdata"


def load_kayenta_cases() -> list[dict[str, Any]]:
    path = shared_testdata() / "kayenta_mannwhitney_cases.json"
    if not path.exists():
        return []
    return json.loads(path.read_text())["cases"]


SUITE_FILE = "kayenta_mannwhitney_suite.json"


def load_kayenta_suite() -> dict[str, Any] | None:
    """The interval vectors of Kayenta's ``MannWhitneySuite``, or None where not installed."""
    path = shared_testdata() / SUITE_FILE
    return json.loads(path.read_text()) if path.exists() else None
