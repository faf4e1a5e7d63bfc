"""Shared fixtures for canary tests: the shared test vectors, fleets on the local endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from canary_support import load_kayenta_cases


@pytest.fixture
def kayenta_cases() -> list[dict[str, Any]]:
    return load_kayenta_cases()


@pytest.fixture
def fleet_factory(workspace: Any, aws: Any) -> Iterator[Any]:
    """Makes ``canary_fleet.Fleet``s (bases, groups, a health agent) and tears them down after."""
    from canary_fleet import Fleet

    made: list[Fleet] = []

    def make(*args: Any, **kwargs: Any) -> Fleet:
        f = Fleet(workspace, aws, *args, **kwargs)
        made.append(f)
        return f

    yield make
    for f in made:
        f.teardown()
