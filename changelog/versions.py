"""Version order by package format: dpkg's for ``deb``, rpmvercmp's for ``rpm``.

Debian versions go through python-debian (`changelog.packages.dpkg_version`); RPM versions
(``[EPOCH:]VERSION[-RELEASE]``) through the ``rpm-version`` package (Python bindings of the
rpm-rs project's ``rpm-version`` crate, whose comparison is rpm's own ``rpmvercmp``, ``~`` and
``^`` included; cross-checked against ``rpm --eval '%{lua: print(rpm.vercmp(a, b))}'`` in the
tests).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cmp_to_key, lru_cache
from typing import Any

from changelog.packages import dpkg_version

__all__ = ["PACKAGE_FORMATS", "compare_versions", "rpm_compare", "version_key"]

PACKAGE_FORMATS = ("deb", "rpm")


@lru_cache(maxsize=1 << 16)
def rpm_compare(a: str, b: str) -> int:
    """-1, 0 or 1 as rpm orders the EVRs ``a`` and ``b`` (a missing epoch is 0)."""
    from rpm_version import evr_compare

    return int(evr_compare(a, b))


def compare_versions(package_format: str, a: str, b: str) -> int:
    """-1, 0 or 1 as ``package_format``'s tools order versions ``a`` and ``b``."""
    if a == b:
        return 0
    if package_format == "rpm":
        return rpm_compare(a, b)
    va, vb = dpkg_version(a), dpkg_version(b)
    if va > vb:  # most changes are upgrades: one comparison (each costs ~10 µs)
        return 1
    return -1 if va < vb else 0


def version_key(package_format: str) -> Callable[[str], Any]:
    """A sort key ordering version strings as ``package_format``'s tools do."""
    if package_format == "rpm":
        return cmp_to_key(rpm_compare)
    return dpkg_version
