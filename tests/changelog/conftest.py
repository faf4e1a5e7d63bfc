"""Fixtures for the changelog tests (helpers live in changelog_support.py, a unique module name)."""

from __future__ import annotations

import pytest
from changelog_support import DPKG


@pytest.fixture
def needs_dpkg() -> str:
    if DPKG is None:
        pytest.skip("dpkg is not installed; cannot cross-check against dpkg --compare-versions")
    return DPKG
