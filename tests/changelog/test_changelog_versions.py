"""Version strings: validated once per distinct string, exactly as python-debian's `Version` plus
dpkg's two extra rules would, and parsed into a shared `Version` only when compared."""

from __future__ import annotations

import pytest
from debian.debian_support import Version
from hypothesis import example, given, settings
from hypothesis import strategies as st

from changelog.packages import dpkg_version, validate_version
from orchestrator.errors import ManifestError

# Every character a Debian version may hold, and a few it may not.
VERSION_CHARS = "0123456789abzAZ.+~-:" + " _\n!"


def accepted_by_building_a_version(text: str) -> bool:
    """The reference: python-debian's `Version`, then dpkg's empty-upstream / empty-revision
    rules."""
    try:
        parsed = Version(text)
    except ValueError:
        return False
    without_epoch = text.partition(":")[2] if parsed.epoch is not None else text
    return (
        bool(parsed.upstream_version)
        and not without_epoch.startswith("-")
        and not text.endswith("-")
    )


def accepts(text: str) -> bool:
    try:
        return validate_version(text, "m", 1) == text
    except ManifestError:
        return False


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=VERSION_CHARS, max_size=14))
@example("1:2.3-4")
@example("x:7.88")
@example("7.88-")
@example("1:-1")
@example("1.0:2")
@example("0:1.0")
@example("1.0\n")
@example("1.0-1-2")
@example("2:1.0~rc1+dfsg-3+b1")
def test_validation_matches_python_debian_version_plus_dpkg_rules(text: str) -> None:
    assert accepts(text) == accepted_by_building_a_version(text)


@pytest.mark.parametrize("text", ["1.0-1", "1:2.3~rc1-0ubuntu1", "5.2.15-2+b2"])
def test_a_version_is_parsed_once_and_shared(text: str) -> None:
    first = dpkg_version(text)
    assert dpkg_version(text) is first
    assert str(first) == text


def test_cached_versions_order_as_dpkg_does() -> None:
    assert (
        dpkg_version("1.0~rc1-1")
        < dpkg_version("1.0-1")
        < dpkg_version("1.0-1+b1")
        < dpkg_version("1:0.1-1")
    )
    assert dpkg_version("1.0") == dpkg_version("0:1.0")


def test_an_invalid_version_is_a_value_error_not_a_cached_answer() -> None:
    with pytest.raises(ValueError):
        dpkg_version("not a version")
    with pytest.raises(ManifestError, match=r"^m:7: invalid Debian version 'not a version'"):
        validate_version("not a version", "m", 7)
