"""Package manifests of a base image: parse them into a `Manifest`.

Three input formats are read, detected from the first non-blank line:

* ``tab``: ``package<TAB>version`` lines — an Ubuntu cloud-image ``.manifest`` (binary names may
  carry an ``:amd64``/``:arm64`` qualifier, which is stripped and kept as the package's arch) or
  ``dpkg-query -W`` output; an optional third column carries the source package as printed by
  ``dpkg-query -f '${Package}\\t${Version}\\t${Source}\\n'`` (``src`` or ``src (version)``;
  empty means "same as the binary").
* ``snap:`` lines in a cloud-image manifest (``snap:lxd<TAB>channel<TAB>revision``) are kept apart
  in `Manifest.snaps` as opaque strings: snap revisions are not Debian versions, so they are
  never put through dpkg ordering and are not part of the diff.
* ``status``: a dpkg status file (RFC822 stanzas); only packages with
  ``Status: install ok installed`` are part of the image.

Every defect raises `ManifestError` naming the file and line: nothing is silently skipped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from debian.debian_support import Version

from orchestrator.errors import ManifestError

__all__ = ["Manifest", "Package", "parse_manifest", "parse_manifest_text", "validate_version"]

# dpkg's package-name rule (policy 5.6.1), checked before trusting a line: catches prose and
# binary garbage that happens to contain a tab.
_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]*$")
_ARCH = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SOURCE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9+.-]*)(?:\s+\((?P<version>[^()\s]+)\))?$")
_FIELD = re.compile(r"^(?P<key>[A-Za-z0-9][A-Za-z0-9-]*):(?:\s*(?P<value>.*))?$")


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


@dataclass(frozen=True)
class Manifest:
    """An ordered mapping package name → `Package`, plus snaps, for one image."""

    packages: Mapping[str, Package]
    snaps: Mapping[str, str] = field(default_factory=dict)
    path: str = "<memory>"
    format: str = "tab"

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


def validate_version(text: str, path: str, lineno: int) -> str:
    """Return ``text`` if dpkg would accept it as a version, else raise `ManifestError`.

    python-debian's `Version` does the parsing; on top of it we reject an empty upstream part or an
    empty revision (``1.0-``), which dpkg treats as errors but python-debian lets through.
    """
    try:
        parsed = Version(text)
    except ValueError:
        raise ManifestError(f"{path}:{lineno}: invalid Debian version {text!r}") from None
    without_epoch = text.partition(":")[2] if parsed.epoch is not None else text
    if not parsed.upstream_version or without_epoch.startswith("-") or text.endswith("-"):
        raise ManifestError(f"{path}:{lineno}: invalid Debian version {text!r}")
    return text


def parse_manifest(path: str | Path) -> Manifest:
    """Read and parse a manifest file; the format is detected from its content."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{p}: no such manifest file") from None
    except OSError as exc:
        raise ManifestError(f"{p}: cannot read manifest: {exc.strerror}") from None
    return parse_manifest_bytes(data, str(p))


def parse_manifest_bytes(data: bytes, path: str = "<memory>") -> Manifest:
    """Decode manifest bytes (UTF-8; a NUL byte means a binary file) and parse them."""
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ManifestError(f"{path}:{line}: binary data (NUL byte) in manifest")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ManifestError(f"{path}:{line}: not UTF-8 text ({exc.reason})") from None
    return parse_manifest_text(text, path)


def parse_manifest_text(text: str, path: str = "<memory>") -> Manifest:
    """Parse manifest text, detecting the format from its first non-blank line."""
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise ManifestError(f"{path}:1: empty manifest (no packages)")
    if first.startswith("Package:"):  # dpkg writes every status stanza Package-first
        return _parse_status(lines, path)
    return _parse_tab(lines, path)


class _Collector:
    """Accumulates packages; the same package twice is fine only with the same version."""

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


def _split_arch(qualified: str, path: str, lineno: int) -> tuple[str, str | None]:
    name, sep, arch = qualified.partition(":")
    if sep and not _ARCH.match(arch):
        raise ManifestError(f"{path}:{lineno}: bad architecture qualifier in {qualified!r}")
    if not _NAME.match(name):
        raise ManifestError(f"{path}:{lineno}: invalid package name {qualified!r}")
    return name, (arch if sep else None)


def _parse_source(text: str, path: str, lineno: int) -> tuple[str | None, str | None]:
    text = text.strip()
    if not text:
        return None, None
    m = _SOURCE.match(text)
    if m is None:
        raise ManifestError(f"{path}:{lineno}: invalid Source field {text!r}")
    version = m.group("version")
    if version is not None:
        validate_version(version, path, lineno)
    return m.group("name"), version


def _parse_tab(lines: list[str], path: str) -> Manifest:
    out = _Collector(path)
    snaps: dict[str, str] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 2 or not cols[1].strip():
            raise ManifestError(
                f"{path}:{lineno}: expected 'package<TAB>version', got {line[:80]!r}"
            )
        if len(cols) > 3:
            raise ManifestError(f"{path}:{lineno}: too many tab-separated columns ({len(cols)})")
        name_col = cols[0].strip()
        if name_col.startswith("snap:"):
            snap = name_col[len("snap:"):]
            if not snap or snap in snaps:
                raise ManifestError(f"{path}:{lineno}: bad or repeated snap line {line[:80]!r}")
            snaps[snap] = "\t".join(c.strip() for c in cols[1:])
            continue
        name, arch = _split_arch(name_col, path, lineno)
        version = validate_version(cols[1].strip(), path, lineno)
        source, source_version = (
            _parse_source(cols[2], path, lineno) if len(cols) == 3 else (None, None)
        )
        out.add(Package(name, version, source, source_version, arch), lineno)
    if not out.packages and not snaps:
        raise ManifestError(f"{path}:1: empty manifest (no packages)")
    return Manifest(out.packages, snaps, path, "tab")


def _stanzas(lines: list[str], path: str) -> Iterator[tuple[int, dict[str, tuple[int, str]]]]:
    """Yield (first line, {field: (line, value)}) per RFC822 stanza; continuation lines folded."""
    fields: dict[str, tuple[int, str]] = {}
    start = 0
    last: str | None = None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            if fields:
                yield start, fields
            fields, last = {}, None
            continue
        if line[0] in " \t":
            if last is None:
                raise ManifestError(f"{path}:{lineno}: continuation line outside a field")
            continue  # multi-line values (Description, Conffiles) are not needed here
        m = _FIELD.match(line)
        if m is None:
            raise ManifestError(f"{path}:{lineno}: expected 'Field: value', got {line[:80]!r}")
        if not fields:
            start = lineno
        key = m.group("key").lower()
        if key in fields:
            raise ManifestError(f"{path}:{lineno}: field {m.group('key')!r} repeated in stanza")
        fields[key] = (lineno, (m.group("value") or "").strip())
        last = key
    if fields:
        yield start, fields


def _parse_status(lines: list[str], path: str) -> Manifest:
    out = _Collector(path)
    for start, fields in _stanzas(lines, path):
        if "package" not in fields:
            raise ManifestError(f"{path}:{start}: stanza without a Package field")
        if "status" not in fields:
            raise ManifestError(f"{path}:{start}: stanza without a Status field")
        if fields["status"][1].split() != ["install", "ok", "installed"]:
            continue  # removed / half-installed / config-files: not part of the image
        name_line, qualified = fields["package"]
        name, _ = _split_arch(qualified, path, name_line)
        if "version" not in fields:
            raise ManifestError(f"{path}:{start}: installed package {name!r} has no Version")
        version_line, version = fields["version"]
        validate_version(version, path, version_line)
        source = source_version = None
        if "source" in fields:
            source, source_version = _parse_source(fields["source"][1], path, fields["source"][0])
        arch = fields.get("architecture", (0, ""))[1] or None
        out.add(Package(name, version, source, source_version, arch), name_line)
    if not out.packages:
        raise ManifestError(f"{path}:1: no installed packages in dpkg status file")
    return Manifest(out.packages, {}, path, "status")
