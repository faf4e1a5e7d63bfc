"""Shared fixtures for canary tests: where the shared test vectors live."""

from __future__ import annotations

from typing import Any

import pytest
from canary_support import load_kayenta_cases


@pytest.fixture
def kayenta_cases() -> list[dict[str, Any]]:
    return load_kayenta_cases()
