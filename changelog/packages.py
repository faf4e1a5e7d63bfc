"""What an image has installed: `Package` (a Debian or RPM binary), `Snap`, and their `Manifest`.

Shared by every manifest form (changelog/manifest_forms.py): the records, dpkg's version rules,
and `PackageCollector`, which keeps one record per package and names the line of any conflict.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from debian.debian_support import Version

from orchestrator.errors import ManifestError

__all__ = [
    "Manifest",
    "Package",
    "PackageCollector",
    "Snap",
    "dpkg_version",
    "parse_source",
    "split_arch",
    "validate_version",
]

# dpkg's package-name rule (policy 5.6.1), checked before trusting a line: catches prose and
# binary garbage that happens to contain a tab.
_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]*$")
_ARCH = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SOURCE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9+.-]*)(?:\s+\((?P<version>[^()\s]+)\))?$")


@dataclass(frozen=True, slots=True)
class Package:
    """One installed binary package: its version, and where known its source and arch."""

    name: str
    version: str
    source: str | None = None
    source_version: str | None = None
    arch: str | None = None

    @property
    def source_name(self) -> str:
        """The source package it was built from; the binary name when unknown."""
        return self.source or self.name


@dataclass(frozen=True, slots=True)
class Snap:
    """One snap of a cloud image: its store revision and, where the manifest says, its channel.

    Revisions are the store's counters, not Debian versions: they are compared for equality only.
    """

    name: str
    revision: str
    channel: str | None = None


@dataclass(frozen=True)
class Manifest:
    """An ordered mapping package name → `Package`, plus snaps, for one image."""

    packages: Mapping[str, Package]
    snaps: Mapping[str, Snap] = field(default_factory=dict)
    path: str = "<memory>"
    format: str = "tab"
    package_format: str = "deb"  # "deb" (dpkg's version order) or "rpm" (rpmvercmp's)

    def __len__(self) -> int:
        return len(self.packages)

    def __iter__(self) -> Iterator[str]:
        return iter(self.packages)

    def __contains__(self, name: object) -> bool:
        return name in self.packages

    def __getitem__(self, name: str) -> Package:
        return self.packages[name]

    @property
    def versions(self) -> dict[str, str]:
        """Package name → version string."""
        return {name: pkg.version for name, pkg in self.packages.items()}

    @property
    def arch(self) -> str | None:
        """The image's architecture: the most common non-``all`` arch among its packages."""
        counts = Counter(p.arch for p in self.packages.values() if p.arch and p.arch != "all")
        return counts.most_common(1)[0][0] if counts else None

    @classmethod
    def from_versions(cls, versions: Mapping[str, str], *, path: str = "<memory>") -> Manifest:
        """Build a manifest from a plain name → version mapping (versions are validated)."""
        packages = {}
        for lineno, (name, version) in enumerate(versions.items(), start=1):
            validate_version(version, path, lineno)
            packages[name] = Package(name, version)
        return cls(packages, path=path)


@lru_cache(maxsize=1 << 16)
def dpkg_version(text: str) -> Version:
    """python-debian's `Version` of ``text``, parsed once per distinct string (ValueError if
    invalid).

    Two images share most of their version strings and a diff compares each several times (read,
    diff, grouping, entries), so every reader goes through this cache. The `Version` is shared:
    compare it, never assign to its fields.
    """
    return Version(text)


def validate_version(text: str, path: str, lineno: int) -> str:
    """Return ``text`` if dpkg would accept it as a version, else raise `ManifestError`."""
    if not _dpkg_accepts(text):
        raise ManifestError(f"{path}:{lineno}: invalid Debian version {text[:80]!r}")
    return text


@lru_cache(maxsize=1 << 16)
def _dpkg_accepts(text: str) -> bool:
    """Whether dpkg accepts ``text`` as a version, once per distinct string and without a `Version`.

    python-debian's own rule, as its `Version` applies it: ``Version.re_valid_version`` matches,
    and without an epoch the upstream part holds no ':'. On top of it we reject an empty upstream
    part or an empty revision (``1.0-``), which dpkg treats as errors but python-debian lets
    through. Building a `Version` costs about ten regex matches; most packages are never compared.
    """
    m = Version.re_valid_version.match(text)
    if m is None:
        return False
    epoch, upstream = m.group("epoch"), m.group("upstream_version")
    if epoch is None and ":" in upstream:
        return False
    without_epoch = text.partition(":")[2] if epoch is not None else text
    return bool(upstream) and not without_epoch.startswith("-") and not text.endswith("-")


def split_arch(qualified: str, path: str, lineno: int) -> tuple[str, str | None]:
    """``libc6:amd64`` → (``libc6``, ``amd64``); a bare name has no arch."""
    name, sep, arch = qualified.partition(":")
    if sep and not _ARCH.match(arch):
        raise ManifestError(f"{path}:{lineno}: bad architecture qualifier in {qualified[:80]!r}")
    if not _NAME.match(name):
        raise ManifestError(f"{path}:{lineno}: invalid package name {qualified[:80]!r}")
    return name, (arch if sep else None)


def parse_source(text: str, path: str, lineno: int) -> tuple[str | None, str | None]:
    """A dpkg ``Source`` value: ``src`` or ``src (version)``; empty means the binary's own name."""
    text = text.strip()
    if not text:
        return None, None
    m = _SOURCE.match(text)
    if m is None:
        raise ManifestError(f"{path}:{lineno}: invalid Source field {text[:80]!r}")
    version = m.group("version")
    if version is not None:
        validate_version(version, path, lineno)
    return m.group("name"), version


class PackageCollector:
    """Accumulates packages; the same package twice is fine only with the same version.

    ``libc6:amd64`` and ``libc6:i386`` at one version are one package to the diff; at two versions
    the manifest contradicts itself and the line saying so is named.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.packages: dict[str, Package] = {}
        self.first_line: dict[str, int] = {}

    def add(self, pkg: Package, lineno: int) -> None:
        seen = self.packages.get(pkg.name)
        if seen is None:
            self.packages[pkg.name] = pkg
            self.first_line[pkg.name] = lineno
        elif seen.version != pkg.version:
            raise ManifestError(
                f"{self.path}:{lineno}: package {pkg.name!r} listed again with version "
                f"{pkg.version!r} (line {self.first_line[pkg.name]} says {seen.version!r})"
            )
