"""Helpers for canary tests, in a uniquely named module so they never clash with other areas'."""

from __future__ import annotations

import json
from typing import Any

from shared_data import shared_testdata


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
