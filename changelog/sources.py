"""Where changelog text comes from: a `ChangelogSource` finds a package's changelog.Debian.

Implementations:

* `DirectorySource(DIR)` — ``DIR/<name>.changelog.Debian.gz``, ``DIR/<name>.changelog.Debian``,
  then the image tree ``DIR/usr/share/doc/<name>/changelog.Debian.gz`` (and the uncompressed
  file), for each binary name of the group and then the source name.
* `ArchiveSource` — ``apt-get download name=version`` into a temp dir, then the changelog out of
  the .deb via ``dpkg-deb --fsys-tarfile``. Any failure is a reason, never a crash.
* `NoSource` — always says why nothing is available.
* `ChainSource` — tries sources in order; if all fail, joins their reasons.

A lookup returns a `Found` (lazy line iterator + where it came from) or a `Missing` (why).
"""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import InputFormatError

__all__ = [
    "ArchiveSource",
    "ChainSource",
    "ChangelogSource",
    "DirectorySource",
    "Found",
    "Missing",
    "NoSource",
    "changelog_from_deb",
]


@dataclass(frozen=True)
class Found:
    """A changelog was found; ``open()`` yields its lines lazily and closes the file after."""

    origin: str
    open: Callable[[], Iterator[str]]


@dataclass(frozen=True)
class Missing:
    """No changelog; ``reason`` says why, for the report."""

    reason: str


Lookup = Found | Missing


class ChangelogSource(ABC):
    """Finds the changelog.Debian of a package at a version."""

    @abstractmethod
    def lookup(self, names: Sequence[str], version: str) -> Lookup:
        """Find the changelog for any of ``names`` (binary names first, then the source name).

        ``version`` is the version whose changelog is wanted (the newer side of the change).
        """


def _read_lines(path: Path) -> Iterator[str]:
    """A changelog's lines; a truncated or corrupt .gz is bad input that names the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            yield from fh
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # EOFError would read as Ctrl-D to click
        raise InputFormatError(f"{path}: truncated or corrupt gzip file ({exc})") from None


class DirectorySource(ChangelogSource):
    """Changelogs in a local directory: flat ``<name>.changelog.Debian[.gz]`` or an image tree."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def candidates(self, name: str) -> list[Path]:
        doc = self.root / "usr" / "share" / "doc" / name
        return [
            self.root / f"{name}.changelog.Debian.gz",
            self.root / f"{name}.changelog.Debian",
            doc / "changelog.Debian.gz",
            doc / "changelog.Debian",
        ]

    def lookup(self, names: Sequence[str], version: str) -> Lookup:
        for name in dict.fromkeys(names):
            for path in self.candidates(name):
                if path.is_file():
                    return Found(str(path), lambda p=path: _read_lines(p))
        return Missing(f"no changelog for {'/'.join(dict.fromkeys(names))} under {self.root}")


class NoSource(ChangelogSource):
    """Used when no changelog source was configured."""

    def lookup(self, names: Sequence[str], version: str) -> Lookup:
        return Missing("no changelog source configured (use --changelog-dir or --from-archive)")


class ChainSource(ChangelogSource):
    """Tries each source in order; the first `Found` wins."""

    def __init__(self, sources: Sequence[ChangelogSource]) -> None:
        self.sources = list(sources)

    def lookup(self, names: Sequence[str], version: str) -> Lookup:
        reasons = []
        for source in self.sources:
            result = source.lookup(names, version)
            if isinstance(result, Found):
                return result
            reasons.append(result.reason)
        return Missing("; ".join(reasons) or "no changelog source configured")


def changelog_from_deb(deb: Path, names: Sequence[str], dpkg_deb: str = "dpkg-deb") -> str | None:
    """The text of ``usr/share/doc/<name>/changelog.Debian[.gz]`` inside a .deb, or None.

    ``dpkg-deb --fsys-tarfile`` handles every data.tar compression dpkg supports; Python's tarfile
    reads the result.
    """
    proc = subprocess.run(
        [dpkg_deb, "--fsys-tarfile", str(deb)], capture_output=True, check=False, timeout=120
    )
    if proc.returncode != 0:
        raise OSError(proc.stderr.decode(errors="replace").strip() or "dpkg-deb failed")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        for name in dict.fromkeys(names):
            for leaf, compressed in (("changelog.Debian.gz", True), ("changelog.Debian", False)):
                member = members.get(f"usr/share/doc/{name}/{leaf}")
                if member is None or not member.isfile():
                    continue
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                data = fh.read()
                return (gzip.decompress(data) if compressed else data).decode(
                    "utf-8", errors="replace"
                )
    return None


class ArchiveSource(ChangelogSource):
    """Downloads the package's .deb from the configured apt archive and reads its changelog.

    Needs ``apt-get`` and ``dpkg-deb``; without them, or when the download fails (package not in the
    archive, no network), the lookup is a `Missing` with apt's own message.
    """

    def __init__(self, apt_get: str | None = None, dpkg_deb: str | None = None) -> None:
        self.apt_get = apt_get or shutil.which("apt-get")
        self.dpkg_deb = dpkg_deb or shutil.which("dpkg-deb")

    def lookup(self, names: Sequence[str], version: str) -> Lookup:
        if not self.apt_get or not Path(self.apt_get).exists():
            return Missing("apt-get is not available on this machine")
        if not self.dpkg_deb:
            return Missing("dpkg-deb is not available on this machine")
        binaries = list(dict.fromkeys(names))
        reasons = []
        with tempfile.TemporaryDirectory(prefix="imagefleet-deb-") as tmp:
            for name in binaries:
                try:
                    proc = subprocess.run(
                        [self.apt_get, "download", "-q", f"{name}={version}"],
                        cwd=tmp, capture_output=True, check=False, timeout=300,
                    )
                except (OSError, subprocess.TimeoutExpired) as exc:
                    reasons.append(f"apt-get download {name}={version}: {exc}")
                    continue
                if proc.returncode != 0:
                    msg = proc.stderr.decode(errors="replace").strip().splitlines()
                    reasons.append(
                        f"apt-get download {name}={version} failed: {msg[-1] if msg else '?'}"
                    )
                    continue
                for deb in sorted(Path(tmp).glob("*.deb")):
                    try:
                        text = changelog_from_deb(deb, binaries, self.dpkg_deb)
                    except (OSError, tarfile.TarError, subprocess.TimeoutExpired) as exc:
                        reasons.append(f"{deb.name}: cannot read: {exc}")
                        continue
                    if text is not None:
                        lines = text.splitlines()
                        return Found(f"archive:{deb.name}", lambda ls=lines: iter(ls))
                    reasons.append(f"{deb.name} has no usr/share/doc/*/changelog.Debian")
                    deb.unlink()
        return Missing("; ".join(reasons) or "no package to download")

